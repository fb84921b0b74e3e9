"""d1's (diffu-GRPO's) math rewards, in TRL's signature ``fn(prompts, completions, **columns)``.

d1 asks for ``<reasoning>\\n...\\n</reasoning>\\n<answer>\\n...\\n</answer>`` and trains on the sum of
its rewards, every weight 1 (TRL's default). Values are d1's own:

GSM8K (d1 837888f ``diffu-grpo/reward_func.py`` l.6-79, wired at ``diffu_grpo_train.py`` l.39-45)::

    xmlcount  = 0.125 per tag line present exactly once (``<reasoning>\\n``, ``\\n</reasoning>\\n``,
                ``\\n<answer>\\n``, ``\\n</answer>``) - 0.001 per character after the closing tag
    soft      = 0.5 if the text starts <reasoning>...</reasoning> <answer>...</answer> (one line each)
    strict    = 0.5 if the whole text is the four tag lines with one line of reasoning and of answer
    integer   = 0.5 if the answer-tag text is all digits
    correct   = 2.0 if the answer-tag text equals the reference (the text after ``####``) exactly

MATH (``reward_func.py`` l.232-272 and ``math500_utils.py`` l.13-26, wired at ``diffu_grpo_train.py``
l.52-57)::

    correct   = 2.0 if the last \\boxed{} of the completion equals the one of the solution under the
                MATH normaliser (:mod:`trafl.rewards.math.hendrycks`)
    format    = 0.5 * (1 [an <answer> tag] + 0.5)

The format reward's second term is what d1 ran: its test for a box is the Python string ``"\\boxed"``
without a raw prefix, i.e. a backspace character followed by ``oxed``, which no decoded completion
contains, so the term is 0.5 for every completion (:data:`D1_BOX_TEST`). The reference columns are
``solution``: GSM8K's worked answer (ending ``#### N``) or MATH's worked solution.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from trafl.rewards.math.hendrycks import hendrycks_equiv, hendrycks_last_boxed, hendrycks_unbox
from trafl.rewards.math.rewards import _texts

#: The substring d1's MATH format reward looks for: ``"\boxed"`` read as a non-raw Python string
#: (``\b`` is a backspace). See the module docstring.
D1_BOX_TEST = "\boxed"

_STRICT = re.compile(r"^<reasoning>\n.*?\n</reasoning>\n<answer>\n.*?\n</answer>\n$")
_SOFT = re.compile(r"<reasoning>.*?</reasoning>\s*<answer>.*?</answer>")


def answer_tag_text(text: str) -> str:
    """The text between the last ``<answer>`` and the ``</answer>`` after it (to the end if none), stripped."""
    return text.split("<answer>")[-1].split("</answer>")[0].strip()


def hash_reference(solution: str) -> str | None:
    """GSM8K's reference as d1 and ESPO read it: the text after the first ``####``, stripped (commas kept)."""
    return solution.split("####")[1].strip() if "####" in solution else None


def xml_tag_count(text: str, penalised_after: str = "\n</answer>\n") -> float:
    """d1's ``count_xml``: 0.125 per tag line present exactly once, minus 0.001 per trailing character
    after ``penalised_after`` (d1: ``\\n</answer>\\n``; SPG moved it to ``\\n<answer>\\n``) and after
    ``\\n</answer>`` (less one, the newline)."""
    score = 0.0
    if text.count("<reasoning>\n") == 1:
        score += 0.125
    if text.count("\n</reasoning>\n") == 1:
        score += 0.125
    if text.count("\n<answer>\n") == 1:
        score += 0.125
        score -= 0.001 * len(text.split(penalised_after)[-1])  # in d1's order: the same float
    if text.count("\n</answer>") == 1:
        score += 0.125
        score -= 0.001 * (len(text.split("\n</answer>")[-1]) - 1)
    return score


def d1_xmlcount_reward(prompts: Sequence, completions: Sequence, **_) -> list[float]:
    """:func:`xml_tag_count` of each completion."""
    return [xml_tag_count(c) for c in _texts(completions)]


def d1_soft_format_reward(prompts: Sequence, completions: Sequence, **_) -> list[float]:
    """0.5 if the completion starts ``<reasoning>..</reasoning>`` then ``<answer>..</answer>`` (``.`` stops at newlines)."""
    return [0.5 if _SOFT.match(c) else 0.0 for c in _texts(completions)]


def d1_strict_format_reward(prompts: Sequence, completions: Sequence, **_) -> list[float]:
    """0.5 if the completion is exactly the four tag lines around one line of reasoning and one of answer."""
    return [0.5 if _STRICT.match(c) else 0.0 for c in _texts(completions)]


def d1_integer_reward(prompts: Sequence, completions: Sequence, **_) -> list[float]:
    """0.5 if the answer-tag text is non-empty and all digits (``str.isdigit``)."""
    return [0.5 if answer_tag_text(c).isdigit() else 0.0 for c in _texts(completions)]


def d1_gsm8k_correctness_reward(prompts: Sequence, completions: Sequence, solution: Sequence[str], **_) -> list[float]:
    """2.0 if the answer-tag text equals :func:`hash_reference` of ``solution`` character for character."""
    return [2.0 if answer_tag_text(c) == hash_reference(str(s)) else 0.0 for c, s in zip(_texts(completions), solution)]


def d1_boxed_answer(text: str) -> str | None:
    """What d1 compares on MATH: the content of the last box (the whole text when it has none or when
    unboxing fails, as d1 keeps the response on any error)."""
    try:
        boxed = hendrycks_last_boxed(text)
        if boxed is None:
            return text
        return hendrycks_unbox(boxed)
    except ValueError:
        return text


def d1_math_correctness_reward(prompts: Sequence, completions: Sequence, solution: Sequence[str], **_) -> list[float]:
    """2.0 if the completion's :func:`d1_boxed_answer` equals the solution's under the MATH normaliser."""
    return [
        2.0 if hendrycks_equiv(d1_boxed_answer(c), d1_boxed_answer(str(s))) else 0.0
        for c, s in zip(_texts(completions), solution)
    ]


def d1_answer_tag_format_reward(prompts: Sequence, completions: Sequence, **_) -> list[float]:
    """0.5 * (1 if an ``<answer>`` tag opens, + 1 if the tag's text contains :data:`D1_BOX_TEST` else 0.5)."""
    out = []
    for c in _texts(completions):
        tagged = "<answer>" in c
        inner = c.split("<answer>")[1].split("</answer>")[0] if tagged else c
        out.append(0.5 * (float(tagged) + (1.0 if D1_BOX_TEST in inner else 0.5)))
    return out
