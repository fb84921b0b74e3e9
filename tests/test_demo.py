"""``trafl demo --quick`` end to end: every stage runs, the report has its structure, the
numbers are finite and in range (not their values), and a rerun resumes instead of recomputing."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from trafl.demo import DemoConfig, run_demo
from trafl.sampling import SamplerSettings
from trafl.utils.config import load_config


@pytest.mark.slow
@pytest.mark.timeout(3600)  # a hang guard, not a speed check: ~1 min idle, >15 min on a 2-core machine at load 10
def test_demo_quick_end_to_end(tmp_path, capsys):
    """The README's main command with --quick, on the shipped base checkpoint."""
    from trafl.demo import ASSET_BASE

    assert (ASSET_BASE / "model.safetensors").is_file(), "the demo's base checkpoint must ship with trafl"
    cfg = load_config(DemoConfig, None, {"out": str(tmp_path / "demo"), "quick": True, "num_threads": 2})
    eff = cfg.effective()
    out = run_demo(cfg)
    printed = capsys.readouterr().out
    demo = tmp_path / "demo"
    report = (demo / "report.md").read_text()
    note = "smoke run: too few prompts and steps for conclusions; run `trafl demo` for the study"
    assert report.startswith(note) and note in printed
    for label in ("base", "trafl", "espo", "justgrpo", "diffu_grpo"):
        assert f"| {label}" in report and f"| {label}" in printed
        if label != "base":
            run = demo / "runs" / f"{label}-s0"
            assert (run / "final" / "config.json").is_file()
            steps = (run / "metrics.jsonl").read_text().splitlines()
            assert len(steps) == eff.max_steps  # equal rollout budgets
    for section in (
        "## Checks",
        "## Shortcut vs no-shortcut",
        "## Frontier along training",
        "## Denoising paths",
        "## Denoising cost",
        "## Samples",
        "## Training reward",
    ):
        assert section in report, section
    results = json.loads((demo / "eval" / "results.json").read_text())
    assert len(results["results"]) == 5 * len(eff.eval_temperatures)
    for cell in results["results"]:
        assert cell["n"] == eff.eval_n and cell["num_problems"] == eff.eval_prompts
        values = cell["pass_at_k"]
        assert len(values) == eff.eval_n and all(0.0 <= v <= 1.0 and math.isfinite(v) for v in values)
        assert values == sorted(values)  # pass@k is non-decreasing in k
        assert 0.0 <= cell["distinct_correct"]["mean"] <= eff.eval_n
        paths = cell["paths"]
        assert 0.0 <= paths["order_entropy"]["mean"] <= math.log(eff.eval_n) + 1e-9
        assert 1.0 <= paths["distinct_orders"]["mean"] <= eff.eval_n
    frontier = json.loads((demo / "frontier" / "results.json").read_text())
    assert any("@" in cell["model"] for cell in frontier["results"])  # checkpoints along training
    study = json.loads((demo / "study.json").read_text())
    checks = study["checks"]
    assert {
        "a_maximisers_lose_pass_at_k",
        "b_trafl_gains_pass1_keeps_pass_at_k",
        "c_trafl_above_baseline_frontiers",
        "d_trafl_keeps_path_entropy",
    } <= set(checks)
    assert all(isinstance(c["ok"], bool) for c in checks.values())
    analysis = study["analysis"]
    paired = analysis["methods"]["trafl"][str(eff.frontier_temperature)]["paired"]
    assert [p["k"] for p in paired] == list(range(1, eff.k_max + 1))
    assert all(p["stderr"] >= 0 and -1 <= p["diff"] <= 1 for p in paired)
    split = analysis["shortcut_split"]
    assert split["num_shortcut"] + split["num_no_shortcut"] == eff.eval_prompts
    for points in analysis["frontiers"].values():
        assert points[0]["step"] == 0 and points[-1]["step"] == eff.max_steps
    assert all(math.isfinite(v) and v >= 0 for v in study["timings_s"].values())
    assert out["plots"] and all(str(p).endswith(".png") and Path(p).is_file() for p in out["plots"])
    # A rerun reuses every finished stage (no retraining, generations cached).
    mtime = (demo / "runs" / "trafl-s0" / "final" / "model.safetensors").stat().st_mtime
    run_demo(cfg)
    assert (demo / "runs" / "trafl-s0" / "final" / "model.safetensors").stat().st_mtime == mtime


def _cell(model, t, num_correct, n=4, order_entropy=None):
    from trafl.eval.passk import pass_at_k

    k = list(range(1, n + 1))
    curve = [sum(pass_at_k(n, c, kk) for c in num_correct) / len(num_correct) for kk in k]
    cell = {
        "model": model,
        "temperature": t,
        "n": n,
        "problem_ids": [str(i) for i in range(len(num_correct))],
        "num_correct": num_correct,
        "pass_at_k": curve,
        "distinct_correct": {"mean": 1.0},
    }
    if order_entropy is not None:
        cell["paths"] = {"order_entropy": {"mean": order_entropy, "stderr": 0.0}}
    return cell


def test_paired_difference_and_frontier_interpolation_by_hand():
    from trafl.eval.paired import frontier_value_at, paired_difference

    base = _cell("base", 0.9, [0, 2, 4])  # pass@1 per problem 0, .5, 1
    a, b = _cell("m-s0", 0.9, [1, 2, 4]), _cell("m-s1", 0.9, [3, 2, 4])  # seed mean pass@1: .5, .5, 1
    d = paired_difference([a, b], base, 1)
    assert d["diff"] == pytest.approx(0.5 / 3) and d["num_problems"] == 3
    assert d["stderr"] == pytest.approx(math.sqrt(((0.5 - 1 / 6) ** 2 + 2 * (1 / 6) ** 2) / 2 / 3))
    only = paired_difference([a, b], base, 1, problems=["0"])
    assert only["diff"] == pytest.approx(0.5) and only["num_problems"] == 1
    pts = [{"pass@1": 0.2, "pass@4": 0.9}, {"pass@1": 0.6, "pass@4": 0.7}]
    assert frontier_value_at(pts, 0.4, 4) == pytest.approx(0.8)
    assert frontier_value_at(pts, 0.7, 4) is None


def test_seed_difference_uses_the_spread_between_seeds_by_hand():
    from trafl.eval.paired import seed_difference

    # n = 1 sample per problem, so pass@1 per problem is 0 or 1; seed means over 4 problems
    a = [_cell("a-s0", 0.9, [1, 1, 0, 0], n=1), _cell("a-s1", 0.9, [1, 1, 1, 0], n=1)]  # 0.5, 0.75
    b = [_cell("b-s0", 0.9, [1, 0, 0, 0], n=1), _cell("b-s1", 0.9, [0, 1, 0, 0], n=1)]  # 0.25, 0.25
    d = seed_difference(a, b, 1)
    assert d["diff"] == pytest.approx(0.625 - 0.25) and d["num_problems"] == 4
    # var_a = (0.125^2 * 2) / 1 = 0.03125 over n_a = 2 -> 0.015625; var_b = 0
    assert d["stderr"] == pytest.approx(0.125)
    assert d["seeds_a"] == pytest.approx([0.5, 0.75]) and d["seeds_b"] == pytest.approx([0.25, 0.25])
    assert seed_difference(a, b, 1, problems=["0"])["diff"] == pytest.approx(1.0 - 0.5)  # problem 0 only
    with pytest.raises(ValueError, match=">= 2 seeds"):
        seed_difference(a[:1], b, 1)


def test_study_checks_read_the_claims_off_an_analysis():
    from trafl.study.analysis import analyse

    t = 0.9
    base = _cell("base", t, [1, 1, 2, 2], order_entropy=1.5)
    results = {
        "results": [
            base,
            _cell("trafl-s0", t, [3, 3, 3, 3], order_entropy=1.2),  # pass@1 .75, pass@4 1.0: up everywhere
            _cell("espo-s0", t, [4, 4, 4, 0], order_entropy=0.2),  # pass@4 .75 < base's 1.0
        ]
    }
    frontier = {"results": [_cell("trafl-s0@2", t, [2, 2, 2, 2]), _cell("espo-s0@2", t, [4, 4, 0, 0])]}
    analysis = analyse(results, frontier, methods=["trafl", "espo"], k_max=4, frontier_temperature=t)
    checks = analysis["checks"]
    a = checks["a_maximisers_lose_pass_at_k"]["methods"]["espo"]
    assert a["diff"] == pytest.approx(-0.25) and a["ok"] == (a["diff"] < -2 * a["stderr"])
    b = checks["b_trafl_gains_pass1_keeps_pass_at_k"]["temperatures"][str(t)]
    assert b["pass1_gain"] == pytest.approx(0.75 - 0.375) and b["k_below_base_minus_1se"] == [] and b["ok"]
    c = checks["c_trafl_above_baseline_frontiers"]
    assert c["trafl_end"]["pass@1"] == pytest.approx(0.75) and c["methods"]["espo"]["ok"]
    assert analysis["frontiers"]["espo"][0]["step"] == 0 and analysis["frontiers"]["espo"][-1]["step"] == 3
    vs = analysis["trafl_minus_baselines"]["espo"][str(t)][4]
    assert vs["diff"] == pytest.approx(0.25) and vs["num_problems"] == 4  # per prompt 1,1,1,1 vs 1,1,1,0
    d = checks["d_trafl_keeps_path_entropy"]
    assert d["trafl"] == 1.2 and d["baselines"] == {"espo": 0.2} and d["ok"]


def test_quick_report_and_summary_say_it_is_a_smoke_run(tmp_path):
    from trafl.study.analysis import analyse
    from trafl.study.report import render_report, render_summary

    note = "smoke run: too few prompts and steps for conclusions; run `trafl demo` for the study"
    t = 0.9
    results = {"results": [_cell("base", t, [1, 2]), _cell("trafl-s0", t, [2, 3]), _cell("espo-s0", t, [3, 1])]}
    frontier = {"results": [_cell("trafl-s0@2", t, [1, 1]), _cell("espo-s0@2", t, [2, 2])]}
    analysis = analyse(results, frontier, methods=["trafl", "espo"], k_max=4, frontier_temperature=t)
    for quick in (True, False):
        cfg = load_config(DemoConfig, None, {"quick": quick, "methods": "trafl,espo"}).effective()
        report = render_report(analysis, results, cfg, {"total": 1.0}, [], tmp_path)
        summary = render_summary(analysis, {"total": 1.0}, quick=cfg.quick)
        assert (report.splitlines()[0] == note) is quick
        assert (summary.rstrip().splitlines()[-1] == note) is quick
        assert (note in report) is quick and (note in summary) is quick


def test_demo_config_errors():
    from trafl.errors import ConfigError

    with pytest.raises(ConfigError, match="'k_max': 64 exceeds eval_n = 16"):
        load_config(DemoConfig, None, {"k_max": 64})
    with pytest.raises(ConfigError, match="'methods': unknown \\['ppo'\\]"):
        load_config(DemoConfig, None, {"methods": "trafl,ppo"})


def test_demo_compares_the_four_study_methods_unless_told_otherwise():
    from trafl.demo import DEFAULT_METHODS
    from trafl.objectives.registry import OBJECTIVES

    assert (
        load_config(DemoConfig, None, {}).methods
        == list(DEFAULT_METHODS)
        == ["trafl", "espo", "justgrpo", "diffu_grpo"]
    )
    assert load_config(DemoConfig, None, {"methods": "all"}).methods == list(OBJECTIVES)


def test_demo_sampler_settings_are_checked_at_load_and_reach_training(tmp_path):
    from trafl.demo import train_fields
    from trafl.errors import ConfigError

    with pytest.raises(ConfigError, match="diffusion_steps=6 must be <= gen_length=5"):
        load_config(DemoConfig, None, {"diffusion_steps": 6})
    cfg = load_config(DemoConfig, None, {"temperature": 0.7})
    assert cfg.sampler == SamplerSettings(
        gen_length=5, steps=5, block_length=5, temperature=0.7, remasking="low_confidence", cache="none", threshold=None
    )
    fields = train_fields(cfg, "trafl", 0, Path("base"), tmp_path)
    assert {k: fields[k] for k in ("max_completion_length", "diffusion_steps", "block_length", "temperature")} == {
        "max_completion_length": 5,
        "diffusion_steps": 5,
        "block_length": 5,
        "temperature": 0.7,
    }
    assert "diffusion_steps" not in train_fields(cfg, "justgrpo", 0, Path("base"), tmp_path)  # its recipe samples
