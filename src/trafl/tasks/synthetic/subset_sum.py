"""Digit sums: write ``k`` digits whose sum is the target.

Prompt ``"15=?+?+?"`` (one ``?`` per digit); a correct completion is ``k`` digits joined by ``+``
that add up to the target, e.g. ``3+5+7``. The answer's identity is the multiset of digits:
``7+5+3`` and ``3+5+7`` are the same answer (``answer_key`` sorts the digits), and the SFT data
writes each multiset in increasing order, drawn uniformly among the multisets.
"""

from __future__ import annotations

import itertools
import re

from trafl.tasks.synthetic.base import SyntheticTask


class SubsetSum(SyntheticTask):
    name = "subset_sum"
    alphabet = "0123456789+=?"

    def __init__(self, sizes: tuple[int, ...] = (3, 4, 5), **kwargs) -> None:
        kwargs.setdefault("num_train", 64)
        kwargs.setdefault("num_eval", 16)
        super().__init__(**kwargs)
        self.sizes = tuple(sizes)

    def all_puzzles(self) -> list[dict]:
        return [{"k": k, "target": t} for k in self.sizes for t in range(0, 9 * k + 1)]

    def puzzle_prompt(self, puzzle: dict) -> str:
        return f"{puzzle['target']}=" + "+".join("?" * int(puzzle["k"]))

    def solutions(self, row: dict) -> list[str]:
        k, target = int(row["k"]), int(row["target"])
        return sorted(
            "+".join(map(str, c)) for c in itertools.combinations_with_replacement(range(10), k) if sum(c) == target
        )

    def verify(self, completion: str, row: dict) -> bool:
        k = int(row["k"])
        if not re.fullmatch(r"\d(?:\+\d){%d}" % (k - 1), completion):
            return False
        return sum(int(d) for d in completion[::2]) == int(row["target"])

    def answer_key(self, completion: str, row: dict) -> str | None:
        digits = completion.strip()[::2]
        return "+".join(sorted(digits)) if digits else None
