"""The run scaffold shared by ``trafl train`` and ``trafl sft`` and the config base they share: the
accelerator honours ``device: cuda:N``, old field names load with a warning naming the new field (or
are refused with the reason), a run saved under old names resumes without spurious changes, and the
seed derivations keep their values."""

from __future__ import annotations

import argparse
import random

import pytest
import torch

from trafl.errors import ConfigError
from trafl.sft.config import SFTConfig
from trafl.train.config import TrainConfig
from trafl.utils import run as run_module
from trafl.utils.config import add_config_arguments, load_config, overrides_from_args, to_dict, upgrade_keys
from trafl.utils.run_config import RunConfig
from trafl.utils.run_dir import FieldRules, resume_changes
from trafl.utils.seed import seeded_rng, step_seed


def test_cuda_n_becomes_the_current_device_before_the_accelerator(monkeypatch):
    calls = []
    monkeypatch.setattr(torch.cuda, "set_device", lambda d: calls.append(("set_device", str(d))))
    monkeypatch.setattr(run_module, "make_accelerator", lambda cpu: calls.append(("accelerator", cpu)) or "acc")
    assert run_module.make_run_accelerator("cuda:1") == "acc"
    assert calls == [("set_device", "cuda:1"), ("accelerator", False)]
    calls.clear()
    run_module.make_run_accelerator("cpu")
    assert calls == [("accelerator", True)]  # no device switch
    assert run_module.make_run_accelerator("cuda:1", accelerator="given") == "given"


def test_both_configs_share_the_run_fields_with_trl_names():
    shared = {f for f in RunConfig.__dataclass_fields__}
    assert shared <= set(SFTConfig.__dataclass_fields__) and shared <= set(TrainConfig.__dataclass_fields__)
    assert {"lr_scheduler_type", "save_steps", "bf16", "max_steps", "gradient_accumulation_steps"} <= shared
    # each keeps its own defaults
    sft, train = SFTConfig(data="x"), TrainConfig()
    assert (sft.learning_rate, sft.lr_scheduler_type, sft.save_steps) == (1e-3, "cosine", 500)
    assert (train.learning_rate, train.lr_scheduler_type, train.save_steps) == (1e-5, "constant", 50)


def test_old_sft_names_load_as_the_new_fields_with_a_warning(tmp_path, caplog):
    old = tmp_path / "old.yaml"
    old.write_text(
        "data: x\ncompletion_length: 16\nlr_schedule: linear\neval_every: 7\nsave_every: 9\ndtype: bfloat16\n"
    )
    with caplog.at_level("WARNING", logger="trafl.utils.config"):
        cfg = load_config(SFTConfig, old)
    assert (cfg.max_completion_length, cfg.lr_scheduler_type, cfg.eval_steps, cfg.save_steps, cfg.bf16) == (
        16,
        "linear",
        7,
        9,
        True,
    )
    messages = " ".join(r.getMessage() for r in caplog.records)
    for name, new in [("completion_length", "max_completion_length"), ("dtype", "bf16"), ("eval_every", "eval_steps")]:
        assert f"'{name}'" in messages and f"now '{new}'" in messages
    assert load_config(SFTConfig, None, {"data": "x", "dtype": "float32"}).bf16 is False
    # a new name on the command line overrides the old one in the file
    assert load_config(SFTConfig, old, {"max_completion_length": 8}).max_completion_length == 8


def test_old_sft_flags_parse_on_the_command_line():
    parser = argparse.ArgumentParser()
    add_config_arguments(parser, SFTConfig)
    args = parser.parse_args(["--data", "x", "--completion-length", "12", "--save-every", "3", "--dtype", "bfloat16"])
    cfg = load_config(SFTConfig, None, overrides_from_args(args))
    assert (cfg.max_completion_length, cfg.save_steps, cfg.bf16) == (12, 3, True)
    assert "--completion-length" not in parser.format_help()  # hidden: the help shows the new names


def test_old_and_new_name_together_or_a_bad_old_value_is_an_error():
    with pytest.raises(ConfigError, match="'completion_length' is the old name of 'max_completion_length'"):
        load_config(SFTConfig, None, {"data": "x", "completion_length": 4, "max_completion_length": 8})
    with pytest.raises(ConfigError, match="'dtype' \\(now 'bf16'\\): expected 'float32' or 'bfloat16'"):
        load_config(SFTConfig, None, {"data": "x", "dtype": "float16"})


def test_generation_batch_size_is_refused_with_the_reason_unless_null(caplog):
    base = {"model": "m", "task": "t"}
    with pytest.raises(ConfigError, match="'generation_batch_size'.*was removed: it was accepted but never read"):
        load_config(TrainConfig, None, {**base, "generation_batch_size": 8})
    with caplog.at_level("WARNING", logger="trafl.utils.config"):
        load_config(TrainConfig, None, {**base, "generation_batch_size": None})  # an older run's saved config
    assert "no longer read" in caplog.text


def test_a_run_saved_under_old_names_resumes_without_spurious_changes(tmp_path):
    import yaml

    cfg = load_config(SFTConfig, None, {"data": "x", "max_completion_length": 16, "bf16": True})
    saved = {k: v for k, v in to_dict(cfg).items() if k not in ("save_total_limit", "report_to")}  # not in 0.2
    saved.update(
        completion_length=saved.pop("max_completion_length"), dtype="bfloat16", save_every=saved.pop("save_steps")
    )
    del saved["bf16"]
    (tmp_path / "sft_config.yaml").write_text(yaml.safe_dump(saved))
    rules = FieldRules(restored=("learning_rate",), fixed=("model",))
    upgrade = lambda values: upgrade_keys(SFTConfig, values, "saved", saved=True)  # noqa: E731
    assert resume_changes(tmp_path / "sft_config.yaml", to_dict(cfg), rules, 1, upgrade) == {}
    changed = load_config(SFTConfig, None, {"data": "x", "max_completion_length": 8, "bf16": True})
    assert resume_changes(tmp_path / "sft_config.yaml", to_dict(changed), rules, 1, upgrade) == {
        "max_completion_length": (16, 8)
    }


def test_seed_derivations_keep_their_values():
    # the formats every saved run was drawn with: changing one changes every run
    assert step_seed(3, 7, 11, 2) == random.Random("rollout-3-7-11-2").getrandbits(63)
    assert step_seed(0, 1, 2, 0, "sft-noise") == random.Random("sft-noise-0-1-2-0").getrandbits(63)
    assert seeded_rng(5, 2).random() == random.Random("5-2").random()  # the prompt order of epoch 2
    assert seeded_rng("sft-canvas", 0).random() == random.Random("sft-canvas-0").random()
