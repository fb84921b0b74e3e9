"""The task registry, loaders (local copies of the benchmarks), row conversion and prompts."""

from __future__ import annotations

import base64
import json
import pickle
import sys
import zlib
from pathlib import Path

import pytest

from trafl.errors import ConfigError, DataError
from trafl.rewards.code import as_tests, run_tests
from trafl.tasks import get_task, task_names
from trafl.tasks.base import Task
from trafl.tasks.code_tasks import decode_private_tests, pytest_style_tests

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"benchmark copies not found at {DATA}")

REQUIRED = {
    "gsm8k",
    "math",
    "math500",
    "minerva_math",
    "humaneval",
    "mbpp",
    "livecodebench",
    "kodcode",
    "countdown",
    "subset_sum",
}


def test_registry_names_and_errors():
    assert REQUIRED <= set(task_names())
    for name in task_names():
        task = get_task(name)
        assert isinstance(task, Task) and task.name == name and task.kind in ("math", "code", "synthetic")
        assert len(task.reward_functions()) >= 2
    with pytest.raises(ConfigError, match="valid tasks"):
        get_task("nope")
    with pytest.raises(ConfigError, match="bad options"):
        get_task("countdown", colour="red")
    assert get_task("trafl.tasks.synthetic:SubsetSum").name == "subset_sum"


def test_hub_loading_without_datasets_gives_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)  # a broken install: the error must say what to do
    with pytest.raises(DataError, match="needs the 'datasets' package"):
        get_task("gsm8k").load("test")


def test_local_file_errors(tmp_path):
    with pytest.raises(DataError, match="not found"):
        get_task("gsm8k").load(path=str(tmp_path / "missing.jsonl"))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "q", "answer": "#### 3"}\n{oops\n')
    with pytest.raises(DataError, match="bad.jsonl:2"):
        get_task("gsm8k").load(path=str(bad))
    nofield = tmp_path / "nofield.jsonl"
    nofield.write_text('{"text": "q"}\n')
    with pytest.raises(DataError, match="question"):
        get_task("gsm8k").load(path=str(nofield))


class _ChatTokenizer:
    chat_template = "x"

    def apply_chat_template(self, messages, tokenize, add_generation_prompt):
        return f"<user>{messages[0]['content']}<assistant>"


def test_prompt_templates():
    task = get_task("gsm8k")
    row = {"prompt": "What is 2+2?", "answer": "4"}
    assert task.format_prompt(row).startswith("What is 2+2?\n") and "\\boxed{}" in task.format_prompt(row)
    assert task.format_prompt(row, _ChatTokenizer()).startswith("<user>What is 2+2?")
    assert task.is_correct("so \\boxed{4}", row) and not task.is_correct("\\boxed{5}", row)
    assert task.answer_key("#### 4.0", row) == task.answer_key("The answer is 4", row) == "4"


@needs_data
@pytest.mark.data
def test_local_benchmark_copies_load():
    counts = {
        ("gsm8k", "test", "gsm8k/test.jsonl"): 1319,
        ("gsm8k", "train", "gsm8k/train.jsonl"): 7473,
        ("math", "train", "math/train.jsonl"): 7500,
        ("math500", "test", "math500/test.jsonl"): 500,
        ("minerva_math", "test", "minerva_math/test.jsonl"): 272,
        ("mbpp", "test", "mbpp/mbpp.jsonl"): 500,
        ("mbpp", "train", "mbpp/mbpp.jsonl"): 374,
        ("mbpp", "all", "mbpp/mbpp.jsonl"): 974,
        ("mbpp", "all", "mbpp/sanitized-mbpp.json"): 427,
    }
    for (name, split, rel), n in counts.items():
        rows = get_task(name).load(split, path=str(DATA / rel))
        assert len(rows) == n, (name, split)
        assert all(isinstance(r["prompt"], str) and r["prompt"] for r in rows)
        assert len({tuple(sorted(r)) for r in rows}) == 1  # uniform columns for the trainer
    assert get_task("mbpp").load("test", path=str(DATA / "mbpp/mbpp.jsonl"))[0]["id"] == "11"
    assert get_task("gsm8k").load("test", path=str(DATA / "gsm8k/test.jsonl"), limit=3)[0]["answer"] == "18"


def test_humaneval_rows_and_prompt():
    rows = get_task("humaneval").load(limit=2)
    assert rows[0]["id"] == "HumanEval/0" and "def has_close_elements" in rows[0]["code_prefix"]
    assert "```python" in get_task("humaneval").prompt_text(rows[0])


def test_mbpp_sanitized_setup_runs_before_tests():
    task = get_task("mbpp")
    row = task.to_row(
        {
            "prompt": "p",
            "test_imports": ["import math"],
            "test_list": ["assert f(4) == math.sqrt(16)"],
            "task_id": 1,
            "code": "def f(x):\n    return x\n",
        },
        "t",
    )
    assert task.grade_batch(["```python\ndef f(x):\n    return x\n```"], [row]) == [True]
    assert "assert f(4)" in task.prompt_text(row)


def _lcb_private(cases):
    return base64.b64encode(zlib.compress(pickle.dumps(json.dumps(cases)))).decode()


def test_livecodebench_stdin_and_functional_rows():
    task = get_task("livecodebench", timeout=5)
    stdin_row = task.to_row(
        {
            "question_content": "Double n.",
            "question_id": "a1",
            "starter_code": "",
            "public_test_cases": json.dumps([{"input": "2\n", "output": "4\n", "testtype": "stdin"}]),
            "private_test_cases": _lcb_private([{"input": "5\n", "output": "10\n", "testtype": "stdin"}]),
            "metadata": "{}",
        },
        "t",
    )
    assert len(as_tests(stdin_row["tests"])) == 2
    assert task.grade_batch(["```python\nprint(2 * int(input()))\n```", "print(3)"], [stdin_row] * 2) == [True, False]
    func_row = task.to_row(
        {
            "question_content": "Sum a list.",
            "question_id": "b2",
            "starter_code": "class Solution:\n    def total(self, nums: List[int]) -> int:\n        ",
            "public_test_cases": json.dumps([{"input": "[1, 2, 3]", "output": "6", "testtype": "functional"}]),
            "private_test_cases": "",
            "metadata": json.dumps({"func_name": "total"}),
        },
        "t",
    )
    good = "class Solution:\n    def total(self, nums: List[int]) -> int:\n        return sum(nums)\n"
    assert task.grade_batch([good, good.replace("sum(nums)", "0")], [func_row] * 2) == [True, False]
    assert "starter code" in func_row["prompt"]


def test_private_tests_decoder_refuses_objects():
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    blob = base64.b64encode(zlib.compress(pickle.dumps(Evil()))).decode()
    with pytest.raises(pickle.UnpicklingError):
        decode_private_tests(blob)
    assert decode_private_tests(json.dumps([{"input": "1"}])) == [{"input": "1"}]


def test_code_training_formats():
    kod = get_task("kodcode", timeout=5)
    row = kod.to_row(
        {
            "question": "Write add.",
            "question_id": "k1",
            "test": (
                "from solution import add\n\ndef test_small():\n    assert add(1, 2) == 3\n\ndef test_neg():\n    assert add(-1, -1) == -2\n"
            ),
        },
        "t",
    )
    assert len(as_tests(row["tests"]).tests) == 2
    assert kod.grade_batch(
        ["```python\ndef add(a, b):\n    return a + b\n```", "def add(a, b):\n    return 3\n"], [row] * 2
    ) == [True, False]
    assert run_tests("def add(a, b):\n    return 3\n", row["tests"]).passed == 1
    ace = get_task("acecode", timeout=5)
    arow = ace.to_row(
        {"question": "Write inc.", "id": "a", "test_cases": ["assert inc(1) == 2", "assert inc(0) == 1"]}, "t"
    )
    assert ace.grade_batch(["def inc(x):\n    return x + 1\n"], [arow]) == [True]
    assert kod.to_row({"question": "q", "test": "x = 1\n"}, "t") is None  # no test function: unusable
    assert pytest_style_tests("def test_a(:\n").tests == ()


def test_code_answer_key_ignores_formatting():
    task = get_task("mbpp")
    a = task.answer_key("```python\ndef f(x):\n    # comment\n    return x+1\n```", {})
    b = task.answer_key("def f(x):\n    return x + 1\n", {})
    c = task.answer_key("def f(x):\n    return x + 2\n", {})
    assert a == b != c
