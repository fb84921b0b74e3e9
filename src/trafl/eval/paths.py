"""Path-level diversity: how many denoising *paths* a model's samples of one prompt follow.

A dLLM sample is not only its text but also the order in which the sampler unmasked the canvas
(:func:`trafl.sampling.generate` records, per completion position ``l``, the global step
``s_i[l]`` at which sample ``i`` committed it). Reward-maximising RL can concentrate probability on
a few such paths ("trajectory locking") even when the answers stay varied, or vice versa; these
metrics make that visible. Everything here is a pure function of per-sample lists of ints.

**The order.** Sample ``i``'s unmasking order is the tuple ``o_i = (s_i[0], ..., s_i[L-1])`` of
commit steps over the *whole* canvas of ``L`` completion positions, post-EOS positions included:
the sampler commits them like any other position (``fill_eos`` only rewrites their tokens
afterwards), so they are part of the path the sampler took. With several tokens per step, positions
committed at the same step share a value, so ties are part of the order. A second, *content*
variant truncates each order to the positions up to and including the sample's first EOS,
``o_i[:c_i]`` (``c_i`` = index of the first EOS + 1, or ``L`` without EOS): the path of the part of
the canvas that carries the answer text.

For one prompt with ``n`` samples, correctness ``z_i`` and answer keys ``a_i``:

* ``position_entropy`` ``= (1/L) sum_l H( p_l )``, ``p_l(t) = #{i : s_i[l] = t} / n``,
  ``H(p) = -sum_t p(t) log p(t)`` in nats: the mean over positions of the entropy of the empirical
  distribution of the step at which that position was committed. 0 when every sample commits every
  position at the same step; ``log(steps per block)`` at most.
* ``distinct_orders`` ``= |{o_i}|``, between 1 and ``n``.
* ``order_entropy`` ``= H(q)``, ``q(o) = #{i : o_i = o} / n``: the plug-in entropy of the orders.
  It is at most ``log n`` and biased low by about ``(K - 1) / (2n)`` for ``K`` orders of positive
  probability (Miller-Madow), so it estimates the true order entropy only when ``n >> K``.
* ``distinct_correct_paths`` ``= |{(a_i, o_i) : z_i = 1}|``: distinct (answer, order) pairs among
  the correct samples (a correct sample without an answer key counts with key ``None``).
* ``top_path_share`` ``= max_(a, o) #{i : z_i = 1, (a_i, o_i) = (a, o)} / #{i : z_i = 1}``: the
  share of the most frequent correct path among the correct samples; ``None`` when none is correct.
  1 means every correct sample took the same path to the same answer.

:func:`summarise_paths` averages these over prompts (mean and standard error
``std(ddof=1) / sqrt(P)``, as for pass@k; ``top_path_share`` over solved prompts only).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Sequence
from typing import Any

import torch

from trafl.errors import ConfigError
from trafl.eval.passk import mean_and_stderr


def entropy(counts: Sequence[int] | Counter) -> float:
    """Plug-in entropy in nats of the empirical distribution with these counts:
    ``-sum_c (c/N) log(c/N)``, ``N = sum c`` (0 for a single value)."""
    values = list(counts.values()) if isinstance(counts, Counter) else list(counts)
    total = sum(values)
    if total <= 0:
        raise ConfigError("entropy of an empty sample")
    h = -sum((c / total) * math.log(c / total) for c in values if c > 0)
    return max(h, 0.0)  # -0.0 and rounding below zero for a point mass


def _as_rows(commit_steps: Any) -> list[tuple[int, ...]]:
    if isinstance(commit_steps, torch.Tensor):
        if commit_steps.dim() != 2:
            raise ConfigError(f"commit_steps must be [n, L], got shape {tuple(commit_steps.shape)}")
        commit_steps = commit_steps.tolist()
    rows = [tuple(int(s) for s in row) for row in commit_steps]
    if not rows:
        raise ConfigError("commit_steps holds no samples")
    if len({len(r) for r in rows}) != 1 or not rows[0]:
        raise ConfigError(
            f"commit_steps rows must all have the same positive length, got {sorted({len(r) for r in rows})}"
        )
    return rows


def order_metrics(orders: Sequence[Hashable], correct: Sequence[bool], answer_keys: Sequence[str | None]) -> dict:
    """``distinct_orders``, ``order_entropy``, ``distinct_correct_paths``, ``top_path_share`` of one
    prompt's samples, given each sample's order (any hashable; see the module docstring)."""
    if not (len(orders) == len(correct) == len(answer_keys)):
        raise ConfigError(
            f"orders, correct and answer_keys differ in length: {len(orders)}, {len(correct)}, {len(answer_keys)}"
        )
    order_counts = Counter(orders)
    paths = Counter((key, order) for order, ok, key in zip(orders, correct, answer_keys) if ok)
    num_correct = sum(paths.values())
    return {
        "distinct_orders": len(order_counts),
        "order_entropy": entropy(order_counts),
        "distinct_correct_paths": len(paths),
        "top_path_share": max(paths.values()) / num_correct if num_correct else None,
    }


def path_metrics(
    commit_steps: Sequence[Sequence[int]] | torch.Tensor,
    correct: Sequence[bool],
    answer_keys: Sequence[str | None],
    content_lengths: Sequence[int] | None = None,
) -> dict:
    """The path metrics of one prompt from its ``n`` samples (formulas in the module docstring).

    Args:
        commit_steps: ``[n, L]`` commit step of every completion position of every sample
            (``SampleOutput.commit_step`` rows of one prompt).
        correct: ``[n]`` whether each sample is correct.
        answer_keys: ``[n]`` each sample's answer identity (``Task.answer_key``), or ``None``.
        content_lengths: optional ``[n]`` positions up to and including each sample's first EOS
            (``L`` without EOS); adds the ``"content"`` variant of the order metrics.

    Returns ``{"n", "length", "num_correct", "position_entropy", "distinct_orders", "order_entropy",
    "distinct_correct_paths", "top_path_share"}`` plus ``"content": {the four order metrics}`` when
    ``content_lengths`` is given.
    """
    rows = _as_rows(commit_steps)
    n, length = len(rows), len(rows[0])
    if len(correct) != n or len(answer_keys) != n:
        raise ConfigError(
            f"{n} samples of commit steps but {len(correct)} correctness flags and {len(answer_keys)} answer keys"
        )
    correct = [bool(c) for c in correct]
    position_entropy = sum(entropy(Counter(r[pos] for r in rows)) for pos in range(length)) / length
    out = {
        "n": n,
        "length": length,
        "num_correct": sum(correct),
        "position_entropy": position_entropy,
        **order_metrics(rows, correct, answer_keys),
    }
    if content_lengths is not None:
        if len(content_lengths) != n:
            raise ConfigError(f"{n} samples but {len(content_lengths)} content lengths")
        if any(not 1 <= int(c) <= length for c in content_lengths):
            raise ConfigError(f"content lengths must lie in 1..L = {length}, got {list(content_lengths)}")
        out["content"] = order_metrics([r[: int(c)] for r, c in zip(rows, content_lengths)], correct, answer_keys)
    return out


def _stats(values: Sequence[float]) -> dict:
    mean, stderr = mean_and_stderr(torch.tensor([float(v) for v in values], dtype=torch.float64))
    return {"mean": float(mean), "stderr": float(stderr)}


def _summarise_orders(per_problem: Sequence[dict]) -> dict:
    out = {key: _stats([m[key] for m in per_problem]) for key in ("distinct_orders", "order_entropy")}
    paths = [m["distinct_correct_paths"] for m in per_problem]
    solved = [p for p in paths if p > 0]
    out["distinct_correct_paths"] = {
        **_stats(paths),
        "mean_given_solved": sum(solved) / len(solved) if solved else None,
        "max": max(paths),
    }
    shares = [m["top_path_share"] for m in per_problem if m["top_path_share"] is not None]
    out["top_path_share"] = {
        **(_stats(shares) if shares else {"mean": None, "stderr": None}),
        "num_solved": len(shares),
    }
    return out


def summarise_paths(per_problem: Sequence[dict]) -> dict:
    """Mean and standard error over prompts of :func:`path_metrics` results.

    ``{"num_problems", "position_entropy": {"mean", "stderr"}, "distinct_orders": {...},
    "order_entropy": {...}, "distinct_correct_paths": {"mean", "stderr", "mean_given_solved", "max"},
    "top_path_share": {"mean", "stderr", "num_solved"} (over solved prompts; means None when none is),
    "content": {the four order metrics, same shapes} (only when every prompt has it)}``.
    """
    if not per_problem:
        raise ConfigError("cannot summarise path metrics over zero problems")
    out = {
        "num_problems": len(per_problem),
        "position_entropy": _stats([m["position_entropy"] for m in per_problem]),
        **_summarise_orders(per_problem),
    }
    if all("content" in m for m in per_problem):
        out["content"] = _summarise_orders([m["content"] for m in per_problem])
    return out
