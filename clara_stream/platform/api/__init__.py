"""REST API (FastAPI) of the platform service."""
