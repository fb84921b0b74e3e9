"""Are two final answers the same mathematical object?

``is_equiv(pred, gold)`` first compares normalised strings (fast and exact), then asks
math-verify to parse both as LaTeX and compare them symbolically and numerically (fractions vs
decimals, percents, units, degrees, intervals, sets, matrices, tuples, ``x =`` prefixes...).
math-verify bounds every parse and comparison with a ``SIGALRM`` timeout, which only works on the
main thread; on other threads the comparison runs without a time limit (a warning says so once).

``numbers_equal`` is the GSM8K rule: both sides parse as numbers (commas, ``$``, ``%`` and trailing
units dropped) and agree within a relative tolerance.
"""

from __future__ import annotations

import logging
import re
import threading
import warnings

_WARNED_THREAD = False

logging.getLogger("math_verify").setLevel(logging.ERROR)
logging.getLogger("latex2sympy2_extended").setLevel(logging.ERROR)


def normalise(answer: str) -> str:
    """A light string normal form: no spaces, ``\\dfrac``/``\\tfrac`` -> ``\\frac``, no ``\\left``/``\\right``,
    no ``$``, no trailing full stop."""
    s = answer.strip().strip("$").rstrip(".")
    s = re.sub(r"\\[dt]frac", r"\\frac", s)
    s = re.sub(r"\\left|\\right|\\!|\\,|\\;|\\:|~", "", s)
    return re.sub(r"\s+", "", s)


def parse_number(text: str) -> float | None:
    """``"$1,234.50"`` -> 1234.5; ``"12 apples"`` -> 12.0; ``"50%"`` -> 50.0. ``None`` if not a number."""
    s = text.strip().replace(",", "").replace("$", "").replace("\\", "")
    s = re.sub(r"%$", "", s.strip())
    match = re.match(r"^[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:e[-+]?\d+)?", s, re.IGNORECASE)
    if not match:
        return None
    try:
        return float(match.group(0))
    except ValueError:
        return None


def numbers_equal(pred: str | None, gold: str | None, rel_tol: float = 1e-6) -> bool:
    """|pred - gold| <= rel_tol * max(1, |gold|)."""
    if pred is None or gold is None:
        return False
    a, b = parse_number(pred), parse_number(gold)
    if a is None or b is None:
        return False
    return abs(a - b) <= rel_tol * max(1.0, abs(b))


def _timeouts(timeout: float | None) -> int | None:
    global _WARNED_THREAD
    if timeout is None:
        return None
    if threading.current_thread() is not threading.main_thread():
        if not _WARNED_THREAD:
            _WARNED_THREAD = True
            warnings.warn(
                "is_equiv called off the main thread: math-verify's timeout is disabled there",
                RuntimeWarning,
                stacklevel=3,
            )
        return None
    return max(1, int(round(timeout)))


def is_equiv(pred: str | None, gold: str | None, *, timeout: float | None = 5.0) -> bool:
    """Whether the answer ``pred`` equals the reference ``gold`` (not symmetric: ``gold`` is the key)."""
    if pred is None or gold is None:
        return False
    if not pred.strip() or not gold.strip():
        return False
    return normalise(pred) == normalise(gold) or math_verify_equiv(pred, gold, timeout=timeout)


def math_verify_equiv(pred: str, gold: str, *, timeout: float | None = 5.0) -> bool:
    """math-verify's verdict alone: both answers parsed as ``\\boxed{...}``, then compared."""
    from math_verify import parse, verify

    seconds = _timeouts(timeout)
    try:
        gold_parsed = parse(f"\\boxed{{{gold}}}", parsing_timeout=seconds)
        pred_parsed = parse(f"\\boxed{{{pred}}}", parsing_timeout=seconds)
        if not gold_parsed or not pred_parsed:
            return False
        return bool(verify(gold_parsed, pred_parsed, timeout_seconds=seconds))
    except Exception:  # a parser crash or timeout is a "no", never a crash of the training run
        return False
