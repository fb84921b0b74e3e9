"""Math grading: final-answer extraction, equivalence through math-verify, reward functions (trafl's
own in :mod:`~trafl.rewards.math.rewards`; the originals' in :mod:`~trafl.rewards.math.d1` and
:mod:`~trafl.rewards.math.espo`; SPG's xmlcount in :mod:`~trafl.rewards.math.spg`)."""

from trafl.rewards.math.d1 import (
    d1_answer_tag_format_reward,
    d1_gsm8k_correctness_reward,
    d1_integer_reward,
    d1_math_correctness_reward,
    d1_soft_format_reward,
    d1_strict_format_reward,
    d1_xmlcount_reward,
)
from trafl.rewards.math.equiv import is_equiv, math_verify_equiv, normalise, numbers_equal, parse_number
from trafl.rewards.math.espo import espo_gsm8k_correctness_reward, espo_math_correctness_reward
from trafl.rewards.math.extract import clean_answer, extract_answer, gsm8k_gold, last_boxed, last_number
from trafl.rewards.math.rewards import (
    answer_tag_format_reward,
    boxed_format_reward,
    gsm8k_correctness_reward,
    math_correctness_reward,
)
from trafl.rewards.math.spg import spg_xmlcount_reward

__all__ = [
    "answer_tag_format_reward",
    "boxed_format_reward",
    "clean_answer",
    "d1_answer_tag_format_reward",
    "d1_gsm8k_correctness_reward",
    "d1_integer_reward",
    "d1_math_correctness_reward",
    "d1_soft_format_reward",
    "d1_strict_format_reward",
    "d1_xmlcount_reward",
    "espo_gsm8k_correctness_reward",
    "espo_math_correctness_reward",
    "extract_answer",
    "gsm8k_correctness_reward",
    "gsm8k_gold",
    "is_equiv",
    "last_boxed",
    "last_number",
    "math_correctness_reward",
    "math_verify_equiv",
    "normalise",
    "numbers_equal",
    "parse_number",
    "spg_xmlcount_reward",
]
