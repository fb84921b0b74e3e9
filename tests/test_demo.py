"""``trafl demo`` end to end at toy budgets: every stage runs, the report has its structure, the
numbers are finite and in range (not their values), and a rerun resumes instead of recomputing."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from trafl.demo import DemoConfig, run_demo, study_checks
from trafl.utils.config import load_config


def _base(path: Path) -> Path:
    from trafl.models import build_char_tokenizer, build_model
    from trafl.tasks.synthetic.countdown import Countdown

    tok = build_char_tokenizer(list(Countdown.alphabet))
    torch.manual_seed(0)
    model = build_model("micro", vocab_size=len(tok), embedding_size=len(tok), pad_token_id=tok.pad_token_id,
                        eos_token_id=tok.eos_token_id, mask_token_id=tok.mask_token_id)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


@pytest.mark.slow
def test_demo_pipeline_end_to_end(tmp_path, capsys):
    base = _base(tmp_path / "base")
    cfg = load_config(DemoConfig, None, dict(
        out=str(tmp_path / "demo"), quick=True, base=str(base), max_steps=2, prompts_per_step=2,
        num_generations=4, eval_prompts=3, eval_n=4, eval_temperatures=[0.6, 0.9], num_threads=1,
    ))
    out = run_demo(cfg)
    printed = capsys.readouterr().out
    demo = tmp_path / "demo"
    report = (demo / "report.md").read_text()
    for label in ("base", "trafl", "espo", "justgrpo", "diffu_grpo"):
        assert f"| {label} |" in report and f"| {label} |" in printed
        assert (label == "base") or (demo / "runs" / label / "final" / "config.json").is_file()
    assert "pass@1" in report and "distinct correct" in report
    results = json.loads((demo / "eval" / "results.json").read_text())
    assert len(results["results"]) == 5 * 2
    for cell in results["results"]:
        assert cell["n"] == 4 and cell["num_problems"] == 3
        values = cell["pass_at_k"]
        assert len(values) == 4 and all(0.0 <= v <= 1.0 and math.isfinite(v) for v in values)
        assert values == sorted(values)  # pass@k is non-decreasing in k
        assert 0.0 <= cell["distinct_correct"]["mean"] <= 4
    study = json.loads((demo / "study.json").read_text())
    assert set(study["checks"]["pass_at_k_vs_base"]) == {"0.6", "0.9"}
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


def test_demo_config_errors():
    from trafl.errors import ConfigError

    with pytest.raises(ConfigError, match="'methods': unknown \\['ppo'\\]"):
        load_config(DemoConfig, None, {"methods": "trafl,ppo"})
