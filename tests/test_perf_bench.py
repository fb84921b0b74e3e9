"""The benchmark harness and the GPU check script, on CPU at tiny shapes (no timing assertions)."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from benchmarks import bench_long, bench_sampling, gpu_check, run
from benchmarks.harness import SideBySide, side_by_side
from benchmarks.steps import build_objective, make_trainable, random_group, update_step
from trafl.models import build_model, preset_config


def test_speedup_is_the_median_of_per_repeat_ratios():
    sbs = SideBySide("a", {"a": [2.0, 4.0, 9.0], "b": [1.0, 1.0, 1.0]})
    assert sbs.speedup("b") == 4.0 and sbs.median_time("a") == 4.0 and sbs.speedup("a") == 1.0
    calls = []
    result = side_by_side({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, "a", repeats=2, warmup=1)
    assert calls == ["a", "b"] * 3 and len(result.times["b"]) == 2
    with pytest.raises(ValueError):
        side_by_side({"a": lambda: None}, "z")


def test_forward_flops_by_hand():
    cfg = preset_config("micro")  # d=32, 2 layers, MLP 64, vocab 64, no GQA
    per_layer = 4 * 32 * 32 + 3 * 32 * 64
    n_matmul = 2 * per_layer + 32 * 64
    assert gpu_check.forward_flops(cfg, rows=3, seq_len=10) == 3 * (2 * n_matmul * 10 + 2 * 4 * 100 * 32)


def test_row_chunks_give_the_full_group_gradient():
    torch.manual_seed(0)
    base = build_model("micro")
    group = random_group(1, 6, 4, 8, 64, base.config.eos_token_id, base.config.mask_token_id, seed=3)
    grads = []
    for chunks in (1, 3):
        policy = copy.deepcopy(base)
        torch.manual_seed(1)
        objective = build_objective("trafl", policy.config.d_model)
        reference, opt = make_trainable(policy, objective, lr=0.0)
        update_step(objective, policy, reference, group, opt, chunks=chunks)
        grads.append(
            torch.cat(
                [
                    p.grad.flatten()
                    for p in list(policy.parameters()) + list(objective.parameters())
                    if p.grad is not None
                ]
            )
        )
    assert grads[0].abs().sum() > 0
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-4, atol=1e-6)


def test_gpu_check_runs_at_a_tiny_shape(tmp_path):
    out = tmp_path / "check.json"
    rc = gpu_check.main(
        [
            "--shape",
            "micro",
            "--device",
            "cpu",
            "--dtype",
            "float32",
            "--gen-lengths",
            "8",
            "--group-size",
            "4",
            "--prompt-length",
            "4",
            "--block-length",
            "4",
            "--lora-r",
            "4",
            "--micro-batch",
            "2",
            "--chunks",
            "2",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    report = json.loads(out.read_text())
    row = report["lengths"][0]
    assert row["gen_length"] == 8 and row["rollout_dual_forward_passes"] == 8
    assert row["trafl_step_s"] > 0 and row["policy_fwd_bwd_tflops"] > 0 and row["mfu"] is None
    assert 0 < report["trainable"] < report["parameters"]  # LoRA: only adapters train


def test_benchmark_entry_point_smoke(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(bench_sampling, "SAMPLER_SETTINGS_QUICK", [(2, 8, 8, 4)])
    threads = torch.get_num_threads()
    out = tmp_path / "results.jsonl"
    try:
        rc = run.main(
            [
                "--quick",
                "--sections",
                "sampler,train",
                "--repeats",
                "1",
                "--out",
                str(out),
                "--trained-model",
                str(tmp_path / "none"),
            ]
        )
    finally:
        torch.set_num_threads(threads)
    assert rc == 0
    text = capsys.readouterr().out
    assert "token identity of trafl's uncached sampler with the reference loop at T=0: PASS" in text
    record = json.loads(out.read_text().splitlines()[-1])
    from trafl.objectives import OBJECTIVES

    assert record["sampler"]["token_identical"] and {r["method"] for r in record["train"]["rows"]} == set(OBJECTIVES)
    assert {r["method"] for r in record["train_recipe"]["rows"]} == set(OBJECTIVES)


def test_percent_mean_and_standard_error():
    assert bench_long._percent_mean_se([1, 0, 1, 0]) == pytest.approx((50.0, 100 * (1 / 3) ** 0.5 / 2))
    assert bench_long._percent_mean_se([0.25]) == (25.0, 0.0)


@pytest.mark.slow
def test_long_section_reports_the_paired_difference_to_the_exact_sampler(tmp_path):
    """One quick run on the validation split with batch-1 timing (the exact sampler at L = 256 is the
    cost: one run checks every column and the split, rather than one run per split)."""
    out = tmp_path / "r.jsonl"
    argv = ["--sections", "long", "--quick", "--long-single", "1", "--long-split", "validation", "--out", str(out)]
    assert run.main([*argv, "--long-variants", "trafl,dual+thr0.9"]) == 0
    record = json.loads(out.read_text())["long"]
    assert record["split"] == "validation"
    rows = {r["variant"]: r for r in record["rows"]}
    exact, fast = rows["trafl"], rows["dual+thr0.9"]
    assert exact["diff_vs_exact"] == 0 and exact["same_as_exact"] == 1 and exact["forward_passes"] == 256
    # on the same prompts, the mean paired difference is the difference of the two accuracies
    assert fast["diff_vs_exact"] == pytest.approx(fast["accuracy"] - exact["accuracy"])
    assert fast["forward_passes"] < 64 and exact["partial"] > 90
    assert fast["x_exact b1"] > 0 and fast["x_exact b8"] > 0
    for row in rows.values():  # every miss is counted once, by where it leaves the answer
        misses = row["ran_past"] + row["stopped_early"] + row["wrong"]
        assert misses == round(row["prompts"] * (1 - row["accuracy"] / 100))
    with pytest.raises(SystemExit, match="exact sampler"):
        run.main([*argv, "--long-variants", "dual,trafl"])


def test_sampler_variant_names():
    parse_variant = bench_sampling.parse_variant
    assert parse_variant("trafl") == ("none", None) and parse_variant("dual+thr0.9") == ("dual", 0.9)
    assert parse_variant("dual+thr0.99") == ("dual", 0.99) and parse_variant("prefix+thr1") == ("prefix", 1.0)
    for bad in ("dual+thr", "dual+thr1.5", "kv+thr0.9", "dual0.9", "dual+thrx"):
        with pytest.raises(SystemExit, match="sampler variant"):
            parse_variant(bad)
