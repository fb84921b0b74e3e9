"""Calling reward functions on a rollout batch, with checks and the NaN policy.

Each reward function has TRL's signature ``fn(prompts, completions, **columns) -> list[float]``.
The total reward is ``r = sum_k w_k * r_k``. A function that returns the wrong number of values, or
a non-number, is a bug and stops the run with an error naming it. NaN values follow the
``nan_rewards`` policy: ``"zero"`` replaces them by 0 (the count is reported as
``rewards/nan_count``; they never reach the loss as NaN), ``"error"`` stops the run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

import torch

from trafl.errors import DataError

#: The NaN policies of the module docstring (``TrainConfig.nan_rewards``).
NanRewards = Literal["zero", "error"]


class RewardError(DataError):
    """A reward function misbehaved (wrong length, wrong type, NaN under the 'error' policy)."""


def _name(fn: Callable) -> str:
    return getattr(fn, "__name__", type(fn).__name__)


def compute_rewards(
    reward_fns: Sequence[Callable[..., list[float]]],
    weights: Sequence[float],
    prompts: list[str],
    completions: list[str],
    columns: dict[str, list[Any]],
    nan_policy: NanRewards = "zero",
) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
    """Return ``(total [N], per_function [N, K], metrics)``."""
    if len(weights) != len(reward_fns):
        raise RewardError(f"reward_weights has {len(weights)} entries for {len(reward_fns)} reward functions")
    n = len(completions)
    per_fn = torch.zeros(n, len(reward_fns), dtype=torch.float64)
    metrics: dict[str, float] = {}
    nan_total = 0
    for k, fn in enumerate(reward_fns):
        values = fn(prompts, completions, **columns)
        try:
            values = list(values)
        except TypeError as exc:
            raise RewardError(
                f"reward function '{_name(fn)}' returned {type(values).__name__}, expected a list of floats"
            ) from exc
        if len(values) != n:
            raise RewardError(f"reward function '{_name(fn)}' returned {len(values)} values for {n} completions")
        clean = []
        for v in values:
            if v is None:
                v = float("nan")
            if not isinstance(v, (int, float)):
                raise RewardError(f"reward function '{_name(fn)}' returned {v!r}, expected a float")
            clean.append(float(v))
        col = torch.tensor(clean, dtype=torch.float64)
        nan = torch.isnan(col)
        if nan.any():
            if nan_policy == "error":
                raise RewardError(
                    f"reward function '{_name(fn)}' returned NaN for {int(nan.sum())} of {n} completions "
                    "(set nan_rewards: zero to replace NaN by 0 and count it)"
                )
            nan_total += int(nan.sum())
            col = torch.where(nan, torch.zeros_like(col), col)
        if torch.isinf(col).any():
            raise RewardError(f"reward function '{_name(fn)}' returned an infinite value")
        per_fn[:, k] = col
        metrics[f"rewards/{_name(fn)}/mean"] = float(col.mean())
        metrics[f"rewards/{_name(fn)}/std"] = float(col.std(unbiased=False))
    total = per_fn @ torch.tensor(list(weights), dtype=torch.float64)
    metrics["rewards/nan_count"] = float(nan_total)
    metrics["reward"] = float(total.mean())
    metrics["reward_std"] = float(total.std(unbiased=False))
    return total.float(), per_fn.float(), metrics
