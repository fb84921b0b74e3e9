"""SPG's GSM8K format reward: d1's ``count_xml`` with its answer-length penalty moved.

SPG (facebookresearch/SPG a1c7120, a fork of d1) trains on d1's reward functions (``spg/reward_func.py``,
wired at ``spg/diffu_grpo_train.py`` l.43-51 and l.61-66), with one line changed (``spg/reward_func.py``
l.73-75): when ``\\n<answer>\\n`` occurs exactly once, the 0.001-per-character penalty counts the characters
after ``\\n<answer>\\n`` (the answer, its closing tag and any tail), where d1's counts those after
``\\n</answer>\\n``::

    xmlcount_spg = 0.125 per tag line present exactly once (``<reasoning>\\n``, ``\\n</reasoning>\\n``,
                   ``\\n<answer>\\n``, ``\\n</answer>``) - 0.001 |text after \\n<answer>\\n|
                   - 0.001 (|text after \\n</answer>| - 1)

Every other SPG reward is d1's (:mod:`trafl.rewards.math.d1`).
"""

from __future__ import annotations

from collections.abc import Sequence

from trafl.rewards.math.d1 import xml_tag_count
from trafl.rewards.math.rewards import _texts


def spg_xml_tag_count(text: str) -> float:
    """SPG's ``count_xml`` (see the module docstring): d1's with the answer-length penalty after ``\\n<answer>\\n``."""
    return xml_tag_count(text, penalised_after="\n<answer>\n")


def spg_xmlcount_reward(prompts: Sequence, completions: Sequence, **_) -> list[float]:
    """:func:`spg_xml_tag_count` of each completion."""
    return [spg_xml_tag_count(c) for c in _texts(completions)]
