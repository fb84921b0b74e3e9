"""Code reward functions in TRL's signature ``fn(prompts, completions, **columns) -> list[float]``.

Columns used: ``tests`` (a JSON string, dict or list of assert strings accepted by
:func:`~trafl.rewards.code.harness.as_tests`)
and, for HumanEval-style tasks where the model continues a given function, ``code_prefix``.
All completions of a batch are graded in parallel by the sandbox pool.
"""

from __future__ import annotations

import ast
from collections.abc import Sequence
from typing import Any

from trafl.rewards.code.extract import complete_function, extract_code, fenced_blocks
from trafl.rewards.code.harness import GradingResult, run_many


def program_of(completion: str, code_prefix: str | None = None) -> str:
    """The program to run: the prefix completed by the completion, or the extracted code."""
    return complete_function(code_prefix, completion) if code_prefix else extract_code(completion)


def grade_programs(
    completions: Sequence[str],
    tests: Sequence[Any],
    code_prefix: Sequence[str | None] | None = None,
    *,
    timeout: float = 10.0,
    workers: int | None = None,
    **sandbox,
) -> list[GradingResult]:
    """Run every completion's program against its tests, in parallel."""
    prefixes = list(code_prefix) if code_prefix is not None else [None] * len(completions)
    programs = [program_of(c, p) for c, p in zip(completions, prefixes)]
    return run_many(programs, list(tests), workers=workers, timeout=timeout, **sandbox)


class CodeReward:
    """``1.0`` when every test passes (``partial=False``) or the fraction of tests passed."""

    def __init__(self, *, partial: bool = False, timeout: float = 10.0, workers: int | None = None, **sandbox) -> None:
        self.partial = partial
        self.kwargs = dict(timeout=timeout, workers=workers, **sandbox)
        self.__name__ = "code_pass_fraction" if partial else "code_pass"

    def __call__(
        self,
        prompts: Sequence,
        completions: Sequence[str],
        tests: Sequence[Any],
        code_prefix: Sequence[str | None] | None = None,
        **_,
    ) -> list[float]:
        results = grade_programs(completions, tests, code_prefix, **self.kwargs)
        return [r.pass_fraction if self.partial else float(r.ok) for r in results]


def code_format_reward(
    prompts: Sequence, completions: Sequence[str], code_prefix: Sequence[str | None] | None = None, **_
) -> list[float]:
    """1 if the completion holds one fenced Python block whose program parses; 0.5 if the program
    parses without a fence; else 0."""
    prefixes = list(code_prefix) if code_prefix is not None else [None] * len(completions)
    out = []
    for c, p in zip(completions, prefixes):
        try:
            ast.parse(program_of(c, p))
            parses = True
        except (SyntaxError, ValueError):
            parses = False
        fenced = any(lang in ("python", "py", "python3") for lang, _ in fenced_blocks(c))
        out.append(1.0 if parses and fenced else 0.5 if parses else 0.0)
    return out
