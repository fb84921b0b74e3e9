"""``trafl demo --quick`` end to end: every stage runs, the report has its structure, the
numbers are finite and in range (not their values), and a rerun resumes instead of recomputing."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from trafl.demo import DemoConfig, run_demo, study_checks
from trafl.utils.config import load_config


@pytest.mark.slow
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
    for label in ("base", "trafl", "espo", "justgrpo", "diffu_grpo"):
        assert f"| {label} |" in report and f"| {label} |" in printed
        assert (label == "base") or (demo / "runs" / label / "final" / "config.json").is_file()
        if label != "base":
            steps = (demo / "runs" / label / "metrics.jsonl").read_text().splitlines()
            assert len(steps) == eff.max_steps  # equal rollout budgets
    assert "pass@1" in report and "distinct correct" in report
    results = json.loads((demo / "eval" / "results.json").read_text())
    assert len(results["results"]) == 5 * len(eff.eval_temperatures)
    for cell in results["results"]:
        assert cell["n"] == eff.eval_n and cell["num_problems"] >= 8
        values = cell["pass_at_k"]
        assert len(values) == eff.eval_n and all(0.0 <= v <= 1.0 and math.isfinite(v) for v in values)
        assert values == sorted(values)  # pass@k is non-decreasing in k
        assert 0.0 <= cell["distinct_correct"]["mean"] <= eff.eval_n
    study = json.loads((demo / "study.json").read_text())
    assert set(study["checks"]["pass_at_k_vs_base"]) == {str(t) for t in eff.eval_temperatures}
    assert all(math.isfinite(v) and v > 0 for v in study["timings_s"].values())
    assert out["plots"] and all(str(p).endswith(".png") and Path(p).is_file() for p in out["plots"])
    # A rerun reuses every finished stage (no retraining, generations cached).
    mtime = (demo / "runs" / "trafl" / "final" / "model.safetensors").stat().st_mtime
    run_demo(cfg)
    assert (demo / "runs" / "trafl" / "final" / "model.safetensors").stat().st_mtime == mtime


def test_study_checks_reads_the_claims():
    def cell(model, t, passk, distinct):
        return {"model": model, "temperature": t, "pass_at_k": passk, "distinct_correct": {"mean": distinct}}

    results = {"results": [
        cell("base", 0.9, [0.2, 0.4], 2.0), cell("trafl", 0.9, [0.3, 0.4], 3.0), cell("espo", 0.9, [0.5, 0.5], 1.0),
        cell("base", 0.3, [0.2, 0.5], 1.0), cell("trafl", 0.3, [0.3, 0.45], 1.0), cell("espo", 0.3, [0.5, 0.5], 1.5),
    ]}
    checks = study_checks(results)
    assert checks["pass_at_k_vs_base"]["0.9"] == {"k_below_base": [], "ok": True}
    assert checks["pass_at_k_vs_base"]["0.3"] == {"k_below_base": [2], "ok": False}
    assert checks["distinct_vs_baselines"]["0.9"]["ok"] and not checks["distinct_vs_baselines"]["0.3"]["ok"]
    # pass@k beyond k_max (here k = 2) is not part of the claim
    assert study_checks(results, k_max=1)["pass_at_k_vs_base"]["0.3"] == {"k_below_base": [], "ok": True}


def test_demo_config_errors():
    from trafl.errors import ConfigError

    with pytest.raises(ConfigError, match="'k_max': 64 exceeds eval_n = 32"):
        load_config(DemoConfig, None, {"k_max": 64})
    with pytest.raises(ConfigError, match="'methods': unknown \\['ppo'\\]"):
        load_config(DemoConfig, None, {"methods": "trafl,ppo"})
