"""The scripts under scripts/ on their smallest settings: each runs its real code path (or checks the
files it generated), so a script that rots fails here rather than on the next person who runs it.
scripts/study_sweep.py and fast_rollouts.py are run in test_study_pipeline.py, plan_table.py in
test_plan.py."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_make_paper_configs_writes_the_committed_configs(tmp_path, monkeypatch):
    import scripts.make_paper_configs as script

    monkeypatch.setattr(script, "ROOT", tmp_path)
    script.main()
    written = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*.yaml"))
    committed = REPO / "configs" / "paper"
    assert written == sorted(p.relative_to(committed) for p in committed.rglob("*.yaml"))
    stale = [str(p) for p in written if (tmp_path / p).read_text() != (committed / p).read_text()]
    assert not stale, f"configs/paper differs from scripts/make_paper_configs.py's output (rerun it): {stale}"


@pytest.mark.parametrize("objective", ["trafl", "sft_pos"])
def test_gradient_probe_line_search_on_the_shipped_base(objective, capsys):
    from scripts.gradient_probe import main
    from trafl.demo import ASSET_BASE

    main(
        ["--model", str(ASSET_BASE), "--objective", objective, "--max-prompts", "4", "--group-size", "8"]
        + ["--eval-samples", "2", "--micro-prompts", "1", "--steps", "0,0.01", "--threads", "1"]
    )
    head, *etas = capsys.readouterr().out.strip().splitlines()
    assert head.startswith(f"{objective} (") and "4 prompts x 8 rollouts" in head
    assert float(re.search(r"\|g\| = (\S+)", head).group(1)) > 0
    assert [line.split(":")[0].strip() for line in etas] == ["eta = +0.000", "eta = +0.010"]
    assert all("(s.e. " in line and "8 rollouts)" in line for line in etas)


def test_code_gold_corruption_fails_what_the_reference_passes():
    from scripts.code_gold import corrupt_mbpp
    from trafl.rewards.code import AssertTests, encode_tests, run_many

    tests = encode_tests(AssertTests(["assert add(1, 2) == 3"], "", entry_points=["add"]))
    row = {"reference": "def add(a, b):\n    return a + b\n", "tests": tests}
    good, bad = run_many([row["reference"], corrupt_mbpp(row)], [tests, tests], workers=1, timeout=30)
    assert good.ok and not bad.ok


def test_train_long_base_runs_sft_for_fixed_steps(tmp_path, capsys):
    from scripts.train_long_base import main

    data = tmp_path / "pairs.jsonl"
    pairs = [{"prompt": f"count {i}:", "completion": " ".join(map(str, range(i, i + 4)))} for i in range(8)]
    data.write_text("".join(json.dumps(p) + "\n" for p in pairs))
    out = tmp_path / "out"
    args = ["--presets", "micro", "--out", str(out), "--data", str(data), "--max-steps", "1", "--batch-size", "2"]
    rc = main([*args, "--device", "cpu", "--dtype", "float32", "--threads", "1", "--budget-s", "1"])
    printed = capsys.readouterr().out
    assert f"data: 8 pairs in {data}" in printed and "micro: None s/update -> 1 steps" in printed
    summary = json.loads((out / "train_summary.json").read_text())
    assert rc == 0 and summary["micro"]["returncode"] == 0 and summary["micro"]["steps"] == 1
    assert (out / "micro" / "model" / "config.json").is_file()
