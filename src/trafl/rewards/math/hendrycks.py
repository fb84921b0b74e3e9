"""The MATH benchmark's string normaliser (Hendrycks et al. 2021), as d1 grades MATH rewards with it.

Two answers are equal when their normal forms are equal (:func:`hendrycks_equiv`). The normal form
(:func:`hendrycks_normal_form`) drops line breaks, ``\\!``, ``\\left``/``\\right``, degree marks,
``\\$``, percent signs, a trailing unit ``\\text{ ...}``, spaces and a short ``x =`` prefix; it writes
``\\dfrac``/``\\tfrac`` as ``\\frac``, braces ``\\frac12`` and ``\\sqrt2``, prefixes a bare leading
``.`` with ``0``, and rewrites ``0.5`` and integer ``a/b`` as ``\\frac{a}{b}``. Some inputs have no
normal form (the original raises: two ``\\text{ `` units, a ``\\sqrt`` or ``\\frac`` with nothing after
it, an ``a/b`` whose sides are not integers); then the raw strings are compared.

Also here: the last ``\\boxed{...}`` of a solution as the original extracts it
(:func:`hendrycks_last_boxed`, :func:`hendrycks_unbox`), which differs from
:func:`trafl.rewards.math.last_boxed` on edge cases (``\\boxed 5`` wins over braces; a text without
a box is returned whole).

Semantics follow d1 837888f ``diffu-grpo/math500_utils.py`` l.29-227 (see the parity test).
"""

from __future__ import annotations


class NoNormalForm(ValueError):
    """The original normaliser raises on this input (its caller then compares raw strings)."""


def _braced_fracs(s: str) -> str:
    """``\\frac12`` -> ``\\frac{1}{2}``, ``\\frac1{2}`` -> ``\\frac{1}{2}``; an argument-less tail gives up."""
    head, *tails = s.split("\\frac")
    out = [head]
    for tail in tails:
        out.append("\\frac")
        if not tail:
            raise NoNormalForm("\\frac at the end")
        if tail[0] == "{":
            out.append(tail)
        elif len(tail) < 2:
            return s
        elif tail[1] != "{":
            out.append("{" + tail[0] + "}{" + tail[1] + "}" + tail[2:])
        else:
            out.append("{" + tail[0] + "}" + tail[1:])
    return "".join(out)


def _integer_ratio(s: str) -> str:
    """``a/b`` with integers ``a``, ``b`` written plainly -> ``\\frac{a}{b}``."""
    parts = s.split("/")
    if len(parts) != 2:
        return s
    try:
        a, b = int(parts[0]), int(parts[1])
    except ValueError as exc:
        raise NoNormalForm(f"non-integer ratio {s!r}") from exc
    return f"\\frac{{{a}}}{{{b}}}" if s == f"{a}/{b}" else s


def _braced_sqrt(s: str) -> str:
    """``\\sqrt2`` -> ``\\sqrt{2}`` (one character)."""
    head, *tails = s.split("\\sqrt")
    out = [head]
    for tail in tails:
        if not tail:
            raise NoNormalForm("\\sqrt at the end")
        out.append("\\sqrt" + (tail if tail[0] == "{" else "{" + tail[0] + "}" + tail[1:]))
    return "".join(out)


def _drop_unit(s: str) -> str:
    """Everything before a single ``\\text{ `` (a unit written after the number)."""
    if "\\text{ " not in s:
        return s
    parts = s.split("\\text{ ")
    if len(parts) != 2:
        raise NoNormalForm("more than one \\text{ unit")
    return parts[0]


def hendrycks_normal_form(s: str) -> str:
    """The MATH normal form of ``s`` (module docstring); raises :class:`NoNormalForm` where the original fails."""
    for old, new in (
        ("\n", ""),
        ("\\!", ""),
        ("\\\\", "\\"),
        ("tfrac", "frac"),
        ("dfrac", "frac"),
        ("\\left", ""),
        ("\\right", ""),
        ("^{\\circ}", ""),
        ("^\\circ", ""),
        ("\\$", ""),
    ):
        s = s.replace(old, new)
    s = _drop_unit(s)
    s = s.replace("\\%", "").replace(" .", " 0.").replace("{.", "{0.")
    if not s:
        return s
    if s[0] == ".":
        s = "0" + s
    sides = s.split("=")
    if len(sides) == 2 and len(sides[0]) <= 2:
        s = sides[1]
    s = _braced_sqrt(s) if "\\sqrt" in s else s
    s = _braced_fracs(s.replace(" ", ""))
    if s == "0.5":
        s = "\\frac{1}{2}"
    return _integer_ratio(s)


def hendrycks_equiv(a: str | None, b: str | None) -> bool:
    """Equal normal forms (raw equality where either has none); ``None`` equals only ``None``."""
    if a is None or b is None:
        return a is None and b is None
    try:
        return hendrycks_normal_form(a) == hendrycks_normal_form(b)
    except NoNormalForm:
        return a == b


def hendrycks_last_boxed(text: str) -> str | None:
    """The last ``\\boxed{...}`` (or ``\\fbox{...}``) of ``text`` with its command; ``\\boxed X`` (a space)
    wins and runs to the next ``$``; ``text`` itself when it has no box; ``None`` when the braces never close."""
    if "\\boxed " in text:
        return "\\boxed " + text.split("\\boxed ")[-1].split("$")[0]
    start = text.rfind("\\boxed")
    if start < 0:
        start = text.rfind("\\fbox")
        if start < 0:
            return text
    depth = 0
    for i in range(start, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return text[start : i + 1]
    return None


def hendrycks_unbox(boxed: str) -> str:
    """``\\boxed{X}`` or ``\\boxed X`` -> ``X``; anything else unchanged. Raises ``ValueError`` on a
    ``\\boxed `` that does not start the string (the original's assertion)."""
    if "\\boxed " in boxed:
        if not boxed.startswith("\\boxed "):
            raise ValueError(f"'\\boxed ' inside {boxed[:40]!r}")
        return boxed[len("\\boxed ") :]
    if boxed.startswith("\\boxed{") and boxed.endswith("}"):
        return boxed[len("\\boxed{") : -1]
    return boxed
