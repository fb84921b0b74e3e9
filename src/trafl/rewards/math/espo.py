"""ESPO's math correctness rewards, in TRL's signature ``fn(prompts, completions, **columns)``.

ESPO trains GSM8K and MATH on correctness alone, 1 or 0 (ESPO b5f2dac ``espo/rewards.py`` l.416-435;
no format reward). Its graders differ from trafl's default ones:

GSM8K (``rewards.py`` l.182-238): the stated number is the first ``The answer is N<any char>``, else the
first ``#### N``, else the last integer of the text (digits only, so ``\\boxed{18.5}`` reads ``5``); it
must equal the text after ``####`` of the reference solution character for character (``1,080`` is
not ``1080``).

MATH (``rewards.py`` l.386-413): math-verify parses the whole completion and the whole reference
solution with its default extraction, then ``verify(completion, solution)`` (that argument order).
The reference column is ``solution`` in both tasks.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from trafl.rewards.math.d1 import hash_reference
from trafl.rewards.math.equiv import _timeouts
from trafl.rewards.math.rewards import _texts

_ANSWER_IS = re.compile(r"The answer is (\-?[0-9\.,]+).")
_HASHES = re.compile(r"#### (\-?[0-9\.,]+)")
_INTEGER = re.compile(r"(\-?[0-9]+)")


def espo_gsm8k_answer(text: str) -> str:
    """The number ESPO reads from a GSM8K completion (module docstring); ``""`` when it has none."""
    for pattern in (_ANSWER_IS, _HASHES):
        found = pattern.search(text)
        if found:
            return found.group(1).strip()
    integers = _INTEGER.findall(text)
    return integers[-1].strip() if integers else ""


def espo_gsm8k_correctness_reward(
    prompts: Sequence, completions: Sequence, solution: Sequence[str], **_
) -> list[float]:
    """1 if :func:`espo_gsm8k_answer` equals the reference after ``####`` exactly, else 0."""
    return [
        1.0 if espo_gsm8k_answer(c) == hash_reference(str(s)) else 0.0 for c, s in zip(_texts(completions), solution)
    ]


def espo_math_verify(completion: str, solution: str, *, timeout: float | None = 5.0) -> bool:
    """math-verify on the whole texts, ``verify(parse(completion), parse(solution))``; any failure is a no."""
    from math_verify import parse, verify

    seconds = _timeouts(timeout)
    try:
        return bool(
            verify(
                parse(completion, parsing_timeout=seconds),
                parse(solution, parsing_timeout=seconds),
                timeout_seconds=seconds,
            )
        )
    except Exception:  # a parser crash or timeout is a "no", never a crash of the training run
        return False


def espo_math_correctness_reward(prompts: Sequence, completions: Sequence, solution: Sequence[str], **_) -> list[float]:
    """1 if :func:`espo_math_verify` accepts the completion against the reference solution, else 0."""
    return [float(espo_math_verify(c, str(s))) for c, s in zip(_texts(completions), solution)]
