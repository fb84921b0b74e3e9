"""Run folders: a rerun never replaces or mixes an earlier run; ``--resume`` says what it does."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest
import yaml
from rl_toys import DigitTask, make_model_dir
from test_sft import _reverse_data
from test_train import cfg_for

from trafl.errors import ConfigError
from trafl.sft.config import SFTConfig
from trafl.utils.config import load_config
from trafl.utils.run_dir import TRAIN_RUN, config_diff, open_run_dir


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return make_model_dir(tmp_path_factory.mktemp("base") / "model")


def train(model_dir, out, **over):
    from trafl.train.trainer import run_train

    values = {"method": "trafl", "beta": 0.5, "logz": "vargrad", "max_steps": 3, "save_steps": 1, **over}
    return run_train(cfg_for(model_dir, out, **values), progress=False, task=DigitTask())


def steps_of(path: Path) -> list[int]:
    return [json.loads(line)["step"] for line in path.read_text().splitlines()]


def test_rerun_without_resume_or_overwrite_is_refused_and_keeps_the_run(model_dir, tmp_path):
    out = tmp_path / "run"
    train(model_dir, out)
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    metrics = (out / "metrics.jsonl").read_text()
    with pytest.raises(ConfigError, match=r"already holds a run .*--resume.*--overwrite"):
        train(model_dir, out, seed=1)
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before
    assert (out / "metrics.jsonl").read_text() == metrics


def test_overwrite_clears_the_old_run_first_and_says_so(model_dir, tmp_path, caplog):
    out = tmp_path / "run"
    train(model_dir, out, max_steps=4)
    (out / "notes.txt").write_text("mine")  # not a run file: kept
    with caplog.at_level(logging.WARNING, logger="trafl.utils.run_dir"):
        train(model_dir, out, max_steps=2, overwrite=True)
    assert "removed the earlier run's files" in caplog.text
    assert steps_of(out / "metrics.jsonl") == [1, 2]  # the old run's 4 steps are gone, not mixed
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-1"]
    assert (out / "notes.txt").read_text() == "mine"
    assert not list(out.glob(".trafl-overwritten-*"))
    assert yaml.safe_load((out / "train_config.yaml").read_text())["max_steps"] == 2


def test_resume_and_overwrite_together_are_refused(model_dir, tmp_path):
    with pytest.raises(ConfigError, match="'resume' and 'overwrite'"):
        cfg_for(model_dir, tmp_path, resume=True, overwrite=True)


def test_resume_refuses_a_changed_learning_rate_the_restored_optimizer_would_ignore(model_dir, tmp_path):
    out = tmp_path / "run"
    train(model_dir, out, max_steps=3)
    (out / "final").rename(tmp_path / "final-aside")  # as if killed after checkpoint-2
    with pytest.raises(ConfigError, match=r"'learning_rate' saved 0\.003, now 0\.001.*optimizer"):
        train(model_dir, out, max_steps=3, resume=True, learning_rate=1e-3)


def test_resume_refuses_a_checkpoint_past_max_steps(model_dir, tmp_path):
    out = tmp_path / "run"
    train(model_dir, out, max_steps=4, save_total_limit=5)
    with pytest.raises(ConfigError, match=r"step 3, past max_steps=2"):
        train(model_dir, out, max_steps=2, resume=True)


def test_resume_lists_and_applies_other_changes_and_never_repeats_a_step(model_dir, tmp_path, caplog):
    out = tmp_path / "run"
    train(model_dir, out, max_steps=3)
    (out / "final").rename(tmp_path / "final-aside")
    with caplog.at_level(logging.WARNING, logger="trafl.utils.run_dir"):
        result = train(model_dir, out, max_steps=5, resume=True, temperature=0.7)
    assert "max_steps: 3 -> 5" in caplog.text and "temperature: 1.0 -> 0.7" in caplog.text
    assert [r["step"] for r in result.history] == [3, 4, 5]
    assert steps_of(out / "metrics.jsonl") == [1, 2, 3, 4, 5]
    (record,) = [json.loads(x) for x in (out / "resumes.jsonl").read_text().splitlines()]
    assert record["step"] == 2 and record["changed"]["temperature"] == [1.0, 0.7]
    assert yaml.safe_load((out / "train_config.yaml").read_text())["temperature"] == 0.7


def test_resume_without_a_checkpoint_starts_fresh_and_says_so(model_dir, tmp_path, caplog):
    out = tmp_path / "run"
    with caplog.at_level(logging.INFO, logger="trafl.utils.run_dir"):
        train(model_dir, out, max_steps=2, resume=True)
    assert "no checkpoint" in caplog.text and "starting a fresh run" in caplog.text
    assert steps_of(out / "metrics.jsonl") == [1, 2]
    # a run killed before its first checkpoint: its metrics are dropped, not continued
    shutil.rmtree(out / "final")
    shutil.rmtree(out / "checkpoint-1")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="trafl.utils.run_dir"):
        train(model_dir, out, max_steps=3, resume=True)
    assert "starting a fresh run" in caplog.text
    assert steps_of(out / "metrics.jsonl") == [1, 2, 3]


def test_resume_of_a_finished_run_without_checkpoints_is_refused(model_dir, tmp_path):
    out = tmp_path / "run"
    train(model_dir, out, max_steps=2, save_steps=0)
    with pytest.raises(ConfigError, match=r"finished run \(final/\) but no checkpoint"):
        train(model_dir, out, max_steps=4, resume=True)


def test_a_folder_holding_only_other_files_is_free(tmp_path):
    (tmp_path / "sft.jsonl").write_text("{}\n")
    assert open_run_dir(tmp_path, TRAIN_RUN, resume=False, overwrite=False) is None


def test_config_diff_lists_both_values_and_skips_bookkeeping():
    saved = {"learning_rate": 1e-3, "seed": 0, "resume": False}
    now = {"learning_rate": 1e-3, "seed": 1, "resume": True, "new_field": 2}
    assert config_diff(saved, now, ignored=("resume",)) == {"seed": (0, 1), "new_field": (None, 2)}


def sft_config(tmp_path, out, **over):
    data = tmp_path / "d.jsonl"
    if not data.exists():
        _reverse_data(data, 32, seed=0)
    values = {
        **dict(
            data=str(data),
            model="micro",
            max_completion_length=5,
            max_steps=2,
            batch_size=8,
            warmup_steps=0,
            eval_steps=0,
            save_steps=1,
            num_threads=1,
            device="cpu",
            output_dir=str(out),
        ),
        **over,
    }
    return load_config(SFTConfig, None, values)


def test_sft_rerun_is_refused_overwrite_replaces_and_resume_refuses_a_new_learning_rate(tmp_path):
    from trafl.sft.trainer import run_sft

    out = tmp_path / "sft"
    run_sft(sft_config(tmp_path, out), progress=False)
    with pytest.raises(ConfigError, match=r"already holds a run .*--resume.*--overwrite"):
        run_sft(sft_config(tmp_path, out, seed=3), progress=False)
    run_sft(sft_config(tmp_path, out, max_steps=3, overwrite=True), progress=False)
    assert steps_of(out / "sft_metrics.jsonl") == [1, 2, 3]
    (out / "model").rename(tmp_path / "model-aside")
    with pytest.raises(ConfigError, match=r"'learning_rate' saved 0\.001, now 0\.002"):
        run_sft(sft_config(tmp_path, out, max_steps=3, resume=True, learning_rate=2e-3), progress=False)


def test_interrupt_message_says_how_to_resume(monkeypatch, capsys, model_dir, tmp_path):
    import trafl.train.trainer as trainer
    from trafl.cli import main

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(trainer, "run_train", interrupted)
    code = main(["train", "--model", str(model_dir), "--task", "rl_toys:DigitTask", "--output-dir", str(tmp_path)])
    assert code == 130
    assert "--resume" in capsys.readouterr().err
