"""Reward hacks: programs that try to pass tests they do not solve. Each must fail with the parsed
path and with the hardened fallback, under bubblewrap and under the rlimits fallback, while the
honest program passes. Several hacks are shown to beat the old assert-append harness, so the
suite would catch a regression to it."""

from __future__ import annotations

import os
import random

import pytest

from trafl.rewards.code import AssertTests, run_tests
from trafl.rewards.code import sandbox as sb
from trafl.rewards.code.plain import PlainDataError, decode, encode
from trafl.rewards.code.test_plan import NotParsable, plan_tests

#: Inputs drawn afresh in every session, so that no file on this machine holds these tests except what
#: the grader itself writes: a hack that scans the disk for expected values (``scan_dirs``) then passes
#: or fails on what the grader exposes, not on whether a copy of this repository lies under /tmp (with
#: fixed ``f(2) == 4`` it passed under rlimits on a machine holding such a copy).
A, B = random.SystemRandom().sample(range(10_000, 100_000), 2)
TESTS = AssertTests(
    [f"assert f({A}) == {A * A}", f"assert f({B}) == {B * B}", "assert is_even(4)", "assert not is_even(3)"]
)
HONEST = "def f(x):\n    return x * x\n\ndef is_even(n):\n    return n % 2 == 0\n"
MODES = ["rlimits"] + (["bwrap"] if sb.bwrap_usable(sb._is_root()) else [])
FAKE_LINES = "ready\\n" + "".join(f"{i} 1\\n{i} ok true\\n{i} ok {A * A}\\n" for i in range(8))

ALWAYS_EQUAL = (
    "class A:\n    def __eq__(self, o): return True\n    def __ne__(self, o): return False\n"
    "    def __bool__(self): return True\n    __hash__ = object.__hash__\n"
)
STEAL_CONSTS = (
    "def _guess(x, consts):\n    c = [v for v in consts if type(v) is int and v != x]\n    return max(c) if c else x\n"
)
HACKS = {
    "always_equal": ALWAYS_EQUAL + "def f(x): return A()\ndef is_even(n): return A()\n",
    "int_subclass": "class I(int):\n    def __eq__(self, o): return True\n    __hash__ = int.__hash__\n"
    "    def __bool__(self): return True\ndef f(x): return I(0)\ndef is_even(n): return I(1)\n",
    "str_subclass": "class S(str):\n    def __eq__(self, o): return True\n    __hash__ = str.__hash__\n"
    "def f(x): return S('')\ndef is_even(n): return S('x') if n % 2 == 0 else S('')\n",
    "list_subclass": "class L(list):\n    def __eq__(self, o): return True\n"
    "def f(x): return L()\ndef is_even(n): return L([1]) if n % 2 == 0 else L()\n",
    "own_source": (
        "import re, sys\n_src = open(sys.argv[0]).read()\n"
        "try:\n    import __main__; _src += open(__main__.__file__).read()\nexcept Exception: pass\n"
        "_ans = {int(a): int(b) for a, b in re.findall(r'f\\((\\d+)\\) == (\\d+)', _src)}\n"
        "def f(x): return _ans.get(x, -1)\ndef is_even(n): return n % 2 == 0\n"
    ),
    "caller_frames": STEAL_CONSTS
    + (
        "import sys\ndef f(x):\n    fr, consts = sys._getframe(1), []\n"
        "    while fr is not None:\n        consts += list(fr.f_code.co_consts) + list(fr.f_locals.values())\n"
        "        fr = fr.f_back\n    return _guess(x, consts)\ndef is_even(n): return n % 2 == 0\n"
    ),
    "inspect_stack": STEAL_CONSTS
    + (
        "import inspect\ndef f(x):\n    consts = []\n    for info in inspect.stack():\n"
        "        consts += list(info.frame.f_code.co_consts)\n    return _guess(x, consts)\n"
        "def is_even(n): return n % 2 == 0\n"
    ),
    "gc_objects": STEAL_CONSTS
    + (
        "import gc, types\ndef f(x):\n    consts = []\n    for o in gc.get_objects():\n"
        "        if isinstance(o, types.CodeType) and x in o.co_consts and o.co_name == '<module>':\n"
        "            consts += list(o.co_consts)\n    return _guess(x, consts)\ndef is_even(n): return n % 2 == 0\n"
    ),
    "scan_dirs": (
        "import os, re, tempfile\n_ans = {}\n"
        "for top in {os.getcwd(), tempfile.gettempdir(), '/tmp'}:\n"
        "    for root, _d, files in os.walk(top):\n        for name in files:\n"
        "            try: text = open(os.path.join(root, name), errors='ignore').read()\n"
        "            except OSError: continue\n"
        "            _ans.update({int(a): int(b) for a, b in re.findall(r'f\\((\\d+)\\) == (\\d+)', text)})\n"
        "def f(x): return _ans.get(x, -1)\ndef is_even(n): return n % 2 == 0\n"
    ),
    "os_exit_0": "import os\nos._exit(0)\n",
    "sys_exit_0": "import sys\nsys.exit(0)\n",
    "print_fake_results": f"import os, sys\nsys.stdout.write('{FAKE_LINES}')\nsys.stdout.flush()\nos._exit(0)\n",
    "patch_builtins": (
        "import builtins, json\nbuiltins.isinstance = lambda *a: True\nbuiltins.type = lambda *a: int\n"
        "json.dumps = lambda *a, **k: '4'\nbuiltins.abs = lambda x: 0\n"
        + ALWAYS_EQUAL
        + "builtins.bool = lambda x: True\ndef f(x): return A()\ndef is_even(n): return A()\n"
    ),
    "fake_channel_at_import": (
        f"import os\nfor fd in range(3, 64):\n    try: os.write(fd, b'{FAKE_LINES}')\n    except OSError: pass\n"
        "os._exit(0)\n"
    ),
    "fake_channel_in_call": (
        "import os\ndef f(x):\n    for fd in range(3, 64):\n"
        f"        try: os.write(fd, b'{FAKE_LINES}')\n        except OSError: pass\n    os._exit(0)\n"
        "def is_even(n): return True\n"
    ),
    "thread_reads_stdin": (
        "import sys, threading, re\n_ans = {}\n"
        "def _steal():\n    _ans.update({int(a): int(b) for a, b in re.findall(r'f\\((\\d+)\\), (\\d+)', sys.stdin.read())})\n"
        "threading.Thread(target=_steal, daemon=True).start()\n"
        "def f(x):\n    import time\n    for _ in range(100):\n        if x in _ans: return _ans[x]\n"
        "        time.sleep(0.01)\n    return -1\ndef is_even(n): return n % 2 == 0\n"
    ),
    "settrace_watch": (
        "import sys\n_seen = []\ndef _tr(frame, event, arg):\n    _seen.extend(frame.f_code.co_consts)\n    return _tr\n"
        "sys.settrace(_tr)\n" + STEAL_CONSTS + "def f(x): return _guess(x, _seen)\ndef is_even(n): return n % 2 == 0\n"
    ),
}
# these pass the old harness every time (the frame/tracer hacks usually do too, depending on
# which constants happen to sit in the stack)
BEATS_APPEND = {
    "always_equal",
    "int_subclass",
    "str_subclass",
    "list_subclass",
    "own_source",
    "scan_dirs",
    "patch_builtins",
    "fake_channel_at_import",
    "fake_channel_in_call",
}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("method", ["auto", "fallback"])
def test_every_hack_fails_and_honest_passes(mode, method):
    honest = run_tests(HONEST, TESTS, isolation=mode, method=method, timeout=5)
    assert honest.ok and honest.method == ("parsed" if method == "auto" else "fallback"), honest
    failed_open = {}
    for name, program in HACKS.items():
        result = run_tests(program, TESTS, isolation=mode, method=method, timeout=5)
        if result.ok or result.passed > 2:  # at most the honest half (is_even) may pass
            failed_open[name] = (result.status, result.outcomes, result.detail[-300:])
    assert failed_open == {}, (A, B)


def test_the_hacks_are_real_against_the_old_harness():
    calls_only = AssertTests(list(TESTS.tests[:2]))
    beaten = [n for n in HACKS if run_tests(HACKS[n], calls_only, method="append", timeout=5).ok]
    assert BEATS_APPEND <= set(beaten)


def test_fallback_refuses_forked_reader_and_child_of_top_level():
    program = "import os, sys, time\nif os.fork() == 0:\n    sys.stdin.read()\n    os._exit(0)\n" + HONEST
    result = run_tests(program, TESTS, method="fallback", timeout=5)
    assert result.status == "error" and result.passed == 0


@pytest.mark.skipif("bwrap" not in MODES, reason="bubblewrap not installed/usable")
def test_minimal_filesystem_view_under_bwrap(tmp_path):
    host_tmp = tmp_path / "host-secret.txt"
    host_tmp.write_text("secret")
    os.chmod(tmp_path, 0o755)
    os.chmod(host_tmp, 0o644)
    probe = (
        "import os, sys\n"
        f"paths = ['/home', '/root', '/etc/passwd', '/work', {str(host_tmp)!r}, {os.path.dirname(os.path.abspath(__file__))!r}]\n"
        "def f(x): return sorted(p for p in paths if os.path.exists(p)) + sorted(os.listdir('/tmp')) + [len(os.listdir('/'))]\n"
    )
    result = run_tests(probe, AssertTests(["assert f(0) == 1"]), isolation="bwrap")
    from trafl.rewards.code.harness import _run_parsed  # noqa: F401  (the view is the sandbox's)

    run = sb.execute(probe + "print(f(0))\nimport math\nprint(math.sqrt(4))\n", isolation="bwrap")
    seen = eval(run.stdout.splitlines()[0])  # noqa: S307 - our own probe's printed list
    assert seen[:-2] == [], seen  # none of the host paths exist; /tmp holds only the run's directory
    assert len(seen) == 2 and seen[0].startswith("trafl-sandbox-") and run.stdout.splitlines()[1] == "2.0"
    assert result.status == "fail"


# ---------------------------------------------------------------------------------------------
# the pieces: plain data and the parser
# ---------------------------------------------------------------------------------------------


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
    ],
)
def test_plain_round_trip_keeps_types(value):
    back = decode(encode(value))
    assert back == value and type(back) is type(value)


@pytest.mark.parametrize(
    "text", ['{"x": 1}', '{"#": "t", "v": 1}', "NaN", '{"#": "s", "v": [[1]]}', '{"#": "zz", "v": []}']
)
def test_plain_decode_rejects_malformed(text):
    with pytest.raises(PlainDataError):
        decode(text)


def test_plan_splits_calls_from_expected_values():
    plan = plan_tests(
        (
            "assert math.isclose(f(1), 2.5, rel_tol=0.01)",
            "assert abs(g(2) - 3.14) < 1e-6",
            "assert set(h(3)) == set([1, 2])",
            "assert k(x=1) == float('inf')",
        )
    )
    assert plan.holes == ("f(1)", "g(2)", "set(h(3))", "k(x=1)")  # no expected value is sent
    humaneval = plan_tests(("METADATA = {}\ndef check(candidate):\n    assert candidate('a') == 'b'\n\ncheck(f)\n",))
    assert humaneval.holes == ("f('a')",)
    for unparsable in (
        "for i in range(3):\n    assert f(i) == i",
        "assert all(f(i) == i for i in range(3))",
        "x = f(1)",
    ):
        with pytest.raises(NotParsable):
            plan_tests((unparsable,))


def test_parsed_semantics_follow_python_equality():
    prog = "def f(x):\n    return {'int': 1, 'tuple': (1, 2), 'gen': (i for i in [2, 1]), 'nan': float('nan')}[x]\n"
    cases = {
        "assert f('int') == 1.0": True,
        "assert f('int') == True": True,
        "assert f('tuple') == [1, 2]": False,
        "assert set(f('gen')) == {1, 2}": True,
        "assert f('gen') == [2, 1]": False,
        "assert f('nan') != f('nan')": True,
    }
    result = run_tests(prog, AssertTests(list(cases)))
    assert result.method == "parsed" and result.outcomes == list(cases.values())
