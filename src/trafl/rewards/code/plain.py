"""Plain data: the only values a sandboxed program's results may take, and their wire format.

Results computed inside the sandbox cross into the grader as JSON text. Plain values are exact
instances (never subclasses) of ``None``, ``bool``, ``int``, ``float``, ``complex``, ``str``,
``bytes``, ``list``, ``tuple``, ``dict``, ``set`` and ``frozenset``, nested. Three ``dict``
subclasses of the standard library that honest solutions often return (``collections.Counter``,
``OrderedDict``, ``defaultdict``) are converted to ``dict`` inside the sandbox; everything else
(user classes, ``int``/``str``/``list`` subclasses, generators, numpy scalars) makes the result an
error, so an object with a custom ``__eq__`` can never reach a comparison.

Encoding: JSON ``null``/``true``/``false``/strings/lists; JSON numbers for ``int`` (|v| < 2**63) and
finite ``float`` (``1`` is an int, ``1.0`` a float); tagged objects ``{"#": tag, "v": ...}`` for the
rest: ``t`` tuple, ``s`` set, ``fs`` frozenset, ``d`` dict (a list of ``[key, value]`` pairs, so
keys keep their type), ``f`` non-finite float (``"inf"``, ``"-inf"``, ``"nan"``), ``i`` big int
(hexadecimal text), ``b`` bytes (hex), ``c`` complex (``[real, imag]``).

Comparison in the grader is Python's own ``==`` on these decoded builtins: exactly what the test
would have decided for a program returning the same builtins, so ``1 == 1.0 == True``,
``[1] != (1,)``, ``{1} == frozenset({1})``, ``nan != nan``.
"""

from __future__ import annotations

import json
import math
from typing import Any

_FLOATS = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}


class PlainDataError(ValueError):
    """A result that is not valid plain data in the wire format."""


def _untag(obj: dict) -> Any:
    if set(obj) != {"#", "v"}:
        raise PlainDataError(f"plain data: object with keys {sorted(obj)}, expected a tag '#' and a value 'v'")
    tag, value = obj["#"], obj["v"]
    if tag == "f" and value in _FLOATS:
        return _FLOATS[value]
    if tag == "i" and isinstance(value, str):
        return int(value, 16)  # base 16 is exempt from the int digit limit
    if tag == "b" and isinstance(value, str):
        return bytes.fromhex(value)
    if tag == "c" and isinstance(value, list) and len(value) == 2 and all(type(x) in (int, float) for x in value):
        return complex(value[0], value[1])
    if not isinstance(value, list):
        raise PlainDataError(f"plain data: tag {tag!r} needs a list value")
    if tag == "t":
        return tuple(value)
    try:
        if tag == "s":
            return set(value)
        if tag == "fs":
            return frozenset(value)
        if tag == "d" and all(isinstance(p, list) and len(p) == 2 for p in value):
            return {k: v for k, v in value}
    except TypeError as exc:  # an unhashable element or key
        raise PlainDataError(f"plain data: {exc}") from exc
    raise PlainDataError(f"plain data: unknown tag {tag!r}")


def _no_constant(name: str) -> Any:
    raise PlainDataError(f"plain data: bare {name} is not allowed (non-finite floats are tagged)")


def decode(text: str) -> Any:
    """The plain value encoded in ``text``; :class:`PlainDataError` for anything malformed."""
    try:
        return json.loads(text, object_hook=_untag, parse_constant=_no_constant)
    except PlainDataError:
        raise
    except (ValueError, RecursionError, TypeError) as exc:
        raise PlainDataError(f"plain data: {exc}") from exc


def encode(value: Any) -> str:
    """The wire form of a plain ``value`` (the grader-side twin of the sandbox encoder; for tests)."""
    return json.dumps(_tag(value), ensure_ascii=True, allow_nan=False)


def _tag(v: Any) -> Any:
    t = type(v)
    if v is None or t in (bool, str):
        return v
    if t is int:
        return v if -(2**63) <= v < 2**63 else {"#": "i", "v": hex(v)}
    if t is float:
        return v if math.isfinite(v) else {"#": "f", "v": "nan" if v != v else ("inf" if v > 0 else "-inf")}
    if t is bytes:
        return {"#": "b", "v": v.hex()}
    if t is complex:
        return {"#": "c", "v": [_tag(v.real), _tag(v.imag)]}
    if t is list:
        return [_tag(x) for x in v]
    tags = {tuple: "t", set: "s", frozenset: "fs"}
    if t in tags:
        return {"#": tags[t], "v": [_tag(x) for x in v]}
    if t is dict:
        return {"#": "d", "v": [[_tag(k), _tag(x)] for k, x in v.items()]}
    raise PlainDataError(f"plain data: {t.__name__} is not a plain type")
