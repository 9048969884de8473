"""The embedded backend: the service's own scheduler thread and worker subprocesses."""

from clara_stream.platform.scheduler import Scheduler as EmbeddedScheduler

__all__ = ["EmbeddedScheduler"]
