"""Math reward functions in TRL's signature ``fn(prompts, completions, **columns) -> list[float]``.

Correctness needs an ``answer`` column (the reference final answer). Format rewards are separate
and never look at the reference.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from trafl.rewards.math.equiv import is_equiv, numbers_equal
from trafl.rewards.math.extract import _ANSWER_TAG, extract_answer, last_boxed


def _texts(completions: Sequence) -> list[str]:
    """TRL passes strings, or chat messages ``[{"role": "assistant", "content": ...}]``."""
    out = []
    for c in completions:
        if isinstance(c, list):
            c = c[-1]["content"] if c else ""
        elif isinstance(c, dict):
            c = c.get("content", "")
        out.append(c or "")
    return out


def math_correctness_reward(prompts: Sequence, completions: Sequence, answer: Sequence[str], **_) -> list[float]:
    """1 if the completion's extracted final answer is equivalent to ``answer``, else 0."""
    return [float(is_equiv(extract_answer(c), str(a))) for c, a in zip(_texts(completions), answer)]


def gsm8k_correctness_reward(prompts: Sequence, completions: Sequence, answer: Sequence[str], **_) -> list[float]:
    """1 if the extracted answer (last number as fallback) equals ``answer`` numerically, else 0."""
    return [
        float(numbers_equal(extract_answer(c, fallback_last_number=True), str(a)))
        for c, a in zip(_texts(completions), answer)
    ]


def boxed_format_reward(prompts: Sequence, completions: Sequence, **_) -> list[float]:
    """1 if the completion puts an answer in ``\\boxed{}``, else 0."""
    return [float(bool(last_boxed(c))) for c in _texts(completions)]


_STRICT_TAGS = re.compile(r"^\s*<reasoning>.*?</reasoning>\s*<answer>.*?</answer>\s*$", re.DOTALL)


def answer_tag_format_reward(prompts: Sequence, completions: Sequence, **_) -> list[float]:
    """1 for ``<reasoning>...</reasoning><answer>...</answer>`` exactly; 0.5 for an ``<answer>`` pair
    anywhere; else 0 (d1's strict/soft format rewards folded into one)."""
    out = []
    for c in _texts(completions):
        if _STRICT_TAGS.match(c):
            out.append(1.0)
        elif "</answer>" in c and _ANSWER_TAG.search(c):
            out.append(0.5)
        else:
            out.append(0.0)
    return out
