"""What the command line does with inputs it cannot honour or did not mean: a device that is not
there, a local model path that does not exist, a negative number after a flag, ``--quiet`` facing
the libraries' own progress bars, and the reward ``trafl train`` reports at the end."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import pytest
import torch
from rl_toys import make_model_dir

from trafl.cli import build_parser, main
from trafl.errors import CheckpointError, ConfigError
from trafl.eval.cli import EvalConfig
from trafl.sampling.cli import SampleConfig
from trafl.sft.config import SFTConfig
from trafl.train.config import TrainConfig
from trafl.utils.config import load_config

#: The smallest valid config of each command that takes a device.
DEVICE_CONFIGS = {
    "train": (TrainConfig, {"model": "m", "task": "t"}),
    "sft": (SFTConfig, {"data": "d.jsonl"}),
    "eval": (EvalConfig, {"model": ["m"], "task": ["decoy_rule"], "out": "o"}),
    "sample": (SampleConfig, {"model": "m", "prompt": ["p"]}),
}


@pytest.fixture
def no_cuda(monkeypatch):
    """A machine without CUDA, whatever this one has."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)


# --- A: a device that is not there ----------------------------------------------------------------


@pytest.mark.parametrize("command", sorted(DEVICE_CONFIGS))
def test_cuda_without_cuda_is_a_config_error_naming_field_and_device(command, no_cuda):
    cls, values = DEVICE_CONFIGS[command]
    with pytest.raises(ConfigError) as err:
        load_config(cls, None, {**values, "device": "cuda"})
    message = str(err.value)
    assert message.startswith("config field 'device': 'cuda' was requested but torch.cuda.is_available() is False")
    assert f"(this torch: {torch.__version__})" in message and "--device cpu" in message
    # the CPU and the default stay valid
    assert load_config(cls, None, {**values, "device": "cpu"}).device == "cpu"
    load_config(cls, None, values)


def test_cuda_index_beyond_the_visible_devices_is_an_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    cls, values = DEVICE_CONFIGS["sft"]
    assert load_config(cls, None, {**values, "device": "cuda:1"}).device == "cuda:1"
    with pytest.raises(ConfigError, match=r"config field 'device': 'cuda:2' was requested but only 2 CUDA devices"):
        load_config(cls, None, {**values, "device": "cuda:2"})


def test_mps_without_mps_and_a_device_torch_does_not_know_are_errors(monkeypatch):
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    cls, values = DEVICE_CONFIGS["train"]
    with pytest.raises(ConfigError, match=r"config field 'device': 'mps' was requested but .*mps.is_available\(\)"):
        load_config(cls, None, {**values, "device": "mps"})
    with pytest.raises(ConfigError, match=r"config field 'device': 'gpu' is not a torch device"):
        load_config(cls, None, {**values, "device": "gpu"})


def test_cli_stops_before_loading_anything_with_one_line(no_cuda, capsys, tmp_path):
    rc = main(["train", "--model", str(tmp_path / "nope"), "--task", "t", "--device", "cuda"])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.strip().splitlines() == [
        f"trafl train: error: config field 'device': 'cuda' was requested but torch.cuda.is_available() is False "
        f"(this torch: {torch.__version__}); use --device cpu or auto"
    ]


# --- B: a missing local model path is never tried on the hub --------------------------------------


@pytest.fixture
def hub_calls(monkeypatch):
    """Every download from the Hugging Face hub, recorded and refused (tests never touch the network)."""
    import huggingface_hub
    import huggingface_hub.file_download
    import transformers.utils.hub

    calls: list[tuple] = []

    def refuse(*args, **kwargs):
        calls.append(args)
        raise OSError("no network in tests")

    for module in (huggingface_hub, huggingface_hub.file_download, transformers.utils.hub):
        for name in ("hf_hub_download", "snapshot_download"):
            if hasattr(module, name):
                monkeypatch.setattr(module, name, refuse)
    return calls


@pytest.fixture
def online(monkeypatch):
    """The hub is not in offline mode, whatever the environment says."""
    import huggingface_hub.constants

    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)


def test_missing_path_under_a_local_folder_fails_without_the_hub(tmp_path, monkeypatch, hub_calls, online):
    from trafl.models import load_pretrained

    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    with pytest.raises(CheckpointError, match=r"model folder 'runs/does-not-exist' does not exist .*'runs'"):
        load_pretrained("runs/does-not-exist")
    assert hub_calls == []


def test_eval_preflight_refuses_a_missing_path_under_a_local_folder(tmp_path, monkeypatch, hub_calls, online):
    from trafl.eval.cli import check_model_source

    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    with pytest.raises(CheckpointError, match="'runs/does-not-exist' does not exist"):
        check_model_source("runs/does-not-exist")
    assert hub_calls == []


@pytest.mark.parametrize("offline_variable", ["HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"])
def test_offline_hub_id_not_in_the_cache_fails_at_once(tmp_path, monkeypatch, hub_calls, online, offline_variable):
    from trafl.models import load_pretrained

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(offline_variable, "1")
    with pytest.raises(CheckpointError) as err:
        load_pretrained("trafl-tests-nobody/not-cached-anywhere")
    assert "'trafl-tests-nobody/not-cached-anywhere' is not a local folder and not in the offline hub cache" in str(
        err.value
    )
    assert hub_calls == []


def test_unreachable_hub_says_so_with_the_reason(tmp_path, monkeypatch, hub_calls, online):
    from trafl.models import load_pretrained

    monkeypatch.chdir(tmp_path)
    with pytest.raises(CheckpointError) as err:
        load_pretrained("trafl-tests-nobody/some-model")
    message = str(err.value)
    assert message.startswith("'trafl-tests-nobody/some-model' is not a local folder and not reachable on the hub: ")
    assert "no network in tests" in message
    assert len(hub_calls) >= 1


# --- C: negative numbers are values ---------------------------------------------------------------


def test_negative_learning_rate_gets_the_validation_error_not_a_usage_dump(capsys, tmp_path):
    rc = main(["train", "--model", str(tmp_path), "--task", "t", "--learning-rate", "-1e-3"])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.strip().splitlines() == ["trafl train: error: config field 'learning_rate': must be >= 0.0, got -0.001"]


def _subparser(command: str) -> tuple[argparse.ArgumentParser, argparse.ArgumentParser]:
    parser = build_parser([command])
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return parser, action.choices[command]


@pytest.mark.parametrize("command", ["sft", "sample", "train", "eval", "plan", "demo"])
def test_every_flag_that_takes_a_value_takes_a_negative_number(command):
    parser, sub = _subparser(command)
    flags = [a for a in sub._actions if a.option_strings and a.nargs != 0 and not a.choices and a.dest != "help"]
    assert flags
    for number in ("-1e-3", "-0.5", "-3", "-2E+2", "-.25"):
        for action in flags:
            flag = action.option_strings[-1]
            value = "-3" if action.type is int else number
            args = parser.parse_args([command, flag, value])
            got = getattr(args, action.dest)
            got = got[-1] if isinstance(got, list) else got
            assert float(got) == float(value), (flag, value)


def test_a_field_that_allows_negatives_receives_the_number():
    from trafl.utils.config import overrides_from_args

    parser = build_parser(["train"])
    args = parser.parse_args(["train", "--model", "m", "--task", "t", "--reward-weights", "-1e-3", "--seed", "-3"])
    cfg = load_config(TrainConfig, None, overrides_from_args(args))
    assert cfg.reward_weights == [-0.001] and cfg.seed == -3


# --- D and E: a quiet `trafl train` and its summary ------------------------------------------------


@pytest.fixture(scope="module")
def toy_model(tmp_path_factory):
    return make_model_dir(tmp_path_factory.mktemp("toy") / "model")


@pytest.fixture
def restore_library_output(monkeypatch):
    """Undo what ``--quiet`` does to transformers / huggingface_hub / datasets in this process."""
    import huggingface_hub.utils
    import transformers.utils.logging as tlog

    verbosity = tlog.get_verbosity()
    bars = tlog.is_progress_bar_enabled()
    hub_bars = not huggingface_hub.utils.are_progress_bars_disabled()
    for name in ("HF_DATASETS_DISABLE_PROGRESS_BARS", "DATASETS_VERBOSITY"):
        monkeypatch.delenv(name, raising=False)
    yield
    tlog.set_verbosity(verbosity)
    if bars:
        tlog.enable_progress_bar()
    if hub_bars:
        huggingface_hub.utils.enable_progress_bars()
    datasets = sys.modules.get("datasets")
    if datasets is not None:
        datasets.enable_progress_bars()
        datasets.logging.set_verbosity_warning()


def _train(model: Path, out: Path, *extra: str) -> list[str]:
    return [
        "train",
        "--model",
        str(model),
        "--task",
        "rl_toys:DigitTask",
        "--num-generations",
        "4",
        "--per-device-train-batch-size",
        "8",
        "--max-completion-length",
        "4",
        "--diffusion-steps",
        "4",
        "--block-length",
        "4",
        "--max-prompt-length",
        "16",
        "--save-steps",
        "0",
        "--num-threads",
        "1",
        "--device",
        "cpu",
        "--output-dir",
        str(out),
        *extra,
    ]


def test_quiet_train_prints_no_library_progress_bars(toy_model, tmp_path, capsys, restore_library_output):
    assert main(_train(toy_model, tmp_path / "run", "--max-steps", "1", "--quiet")) == 0
    err = capsys.readouterr().err
    for bar in ("Loading weights", "Writing model shards", "it/s]", "%|"):
        assert bar not in err, err


def test_without_quiet_transformers_per_file_bars_are_off_and_trafls_bar_stays(
    toy_model, tmp_path, capsys, restore_library_output
):
    assert main(_train(toy_model, tmp_path / "run", "--max-steps", "1")) == 0
    err = capsys.readouterr().err
    assert "train[trafl]" in err  # trafl's own progress bar
    for bar in ("Loading weights", "Writing model shards"):
        assert bar not in err, err


def test_train_summary_reports_the_mean_reward_of_the_last_tenth(toy_model, tmp_path, capsys, restore_library_output):
    out = tmp_path / "run"
    assert main(_train(toy_model, out, "--max-steps", "3", "--quiet")) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    rewards = [json.loads(line)["reward"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert "final_reward" not in summary
    assert summary["steps"] == 3 and summary["reward_last_10pct_steps"] == 1
    assert summary["reward_last_10pct_mean"] == pytest.approx(rewards[-1])


def test_summary_reward_averages_the_last_tenth_of_the_steps():
    from trafl.train.cli import summary_reward

    rewards = {s: s / 100 for s in range(1, 31)}
    assert summary_reward(rewards, 30) == (pytest.approx((0.28 + 0.29 + 0.30) / 3), 3)
    assert summary_reward({s: rewards[s] for s in range(1, 6)}, 5) == (pytest.approx(0.05), 1)  # at least one
    assert summary_reward({}, 0) == (None, 0)


def test_summary_reward_of_a_resumed_run_reads_the_whole_run(tmp_path):
    from trafl.train.cli import run_rewards, summary_reward

    logged = [{"step": s, "reward": 1.0 if s <= 95 else 0.0} for s in range(1, 101)]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in logged))
    history = [{"step": s, "reward": 0.5} for s in range(96, 101)]  # this process ran steps 96..100 only
    mean, n = summary_reward(run_rewards(tmp_path, history), 100)
    assert n == 10 and mean == pytest.approx((5 * 1.0 + 5 * 0.5) / 10)  # steps 91..95 from the file
    mean, n = summary_reward(run_rewards(tmp_path / "missing", history), 100)
    assert n == 5 and math.isclose(mean, 0.5)  # no file: only what this process saw, and n says so
