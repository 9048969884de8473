"""A minimal optimiser loop shared by the apps' training scripts (model/train.py); not run in tests
beyond one step. AdamW with a cosine learning-rate decay over a wall-clock budget."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["fit"]


def fit(net: Any, loss_fn: Callable, batches: Callable[[], tuple[Any, Any]], *, minutes: float, max_steps: int,
        lr: float, log_every: int = 100) -> int:  # fmt: skip
    """Train ``net`` on ``batches()`` (→ inputs, targets) until ``max_steps`` or ``minutes``; returns the steps."""
    import torch

    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    t0, step, budget = time.monotonic(), 0, 60 * minutes
    while step < max_steps and time.monotonic() - t0 < budget:
        net.train()
        x, y = batches()
        loss = loss_fn(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        for g in opt.param_groups:  # cosine decay over the time budget
            g["lr"] = lr * 0.5 * (1 + np.cos(np.pi * min(1.0, (time.monotonic() - t0) / budget)))
        if step % log_every == 0 or step == 1:
            print(f"step {step} loss {loss.item():.4f} t {time.monotonic() - t0:.0f}s", flush=True)
    return step
