"""The evaluation loop end to end with a fake generator and a fake task: resume, batch-size
independence, results schema, report, and clear errors from ``trafl eval``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trafl.cli import main
from trafl.errors import ConfigError
from trafl.eval.cache import Cell, cache_path
from trafl.eval.evaluate import EvalPlan, ModelSpec, TaskSpec, problem_ids, run_evaluation
from trafl.eval.generation import SamplerSweep
from trafl.eval.report import render_markdown
from trafl.sampling import SamplerSettings
from trafl.tasks.base import Task
from trafl.utils.io import read_jsonl


class MultiAnswerTask(Task):
    """Problem ``i`` is solved by any answer below ``row['ok']`` (several correct answers)."""

    name = "multi"
    kind = "synthetic"
    eval_split = "test"

    def load(self, split=None, *, path=None, limit=None):
        rows = [{"id": f"p{i}", "prompt": f"question {i}", "ok": i % 5} for i in range(7)]
        return rows[:limit] if limit else rows

    def prompt_text(self, row):
        return row["prompt"]

    def reward_functions(self):
        return [
            lambda prompts, completions, ok, **_: [
                float(self.is_correct(c, {"ok": o})) for c, o in zip(completions, ok)
            ]
        ]

    def is_correct(self, completion, row):
        return int(completion.split()[-1]) < row["ok"]

    def answer_key(self, completion, row):
        return completion.split()[-1]


class FakeGenerator:
    """Completion ``j`` of a prompt is a pure function of its seed; counts prompts it generated;
    raises after ``fail_after`` prompts (a killed run)."""

    tokenizer = None

    def __init__(self, fail_after: int | None = None, temperature_scale: int = 6):
        self.prompts_done: list[str] = []
        self.batch_sizes: list[int] = []
        self.fail_after = fail_after
        self.scale = temperature_scale

    def generate(self, prompts, *, n, temperature, gen_length, seeds):
        if self.fail_after is not None and len(self.prompts_done) + len(prompts) > self.fail_after:
            raise KeyboardInterrupt("killed")
        self.prompts_done += prompts
        self.batch_sizes.append(len(prompts))
        spread = 1 + int(temperature * self.scale) + gen_length // 64
        return [[f"{p} -> {s % spread}" for s in row] for p, row in zip(prompts, seeds)]


PLAN = dict(n=6, temperatures=[0.3, 0.9], gen_lengths=[32, 64], seed=3)


def evaluate(out: Path, generator: FakeGenerator, batch_size: int = 2, models=("base", "tuned")) -> dict:
    specs = [
        ModelSpec(label, f"/ckpt/{label}", lambda g=generator: g, SamplerSweep(block_length=32)) for label in models
    ]
    task = MultiAnswerTask()
    return run_evaluation(
        specs, [TaskSpec(task, task.load())], EvalPlan(batch_size=batch_size, **PLAN), out, base=models[0]
    )


def test_results_schema_and_numbers(tmp_path):
    results = evaluate(tmp_path, FakeGenerator())
    on_disk = json.loads((tmp_path / "results.json").read_text())
    assert on_disk == json.loads(json.dumps(results))
    assert on_disk["schema_version"] == 1
    assert set(on_disk["versions"]) == {"trafl", "torch", "transformers", "python"}
    assert len(on_disk["results"]) == 2 * 2 * 2  # models x lengths x temperatures
    cell = on_disk["results"][0]
    assert {
        "model",
        "task",
        "temperature",
        "gen_length",
        "n",
        "pass_at_k",
        "stderr",
        "distinct_correct",
        "distinct_correct_texts",
        "sampler",
        "num_correct",
    } <= set(cell)
    assert cell["k"] == list(range(1, 7)) and len(cell["pass_at_k"]) == 6
    assert cell["sampler"] == {"steps": 32, "block_length": 32, "remasking": "low_confidence"}
    # numbers recomputed from the cache by hand
    records = read_jsonl(cache_path(tmp_path, Cell(cell["model"], "multi", cell["temperature"], cell["gen_length"])))[
        1:
    ]
    assert [sum(r["correct"]) for r in records] == cell["num_correct"]
    assert cell["pass_at_k"][0] == pytest.approx(sum(cell["num_correct"]) / (6 * 7))
    solved = [len({k for k, ok in zip(r["answer_keys"], r["correct"]) if ok}) for r in records]
    assert cell["distinct_correct"]["mean"] == pytest.approx(sum(solved) / 7)
    assert max(solved) > 1  # the fake task has several correct answers per problem
    md = render_markdown(results)
    assert "## multi" in md and "pass@4" in md and "pass@6" in md and "Gap to base `base`" in md


def test_results_do_not_depend_on_batch_size(tmp_path):
    a = evaluate(tmp_path / "a", gen_a := FakeGenerator(), batch_size=1)
    b = evaluate(tmp_path / "b", gen_b := FakeGenerator(), batch_size=5)
    assert set(gen_a.batch_sizes) == {1} and 5 in gen_b.batch_sizes
    assert a == b


def test_interrupted_run_resumes_to_identical_results(tmp_path):
    full = tmp_path / "full"
    evaluate(full, FakeGenerator())
    expected = (full / "results.json").read_bytes()

    resumed = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        evaluate(resumed, FakeGenerator(fail_after=17))
    # the kill also tore the line being written
    first_cell = cache_path(resumed, Cell("base", "multi", 0.3, 32))
    done_before = sum(len(read_jsonl(p)) - 1 for p in (resumed / "generations").glob("*.jsonl"))
    assert 0 < done_before < 2 * 2 * 2 * 7
    last = sorted((resumed / "generations").glob("*.jsonl"), key=lambda p: p.stat().st_mtime)[-1]
    with open(last, "a") as fh:
        fh.write('{"problem_id": "p6", "complet')

    again = FakeGenerator()
    evaluate(resumed, again)
    assert (resumed / "results.json").read_bytes() == expected
    assert len(again.prompts_done) == 2 * 2 * 2 * 7 - done_before  # finished problems not regenerated
    assert len(read_jsonl(first_cell)) == 1 + 7

    # a third run generates nothing at all
    idle = FakeGenerator()
    evaluate(resumed, idle)
    assert idle.prompts_done == [] and (resumed / "results.json").read_bytes() == expected


def test_changed_settings_are_refused_not_mixed(tmp_path):
    evaluate(tmp_path, FakeGenerator())
    task = MultiAnswerTask()
    specs = [ModelSpec("base", "/ckpt/base", FakeGenerator, SamplerSweep(block_length=32))]
    plan = EvalPlan(batch_size=2, **{**PLAN, "seed": 4})
    with pytest.raises(ConfigError, match="different settings.*seed"):
        run_evaluation(specs, [TaskSpec(task, task.load())], plan, tmp_path)


def test_problem_ids_fall_back_to_positions():
    assert problem_ids([{"id": "a"}, {"id": "b"}]) == ["a", "b"]
    assert problem_ids([{"task_id": "HumanEval/0"}]) == ["HumanEval/0"]
    assert problem_ids([{"id": "a"}, {"id": "a"}]) == ["0", "1"]


def test_plan_validation():
    with pytest.raises(ConfigError, match="--n"):
        EvalPlan(n=0).validate()
    with pytest.raises(ConfigError, match="--base 'nope'"):
        run_evaluation([], [], EvalPlan(), "/tmp/unused", base="nope")


# --- the command line: clear errors ------------------------------------------------------------


def _eval(tmp_path, *extra, model=None):
    model = model or str(tmp_path / "missing-model")
    return main(
        [
            "eval",
            "--model",
            model,
            "--task",
            "test_eval_runner:MultiAnswerTask",
            "--n",
            "4",
            "--gen-lengths",
            "32",
            "--out",
            str(tmp_path / "out"),
            *extra,
        ]
    )


def test_cli_unknown_task_lists_valid_ones(tmp_path, capsys):
    assert main(["eval", "--model", str(tmp_path), "--task", "no_such_task", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "unknown task 'no_such_task'" in err and "valid tasks" in err


def test_cli_k_larger_than_n(tmp_path, capsys):
    assert _eval(tmp_path, "--bar-k", "5") == 2
    assert "--bar-k 5 must lie in 1..n (n = 4" in capsys.readouterr().err


def test_cli_unreadable_model_directories(tmp_path, capsys):
    assert _eval(tmp_path) == 2
    assert "does not exist" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _eval(tmp_path, model=str(empty)) == 2
    assert "no readable config.json" in capsys.readouterr().err
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    assert _eval(tmp_path, model=str(broken)) == 2
    assert "config.json is not valid JSON" in capsys.readouterr().err


def test_cli_bad_sampler_settings_and_flags(tmp_path, capsys):
    """Every error comes at config load, before the (missing) model is looked at, naming the field."""
    assert _eval(tmp_path, "--block-length", "24") == 2
    assert "gen_lengths=32 must be a multiple of block_length=24" in capsys.readouterr().err
    assert _eval(tmp_path, "--steps", "8,16") == 2
    assert "'steps': gives 2 values for 1 gen_lengths" in capsys.readouterr().err
    # every (length, steps) pair is checked: 64 steps suit length 64 but not 32
    assert _eval(tmp_path, "--gen-lengths", "64,32", "--steps", "64,64") == 2
    assert "steps=64 must be <= gen_lengths=32" in capsys.readouterr().err
    assert _eval(tmp_path, "--data-path", "other=x.jsonl") == 2
    assert "not among --task" in capsys.readouterr().err
    assert _eval(tmp_path, "--temperatures", "hot") == 2
    assert "'temperatures[0]': expected a number, got 'hot'" in capsys.readouterr().err
    assert _eval(tmp_path, "--threshold", "1.5") == 2
    assert "'threshold': must be <= 1.0" in capsys.readouterr().err
    assert _eval(tmp_path, "--cache", "full") == 2
    assert "'cache': expected one of 'none', 'prefix', 'dual'" in capsys.readouterr().err
    assert _eval(tmp_path, "--judge-model", "some/judge") == 2
    assert "'judge_model': the judge compares every model with --base" in capsys.readouterr().err
    assert main(["eval", "--task", "x", "--out", str(tmp_path / "o")]) == 2
    assert "config field 'model' is required" in capsys.readouterr().err


def test_eval_config_from_yaml_with_flag_overrides(tmp_path):
    from trafl.eval.cli import EvalConfig
    from trafl.utils.config import load_config

    f = tmp_path / "eval.yaml"
    f.write_text(
        "model: [base=/m/a, tuned=/m/b]\ntask: [gsm8k, 'math500,mbpp']\nout: runs/e\n"
        "gen_lengths: [64, 128]\nsteps: [32, 64]\nblock_length: 32\ncache: dual\nthreshold: 0.9\n"
    )
    cfg = load_config(EvalConfig, f, ["--temperatures", "0.5", "--base", "base"])
    assert cfg.models == [("base", "/m/a"), ("tuned", "/m/b")]
    assert cfg.task_names == ["gsm8k", "math500", "mbpp"] and cfg.temperatures == [0.5]
    cell = cfg.sweep.at(128, 0.5)
    assert cell == SamplerSettings(
        gen_length=128,
        steps=64,
        block_length=32,
        temperature=0.5,
        remasking="low_confidence",
        cache="dual",
        threshold=0.9,
    )
    assert cfg.sweep.describe(64) == {
        "steps": 32,
        "block_length": 32,
        "remasking": "low_confidence",
        "cache": "dual",
        "threshold": 0.9,
    }


def test_results_report_how_code_tests_are_graded(tmp_path):
    """A code task's results.json says how its problems are graded (assert tests: isolated; stdin/stdout: io)."""
    from trafl.rewards.code import AssertTests
    from trafl.tasks import get_task
    from trafl.tasks.code_tasks import encode_tests

    task = get_task("mbpp")
    rows = [
        {
            "id": "1",
            "prompt": "square",
            "code_prefix": "",
            "test_list": ["assert f(2) == 4"],
            "tests": encode_tests(AssertTests(["assert f(2) == 4"])),
        },
        {
            "id": "2",
            "prompt": "loop",
            "code_prefix": "",
            "test_list": ["for i in range(3): assert f(i) == i * i"],
            "tests": encode_tests(AssertTests(["for i in range(3): assert f(i) == i * i"])),
        },
    ]

    class Echo:
        tokenizer = None

        def generate(self, prompts, *, n, temperature, gen_length, seeds):
            return [["```python\ndef f(x):\n    return x * x\n```"] * n for _ in prompts]

    spec = ModelSpec("m", "fake", lambda: Echo())
    results = run_evaluation(
        [spec], [TaskSpec(task, rows)], EvalPlan(n=1, temperatures=[0.0], gen_lengths=[8]), tmp_path / "out"
    )
    assert results["grading"] == {"mbpp": {"isolated": 2}}
    assert results["results"][0]["num_correct"] == [1, 1]


def _scripted_model(tmp_path, monkeypatch) -> str:
    """A model directory whose generator is the scripted :class:`FakeGenerator`."""
    from trafl.eval.generation import SamplerGenerator

    model = tmp_path / "scripted"
    model.mkdir()
    (model / "config.json").write_text("{}")
    monkeypatch.setattr(
        SamplerGenerator, "from_pretrained", classmethod(lambda cls, path, settings, **kw: FakeGenerator())
    )
    return f"base={model}"


def test_cli_prints_the_pass_at_k_table_and_the_report_path(tmp_path, monkeypatch, capsys):
    model = _scripted_model(tmp_path, monkeypatch)
    assert _eval(tmp_path, "--temperatures", "0.9", "--no-plots", "--quiet", model=model) == 0
    out = capsys.readouterr().out
    report = (tmp_path / "out" / "results.md").read_text()
    header = "| model | T | length | pass@1 | pass@2 | pass@4 | distinct correct answers |"
    row = next(line for line in report.splitlines() if line.startswith("| base | 0.9 | 32 |"))
    assert header in out and row in out
    table = out[out.index("## test_eval_runner:MultiAnswerTask") : out.index(header)]
    assert table in report  # the task's heading and size, as in results.md
    assert "Gap to base" not in out and "{" not in out  # the main table only, no JSON
    assert out.rstrip("\n").splitlines()[-1] == f"Full report: {tmp_path / 'out' / 'results.md'}"


def test_cli_json_prints_the_summary_only(tmp_path, monkeypatch, capsys):
    model = _scripted_model(tmp_path, monkeypatch)
    assert _eval(tmp_path, "--temperatures", "0.9", "--no-plots", "--quiet", "--json", model=model) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary == {
        "results": str(tmp_path / "out" / "results.json"),
        "report": str(tmp_path / "out" / "results.md"),
        "plots": [],
        "cells": 1,
    }
