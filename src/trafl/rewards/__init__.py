"""Verifiable rewards.

- :mod:`trafl.rewards.math`: final-answer extraction and equivalence (math-verify), math rewards;
- :mod:`trafl.rewards.code`: a sandbox for untrusted programs, test harnesses, code rewards.

Every reward function has TRL's signature ``fn(prompts, completions, **columns) -> list[float]``.
"""
