"""Conditions and resources our operators use, under our names (Holoscan's, re-exported).

Operators and apps import them from :mod:`clara_stream.runtime`, so a Holoscan upgrade that
renames or re-homes them is absorbed here.
"""

from __future__ import annotations

from holoscan.conditions import (
    AsynchronousCondition,
    BooleanCondition,
    CountCondition,
    PeriodicCondition,
)
from holoscan.resources import BlockMemoryPool, UnboundedAllocator

__all__ = [
    "AsynchronousCondition", "BlockMemoryPool", "BooleanCondition", "CountCondition",
    "PeriodicCondition", "UnboundedAllocator",
]
