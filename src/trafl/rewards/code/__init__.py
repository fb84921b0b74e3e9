"""Code rewards: a sandbox for untrusted programs, test harnesses, code extraction, reward functions.

>>> from trafl.rewards.code import run_tests, AssertTests
>>> run_tests("def add(a, b):\\n    return a + b", AssertTests(["assert add(1, 2) == 3"])).status
'pass'
"""

from trafl.rewards.code.extract import complete_function, extract_code, fenced_blocks
from trafl.rewards.code.harness import (
    STATUSES,
    AssertTests,
    GradingResult,
    IOTest,
    as_tests,
    encode_tests,
    outputs_match,
    run_many,
    run_tests,
)
from trafl.rewards.code.rewards import CodeReward, code_format_reward, grade_programs, program_of
from trafl.rewards.code.sandbox import ISOLATIONS, Execution, Limits, bwrap_usable, execute

__all__ = [
    "CodeReward",
    "code_format_reward",
    "grade_programs",
    "program_of",
    "AssertTests",
    "Execution",
    "IOTest",
    "ISOLATIONS",
    "Limits",
    "STATUSES",
    "GradingResult",
    "as_tests",
    "bwrap_usable",
    "complete_function",
    "execute",
    "extract_code",
    "fenced_blocks",
    "outputs_match",
    "run_many",
    "run_tests",
    "encode_tests",
]
