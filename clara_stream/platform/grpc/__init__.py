"""The platform API over gRPC: messages generated from the REST schemas (see build.py)."""
