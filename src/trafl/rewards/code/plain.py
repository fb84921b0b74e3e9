"""Plain data: the only values that cross between the tests and the program, and their wire format.

Plain values are exact instances (never subclasses) of ``None``, ``bool``, ``int``, ``float``,
``complex``, ``str``, ``bytes``, ``list``, ``tuple``, ``dict``, ``set`` and ``frozenset``, nested.
The program's side converts three ``dict`` subclasses of the standard library that honest solutions
often return (``collections.Counter``, ``OrderedDict``, ``defaultdict``) to ``dict``; everything
else (user classes, ``int``/``str``/``list`` subclasses, generators, numpy scalars) fails the call,
so an object with a custom ``__eq__`` can never reach a comparison.

Encoding: JSON ``null``/``true``/``false``/strings/lists; JSON numbers for ``int`` (|v| < 2**63) and
finite ``float`` (``1`` is an int, ``1.0`` a float); tagged objects ``{"#": tag, "v": ...}`` for the
rest: ``t`` tuple, ``s`` set, ``fs`` frozenset, ``d`` dict (a list of ``[key, value]`` pairs, so
keys keep their type), ``f`` non-finite float (``"inf"``, ``"-inf"``, ``"nan"``), ``i`` big int
(hexadecimal text), ``b`` bytes (hex), ``c`` complex (``[real, imag]``), ``y`` a builtin type by
name (:data:`TYPES`: ``remove_datatype(t, int)``). Two tags stand for objects that stay in the
sandbox: ``h`` a handle (an instance of a class the tests construct, by number) and ``n`` one of
the program's entry points (by name); the caller says how to build or reference those.

Comparison in the grader is Python's own ``==`` on these decoded builtins: exactly what the test
would have decided for a program returning the same builtins, so ``1 == 1.0 == True``,
``[1] != (1,)``, ``{1} == frozenset({1})``, ``nan != nan``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

_FLOATS = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}
TYPES = {t.__name__: t for t in (bool, int, float, complex, str, bytes, list, tuple, dict, set, frozenset, type(None))}


class PlainDataError(ValueError):
    """A value that is not valid plain data in the wire format."""


def to_wire(value: Any, ref: Callable[[Any], dict | None]) -> Any:
    """The tagged JSON form of a plain ``value`` sent to the program. ``ref(obj)`` gives the tag of
    an object that stands for something in the sandbox (a handle or an entry point), else ``None``.
    Anything else raises :class:`TypeError`: the test passed something that cannot cross."""
    t = type(value)
    if value is None or t in (bool, str):
        return value
    if t is int:
        return value if -(2**63) <= value < 2**63 else {"#": "i", "v": hex(value)}
    if t is float:
        if math.isfinite(value):
            return value
        return {"#": "f", "v": "nan" if value != value else ("inf" if value > 0 else "-inf")}
    if t is bytes:
        return {"#": "b", "v": value.hex()}
    if t is complex:
        return {"#": "c", "v": [to_wire(value.real, ref), to_wire(value.imag, ref)]}
    if t is list:
        return [to_wire(x, ref) for x in value]
    tags = {tuple: "t", set: "s", frozenset: "fs"}
    if t in tags:
        return {"#": tags[t], "v": [to_wire(x, ref) for x in value]}
    if t is dict:
        return {"#": "d", "v": [[to_wire(k, ref), to_wire(x, ref)] for k, x in value.items()]}
    if t is type and TYPES.get(value.__name__) is value:
        return {"#": "y", "v": value.__name__}
    tag = ref(value)
    if tag is not None:
        return tag
    raise TypeError(f"a {t.__name__} cannot be passed to the program (only plain data and its own objects)")


def from_wire(data: Any, handle: Callable[[int], Any], depth: int = 0) -> Any:
    """The value a reply's tagged JSON stands for. ``handle(n)`` builds the grader's proxy for
    sandbox object ``n``. :class:`PlainDataError` for any malformed value."""
    if depth > 200:
        raise PlainDataError("value nested too deeply")
    t = type(data)
    if data is None or t in (bool, int, float, str):
        return data
    if t is list:
        return [from_wire(x, handle, depth + 1) for x in data]
    if t is not dict or set(data) != {"#", "v"}:
        raise PlainDataError("value: an object that is not a tagged value")
    tag, v = data["#"], data["v"]
    if tag == "f" and type(v) is str and v in _FLOATS:
        return _FLOATS[v]
    if tag == "i" and type(v) is str:
        try:
            return int(v, 16)
        except ValueError:
            raise PlainDataError("value: a big int that is not hexadecimal") from None
    if tag == "b" and type(v) is str:
        try:
            return bytes.fromhex(v)
        except ValueError:
            raise PlainDataError("value: bytes that are not hexadecimal") from None
    if tag == "c" and type(v) is list and len(v) == 2:
        parts = [from_wire(x, handle, depth + 1) for x in v]
        if all(type(x) in (int, float) for x in parts):
            return complex(parts[0], parts[1])
        raise PlainDataError("value: a complex number with non-numeric parts")
    if tag == "h" and type(v) is int and v >= 0:
        return handle(v)
    if tag == "y" and type(v) is str and v in TYPES:
        return TYPES[v]
    if type(v) is not list:
        raise PlainDataError(f"value: tag {str(tag)[:20]!r} with a malformed payload")
    items = [from_wire(x, handle, depth + 1) for x in v]
    try:
        if tag == "t":
            return tuple(items)
        if tag == "s":
            return set(items)
        if tag == "fs":
            return frozenset(items)
        if tag == "d" and all(type(p) is list and len(p) == 2 for p in items):
            return {k: x for k, x in items}
    except TypeError:  # an unhashable element or key
        raise PlainDataError("value: an unhashable set element or dict key") from None
    raise PlainDataError(f"value: unknown tag {str(tag)[:20]!r}")


def _no_ref(value: Any) -> None:
    return None


def _no_handle(number: int) -> Any:
    raise PlainDataError("plain data: a handle where only plain values are allowed")


def _no_constant(name: str) -> Any:
    raise PlainDataError(f"plain data: bare {name} is not allowed (non-finite floats are tagged)")


def decode(text: str) -> Any:
    """The plain value encoded in ``text``; :class:`PlainDataError` for anything malformed."""
    try:
        data = json.loads(text, parse_constant=_no_constant)
    except PlainDataError:
        raise
    except (ValueError, RecursionError, TypeError) as exc:
        raise PlainDataError(f"plain data: {exc}") from exc
    return from_wire(data, _no_handle)


def encode(value: Any) -> str:
    """The wire form of a plain ``value``; :class:`PlainDataError` for anything else."""
    try:
        return json.dumps(to_wire(value, _no_ref), ensure_ascii=True, allow_nan=False)
    except TypeError as exc:
        raise PlainDataError(str(exc)) from exc
