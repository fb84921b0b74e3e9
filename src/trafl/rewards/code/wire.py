"""The channel between the trusted grader process and the sandboxed program: frames and messages.

A **frame** is a 4-byte big-endian length followed by that many bytes of UTF-8 JSON. Frames travel
on pipe descriptors that the harness creates for the two processes (never on the program's stdin
or stdout, which the program may use as it likes). This module is the grader's side: it writes
requests and reads replies, and it trusts nothing it reads. Every way a reply can be wrong (a short
read, a length over :data:`MAX_FRAME`, bytes that are not UTF-8 JSON, a message of the wrong shape,
an id that does not answer the request, a value that is not plain data) raises
:class:`ProtocolError`, the one exception the grader catches at the boundary and turns into a
failed program. Nothing else escapes :func:`read_reply`.

Values inside messages use the tagged plain-data JSON of :mod:`~trafl.rewards.code.plain`.
"""

from __future__ import annotations

import json
import os
import select
import struct
import time
from collections.abc import Callable
from typing import Any

from trafl.rewards.code.plain import PlainDataError, from_wire

MAX_FRAME = 8 << 20  # bytes; a larger reply fails the program
HEADER = struct.Struct(">I")
_ERROR_TEXT = 2000  # characters of an exception message kept from the program


class ProtocolError(Exception):
    """Something the program sent (or failed to send) breaks the protocol: the program fails."""


# ---------------------------------------------------------------------------------------------
# frames
# ---------------------------------------------------------------------------------------------


def write_frame(fd: int, message: Any) -> None:
    """Send ``message`` (JSON-serialisable) as one frame. A closed peer is a :class:`ProtocolError`."""
    body = json.dumps(message, ensure_ascii=True, allow_nan=False).encode("ascii")
    data = HEADER.pack(len(body)) + body
    try:
        while data:
            data = data[os.write(fd, data) :]
    except OSError as exc:  # BrokenPipeError: the program is gone
        raise ProtocolError(f"channel closed while writing ({exc.__class__.__name__})") from None


def _read_exact(fd: int, n: int, deadline: float | None) -> bytes:
    out = bytearray()
    while len(out) < n:
        if deadline is not None:
            left = deadline - time.monotonic()
            poller = select.poll()
            poller.register(fd, select.POLLIN)
            if left <= 0 or not poller.poll(min(left, 3600.0) * 1000):
                raise ProtocolError("no reply in time")
        try:
            chunk = os.read(fd, min(n - len(out), 1 << 20))
        except OSError as exc:
            raise ProtocolError(f"channel read failed ({exc.__class__.__name__})") from None
        if not chunk:
            raise ProtocolError("channel closed (the program exited or crashed)")
        out += chunk
    return bytes(out)


def read_frame(fd: int, deadline: float | None = None, max_size: int = MAX_FRAME) -> bytes:
    """The body of the next frame on ``fd``; :class:`ProtocolError` on EOF, a length over
    ``max_size``, or (with a ``deadline`` on ``time.monotonic()``) no complete frame in time."""
    (size,) = HEADER.unpack(_read_exact(fd, HEADER.size, deadline))
    if size > max_size:
        raise ProtocolError(f"frame of {size} bytes is over the {max_size}-byte limit")
    return _read_exact(fd, size, deadline)


def parse_frame(body: bytes) -> dict:
    """A frame body as a JSON object; :class:`ProtocolError` for anything else."""
    try:
        message = json.loads(body.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError, PlainDataError) as exc:
        raise ProtocolError(f"frame is not UTF-8 JSON ({exc.__class__.__name__})") from None
    if type(message) is not dict:
        raise ProtocolError("frame is not a JSON object")
    return message


def _no_constant(name: str) -> Any:
    raise PlainDataError(f"bare {name}")


# ---------------------------------------------------------------------------------------------
# replies
# ---------------------------------------------------------------------------------------------


class Reply:
    """A validated reply: ``ok`` with a ``value`` (and the arguments after the call when asked), or
    the program raised ``error`` (an exception class name) with ``message``."""

    __slots__ = ("ok", "value", "args", "error", "message")

    def __init__(self, ok: bool, value: Any = None, args: Any = None, error: str = "", message: str = "") -> None:
        self.ok, self.value, self.args, self.error, self.message = ok, value, args, error, message


def read_reply(fd: int, request_id: int, handle: Callable[[int], Any], deadline: float | None = None) -> Reply:
    """Read and validate the reply to request ``request_id``. Raises only :class:`ProtocolError`."""
    try:
        message = parse_frame(read_frame(fd, deadline))
        if message.get("id") != request_id or type(message.get("id")) is not int:
            raise ProtocolError("reply does not answer the request it follows")
        if set(message) == {"id", "ok", "value"} and message["ok"] is True:
            return Reply(True, from_wire(message["value"], handle))
        if set(message) == {"id", "ok", "value", "args"} and message["ok"] is True:
            args = from_wire(message["args"], handle)
            if type(args) is not list:
                raise ProtocolError("reply: the arguments after the call are not a list")
            return Reply(True, from_wire(message["value"], handle), args)
        if set(message) == {"id", "ok", "error", "message"} and message["ok"] is False:
            error, text = message["error"], message["message"]
            if type(error) is not str or type(text) is not str or not error.isidentifier():
                raise ProtocolError("reply: malformed error")
            return Reply(False, error=error[:100], message=text[:_ERROR_TEXT])
        raise ProtocolError("reply: unexpected fields")
    except ProtocolError:
        raise
    except PlainDataError as exc:
        raise ProtocolError(str(exc)) from None
    except Exception as exc:  # belt and braces: nothing the program sends may escape as another type
        raise ProtocolError(f"reply: {exc.__class__.__name__}") from None


__all__ = ["MAX_FRAME", "ProtocolError", "Reply", "parse_frame", "read_frame", "read_reply", "write_frame"]
