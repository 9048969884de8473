"""Holoscan's own classes, untouched, for anchors that must measure the engine without our layer.

Only benchmarks use this (``benchmarks/framework_overhead.py`` compares the same chain written
both ways); operators and apps use :mod:`clara_stream.runtime`'s wrapped classes.
"""

from __future__ import annotations

from holoscan.conditions import PeriodicCondition
from holoscan.core import Application as RawApplication
from holoscan.core import Fragment as RawFragment
from holoscan.core import Operator as RawOperator
from holoscan.schedulers import EventBasedScheduler, GreedyScheduler, MultiThreadScheduler

__all__ = ["EventBasedScheduler", "GreedyScheduler", "MultiThreadScheduler", "PeriodicCondition", "RawApplication",
           "RawFragment", "RawOperator"]
