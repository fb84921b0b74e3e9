"""Grading a program against tests inside the sandbox.

Two kinds of tests:

* **assert-style** (:class:`AssertTests`; HumanEval's ``check(candidate)``, MBPP's ``test_list``):
  one run executes the program, then ``setup``, then each test snippet in turn. After each
  snippet the harness writes ``<index> <0|1>`` to a private file descriptor that the program's own
  prints cannot reach, so a program that exits early (``os._exit(0)``) or hangs gets no credit for
  the tests it never ran.
* **stdin/stdout** (:class:`IOTest`; LiveCodeBench, Codeforces-style): one run per test case with
  the case's input on stdin; the output must equal the expected output up to trailing whitespace
  on each line and trailing blank lines.

``run_tests`` returns a :class:`TestResult` with ``status`` in {pass, fail, timeout, error} and the
fraction of tests passed. ``run_many`` grades many programs in parallel on a thread pool (each
run is its own process; threads only wait).
"""

from __future__ import annotations

import json
import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Sequence, Union

from trafl.errors import DataError
from trafl.rewards.code.sandbox import Execution, Limits, execute

STATUSES = ("pass", "fail", "timeout", "error")


@dataclass(frozen=True)
class AssertTests:
    """Python snippets run after the program; each passes when it raises nothing."""

    __test__ = False

    tests: tuple[str, ...]
    setup: str = ""  # runs after the program (MBPP's test_setup_code)
    preamble: str = ""  # runs before the program (imports the program may rely on, e.g. typing)

    def __init__(self, tests: str | Sequence[str], setup: str = "", preamble: str = "") -> None:
        object.__setattr__(self, "tests", (tests,) if isinstance(tests, str) else tuple(tests))
        object.__setattr__(self, "setup", setup or "")
        object.__setattr__(self, "preamble", preamble or "")


@dataclass(frozen=True)
class IOTest:
    """One stdin/stdout case."""

    input: str
    output: str


Tests = Union[AssertTests, Sequence[IOTest]]


@dataclass
class TestResult:
    __test__ = False  # not a pytest test class

    status: str  # one of STATUSES
    passed: int
    total: int
    elapsed: float = 0.0
    detail: str = ""  # stderr tail or the first mismatch, for debugging
    isolation: str = ""
    outcomes: list[bool] = field(default_factory=list)

    @property
    def pass_fraction(self) -> float:
        return self.passed / self.total if self.total else 0.0

    @property
    def ok(self) -> bool:
        return self.status == "pass"


# ---------------------------------------------------------------------------------------------
# assert-style
# ---------------------------------------------------------------------------------------------

_FUTURE = re.compile(r"^from __future__ import [^\n]*$", re.MULTILINE)
_PRELUDE = "import os as __trafl_os\n__trafl_fd = int(__trafl_os.environ.pop('TRAFL_SIDE_FD'))\ndel __trafl_os\n"

_ASSERT_RUNNER = '''
# ---- trafl test harness ----
def __trafl_run_tests(__tests, __fd):
    import os as __os
    for __i, __src in enumerate(__tests):
        try:
            exec(compile(__src, "<test %d>" % __i, "exec"), globals())
            __ok = 1
        except BaseException:
            __ok = 0
        __os.write(__fd, ("%d %d\\n" % (__i, __ok)).encode())

__trafl_run_tests({tests}, __trafl_fd)
'''


def assert_program(program: str, tests: AssertTests) -> str:
    """The source the sandbox runs: preamble, program, setup, then the harness looping over the snippets.

    The setup follows the program because MBPP's ``test_setup_code`` builds inputs from classes
    the solution defines (``root = Node(1)``)."""
    runner = _ASSERT_RUNNER.replace("{tests}", repr(list(tests.tests)))
    body = f"{tests.preamble}\n{program}\n{tests.setup}\n{runner}"
    # ``from __future__`` imports must open the module: hoist them above the prelude.
    future = _FUTURE.findall(body)
    return "".join(f"{line}\n" for line in future) + _PRELUDE + _FUTURE.sub("", body)


def _parse_outcomes(side: str, total: int) -> list[bool | None]:
    outcomes: list[bool | None] = [None] * total
    for line in side.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0].isdigit() and parts[1] in ("0", "1") and int(parts[0]) < total:
            outcomes[int(parts[0])] = parts[1] == "1"
    return outcomes


def _run_assert(program: str, tests: AssertTests, timeout: float, **sandbox) -> TestResult:
    total = len(tests.tests)
    run = execute(assert_program(program, tests), timeout=timeout, side_channel=True, **sandbox)
    outcomes = _parse_outcomes(run.extra.get("side", ""), total)
    passed = sum(1 for o in outcomes if o)
    if passed == total and total > 0:
        status = "pass"
    elif run.timed_out:
        status = "timeout"
    elif all(o is None for o in outcomes):
        status = "error"  # the tests never ran: syntax error, crash, resource limit, early exit
    else:
        status = "fail"
    return TestResult(status, passed, total, run.elapsed, run.stderr[-2000:], run.isolation,
                      [bool(o) for o in outcomes])


# ---------------------------------------------------------------------------------------------
# stdin/stdout
# ---------------------------------------------------------------------------------------------


def normalise_output(text: str) -> list[str]:
    """Lines without trailing whitespace, trailing blank lines dropped."""
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def outputs_match(actual: str, expected: str) -> bool:
    return normalise_output(actual) == normalise_output(expected)


def _run_io(program: str, tests: Sequence[IOTest], timeout: float, stop_on_failure: bool, **sandbox) -> TestResult:
    outcomes: list[bool] = []
    elapsed, detail, isolation = 0.0, "", ""
    saw_timeout = saw_error = False
    for case in tests:
        run: Execution = execute(program, stdin=case.input, timeout=timeout, **sandbox)
        elapsed += run.elapsed
        isolation = run.isolation
        ok = not run.timed_out and run.returncode == 0 and outputs_match(run.stdout, case.output)
        outcomes.append(ok)
        if not ok:
            saw_timeout |= run.timed_out
            saw_error |= (not run.timed_out and run.returncode != 0)
            if not detail:
                detail = run.stderr[-2000:] or f"expected {case.output[:200]!r}, got {run.stdout[:200]!r}"
            if stop_on_failure:
                break
    passed = sum(outcomes)
    total = len(tests)
    if passed == total and total > 0:
        status = "pass"
    elif saw_timeout:
        status = "timeout"
    elif saw_error:
        status = "error"
    else:
        status = "fail"
    return TestResult(status, passed, total, elapsed, detail, isolation, outcomes + [False] * (total - len(outcomes)))


# ---------------------------------------------------------------------------------------------
# public entry points
# ---------------------------------------------------------------------------------------------


def as_tests(tests: Tests | str | dict) -> Tests:
    """Accept the test objects above, a bare assert snippet, or a dict / its JSON string
    (``{"asserts": [...], "setup": "..."}`` or ``{"inputs": [...], "outputs": [...]}``)."""
    if isinstance(tests, AssertTests):
        return tests
    if isinstance(tests, str):
        if tests.lstrip().startswith("{"):  # the JSON form that dataset rows store
            try:
                tests = json.loads(tests)
            except json.JSONDecodeError as exc:
                raise DataError(f"tests: a string starting with '{{' must be JSON ({exc.msg})") from exc
        else:
            return AssertTests([tests])
    if isinstance(tests, dict):
        if "asserts" in tests:
            return AssertTests(tests["asserts"], tests.get("setup", ""), tests.get("preamble", ""))
        if "inputs" in tests and "outputs" in tests:
            if len(tests["inputs"]) != len(tests["outputs"]):
                raise DataError("stdin/stdout tests: 'inputs' and 'outputs' differ in length")
            return [IOTest(i, o) for i, o in zip(tests["inputs"], tests["outputs"])]
        raise DataError(f"tests dict must have 'asserts' or 'inputs'+'outputs', got keys {sorted(tests)}")
    cases = list(tests)
    if not all(isinstance(c, IOTest) for c in cases):
        raise DataError("tests must be AssertTests, a list of IOTest, an assert string or a dict")
    return cases


def run_tests(
    program: str,
    tests: Tests | str | dict,
    *,
    timeout: float = 10.0,
    limits: Limits | None = None,
    isolation: str = "auto",
    stop_on_failure: bool = False,
    **sandbox,
) -> TestResult:
    """Grade ``program`` (Python source) against ``tests`` in the sandbox.

    ``timeout`` is per run: the whole assert suite, or each stdin/stdout case. Extra keyword
    arguments go to :func:`trafl.rewards.code.sandbox.execute` (``drop_privileges``, ``python``).
    """
    tests = as_tests(tests)
    if isinstance(tests, AssertTests):
        if not tests.tests:
            raise DataError("run_tests: no tests given")
        return _run_assert(program, tests, timeout, limits=limits, isolation=isolation, **sandbox)
    if not tests:
        raise DataError("run_tests: no tests given")
    return _run_io(program, tests, timeout, stop_on_failure, limits=limits, isolation=isolation, **sandbox)


def default_workers() -> int:
    return max(1, min(32, (os.cpu_count() or 1)))


def run_many(
    programs: Sequence[str],
    tests: Sequence[Tests | str | dict],
    *,
    workers: int | None = None,
    **kwargs,
) -> list[TestResult]:
    """``run_tests`` for many (program, tests) pairs on ``workers`` parallel sandboxes, in order."""
    if len(programs) != len(tests):
        raise DataError(f"run_many: {len(programs)} programs but {len(tests)} test sets")
    if not programs:
        return []
    with ThreadPoolExecutor(max_workers=workers or default_workers()) as pool:
        return list(pool.map(lambda pt: run_tests(pt[0], pt[1], **kwargs), zip(programs, tests)))


def encode_tests(tests: Tests) -> str:
    """A JSON form of ``tests`` (what dataset rows store)."""
    if isinstance(tests, AssertTests):
        return json.dumps({"asserts": list(tests.tests), "setup": tests.setup, "preamble": tests.preamble})
    return json.dumps({"inputs": [t.input for t in tests], "outputs": [t.output for t in tests]})
