"""The one seam to the Holoscan engine: nothing outside this package imports ``holoscan``.

Moving to another Holoscan major version touches this package only.
"""

from __future__ import annotations

import warnings

# The stack is handled by Application.run (a 32 MiB thread); Holoscan's import-time warning about
# the main thread's stack would only confuse users.
warnings.filterwarnings("ignore", message="Current stack size", category=RuntimeWarning)
# HOLOSCAN_LOG_LEVEL is left alone: set, it wins over app.log_level / --log-level (Holoscan's rule).

from clara_stream.runtime.application import Application  # noqa: E402
from clara_stream.runtime.conditions import (  # noqa: E402
    AsynchronousCondition,
    BlockMemoryPool,
    BooleanCondition,
    CountCondition,
    PeriodicCondition,
    UnboundedAllocator,
)
from clara_stream.runtime.fragment import Fragment  # noqa: E402
from clara_stream.runtime.loader import AppSpec, find_app, list_apps, load_app  # noqa: E402
from clara_stream.runtime.operator import Operator, Port  # noqa: E402
from clara_stream.runtime.stack import run_with_stack  # noqa: E402

__all__ = [
    "AppSpec", "Application", "AsynchronousCondition", "BlockMemoryPool", "BooleanCondition",
    "CountCondition", "Fragment", "Operator", "PeriodicCondition", "Port", "UnboundedAllocator", "find_app",
    "holoscan_version", "list_apps", "load_app", "run_with_stack",
]


def holoscan_version() -> str:
    """Version of the Holoscan SDK behind the seam."""
    import holoscan

    return str(holoscan.__version__)
