"""The study pipeline (trafl.study.pipeline) and its callers on the tiniest settings: ``trafl demo``'s
stages, ``scripts/study_sweep.py`` and ``scripts/fast_rollouts.py`` end to end on the shipped base,
two RL steps per run and a handful of prompts (seconds each; test_demo.py runs the real --quick)."""

from __future__ import annotations

import json

import pytest
import yaml

from trafl.demo import DemoConfig, run_demo
from trafl.utils.config import load_config

#: The smallest budget that still runs every stage: 2 RL steps of 2 prompts x 2 samples, 2 checkpoints,
#: 4 prompts x 2 samples scored at one temperature.
TINY = dict(
    max_steps=2,
    checkpoints=2,
    prompts_per_step=2,
    num_generations=2,
    eval_prompts=4,
    eval_n=2,
    k_max=2,
    eval_temperatures=[0.9],
    frontier_temperature=0.9,
    num_threads=1,
)


def test_demo_pipeline_runs_every_stage_and_skips_them_when_rerun(tmp_path):
    out = tmp_path / "demo"
    cfg = load_config(DemoConfig, None, {**TINY, "out": str(out), "methods": "trafl,espo", "seeds": 1})
    first = run_demo(cfg)
    models = {c["model"] for c in first["results"]["results"]}
    assert models == {"base", "trafl-s0", "espo-s0"}
    assert {c["model"] for c in first["frontier"]["results"]} == {"base", "trafl-s0@1", "espo-s0@1"}
    assert set(first["timings"]) == {"base", "train/trafl-s0", "train/espo-s0", "eval", "total"}
    study = json.loads((out / "study.json").read_text())
    assert study["config"]["max_steps"] == 2 and set(study["analysis"]["training_reward"]) == {"trafl-s0", "espo-s0"}
    assert (out / "report.md").read_text().startswith("# ")

    final = out / "runs" / "trafl-s0" / "final" / "model.safetensors"
    mtime = final.stat().st_mtime
    again = run_demo(cfg)  # every stage skipped: no training, cached evaluations, the same numbers
    assert final.stat().st_mtime == mtime
    assert again["timings"]["train/trafl-s0"] == first["timings"]["train/trafl-s0"]
    assert again["analysis"]["checks"] == first["analysis"]["checks"]


def test_study_sweep_trains_variants_then_scores_them(tmp_path, capsys):
    from scripts.study_sweep import main

    out = tmp_path / "sweep"
    tiny = "method=trafl,max_steps=2,num_generations=2,per_device_train_batch_size=4"
    args = ["--out", str(out), "--seeds", "0,1", "--eval-prompts", "4", "--eval-n", "2", "--k", "2"]
    main([*args, "--variants", f"tiny_b1:{tiny},beta=1", f"tiny_b2:{tiny},beta=2"])
    printed = capsys.readouterr().out
    labels = [f"tiny_b{b}-s{s}" for b in (1, 2) for s in (0, 1)]
    assert [line.split(":")[0] for line in printed.splitlines()] == labels
    assert not (out / "validation.md").exists()  # training only: --eval-only scores

    main([*args, "--eval-only"])
    table = json.loads((out / "validation.json").read_text())
    assert set(table) == {"tiny_b1", "tiny_b2"} and all(row["seeds"] == 2 for row in table.values())
    assert len(table["tiny_b1"]["per_seed_dk"]) == 2 and "pass@2" in table["tiny_b1"]
    text = (out / "validation.md").read_text()
    assert text.startswith("Validation split: 4 prompts x 2 samples, T = 0.9")
    assert [line.split("|")[1].strip() for line in text.splitlines()[4:]] == ["base", "tiny_b1", "tiny_b2"]
    config = yaml.safe_load((out / "runs" / "tiny_b2-s1" / "train_config.yaml").read_text())
    assert config["beta"] == 2.0 and config["seed"] == 1 and config["max_steps"] == 2


def test_study_sweep_rejects_a_malformed_variant(tmp_path):
    from scripts.study_sweep import parse_variant

    assert parse_variant("a:method=trafl,beta=1") == ("a", {"method": "trafl", "beta": "1"})
    with pytest.raises(SystemExit, match="expected name:key=value"):
        parse_variant("a:beta")


def test_fast_rollouts_compares_the_two_arms(tmp_path, capsys):
    from scripts.fast_rollouts import ARMS, compare

    out = tmp_path / "fast"
    overrides = {k: v for k, v in TINY.items() if k not in ("eval_temperatures", "frontier_temperature")}
    table = compare(out, 2, {**overrides, "checkpoints": 1})
    assert set(table["times"]) == {f"trafl_{arm}-s{s}" for arm in ARMS for s in (0, 1)}
    assert table["settings"]["prompts"] == 4 and table["settings"]["seeds"] == 2
    assert set(table["fast_minus_exact"]) == {1, 2} and set(table["fast_minus_exact_seeds"]) == {1, 2}
    assert all(t["num_forward"] > 0 and 0 < t["rollout_share"] < 1 for t in table["times"].values())
    report = (out / "report.md").read_text()
    assert report.startswith("TraFL on exact vs fast rollouts (decoy_rule, 2 steps, 2 seed(s) per arm")
    assert "| trafl_fast-s1 |" in report and json.loads((out / "report.json").read_text())["settings"]["n"] == 2
    capsys.readouterr()
    compare(out, 2, {**overrides, "checkpoints": 1})  # resumable: nothing retrained
    assert "trained in" not in capsys.readouterr().out


def test_demo_choices_are_the_objectives():
    """The demo passes logz and reward_transform to TraFL: it offers exactly TraFL's choices."""
    import typing

    from trafl.objectives.trafl import TraFLOptions
    from trafl.utils.config import literal_choices

    demo = {k: literal_choices(t) for k, t in typing.get_type_hints(DemoConfig).items()}
    trafl = {k: literal_choices(t) for k, t in typing.get_type_hints(TraFLOptions).items()}
    assert demo["logz"] == trafl["logz"] and demo["reward_transform"] == trafl["reward_transform"]
    assert load_config(DemoConfig, None, {"logz": "partition"}).logz == "partition"  # the choice the copy had lost
