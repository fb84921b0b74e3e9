"""Final-answer extraction from free-form math solutions.

Where a completion states its answer, in order of precedence:

1. ``<answer> ... </answer>`` tags (the last pair; a ``\\boxed{}`` inside wins over the raw text);
2. the last ``\\boxed{...}`` / ``\\fbox{...}`` (braces matched, so ``\\boxed{\\frac{1}{2}}`` works);
3. GSM8K's ``#### <answer>`` line;
4. "The (final) answer is <answer>" (the last occurrence, up to the end of the sentence);
5. only when ``fallback_last_number=True``: the last number in the text.
"""

from __future__ import annotations

import re

_ANSWER_TAG = re.compile(r"<answer>(.*?)(?:</answer>|\Z)", re.DOTALL | re.IGNORECASE)
_BOX_START = re.compile(r"\\(?:boxed|fbox)\s*")
_GSM_HASH = re.compile(r"####\s*([^\n]+)")
_ANSWER_IS = re.compile(
    r"(?:the\s+)?(?:final\s+)?answer\s*(?:is|:)\s*:?\s*(.+?)(?:\.\s|\.?\s*$|\n)", re.IGNORECASE | re.DOTALL
)
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")


def _braced(text: str, open_at: int) -> tuple[str, int] | None:
    """Content of the brace group opening at ``text[open_at] == '{'`` and the index after it."""
    depth = 0
    for i in range(open_at, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return text[open_at + 1 : i], i + 1
    return None


def last_boxed(text: str) -> str | None:
    """The argument of the last complete ``\\boxed{...}`` (or ``\\boxed 5``) in ``text``."""
    for match in reversed(list(_BOX_START.finditer(text))):
        start = match.end()
        if text.startswith("{", start):
            group = _braced(text, start)
            if group is not None:
                return group[0].strip()
        else:
            bare = re.match(r"[^\s$]+", text[start:])
            if bare:
                return bare.group(0)
    return None


def clean_answer(answer: str) -> str:
    """Strip surrounding ``$``, whitespace and a trailing full stop."""
    answer = answer.strip()
    answer = re.sub(r"^\$+|\$+$", "", answer).strip()
    answer = re.sub(r"^\\\(|\\\)$", "", answer).strip()
    return answer.rstrip(".").strip()


def last_number(text: str) -> str | None:
    numbers = _NUMBER.findall(text)
    return numbers[-1].replace(",", "") if numbers else None


def extract_answer(text: str, *, fallback_last_number: bool = False) -> str | None:
    """The final answer stated in ``text`` (see the module docstring), or ``None``."""
    if not text:
        return None
    tags = _ANSWER_TAG.findall(text)
    if tags and tags[-1].strip():
        inner = tags[-1]
        return clean_answer(last_boxed(inner) or inner)
    boxed = last_boxed(text)
    if boxed is not None:
        return clean_answer(boxed)
    hashes = _GSM_HASH.findall(text)
    if hashes:
        return clean_answer(hashes[-1])
    stated = _ANSWER_IS.findall(text)
    if stated and clean_answer(stated[-1]):
        return clean_answer(stated[-1])
    if fallback_last_number:
        return last_number(text)
    return None


def gsm8k_gold(answer_field: str) -> str:
    """The number after ``####`` in a GSM8K ``answer`` field, commas removed."""
    hashes = _GSM_HASH.findall(answer_field)
    if not hashes:
        raise ValueError(f"GSM8K answer has no '####' line: {answer_field[-80:]!r}")
    return hashes[-1].strip().replace(",", "")
