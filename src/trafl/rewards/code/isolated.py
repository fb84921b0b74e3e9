"""Grading assert-style tests with the program and the tests in two separate processes.

The reward-computing process (the caller of :func:`grade`) starts two children and only reads
their verdicts:

* the **program process**: the sandbox (:func:`~trafl.rewards.code.sandbox.sandboxed`) running
  :mod:`~trafl.rewards.code.program_server`, which imports the candidate and serves calls to its
  entry points; it holds the read end of the request pipe and the write end of the reply pipe;
* the **grader process**: this interpreter running :mod:`~trafl.rewards.code.grader_process` under
  its own CPU and memory limits; it holds the other ends, runs the tests, and reports each test's
  outcome on a third pipe that only it and the caller hold.

The caller sends nothing to the program and reads nothing from it. The wall clock covers the whole
suite: when ``timeout`` passes, both children are killed and the outcomes reported so far stand.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from trafl.rewards.code.sandbox import Limits, sandboxed
from trafl.rewards.code.wire import ProtocolError, parse_frame, read_frame

SOURCE_ROOT = str(Path(__file__).resolve().parents[3])  # the directory holding the trafl package
# The grader process starts with ``-S`` (no site initialisation) and this process's ``sys.path``,
# so the tests import what this process can, and it imports only grader_process, wire and plain
# (stdlib only): empty stand-ins for the parent packages skip their __init__ modules, which import
# much more. Together a start of about 30 ms instead of 200 ms.
_BOOT = (
    "import sys, types\n"
    "sys.path[:] = {paths!r}\n"
    "for name in ('trafl', 'trafl.rewards', 'trafl.rewards.code'):\n"
    "    package = types.ModuleType(name)\n"
    "    package.__path__ = [{root!r} + '/' + name.replace('.', '/')]\n"
    "    sys.modules[name] = package\n"
    "from trafl.rewards.code.grader_process import main\nmain()\n"
)


def grader_argv() -> list[str]:
    """The command line of the grader process."""
    paths = [p for p in sys.path if p and os.path.isdir(p)]
    return [sys.executable, "-I", "-S", "-B", "-c", _BOOT.format(paths=paths, root=SOURCE_ROOT)]


@dataclass
class Verdict:
    """What the grader process reported: one outcome per test (``None``: never ran)."""

    outcomes: list[bool | None]
    timed_out: bool
    elapsed: float
    isolation: str
    detail: str


@lru_cache(maxsize=1)
def server_source() -> str:
    """The text of :mod:`~trafl.rewards.code.program_server`, embedded in every program script."""
    return Path(__file__).with_name("program_server.py").read_text(encoding="utf-8")


def server_script(config: dict) -> str:
    """The script the sandbox runs: the server and one call with ``config`` (a literal)."""
    return f"{server_source()}\n\nserve({config!r})\n"


def _limit_grader(pid: int, limits: Limits, timeout: float) -> None:
    """CPU and memory limits for the grader process, set from outside (``prlimit``) before it gets
    its configuration, so no test runs without them; no ``preexec_fn`` means the cheap ``vfork``
    start even when this process is large (torch loaded)."""
    cpu = int(timeout) + 2
    resource.prlimit(pid, resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.prlimit(pid, resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
    resource.prlimit(pid, resource.RLIMIT_CORE, (0, 0))


def _close(open_fds: set[int], *fds: int) -> None:
    """Close ``fds`` that are still in ``open_fds`` (each exactly once: with threads grading in
    parallel, a descriptor number closed twice may already belong to another run)."""
    for fd in fds:
        if fd in open_fds:
            open_fds.discard(fd)
            os.close(fd)


def grade(
    program: str,
    tests: list[str],
    *,
    setup: str = "",
    preamble: str = "",
    entry_points: list[str] | None = None,
    timeout: float = 10.0,
    limits: Limits | None = None,
    isolation: str = "auto",
    drop_privileges: bool | None = None,
    python: str | None = None,
) -> Verdict:
    """Run ``tests`` against ``program`` (see the module docstring). Never raises on anything the
    program or the tests do; configuration errors (a bad ``isolation``) raise ``ConfigError``."""
    limits = limits or Limits()
    outcomes: list[bool | None] = [None] * len(tests)
    start = time.monotonic()
    deadline = start + timeout
    request_r, request_w = os.pipe()
    reply_r, reply_w = os.pipe()
    report_r, report_w = os.pipe()
    mine = {request_r, request_w, reply_r, reply_w, report_r, report_w}
    grader: subprocess.Popen | None = None
    detail, timed_out = "", False
    try:
        script = server_script({"read_fd": request_r, "write_fd": reply_w, "program": program, "preamble": preamble})
        with sandboxed(
            script,
            timeout=timeout,
            limits=limits,
            isolation=isolation,
            drop_privileges=drop_privileges,
            python=python,
            pass_fds=(request_r, reply_w),
        ) as run:
            _close(mine, request_r, reply_w)
            config = {
                "request_fd": request_w,
                "reply_fd": reply_r,
                "report_fd": report_w,
                "tests": list(tests),
                "setup": setup,
                "preamble": preamble,
                "entry_points": entry_points,
            }
            with tempfile.TemporaryFile() as errors:
                grader = subprocess.Popen(
                    grader_argv(),
                    stdin=subprocess.PIPE,
                    stdout=subprocess.DEVNULL,
                    stderr=errors,
                    pass_fds=(request_w, reply_r, report_w),
                    start_new_session=True,
                )
                _close(mine, request_w, reply_r, report_w)
                try:
                    _limit_grader(grader.pid, limits, timeout)
                    assert grader.stdin is not None
                    grader.stdin.write(json.dumps(config).encode("utf-8"))
                    grader.stdin.close()
                except OSError:
                    pass  # the grader died at start: nothing is reported, the tests did not run
                detail, timed_out = _collect(report_r, deadline, outcomes)
                _stop(grader)
                if not detail and not all(outcomes):
                    errors.seek(0)
                    detail = errors.read()[-2000:].decode("utf-8", errors="replace")
            isolation_used = run.isolation
            if not detail or detail.startswith("the program did not load"):
                detail = (detail + "\n" + run.output("stderr")[-2000:]).strip()
    finally:
        if grader is not None:
            _stop(grader)
        _close(mine, *list(mine))
    return Verdict(outcomes, timed_out, time.monotonic() - start, isolation_used, detail)


def _collect(fd: int, deadline: float, outcomes: list[bool | None]) -> tuple[str, bool]:
    """Read the grader's report frames into ``outcomes`` until it closes the pipe or the deadline
    passes; ``(detail, timed_out)``. Anything malformed ends the reading (the rest did not run)."""
    detail = ""
    while True:
        try:
            message = parse_frame(read_frame(fd, deadline))
        except ProtocolError:
            return detail, time.monotonic() >= deadline
        event = message.get("event")
        text = message.get("message") or message.get("why") or ""
        text = text if type(text) is str else ""
        if event in ("load_error", "setup_error"):
            return text, False
        if event == "test":
            i, ok = message.get("i"), message.get("ok")
            if type(i) is int and 0 <= i < len(outcomes) and outcomes[i] is None and type(ok) is bool:
                outcomes[i] = ok
                if not ok and not detail:
                    detail = f"test {i}: {text}"
            else:
                return "malformed report from the grader process", False


def _stop(proc: subprocess.Popen) -> None:
    """Kill the grader process's whole session (anything a test started) and reap it. The group is
    killed before the reaping, while its id cannot yet belong to another process."""
    if proc.returncode is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    proc.wait()


__all__ = ["Verdict", "grade", "server_script"]
