"""clara-stream: real-time medical AI pipelines on the Holoscan engine."""

__version__ = "0.1.0"
