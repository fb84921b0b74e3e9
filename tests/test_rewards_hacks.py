"""Reward hacks against the grader (tests/hack_programs.py, by class), and the honest controls.

Every hack must fail under bubblewrap and under the rlimits fallback, on every Python interpreter
available here (the program's interpreter; the tests always run in this one), while the honest
programs pass. The hacks are shown to be real: each one in ``HACKS`` passes its tests under the
old ``append`` harness, so the suite would catch a regression to a shared-interpreter design.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from hack_programs import CHANNEL_HACKS, CONTROLS, F7, HACKS, HONEST

from trafl.rewards.code import AssertTests, run_many, run_tests
from trafl.rewards.code import sandbox as sb

MODES = ["rlimits"] + (["bwrap"] if sb.bwrap_usable(sb._is_root()) else [])
ALL_HACKS = {**HACKS, **CHANNEL_HACKS}


def _grade_all(programs: dict[str, tuple[str, list[str]]], **kwargs) -> dict[str, object]:
    names = list(programs)
    results = run_many(
        [programs[n][0] for n in names], [AssertTests(programs[n][1]) for n in names], workers=2, timeout=8, **kwargs
    )
    return dict(zip(names, results))


def _check(**kwargs) -> None:
    hacks = _grade_all({n: (prog, tests) for n, (_cls, prog, tests) in ALL_HACKS.items()}, **kwargs)
    passed_open = {n: (r.status, r.outcomes) for n, r in hacks.items() if r.ok}
    controls = _grade_all(CONTROLS, **kwargs)
    failed_controls = {n: (r.status, r.detail[-300:]) for n, r in controls.items() if not r.ok}
    assert (passed_open, failed_controls) == ({}, {})


def test_suite_size_by_class():
    by_class = Counter(cls for cls, _p, _t in ALL_HACKS.values())
    assert len(ALL_HACKS) >= 3 * 17  # three times the 17 hacks of the parse-and-guard grader's suite
    assert set(by_class) >= {"shadowing", "patched modules", "shared arguments", "frames", "reading the tests"}
    assert min(by_class.values()) >= 3


def test_the_honest_program_passes_every_hacked_test_set():
    tests = {n: (HONEST, t) for n, (_c, _p, t) in HACKS.items() if t is not F7}
    tests["f7"] = (HONEST, F7)
    failed = {n: (r.status, r.detail[-200:]) for n, r in _grade_all(tests).items() if not r.ok}
    assert failed == {}


def test_the_hacks_are_real_against_the_append_harness():
    names = list(HACKS)
    results = run_many(
        [HACKS[n][1] for n in names], [AssertTests(HACKS[n][2]) for n in names], workers=2, timeout=8, method="append"
    )
    assert [n for n, r in zip(names, results) if not r.ok] == []


@pytest.mark.parametrize("mode", MODES)
def test_every_hack_fails_and_every_control_passes(mode):
    _check(isolation=mode)


def test_a_program_cannot_replace_the_trusted_helpers_of_humaneval():
    """HumanEval/32's tests call ``poly`` from the prompt: the trusted copy, never the program's."""
    from trafl.tasks.code_tasks import prompt_helpers

    prompt = "import math\n\ndef poly(xs, x):\n    return sum(c * math.pow(x, i) for i, c in enumerate(xs))\n\n"
    prompt += 'def find_zero(xs):\n    """a zero of poly"""\n'
    hack = prompt + "    return 123.0\n\ndef poly(xs, x):\n    return 0.0\n"
    honest = prompt + "    return -xs[0] / xs[1]\n"
    test = "def check(candidate):\n    assert abs(poly([1, 2], candidate([1, 2]))) < 1e-6\n\ncheck(find_zero)\n"
    old_row = AssertTests([test])  # the helpers were part of the program
    assert run_tests(hack, old_row, method="append").ok
    new_row = AssertTests([test], setup=prompt_helpers(prompt, "find_zero"), entry_points=["find_zero"])
    assert run_tests(honest, new_row).ok
    assert not run_tests(hack, new_row).ok


def test_a_program_named_like_a_builtin_is_served_only_when_declared():
    tests = ["assert sum(10, 15) == 6"]
    program = "def sum(a, b):\n    return 6\n"
    assert run_tests(program, AssertTests(tests, entry_points=["sum"])).ok
    assert not run_tests(program, AssertTests(tests)).ok  # undeclared: the test's sum is the builtin


# ---------------------------------------------------------------------------------------------
# the same on every interpreter available here (pyenv's, copied where a private uid can run them)
# ---------------------------------------------------------------------------------------------


def _portable(version_dir: str) -> str:
    """A copy of a pyenv interpreter that a private user id can execute (pyenv lives under
    ``/root``): the binary, ``libpython`` and the standard library under /tmp, started by a shell
    wrapper that points the loader at the copied library (its RUNPATH is absolute)."""
    name = os.path.basename(version_dir.rstrip("/"))
    short = ".".join(name.split(".")[:2])
    dest = Path("/tmp/trafl-pythons") / name
    wrapper = dest / "python"
    if not wrapper.exists():
        tmp = dest.with_suffix(".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        (tmp / "bin").mkdir(parents=True)
        shutil.copy2(f"{version_dir}/bin/python{short}", tmp / "bin")
        (tmp / "lib").mkdir()
        for lib in glob.glob(f"{version_dir}/lib/libpython{short}*.so*"):
            shutil.copy2(lib, tmp / "lib")
        shutil.copytree(
            f"{version_dir}/lib/python{short}",
            tmp / "lib" / f"python{short}",
            ignore=shutil.ignore_patterns("site-packages", "test", "tests", "idlelib", "tkinter", "turtledemo"),
            symlinks=True,
        )
        (tmp / "python").write_text(
            f'#!/bin/sh\nLD_LIBRARY_PATH={dest}/lib exec {dest}/bin/python{short} "$@"\n', encoding="utf-8"
        )
        subprocess.run(["chmod", "-R", "a+rX", str(tmp)], check=True)
        os.chmod(tmp / "python", 0o755)
        tmp.rename(dest)
    return str(wrapper)


def _interpreters() -> list[str]:
    """The system interpreter (the sandbox's default), and with ``TRAFL_ALL_INTERPRETERS=1`` every pyenv
    3.10+ interpreter too: an opt-in lane, since it copies ~640 MB of interpreters to /tmp and runs the
    suite five times (about 2 minutes); the system one always runs."""
    found = ["/usr/bin/python3"] if os.path.exists("/usr/bin/python3") else []
    if os.environ.get("TRAFL_ALL_INTERPRETERS") == "1":
        found += [d for d in sorted(glob.glob("/root/.pyenv/versions/3.1[0-9]*")) if os.path.isdir(d)]
    return found


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="Linux sandbox")
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("interpreter", _interpreters())
def test_every_hack_fails_on_every_interpreter(interpreter, mode):
    python = interpreter if interpreter.startswith("/usr/") else _portable(interpreter)
    version = subprocess.run([python, "-c", "import sys; print(sys.version_info[:2])"], capture_output=True, text=True)
    assert version.returncode == 0, version.stderr
    _check(isolation=mode, python=python)
