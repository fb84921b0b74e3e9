"""Path-level metrics (trafl.eval.paths) against known answers, and their plumbing through
``trafl eval``: generator -> cache -> results.json -> report."""

from __future__ import annotations

import json
import math

import pytest
import torch
from test_eval_runner import PLAN, FakeGenerator, MultiAnswerTask

from trafl.errors import ConfigError
from trafl.eval.cache import Cell, cache_path
from trafl.eval.evaluate import EvalPlan, ModelSpec, TaskSpec, run_evaluation
from trafl.eval.generation import Generations, SamplerSweep
from trafl.eval.paths import entropy, path_metrics, summarise_paths
from trafl.eval.report import render_markdown
from trafl.sampling import SamplerSettings, generate
from trafl.sampling.toy_models import CanvasTableDenoiser
from trafl.utils.io import read_jsonl


def H(*probs: float) -> float:
    return -sum(p * math.log(p) for p in probs)


# --- (c) hand-built commit steps with known counts ---------------------------------------------

A, B, C = [0, 1, 2], [1, 0, 2], [0, 0, 1]  # C commits positions 0 and 1 at the same step (a tie)
STEPS = [A, A, B, C, A, B]
CORRECT = [True, True, True, False, True, False]
KEYS = ["5", "7", "5", "5", "5", "9"]


def test_hand_built_counts():
    m = path_metrics(STEPS, CORRECT, KEYS)
    assert m["n"] == 6 and m["length"] == 3 and m["num_correct"] == 4
    assert m["distinct_orders"] == 3
    assert m["order_entropy"] == pytest.approx(H(3 / 6, 2 / 6, 1 / 6))
    # correct paths: (5, A) twice, (7, A), (5, B)
    assert m["distinct_correct_paths"] == 3
    assert m["top_path_share"] == pytest.approx(2 / 4)
    # position 0: steps 0,0,1,0,0,1; position 1: 1,1,0,0,1,0; position 2: 2,2,2,1,2,2
    assert m["position_entropy"] == pytest.approx((H(4 / 6, 2 / 6) + H(3 / 6, 3 / 6) + H(5 / 6, 1 / 6)) / 3)
    assert path_metrics(torch.tensor(STEPS), CORRECT, KEYS) == m


def test_ties_are_part_of_the_order_and_keys_split_paths():
    # same positions in the same relative order, but one sample commits two positions together
    m = path_metrics([[0, 1, 2], [0, 0, 2]], [True, True], ["1", "1"])
    assert m["distinct_orders"] == 2 and m["distinct_correct_paths"] == 2 and m["top_path_share"] == 0.5
    # same order, different answers: one order, two paths
    m = path_metrics([[0, 1], [0, 1], [0, 1]], [True, True, True], ["1", "2", "1"])
    assert m["distinct_orders"] == 1 and m["order_entropy"] == 0.0 and m["position_entropy"] == 0.0
    assert m["distinct_correct_paths"] == 2 and m["top_path_share"] == pytest.approx(2 / 3)
    # nothing correct: no paths, no share
    m = path_metrics([[0, 1], [1, 0]], [False, False], [None, None])
    assert m["distinct_correct_paths"] == 0 and m["top_path_share"] is None
    assert m["order_entropy"] == pytest.approx(math.log(2))


def test_content_variant_truncates_at_first_eos():
    m = path_metrics(STEPS, CORRECT, KEYS, content_lengths=[2, 3, 3, 3, 1, 3])
    # truncated orders: (0,1), A, B, C, (0,), B
    assert m["content"]["distinct_orders"] == 5
    assert m["content"]["order_entropy"] == pytest.approx(H(2 / 6, 1 / 6, 1 / 6, 1 / 6, 1 / 6))
    assert m["content"]["distinct_correct_paths"] == 4 and m["content"]["top_path_share"] == pytest.approx(1 / 4)
    assert {k: m[k] for k in ("distinct_orders", "order_entropy")} == {
        "distinct_orders": 3,
        "order_entropy": pytest.approx(H(0.5, 1 / 3, 1 / 6)),
    }
    with pytest.raises(ConfigError, match="content lengths"):
        path_metrics(STEPS, CORRECT, KEYS, content_lengths=[0, 3, 3, 3, 1, 3])


def test_bad_input_is_refused():
    with pytest.raises(ConfigError, match="same positive length"):
        path_metrics([[0, 1], [0]], [True, True], ["a", "b"])
    with pytest.raises(ConfigError, match="2 samples of commit steps but 1"):
        path_metrics([[0, 1], [1, 0]], [True], ["a", "b"])
    with pytest.raises(ConfigError):
        path_metrics([], [], [])
    assert entropy([5]) == 0.0 and entropy([1, 1]) == pytest.approx(math.log(2))


def test_summary_over_prompts():
    a = path_metrics(STEPS, CORRECT, KEYS)
    b = path_metrics([[0, 1], [0, 1]], [False, False], [None, None])
    s = summarise_paths([a, b])
    assert s["num_problems"] == 2
    assert s["distinct_orders"]["mean"] == pytest.approx(2.0)
    assert s["distinct_orders"]["stderr"] == pytest.approx(math.sqrt(2.0) / math.sqrt(2))  # std([3, 1]) / sqrt(2)
    assert s["distinct_correct_paths"] == {
        "mean": 1.5,
        "stderr": pytest.approx(1.5),
        "mean_given_solved": 3.0,
        "max": 3,
    }
    assert s["top_path_share"] == {"mean": 0.5, "stderr": 0.0, "num_solved": 1}  # over solved prompts only
    assert s["order_entropy"]["mean"] == pytest.approx(a["order_entropy"] / 2)
    assert "content" not in s


# --- (a) random-order sampling: the exact law of orders is known --------------------------------


def sample_steps(*, gen_length, steps, block_length, n, temperature=1.0, remasking="random", seed=0):
    model = CanvasTableDenoiser(vocab_size=2, gen_length=gen_length, seed=seed)
    out = generate(
        model,
        torch.tensor([[0, 1]]),
        settings=SamplerSettings(
            gen_length=gen_length, steps=steps, block_length=block_length, temperature=temperature, remasking=remasking
        ),
        num_samples=n,
        generator=torch.Generator().manual_seed(seed),
    )
    return out.commit_step


@pytest.mark.parametrize(
    "gen_length,steps,block_length,orders,steps_per_position",
    [
        (4, 4, 4, 24, 4),  # one token per step, one block: uniform over the 4! permutations
        (3, 3, 3, 6, 3),  # 3!
        (4, 4, 2, 4, 2),  # two blocks of 2: 2! x 2! orders, each position uniform over its block's 2 steps
        (4, 2, 4, 6, 2),  # 2 tokens per step: the C(4, 2) ways to pick step 0's pair (ties in the order)
    ],
)
def test_random_remasking_orders_are_uniform(gen_length, steps, block_length, orders, steps_per_position):
    n = 4000
    commit = sample_steps(gen_length=gen_length, steps=steps, block_length=block_length, n=n)
    m = path_metrics(commit, [True] * n, ["x"] * n)
    assert m["distinct_orders"] == orders  # every order seen, no others
    # Plug-in entropy of a uniform law on K values: bias -(K-1)/(2n) + O(n^-2); its first-order
    # variance term vanishes, sd ~ sqrt((K-1)/2)/n. Allow the bias plus 8 sd.
    exact = math.log(orders)
    bias = (orders - 1) / (2 * n)
    tol = 8 * math.sqrt((orders - 1) / 2) / n
    assert abs(m["order_entropy"] + bias - exact) < tol + 1e-4, (m["order_entropy"], exact)
    assert m["order_entropy"] <= exact  # plug-in never exceeds log K on K values
    exact_pos = math.log(steps_per_position)
    bias_pos = (steps_per_position - 1) / (2 * n)
    assert abs(m["position_entropy"] + bias_pos - exact_pos) < 8 * math.sqrt(steps_per_position / 2) / n + 1e-4
    # one answer: every order is a correct path, the commonest holds about 1/K of them
    assert m["distinct_correct_paths"] == orders
    assert m["top_path_share"] == pytest.approx(1 / orders, abs=6 * math.sqrt((1 / orders) / n))


def test_order_entropy_is_biased_low_for_small_n():
    """n = 8 samples of 24 equally likely orders: the plug-in estimate is capped at log 8 < log 24,
    the reason the report states n next to it."""
    commit = sample_steps(gen_length=4, steps=4, block_length=4, n=8)
    m = path_metrics(commit, [True] * 8, ["x"] * 8)
    assert m["order_entropy"] <= math.log(8) < math.log(24)


# --- (b) greedy low-confidence sampling is deterministic -----------------------------------------


def test_greedy_low_confidence_has_one_path():
    n = 16
    commit = sample_steps(gen_length=4, steps=4, block_length=4, n=n, temperature=0.0, remasking="low_confidence")
    m = path_metrics(commit, [True] * n, ["x"] * n)
    assert m["distinct_orders"] == 1 and m["order_entropy"] == 0.0 and m["position_entropy"] == 0.0
    assert m["distinct_correct_paths"] == 1 and m["top_path_share"] == 1.0
    # the control: sampled tokens (T = 1) change the confidences, hence the order
    varied = sample_steps(gen_length=4, steps=4, block_length=4, n=64, temperature=1.0, remasking="low_confidence")
    assert path_metrics(varied, [True] * 64, ["x"] * 64)["distinct_orders"] > 1


# --- plumbing: cache, results.json, report ------------------------------------------------------


class PathFakeGenerator(FakeGenerator):
    """FakeGenerator whose sample with seed ``s`` followed the order ``ORDERS[s % 3]``."""

    ORDERS = [[0, 1, 2, 3], [1, 0, 2, 3], [0, 0, 1, 1]]

    def generate_with_paths(self, prompts, *, n, temperature, gen_length, seeds):
        texts = self.generate(prompts, n=n, temperature=temperature, gen_length=gen_length, seeds=seeds)
        return Generations(
            texts=texts,
            commit_steps=[[self.ORDERS[s % 3] for s in row] for row in seeds],
            content_lengths=[[4 - s % 2 for s in row] for row in seeds],
        )


def run(out, generator, models=("base", "tuned")):
    specs = [
        ModelSpec(label, f"/ckpt/{label}", lambda g=generator: g, SamplerSweep(block_length=32)) for label in models
    ]
    task = MultiAnswerTask()
    return run_evaluation(specs, [TaskSpec(task, task.load())], EvalPlan(batch_size=3, **PLAN), out, base=models[0])


def test_generators_without_paths_give_no_path_metrics(tmp_path):
    results = run(tmp_path, FakeGenerator())
    assert all(cell["paths"] is None for cell in results["results"])
    records = read_jsonl(cache_path(tmp_path, Cell("base", "multi", 0.3, 32)))[1:]
    assert "commit_steps" not in records[0]
    assert "Denoising paths" not in render_markdown(results)


def test_paths_land_in_cache_and_results(tmp_path):
    results = run(tmp_path, PathFakeGenerator())
    on_disk = json.loads((tmp_path / "results.json").read_text())
    cell = on_disk["results"][0]
    records = read_jsonl(cache_path(tmp_path, Cell(cell["model"], "multi", cell["temperature"], cell["gen_length"])))[
        1:
    ]
    assert len(records[0]["commit_steps"]) == 6 and records[0]["commit_steps"][0] in PathFakeGenerator.ORDERS
    expected = [path_metrics(r["commit_steps"], r["correct"], r["answer_keys"], r["content_lengths"]) for r in records]
    paths = cell["paths"]
    assert paths["num_problems"] == 7 and paths["problem_ids"] == cell["problem_ids"]
    assert paths["per_problem_distinct_orders"] == [m["distinct_orders"] for m in expected]
    assert paths["order_entropy"]["mean"] == pytest.approx(sum(m["order_entropy"] for m in expected) / 7)
    assert paths["distinct_correct_paths"]["max"] == max(m["distinct_correct_paths"] for m in expected)
    assert paths["content"]["distinct_orders"]["mean"] == pytest.approx(
        sum(m["content"]["distinct_orders"] for m in expected) / 7
    )
    assert max(paths["per_problem_distinct_orders"]) > 1
    md = render_markdown(results)
    assert "Denoising paths" in md and "order entropy" in md


def test_old_cache_without_paths_still_loads(tmp_path):
    run(tmp_path, FakeGenerator())  # a cache written before paths were recorded
    expected = json.loads((tmp_path / "results.json").read_text())
    again = PathFakeGenerator()
    results = run(tmp_path, again)
    assert again.prompts_done == []  # nothing regenerated
    assert json.loads(json.dumps(results))["results"] == expected["results"]
    # a partially old cache: only the newly generated problems have path metrics
    path = cache_path(tmp_path / "mixed", Cell("base", "multi", 0.3, 32))
    run(tmp_path / "mixed", PathFakeGenerator())
    lines = read_jsonl(path)
    stripped = [lines[0]] + [
        {k: v for k, v in r.items() if k not in ("commit_steps", "content_lengths")} if i < 3 else r
        for i, r in enumerate(lines[1:])
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in stripped))
    cell = run(tmp_path / "mixed", PathFakeGenerator())["results"][0]
    assert cell["paths"]["num_problems"] == 4 and cell["paths"]["problem_ids"] == ["p3", "p4", "p5", "p6"]


def test_paths_plot(tmp_path):
    from test_eval_plots import png_size

    from trafl.eval.plots import figure_size_pixels, write_plots

    results = run(tmp_path, PathFakeGenerator())
    files = write_plots(results, tmp_path, base="base", bar_k=2)
    paths = sorted(p for p in files if p.name.startswith("paths_"))
    assert [p.name for p in paths] == ["paths_L32.png", "paths_L64.png"]
    assert png_size(paths[0]) == figure_size_pixels(1, 2) and paths[0].stat().st_size > 5_000


# --- the real sampler: trafl eval on a micro LLaDA model ------------------------------------------


def test_sampler_generator_paths_end_to_end(tmp_path):
    from rl_toys import make_model_dir

    from trafl.cli import main
    from trafl.eval.generation import SamplerGenerator

    model_dir = make_model_dir(tmp_path / "micro", seed=1)
    gen = SamplerGenerator.from_pretrained(str(model_dir), SamplerSweep(block_length=4))
    kw = dict(n=3, temperature=1.0, gen_length=8, seeds=[[1, 2, 3], [4, 5, 6]])
    out = gen.generate_with_paths(["1+1=", "22+3="], **kw)
    assert out.texts == gen.generate(["1+1=", "22+3="], **kw)
    assert len(out.commit_steps) == 2 and all(
        len(row) == 3 and all(len(s) == 8 for s in row) for row in out.commit_steps
    )
    # one token per step, blocks of 4: each sample commits every position once, block 0 in steps 0..3
    for row in out.commit_steps:
        for s in row:
            assert sorted(s[:4]) == [0, 1, 2, 3] and sorted(s[4:]) == [4, 5, 6, 7]
    assert all(1 <= c <= 8 for row in out.content_lengths for c in row)

    assert (
        main(
            [
                "eval",
                "--model",
                f"base={model_dir}",
                "--task",
                "rl_toys:DigitTask",
                "--n",
                "4",
                "--temperatures",
                "0.0,1.0",
                "--gen-lengths",
                "8",
                "--block-length",
                "4",
                "--limit",
                "3",
                "--out",
                str(tmp_path / "out"),
                "--quiet",
            ]
        )
        == 0
    )
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    greedy, sampled = (next(e for e in results["results"] if e["temperature"] == t) for t in (0.0, 1.0))
    assert greedy["paths"]["num_problems"] == 3
    assert greedy["paths"]["distinct_orders"] == {"mean": 1.0, "stderr": 0.0}  # T = 0 is deterministic
    assert greedy["paths"]["order_entropy"]["mean"] == 0.0 and greedy["paths"]["position_entropy"]["mean"] == 0.0
    assert sampled["paths"]["distinct_orders"]["mean"] > 1.0
    records = read_jsonl(cache_path(tmp_path / "out", Cell("base", "rl_toys:DigitTask", 1.0, 8)))[1:]
    assert len(records) == 3 and all(len(r["commit_steps"]) == 4 and len(r["content_lengths"]) == 4 for r in records)
    assert (tmp_path / "out" / "plots" / "paths_L8.png").exists()
    assert "Denoising paths" in (tmp_path / "out" / "results.md").read_text()
