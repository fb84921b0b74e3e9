"""Grading a program against tests: the test formats, the one grading path, and the results.

Two kinds of tests:

* **assert-style** (:class:`AssertTests`: HumanEval's ``check(candidate)``, MBPP's ``test_list``,
  KodCode/AceCode asserts and pytest-style test functions, LiveCodeBench's functional problems),
  graded by :mod:`~trafl.rewards.code.isolated`: the tests run in a trusted grader process, the
  program in the sandbox behind proxies for its entry points, and nothing but plain data crosses
  between them (docs/sandbox.md). ``method="append"`` is the old harness (tests appended to the
  program's script, unguarded), kept only as the benchmark's baseline: it can be gamed.
* **stdin/stdout** (:class:`IOTest`; LiveCodeBench, Codeforces-style): one sandboxed run per test
  case with the case's input on stdin; this process compares the output with the expected output
  up to trailing whitespace on each line and trailing blank lines.

``run_tests`` returns a :class:`GradingResult` with ``status`` in {pass, fail, timeout, error} and the
fraction of tests passed. ``run_many`` grades many programs in parallel on a thread pool (each
run is its own processes; threads only wait).
"""

from __future__ import annotations

import ast
import json
import os
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from trafl.errors import DataError
from trafl.rewards.code.isolated import grade
from trafl.rewards.code.sandbox import Execution, Limits, execute

STATUSES = ("pass", "fail", "timeout", "error")
METHODS = ("auto", "isolated", "append")


@dataclass(frozen=True)
class AssertTests:
    """Python snippets run after the program; each passes when it raises nothing."""

    __test__ = False

    tests: tuple[str, ...]
    setup: str = ""  # test code run once before the snippets (MBPP's test_setup_code, HumanEval's helpers)
    preamble: str = ""  # runs before the program and before the tests (imports, e.g. typing)
    entry_points: tuple[str, ...] | None = None  # the names the program must define; None: inferred

    def __init__(
        self,
        tests: str | Sequence[str],
        setup: str = "",
        preamble: str = "",
        entry_points: Sequence[str] | None = None,
    ) -> None:
        object.__setattr__(self, "tests", (tests,) if isinstance(tests, str) else tuple(tests))
        object.__setattr__(self, "setup", setup or "")
        object.__setattr__(self, "preamble", preamble or "")
        object.__setattr__(self, "entry_points", None if entry_points is None else tuple(entry_points))


@dataclass(frozen=True)
class IOTest:
    """One stdin/stdout case."""

    input: str
    output: str


Tests = AssertTests | Sequence[IOTest]


@dataclass
class GradingResult:
    """The verdict of grading one program against its tests (named so that pytest never takes it
    for a test class)."""

    status: str  # one of STATUSES
    passed: int
    total: int
    elapsed: float = 0.0
    detail: str = ""  # stderr tail or the first mismatch, for debugging
    isolation: str = ""
    outcomes: list[bool] = field(default_factory=list)
    method: str = ""  # assert tests: "isolated" or "append"; stdin/stdout tests: "io"

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

_ASSERT_RUNNER = """
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
"""


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


def _run_assert(program: str, tests: AssertTests, timeout: float, **sandbox) -> GradingResult:
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
    return GradingResult(
        status, passed, total, run.elapsed, run.stderr[-2000:], run.isolation, [bool(o) for o in outcomes], "append"
    )


def _status(outcomes: list[bool | None], timed_out: bool) -> str:
    total = len(outcomes)
    if total and all(outcomes):
        return "pass"
    if timed_out:
        return "timeout"
    if all(o is None for o in outcomes):
        return "error"  # the tests never ran: syntax error, crash, resource limit, early exit
    return "fail"


def _run_isolated(program: str, tests: AssertTests, timeout: float, **sandbox) -> GradingResult:
    verdict = grade(
        program,
        list(tests.tests),
        setup=tests.setup,
        preamble=tests.preamble,
        entry_points=None if tests.entry_points is None else list(tests.entry_points),
        timeout=timeout,
        **sandbox,
    )
    outcomes = verdict.outcomes
    return GradingResult(
        _status(outcomes, verdict.timed_out),
        sum(1 for o in outcomes if o),
        len(outcomes),
        verdict.elapsed,
        verdict.detail,
        verdict.isolation,
        [bool(o) for o in outcomes],
        "isolated",
    )


def grading_method(tests: Tests | str | dict, method: str = "auto") -> str:
    """How ``tests`` are graded: ``"isolated"`` (assert-style), ``"append"`` (the baseline, when
    asked for) or ``"io"`` (stdin/stdout)."""
    if method not in METHODS:
        raise DataError(f"run_tests: method must be one of {', '.join(METHODS)}, got {method!r}")
    if not isinstance(as_tests(tests), AssertTests):
        return "io"
    return "append" if method == "append" else "isolated"


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


def _run_io(program: str, tests: Sequence[IOTest], timeout: float, stop_on_failure: bool, **sandbox) -> GradingResult:
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
            saw_error |= not run.timed_out and run.returncode != 0
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
    return GradingResult(
        status, passed, total, elapsed, detail, isolation, outcomes + [False] * (total - len(outcomes)), "io"
    )


# ---------------------------------------------------------------------------------------------
# public entry points
# ---------------------------------------------------------------------------------------------


def as_tests(tests: Tests | str | dict | Sequence[str]) -> Tests:
    """Accept the test objects above, a bare assert snippet, a list of assert statements (MBPP's
    ``test_list``), or a dict / its JSON string (``{"asserts": [...], "setup": "..."}`` or
    ``{"inputs": [...], "outputs": [...]}``) / a list's JSON string."""
    if isinstance(tests, AssertTests):
        return tests
    if isinstance(tests, str):
        if tests.lstrip().startswith(("{", "[")):  # the JSON forms that dataset rows store
            try:
                tests = json.loads(tests)
            except json.JSONDecodeError as exc:
                raise DataError(f"tests: a string starting with '{{' or '[' must be JSON ({exc.msg})") from exc
        else:
            return AssertTests([tests])
    if isinstance(tests, dict):
        if "asserts" in tests:
            return AssertTests(
                tests["asserts"], tests.get("setup", ""), tests.get("preamble", ""), tests.get("entry_points")
            )
        if "inputs" in tests and "outputs" in tests:
            if len(tests["inputs"]) != len(tests["outputs"]):
                raise DataError("stdin/stdout tests: 'inputs' and 'outputs' differ in length")
            return [IOTest(i, o) for i, o in zip(tests["inputs"], tests["outputs"])]
        raise DataError(f"tests dict must have 'asserts' or 'inputs'+'outputs', got keys {sorted(tests)}")
    cases = list(tests)
    if cases and any(isinstance(c, str) for c in cases):
        return AssertTests(assert_list(cases))
    if not all(isinstance(c, IOTest) for c in cases):
        raise DataError(
            "tests must be AssertTests, a list of IOTest, a list of assert statements, an assert string or a dict"
        )
    return cases


def assert_list(snippets: Sequence[object]) -> list[str]:
    """A list of tests given as strings, checked to be assert statements only (MBPP's ``test_list``).

    Anything else is refused: a bare expression such as ``f(1) == 2`` would raise nothing and pass
    whatever the program does, and other statements have no place in a list of checks.
    """
    for i, snippet in enumerate(snippets):
        shown = repr(snippet)[:120]
        if not isinstance(snippet, str):
            raise DataError(f"tests[{i}]: a list of tests holds assert statements as strings, got {shown}")
        try:
            body = ast.parse(snippet).body
        except SyntaxError as exc:
            raise DataError(f"tests[{i}]: not valid Python ({exc.msg}): {shown}") from exc
        if not body or not all(isinstance(stmt, ast.Assert) for stmt in body):
            raise DataError(f"tests[{i}]: each entry of a list of tests must be an assert statement, got {shown}")
    return list(snippets)


def run_tests(
    program: str,
    tests: Tests | str | dict,
    *,
    timeout: float = 10.0,
    limits: Limits | None = None,
    isolation: str = "auto",
    stop_on_failure: bool = False,
    method: str = "auto",
    **sandbox,
) -> GradingResult:
    """Grade ``program`` (Python source) against ``tests`` in the sandbox.

    ``timeout`` is per run: the whole assert suite, or each stdin/stdout case. ``method`` is
    ``"auto"``/``"isolated"`` (the grading path) or ``"append"`` (the unguarded baseline; see the
    module docstring). Extra keyword arguments go to the sandbox (``drop_privileges``, ``python``).
    """
    tests = as_tests(tests)
    if isinstance(tests, AssertTests):
        if not tests.tests:
            raise DataError("run_tests: no tests given")
        kwargs = dict(limits=limits, isolation=isolation, **sandbox)
        if grading_method(tests, method) == "append":
            return _run_assert(program, tests, timeout, **kwargs)
        return _run_isolated(program, tests, timeout, **kwargs)
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
) -> list[GradingResult]:
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
        encoded = {"asserts": list(tests.tests), "setup": tests.setup, "preamble": tests.preamble}
        if tests.entry_points is not None:
            encoded["entry_points"] = list(tests.entry_points)
        return json.dumps(encoded)
    return json.dumps({"inputs": [t.input for t in tests], "outputs": [t.output for t in tests]})
