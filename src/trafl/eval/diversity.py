"""Solution diversity by counting: distinct correct answers (or programs) per problem.

For problem ``p`` with samples ``y_1..y_n``, correctness ``z_i`` and answer identity ``a(y_i)``
(the task's :meth:`~trafl.tasks.base.Task.answer_key`: the normalised final answer for math, the
normalised program for code), the count is

    D_p = | { a(y_i) : z_i = 1, a(y_i) is not None } |

and ``D^text_p`` the same with ``a`` replaced by the whitespace-normalised completion text. A policy
that has locked onto one trajectory has ``D_p = 1`` whenever it solves ``p``; a policy covering
several solution modes has larger ``D_p`` at the same pass@1.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from trafl.eval.passk import mean_and_stderr

_SPACE = re.compile(r"\s+")


def normalise_text(text: str) -> str:
    """Collapse every run of whitespace to one space and strip the ends."""
    return _SPACE.sub(" ", text).strip()


def distinct_correct(keys: Sequence[str | None], correct: Sequence[bool]) -> int:
    """``D_p``: the number of distinct non-empty keys among the correct samples."""
    return len({k for k, ok in zip(keys, correct) if ok and k})


@dataclass
class DistinctStats:
    """Mean and standard error over problems of ``D_p``; ``mean_given_solved`` averages over
    solved problems only (``None`` when none is solved)."""

    mean: float
    stderr: float
    mean_given_solved: float | None
    max: int

    def to_dict(self) -> dict:
        return {"mean": self.mean, "stderr": self.stderr, "mean_given_solved": self.mean_given_solved, "max": self.max}


def summarise_distinct(counts: Sequence[int]) -> DistinctStats:
    values = torch.tensor(list(counts), dtype=torch.float64)
    mean, stderr = mean_and_stderr(values)
    solved = values[values > 0]
    return DistinctStats(
        mean=float(mean),
        stderr=float(stderr),
        mean_given_solved=float(solved.mean()) if solved.numel() else None,
        max=int(values.max()),
    )
