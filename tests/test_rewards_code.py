"""Test harnesses (assert-style and stdin/stdout), code extraction, code rewards, and the real
HumanEval / MBPP reference solutions."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from trafl.errors import DataError
from trafl.rewards.code import (
    AssertTests,
    CodeReward,
    IOTest,
    as_tests,
    code_format_reward,
    complete_function,
    encode_tests,
    extract_code,
    outputs_match,
    run_many,
    run_tests,
)

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
ADD = "def add(a, b):\n    return a + b\n"


def test_assert_statuses_and_pass_fraction():
    r = run_tests(ADD, AssertTests(["assert add(1, 2) == 3", "assert add(2, 2) == 5", "assert add(0, 0) == 0"]))
    assert (r.status, r.passed, r.total, r.outcomes) == ("fail", 2, 3, [True, False, True])
    assert r.pass_fraction == pytest.approx(2 / 3)
    assert run_tests(ADD, "assert add(1, 2) == 3").status == "pass"
    assert run_tests("def add(a, b) return", "assert add(1, 2) == 3").status == "error"  # syntax error
    assert run_tests("raise SystemExit(0)", "assert True").status == "error"  # never reached the tests
    slow = run_tests(ADD + "import time\n", AssertTests(["assert add(1, 1) == 2", "time.sleep(30)"]), timeout=1)
    assert (slow.status, slow.passed, slow.total) == ("timeout", 1, 2)  # partial credit survives the kill


def test_setup_code_and_future_imports_and_prints_cannot_forge_results():
    tests = AssertTests(["assert helper() == 7"], setup="def helper():\n    return 7\n")
    assert run_tests("from __future__ import annotations\nx: int = 1\n", tests).status == "pass"
    forged = "print('0 1')\nimport sys\nsys.stderr.write('0 1\\n')\n"
    assert run_tests(forged + "import os\nos._exit(0)\n", "assert True").status == "error"


def test_stdin_stdout_tests():
    prog = "n = int(input())\nprint(n * 2)   \nprint()\n"
    cases = [IOTest("3\n", "6\n"), IOTest("4", "8"), IOTest("5", "11")]
    r = run_tests(prog, cases)
    assert (r.status, r.passed, r.total) == ("fail", 2, 3)
    assert run_tests(prog, cases[:2]).status == "pass"
    assert run_tests("raise ValueError", cases[:1]).status == "error"
    assert run_tests("while True: pass", cases[:1], timeout=1).status == "timeout"
    assert run_tests(prog, cases, stop_on_failure=True).outcomes == [True, True, False]
    assert outputs_match("a \nb\n\n", "a\nb") and not outputs_match("a b", "a  b")


def test_tests_from_json_and_errors():
    assert isinstance(as_tests(json.loads(encode_tests(AssertTests(["assert 1"], "x=1")))), AssertTests)
    io = as_tests(json.loads(encode_tests([IOTest("1", "2")])))
    assert io == [IOTest("1", "2")]
    with pytest.raises(DataError):
        as_tests({"inputs": ["1"], "outputs": []})
    with pytest.raises(DataError):
        as_tests({"nothing": 1})
    with pytest.raises(DataError):
        run_tests(ADD, AssertTests([]))
    with pytest.raises(DataError):
        run_many([ADD], [])


@pytest.mark.parametrize(
    "completion, expected",
    [
        (
            "Here:\n```python\ndef f():\n    return 1\n```\nand\n```python\ndef f():\n    return 2\n```",
            "def f():\n    return 2",
        ),
        ("```\nprint(1)\n```", "print(1)"),
        ("```py\nx = 1\n```\n```text\nnot code\n```", "x = 1"),
        ("Sure, here it is.\ndef g(x):\n    return x\n", "def g(x):\n    return x"),
        ("```python\ndef cut(", "def cut("),
        ("print(3)", "print(3)"),
    ],
)
def test_extract_code(completion, expected):
    assert extract_code(completion) == expected


def test_complete_function_body_or_whole_function():
    prefix = 'import math\n\ndef root(x):\n    """Square root."""\n'
    body = run_tests(complete_function(prefix, "    return math.sqrt(x)\n"), "assert root(4) == 2")
    whole = run_tests(
        complete_function(prefix, "```python\ndef root(x):\n    return math.sqrt(x)\n```"), "assert root(9) == 3"
    )
    assert body.ok and whole.ok


def test_code_rewards_trl_signature():
    tests = [encode_tests(AssertTests(["assert add(1, 2) == 3", "assert add(1, 1) == 3"]))] * 3
    completions = [f"```python\n{ADD}```", "def add(a, b):\n    return 3\n", "nonsense("]
    assert CodeReward()(["p"] * 3, completions, tests=tests) == [0.0, 1.0, 0.0]  # "return 3" passes both
    assert CodeReward(partial=True)(["p"] * 3, completions, tests=tests) == [0.5, 1.0, 0.0]
    assert code_format_reward(["p"] * 3, completions) == [1.0, 0.5, 0.0]
    good = [encode_tests(AssertTests(["assert add(1, 2) == 3"]))]
    assert CodeReward()(["p"], completions[:1], tests=good, code_prefix=[""]) == [1.0]


def test_run_many_keeps_order():
    progs = [f"def f():\n    return {i}\n" for i in range(6)]
    tests = [f"assert f() == {i if i % 2 else -1}" for i in range(6)]
    assert [r.ok for r in run_many(progs, tests, workers=3)] == [False, True, False, True, False, True]


# ---------------------------------------------------------------------------------------------
# real benchmarks
# ---------------------------------------------------------------------------------------------


def _corrupt(canonical: str) -> str:
    """A wrong solution: the canonical body, but every return value replaced by a sentinel object."""
    return "    class _Wrong:\n        pass\n    return _Wrong()\n"


@pytest.mark.slow
def test_humaneval_canonical_solutions_pass_and_corrupted_ones_fail():
    from trafl.tasks import get_task

    task = get_task("humaneval", workers=4)
    rows = task.load()
    assert len(rows) == 164
    assert task.grading_methods(rows) == {"isolated": 164}  # docs/sandbox.md
    good = task.grade_batch([r["canonical_solution"] for r in rows], rows)
    assert [r["id"] for r, ok in zip(rows, good) if not ok] == []
    bad = task.grade_batch([_corrupt(r["canonical_solution"]) for r in rows], rows)
    assert [r["id"] for r, ok in zip(rows, bad) if ok] == []


@pytest.mark.slow
@pytest.mark.data
@pytest.mark.skipif(not DATA.is_dir(), reason=f"benchmark copies not found at {DATA}")
def test_mbpp_reference_code_passes_its_tests():
    """Every 4th MBPP problem (244 of 974, every task id range) by default; all 974 with
    ``TRAFL_ALL_CODE_GOLD=1`` or ``python scripts/code_gold.py`` (974 / 974 pass, and no corrupted
    solution does): grading all of them is the suite's slowest single check and repeats the same path."""
    from trafl.tasks import get_task

    rows = get_task("mbpp").load("all", path=str(DATA / "mbpp/mbpp.jsonl"))
    assert len(rows) == 974
    assert get_task("mbpp").grading_methods(rows) == {"isolated": 974}
    if os.environ.get("TRAFL_ALL_CODE_GOLD") != "1":
        rows = rows[::4]
    results = run_many([r["reference"] for r in rows], [r["tests"] for r in rows], workers=4, timeout=30)
    failures = [(r["id"], res.status) for r, res in zip(rows, results) if not res.ok]
    assert failures == []
    wrong = run_many(["pass\n"] * 20, [r["tests"] for r in rows[:20]], workers=4)
    assert not any(res.ok for res in wrong)


def test_json_string_tests_are_decoded_not_executed():
    stored = encode_tests(AssertTests(["assert f() == 1"]))
    assert run_tests("pass\n", stored).status == "fail"  # NameError in the only test
    assert run_tests("def f():\n    return 1\n", stored).status == "pass"
    with pytest.raises(DataError, match="JSON"):
        run_tests("pass", "{not json")


def test_a_list_of_assert_strings_grades_like_the_encoded_tests():
    """MBPP's ``test_list`` shape (a list of assert strings, or its JSON string) wherever tests are
    accepted: the same outcomes, method and rewards as the encoded ``AssertTests``."""
    test_list = ["assert add(1, 2) == 3", "assert add(2, 2) == 5", "assert add(0, 0) == 0"]
    encoded = encode_tests(AssertTests(test_list))
    assert as_tests(test_list) == as_tests(json.dumps(test_list)) == as_tests(encoded) == AssertTests(test_list)
    for program in (ADD, "def add(a, b):\n    return 5\n", "def add(a, b) return"):
        expected = run_tests(program, encoded)
        for given in (test_list, json.dumps(test_list)):
            got = run_tests(program, given)
            assert (got.status, got.outcomes, got.method) == (expected.status, expected.outcomes, expected.method)
    completions = [f"```python\n{ADD}```", "def add(a, b):\n    return 5\n"]
    for partial in (False, True):
        reward = CodeReward(partial=partial)
        assert reward(["p"] * 2, completions, tests=[test_list] * 2) == reward(
            ["p"] * 2, completions, tests=[encoded] * 2
        )
    assert CodeReward(partial=True)(["p"] * 2, completions, tests=[test_list] * 2) == [2 / 3, 1 / 3]


@pytest.mark.parametrize(
    "entry",
    [
        "add(1, 2) == 3",  # a bare comparison raises nothing: it would pass any program
        "import os; os._exit(0)",
        "x = add(1, 2)",
        "",
        "assert add(1, 2) == 3 +",
        7,
    ],
)
def test_a_list_entry_that_is_not_an_assert_is_refused(entry):
    with pytest.raises(DataError, match=r"tests\[1\]"):
        as_tests(["assert add(1, 2) == 3", entry])
    with pytest.raises(DataError, match=r"tests\[1\]"):
        CodeReward()(["p"], [ADD], tests=[json.dumps(["assert add(1, 2) == 3", entry])])


def test_comparisons_follow_python_equality_on_builtins():
    """Results come back as plain builtins and the test compares them with Python's own ``==``;
    a generator is not plain data, so only a call that never crosses it back can pass."""
    prog = "def f(x):\n    return {'int': 1, 'tuple': (1, 2), 'gen': (i for i in [2, 1]), 'nan': float('nan')}[x]\n"
    cases = {
        "assert f('int') == 1.0": True,
        "assert f('int') == True": True,
        "assert f('tuple') == [1, 2]": False,
        "assert f('tuple') == (1, 2)": True,
        "assert set(f('gen')) == {1, 2}": False,
        "assert f('nan') != f('nan')": True,
    }
    result = run_tests(prog, AssertTests(list(cases)))
    assert result.method == "isolated" and result.outcomes == list(cases.values())


def test_a_class_the_tests_construct_lives_in_the_sandbox():
    prog = (
        "class Counter:\n    def __init__(self):\n        self.n = 0\n"
        "    def add(self, k):\n        self.n += k\n        return self.n\n"
    )
    tests = ["c = Counter()\nc.add(2)\nassert c.add(3) == 5 and c.n == 5", "c.n = 10\nassert c.add(1) == 11"]
    assert run_tests(prog, AssertTests(tests)).outcomes == [True, True]


def test_a_buggy_test_only_costs_its_own_outcome():
    """Tests run in their own process under memory and time limits: a test that exhausts memory
    fails, the reward process and the other tests carry on."""
    tests = AssertTests(["x = bytearray(64 << 30)", "assert add(1, 2) == 3"])
    assert run_tests(ADD, tests).outcomes == [False, True]
