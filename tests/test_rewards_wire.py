"""The channel between grader and program: plain data, frames, and a fuzz test proving that nothing
a program writes down the channel can raise in the grader (it always ends in a failed result)."""

from __future__ import annotations

import json
import os
import struct
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trafl.rewards.code import AssertTests, run_tests
from trafl.rewards.code.grader_process import Channel, ProgramFailed
from trafl.rewards.code.isolated import _collect
from trafl.rewards.code.plain import PlainDataError, decode, encode
from trafl.rewards.code.wire import MAX_FRAME, ProtocolError, Reply, read_reply


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        1,
        1.5,
        -0.0,
        float("inf"),
        2**200,
        -(2**70),
        "s",
        b"\x00",
        1 + 2j,
        [1, (2, 3)],
        {1: {"a": frozenset({1})}},
        {(1, 2)},
        (),
        int,
    ],
)
def test_plain_round_trip_keeps_types(value):
    back = decode(encode(value))
    assert back == value and type(back) is type(value)


@pytest.mark.parametrize(
    "text",
    [
        '{"x": 1}',
        '{"#": "t", "v": 1}',
        "NaN",
        '{"#": "s", "v": [[1]]}',
        '{"#": "zz", "v": []}',
        '{"#": "h", "v": 0}',
        '{"#": "i", "v": "zz"}',
    ],
)
def test_plain_decode_rejects_malformed(text):
    with pytest.raises(PlainDataError):
        decode(text)


def test_plain_encode_refuses_subclasses():
    class Sub(int):
        pass

    with pytest.raises(PlainDataError):
        encode([Sub(1)])


def _pipe_with(data: bytes) -> int:
    """A pipe's read end that yields ``data`` then EOF (the data fits in the pipe buffer)."""
    r, w = os.pipe()
    os.write(w, data)
    os.close(w)
    return r


def _frame(body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + body


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(["#", "v", "id", "ok", "x"]), inner, max_size=3)
    ),
    max_leaves=20,
)
replies = st.fixed_dictionaries(
    {"id": st.sampled_from([1, 0, 2, True, "1", 1.0])},
    optional={
        "ok": st.sampled_from([True, False, 1, None]),
        "value": json_values,
        "args": json_values,
        "error": st.sampled_from(["ValueError", "_trafl_not_plain", "bad name", 3, "٣"]),
        "message": st.text(max_size=10) | st.integers(),
    },
)
channel_bytes = st.one_of(
    st.binary(max_size=2000),
    replies.map(lambda m: _frame(json.dumps(m).encode())),
    st.tuples(st.integers(0, 2**32 - 1), st.binary(max_size=200)).map(lambda t: struct.pack(">I", t[0]) + t[1]),
    st.text(max_size=200).map(lambda s: _frame(s.encode("utf-8", errors="surrogatepass"))),
    st.lists(replies, max_size=3).map(lambda ms: b"".join(_frame(json.dumps(m).encode()) for m in ms)),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(channel_bytes)
def test_read_reply_never_raises_anything_but_protocol_error(data):
    fd = _pipe_with(data)
    try:
        reply = read_reply(fd, 1, lambda n: ("handle", n))
        assert isinstance(reply, Reply) and isinstance(reply.ok, bool)
    except ProtocolError:
        pass
    finally:
        os.close(fd)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(channel_bytes)
def test_a_call_on_a_fuzzed_channel_fails_the_program_or_returns_plain_data(data):
    """The grader process's side: a call either returns a value or raises ProgramFailed / the
    builtin exception the reply names; never anything from the channel code itself."""
    reply_fd = _pipe_with(data)
    sink_r, sink_w = os.pipe()
    try:
        channel = Channel(sink_w, reply_fd)
        try:
            channel.request({"op": "call", "target": {"name": "f"}, "attr": None, "args": [], "kwargs": []})
        except ProgramFailed:
            assert channel.failures == 1
        except Exception as exc:  # noqa: BLE001 - a program exception, mapped by name
            assert type(exc).__module__ in ("builtins", "trafl.rewards.code.grader_process")
    finally:
        for fd in (reply_fd, sink_r, sink_w):
            os.close(fd)


@settings(max_examples=300, deadline=None)
@given(channel_bytes)
def test_the_reward_process_never_raises_on_the_report_channel(data):
    fd = _pipe_with(data)
    try:
        outcomes: list[bool | None] = [None, None]
        detail, _timed_out = _collect(fd, time.monotonic() + 60, outcomes)
        assert isinstance(detail, str) and all(o in (None, True, False) for o in outcomes)
    finally:
        os.close(fd)


def test_frame_limit_is_enforced():
    fd = _pipe_with(struct.pack(">I", MAX_FRAME + 1) + b"x")
    with pytest.raises(ProtocolError, match="over"):
        read_reply(fd, 1, lambda n: n)
    os.close(fd)


@pytest.mark.slow
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(channel_bytes)
def test_end_to_end_a_program_writing_bytes_down_the_channel_fails(data):
    """The real thing: the program writes the bytes to every descriptor it holds, in the call."""
    program = (
        "import os\n"
        f"def f(x):\n    for fd in range(3, 32):\n        try:\n            os.write(fd, {data!r})\n"
        "        except OSError:\n            pass\n    return -1\n"
    )
    # A timeout also fails the program (what this test asserts), so a short one only cuts the wait on
    # bytes that leave the grader expecting the rest of a frame.
    result = run_tests(program, AssertTests(["assert f(7) == 'not a value the fuzzer can write'"]), timeout=2)
    assert not result.ok
