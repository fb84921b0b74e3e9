"""Learning-rate schedules of both trainers: Hugging Face transformers' ``get_scheduler``.

``lr(k) = peak * factor(k)`` after ``k`` optimizer steps, with ``W`` warm-up steps and ``N`` steps in all:

* warm-up (``k < W``): ``factor = k / W`` (the first step runs at 0, transformers' convention);
* then, with ``p = (k - W) / max(1, N - W)``: ``constant``: 1; ``linear``: ``1 - p``;
  ``cosine``: ``(1 + cos(pi p)) / 2``.

(trafl 0.1's own schedule warmed up as ``(k + 1) / W``, one step ahead; after warm-up the two are equal.)
"""

from __future__ import annotations

from typing import Any, Literal

import torch

#: The learning-rate schedules after warm-up (the module docstring): ``lr_scheduler_type`` of both trainers.
SchedulerType = Literal["constant", "cosine", "linear"]
#: trafl's schedule names -> transformers' scheduler names.
SCHEDULES: dict[SchedulerType, str] = {"constant": "constant_with_warmup", "cosine": "cosine", "linear": "linear"}


def make_scheduler(optimizer: torch.optim.Optimizer, kind: SchedulerType, warmup: int, total: int) -> Any:
    """transformers' scheduler ``kind`` (one of :data:`SCHEDULES`) with ``warmup`` of ``total`` steps."""
    from transformers import get_scheduler

    return get_scheduler(SCHEDULES[kind], optimizer, num_warmup_steps=warmup, num_training_steps=total)
