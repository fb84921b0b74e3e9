"""Countdown over digits: write an expression over the given digits that equals the target.

Prompt ``"11=[235]"``; a correct completion is an arithmetic expression of 1 to ``max_terms``
single-digit operands, each one of the given digits (repeats allowed), joined by ``+``, ``-`` or
``*`` with the usual precedence, whose value is the target: ``2*3+5``, ``5+3+3``, ``2+3+3+3``...
Every expression string is a distinct answer (``answer_key`` is the expression itself).
"""

from __future__ import annotations

import itertools
import re
from functools import lru_cache

from trafl.tasks.synthetic.base import SyntheticTask

_EXPR = re.compile(r"^\d(?:[+\-*]\d)*$")


def evaluate(expression: str) -> int:
    """Value of a well-formed ``d(op d)*`` expression; ``*`` binds tighter than ``+`` and ``-``."""
    total, sign, product = 0, 1, int(expression[0])
    for op, digit in zip(expression[1::2], expression[2::2]):
        if op == "*":
            product *= int(digit)
        else:
            total += sign * product
            sign, product = (1 if op == "+" else -1), int(digit)
    return total + sign * product


@lru_cache(maxsize=64)
def _values(digits: str, max_terms: int) -> dict[int, tuple[str, ...]]:
    """All expressions over ``digits`` with at most ``max_terms`` operands, grouped by value."""
    by_value: dict[int, list[str]] = {}
    for n in range(1, max_terms + 1):
        for operands in itertools.product(digits, repeat=n):
            for ops in itertools.product("+-*", repeat=n - 1):
                expr = operands[0] + "".join(o + d for o, d in zip(ops, operands[1:]))
                by_value.setdefault(evaluate(expr), []).append(expr)
    return {v: tuple(sorted(e)) for v, e in by_value.items()}


class Countdown(SyntheticTask):
    name = "countdown"
    alphabet = "0123456789+-*=[]"

    def __init__(self, num_digits: int = 3, max_terms: int = 4, max_target: int = 40, **kwargs) -> None:
        kwargs.setdefault("min_solutions", 8)
        kwargs.setdefault("num_train", 800)
        kwargs.setdefault("num_eval", 100)
        super().__init__(**kwargs)
        self.num_digits = num_digits
        self.max_terms = max_terms
        self.max_target = max_target

    def all_puzzles(self) -> list[dict]:
        return [
            {"digits": "".join(ds), "target": t}
            for ds in itertools.combinations("123456789", self.num_digits)
            for t in range(1, self.max_target + 1)
        ]

    def puzzle_prompt(self, puzzle: dict) -> str:
        return f"{puzzle['target']}=[{puzzle['digits']}]"

    def solutions(self, row: dict) -> list[str]:
        return list(_values(str(row["digits"]), self.max_terms).get(int(row["target"]), ()))

    def verify(self, completion: str, row: dict) -> bool:
        if not _EXPR.match(completion) or len(completion) > 2 * self.max_terms - 1:
            return False
        digits = str(row["digits"])
        if any(d not in digits for d in completion[::2]):
            return False
        return evaluate(completion) == int(row["target"])

    def answer_key(self, completion: str, row: dict) -> str | None:
        return completion.strip() or None
