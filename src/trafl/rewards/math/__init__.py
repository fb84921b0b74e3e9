"""Math grading: final-answer extraction, equivalence through math-verify, reward functions."""

from trafl.rewards.math.equiv import is_equiv, math_verify_equiv, normalise, numbers_equal, parse_number
from trafl.rewards.math.extract import clean_answer, extract_answer, gsm8k_gold, last_boxed, last_number
from trafl.rewards.math.rewards import (
    answer_tag_format_reward,
    boxed_format_reward,
    gsm8k_correctness_reward,
    math_correctness_reward,
)

__all__ = [
    "answer_tag_format_reward",
    "boxed_format_reward",
    "clean_answer",
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
]
