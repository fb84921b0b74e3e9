"""Paired comparisons of two models on the same problems, and the pass@1 -> pass@k frontier.

For models ``a`` and ``b`` evaluated on the same problems with ``n`` samples each, the per-problem
unbiased pass@k estimates ``p_a(x), p_b(x)`` give the paired difference

    d(x) = p_a(x) - p_b(x),    mean_x d(x) +- s.e. = std_x d(x) / sqrt(#problems)

which removes the between-problem variance both models share (much smaller than the s.e. of
either mean). With several seeds of ``a``, ``p_a(x)`` is the mean over seeds of each seed's
estimate, so the s.e. is over problems of the seed-averaged difference.

That s.e. treats the trained models as fixed: it says how well the prompts measure *these* runs,
not how much another training seed would move them. To compare two training recipes ``A`` and
``B``, each run with several seeds, ``seed_difference`` uses the seeds as the sample: with
``P_s`` = seed ``s``'s pass@k averaged over the common problems,

    mean_A(P_s) - mean_B(P_s) +- sqrt(var_A(P_s) / n_A + var_B(P_s) / n_B)    (Welch)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from trafl.eval.passk import pass_at_k


def per_problem_pass_at_k(cell: dict, k: int) -> dict[str, float]:
    """``{problem_id: pass@k}`` of one results.json cell (unbiased estimator over its ``n`` samples)."""
    n = cell["n"]
    return {pid: pass_at_k(n, c, k) for pid, c in zip(cell["problem_ids"], cell["num_correct"])}


def mean_stderr(values: Sequence[float]) -> tuple[float, float]:
    """Mean and standard error of the mean (0 for fewer than two values)."""
    m = len(values)
    if m == 0:
        return float("nan"), float("nan")
    mean = sum(values) / m
    if m < 2:
        return mean, 0.0
    var = sum((v - mean) ** 2 for v in values) / (m - 1)
    return mean, math.sqrt(var / m)


def paired_difference(
    cells: Sequence[dict], base: dict | Sequence[dict], k: int, problems: Sequence[str] | None = None
) -> dict:
    """Seed-averaged pass@k of ``cells`` minus ``base``'s (one cell, or several seeds averaged), per
    problem, then mean +- s.e. over problems.

    ``problems`` restricts to a subset (e.g. the prompts where a shortcut exists).
    """
    bases = [base] if isinstance(base, dict) else list(base)
    per_base = [per_problem_pass_at_k(b, k) for b in bases]
    base = bases[0]
    base_p = {pid: sum(p[pid] for p in per_base) / len(per_base) for pid in per_base[0]}
    seeds = [per_problem_pass_at_k(c, k) for c in cells]
    ids = [pid for pid in base["problem_ids"] if all(pid in s for s in seeds)]
    if problems is not None:
        keep = set(problems)
        ids = [pid for pid in ids if pid in keep]
    diffs = [sum(s[pid] for s in seeds) / len(seeds) - base_p[pid] for pid in ids]
    mean, se = mean_stderr(diffs)
    model_mean, _ = mean_stderr([sum(s[pid] for s in seeds) / len(seeds) for pid in ids])
    base_mean, _ = mean_stderr([base_p[pid] for pid in ids])
    return {"k": k, "diff": mean, "stderr": se, "model": model_mean, "base": base_mean, "num_problems": len(ids)}


def seed_difference(
    cells_a: Sequence[dict], cells_b: Sequence[dict], k: int, problems: Sequence[str] | None = None
) -> dict:
    """Mean over seeds of arm ``a``'s pass@k minus arm ``b``'s, with the Welch s.e. from the spread
    between seeds (module docstring); each seed's pass@k is its mean over the problems every cell
    has (optionally restricted to ``problems``). Needs two seeds or more per arm for an s.e."""
    if len(cells_a) < 2 or len(cells_b) < 2:
        raise ValueError(f"seed_difference needs >= 2 seeds per arm, got {len(cells_a)} and {len(cells_b)}")
    per = [per_problem_pass_at_k(c, k) for c in (*cells_a, *cells_b)]
    ids = set.intersection(*(set(p) for p in per))
    if problems is not None:
        ids &= set(problems)
    if not ids:
        raise ValueError("seed_difference: the cells share no problem")
    ids = sorted(ids)  # a fixed summation order: the same digits from run to run
    scores = [sum(p[pid] for pid in ids) / len(ids) for p in per]
    (mean_a, se_a), (mean_b, se_b) = mean_stderr(scores[: len(cells_a)]), mean_stderr(scores[len(cells_a) :])
    return {
        "k": k,
        "diff": mean_a - mean_b,
        "stderr": math.sqrt(se_a**2 + se_b**2),
        "seeds_a": scores[: len(cells_a)],
        "seeds_b": scores[len(cells_a) :],
        "num_problems": len(ids),
    }


def frontier_points(cells: Sequence[tuple[int, dict]], k: int) -> list[dict]:
    """``[(step, cell)]`` along training -> ``[{step, pass@1, pass@k}]`` sorted by step."""
    points = []
    for step, cell in sorted(cells, key=lambda sc: sc[0]):
        points.append({"step": step, "pass@1": cell["pass_at_k"][0], f"pass@{k}": cell["pass_at_k"][k - 1]})
    return points


def frontier_value_at(points: Sequence[dict], pass1: float, k: int) -> float | None:
    """A frontier's pass@k at the given pass@1, linearly interpolated between its points (sorted by
    pass@1); ``None`` when ``pass1`` lies outside the frontier's pass@1 range."""
    pts = sorted((p["pass@1"], p[f"pass@{k}"]) for p in points)
    for (x0, y0), (x1, y1) in zip(pts, pts[1:]):
        if x0 <= pass1 <= x1:
            return y0 if x1 == x0 else y0 + (y1 - y0) * (pass1 - x0) / (x1 - x0)
    return None
