"""The RL trainer: reward goes up for every objective, kill-and-resume is bit-identical, bad input
gets clear errors (several processes: tests/test_distributed.py)."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from rl_toys import (
    ALPHABET,
    LEARNING_MARGIN,
    LEARNING_SETTINGS,
    LEARNING_STEPS,
    DigitTask,
    digit_reward,
    learning_gain,
    make_model_dir,
)
from safetensors.torch import load_file

from trafl.errors import ConfigError, DataError
from trafl.sampling import SamplerSettings
from trafl.train.config import TrainConfig
from trafl.train.rewards import RewardError, compute_rewards
from trafl.utils.config import load_config

TESTS = Path(__file__).parent
REPO = TESTS.parent

BASE = dict(
    task="rl_toys:DigitTask",
    num_generations=4,
    per_device_train_batch_size=8,
    gradient_accumulation_steps=1,
    max_completion_length=4,
    diffusion_steps=4,
    block_length=4,
    temperature=1.0,
    max_prompt_length=16,
    learning_rate=3e-3,
    logz_lr=1e-2,
    save_steps=0,
    num_threads=1,
    device="cpu",
    seed=0,
)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return make_model_dir(tmp_path_factory.mktemp("base") / "model")


def cfg_for(model_dir, out, **over):
    values = {**BASE, "model": str(model_dir), "output_dir": str(out), **over}
    if values.get("method") == "justgrpo":  # samples left to right at T = 1: its recipe sets the sampler
        for key in ("diffusion_steps", "block_length", "temperature"):
            values.pop(key)
    return load_config(TrainConfig, None, values)


def _env():
    env = dict(os.environ)
    # this checkout's sources first (the package may be installed from another one)
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), str(REPO / "src"), env.get("PYTHONPATH", "")])
    env["OMP_NUM_THREADS"] = "1"
    return env


@pytest.mark.slow
@pytest.mark.parametrize("method", list(LEARNING_SETTINGS))
def test_each_objective_raises_mean_reward(method, model_dir, tmp_path):
    """Every method, at its authors' recipe, learns the toy task: the mean reward of the last 10 of 30
    steps beats that of the first 3 by more than ``LEARNING_MARGIN`` (0.1).

    The margin rests on the spread of this exact run over seeds, CPU kernel sets (AVX-512, AVX2, no SIMD)
    and 1 and 2 threads (``python tests/learning_spread.py``; the thread count changed no run):

    | method | runs: kernels x threads x seeds | mean gain | sd | min | (mean - 0.1) / sd |
    |---|---|---|---|---|---|
    | trafl | 32: avx512, avx2 x 1, 2 x 8 | 0.413 | 0.069 | 0.310 | 4.6 |
    | espo | 24: avx512 x 1, 2 x 8; avx2, default x 1 x 4 | 0.783 | 0.067 | 0.673 | 10.2 |
    | justgrpo | 24: avx512 x 1, 2 x 8; avx2, default x 1 x 4 | 0.493 | 0.060 | 0.419 | 6.6 |
    | diffu_grpo | 23: avx512, avx2, default x 1 x 8 (7 on default) | 0.637 | 0.092 | 0.423 | 5.9 |
    | wd1 | 24: avx512, avx2, default x 1 x 8 | 0.666 | 0.109 | 0.454 | 5.2 |
    | spg | 16: avx512, avx2 x 1 x 8 (mask_block_length 2) | 0.841 | 0.063 | 0.743 | 11.7 |

    A short RL run's end point is chaotic in float rounding, so the old check (last 5 against first 5
    steps, > 0.1, diffu-GRPO at 3e-3) passed on one CPU and failed on another (0.362 -> 0.456 on the
    reporting machine; 0.362 -> 0.263 here under AVX2 kernels, where AVX-512 gives 0.362 -> 0.800).
    """
    from trafl.train.trainer import run_train

    over = {"method": method, "max_steps": LEARNING_STEPS, **LEARNING_SETTINGS[method]}
    result = run_train(cfg_for(model_dir, tmp_path / method, **over), progress=False, task=DigitTask())
    rewards = [r["reward"] for r in result.history]
    gain = learning_gain(rewards)
    print(f"\n{method}: learning gain {gain:.3f} (margin {LEARNING_MARGIN})")
    assert all(math.isfinite(r["loss"]) for r in result.history)
    assert gain > LEARNING_MARGIN, (method, gain, rewards)
    assert (tmp_path / method / "final" / "model.safetensors").is_file()
    assert len((tmp_path / method / "metrics.jsonl").read_text().splitlines()) == LEARNING_STEPS
    for key in (
        "reward",
        "reward_std",
        "loss",
        "completion_length",
        "time/rollout_s",
        "time/update_s",
        "rollout_tokens_per_s",
        "rewards/digit_reward/mean",
        "rewards/length_bonus/mean",
        "rewards/nan_count",
    ):
        assert key in result.history[-1], key


def test_trafl_learned_logz_head_trains_with_its_own_lr(model_dir, tmp_path):
    from trafl.train.trainer import RLTrainer

    trainer = RLTrainer(cfg_for(model_dir, tmp_path, max_steps=2, logz="learned"), progress=False, task=DigitTask())
    groups = [g["lr"] for g in trainer.head_optimizer.param_groups]
    assert groups == [BASE["logz_lr"]]
    before = [p.detach().clone() for p in trainer.objective.parameters()]
    trainer.train()
    moved = any(not torch.equal(a, b) for a, b in zip(before, trainer.objective.parameters()))
    assert moved
    assert "trafl/logz" in trainer.train_step(2)


def test_lora_training_saves_adapter_and_merged_model(model_dir, tmp_path):
    from trafl.train.trainer import run_train

    cfg = cfg_for(
        model_dir,
        tmp_path,
        max_steps=2,
        use_peft=True,
        lora_r=4,
        lora_alpha=8,
        lora_target_modules=["q_proj", "v_proj"],
    )
    run_train(cfg, progress=False, task=DigitTask())
    assert (tmp_path / "final" / "adapter_config.json").is_file()
    from trafl.models import load_pretrained

    merged, _ = load_pretrained(tmp_path / "final-merged")
    assert merged.config.model_type == "llada"


def test_lora_targets_are_counted_and_a_name_that_matches_nothing_is_an_error(model_dir, tmp_path, caplog):
    """peft adapts the names that match and silently skips the rest when one matches (d1's and ESPO's
    Llama names on LLaDA adapt 4 of 7 projections): the trainer counts every name and refuses one that
    matches nothing, naming the model's linear layers, unless the list is foreign on purpose."""
    import logging

    from trafl.models import load_pretrained
    from trafl.train.policy import lora_target_counts, output_head_names
    from trafl.train.trainer import RLTrainer

    model, _ = load_pretrained(model_dir)
    layers = model.config.n_layers
    head = output_head_names(model)
    counts = lora_target_counts(model, ["q_proj", "ff_out", "o_proj", "gate_proj"], head)
    assert counts == {"q_proj": layers, "ff_out": layers, "o_proj": 0, "gate_proj": 0}  # the head's ff_out excluded
    assert lora_target_counts(model, ["ff_out"])["ff_out"] == layers + 1  # peft's rule alone would take the head

    lora = dict(use_peft=True, lora_r=4, lora_alpha=8, lora_target_modules=["q_proj", "o_proj", "down_proj"])
    with pytest.raises(ConfigError, match=r"\['o_proj', 'down_proj'\] match no module .*attn_out.*ff_out.*q_proj"):
        RLTrainer(cfg_for(model_dir, tmp_path / "strict", **lora), task=DigitTask(), progress=False)
    with caplog.at_level(logging.INFO, logger="trafl.train.policy"):
        trainer = RLTrainer(
            cfg_for(model_dir, tmp_path / "foreign", lora_allow_unmatched_targets=True, **lora),
            task=DigitTask(),
            progress=False,
        )
    assert f"q_proj {layers}, o_proj 0, down_proj 0" in caplog.text and "skipped" in caplog.text
    adapted = {n.split(".lora_A")[0].rsplit(".", 1)[-1] for n, _ in trainer.model.named_parameters() if ".lora_A" in n}
    assert adapted == {"q_proj"}


def _run_cli(args, env=None, **kw):
    return subprocess.run(
        [sys.executable, "-m", "trafl.cli", "train", *args], env=env or _env(), capture_output=True, text=True, **kw
    )


def _flags(d):
    out = []
    for k, v in d.items():
        out += [f"--{k.replace('_', '-')}", str(v)]
    return out


def _final_params(run_dir):
    return load_file(str(Path(run_dir) / "final" / "model.safetensors"))


@pytest.mark.slow
def test_kill_and_resume_is_bit_identical(model_dir, tmp_path):
    common = {
        **BASE,
        "model": model_dir,
        "max_steps": 5,
        "save_steps": 1,
        "method": "trafl",
        "logz": "learned",
        "save_total_limit": 5,
    }
    full = _run_cli(_flags({**common, "output_dir": tmp_path / "full"}) + ["--quiet"])
    assert full.returncode == 0, full.stderr[-3000:]

    run = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, "-m", "trafl.cli", "train", *_flags({**common, "output_dir": run}), "--quiet"],
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 300
    while not (run / "checkpoint-2").exists():
        assert proc.poll() is None, "training ended before it could be killed"
        assert time.time() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (run / "final").exists()
    # A checkpoint half-written when the process died must never be loaded:
    fake = run / ".checkpoint-9.tmp-crash"
    fake.mkdir(exist_ok=True)
    (fake / "trainer_state.json").write_text("garbage")
    (fake / "state").mkdir()
    (run / "checkpoint-8").mkdir()  # a directory without its state file is not a checkpoint
    resumed = _run_cli(_flags({**common, "output_dir": run}) + ["--resume", "--quiet"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a, b = _final_params(tmp_path / "full"), _final_params(run)
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed run differs from the uninterrupted one"
    steps = [line for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(steps) == 5


def test_bad_config_errors(model_dir, tmp_path):
    with pytest.raises(ConfigError, match="unknown config key 'num_generation'.*did you mean 'num_generations'"):
        load_config(TrainConfig, None, {"model": "m", "task": "t", "num_generation": 4})
    with pytest.raises(ConfigError, match="'learning_rate': expected a number"):
        load_config(TrainConfig, None, {"model": "m", "task": "t", "learning_rate": "fast"})
    with pytest.raises(ConfigError, match="multiple of 'num_generations'"):
        load_config(
            TrainConfig, None, {"model": "m", "task": "t", "num_generations": 3, "per_device_train_batch_size": 8}
        )
    with pytest.raises(ConfigError, match="'method': expected one of"):
        load_config(TrainConfig, None, {"model": "m", "task": "t", "method": "ppo"})
    with pytest.raises(ConfigError, match="'model' is required"):
        load_config(TrainConfig, None, {"task": "t"})
    with pytest.raises(ConfigError, match="unknown task 'nope'; valid tasks"):
        from trafl.train.trainer import RLTrainer

        RLTrainer(cfg_for(model_dir, tmp_path, task="nope"), progress=False)


class _EmptyTask(DigitTask):
    def load(self, split=None, *, path=None, limit=None):
        return []


class _NoTargetTask(DigitTask):
    def load(self, split=None, *, path=None, limit=None):
        return [{"prompt": "1+1="}]


def test_bad_dataset_errors(model_dir, tmp_path):
    from trafl.train.trainer import RLTrainer

    with pytest.raises(DataError, match="training dataset is empty"):
        RLTrainer(cfg_for(model_dir, tmp_path), task=_EmptyTask(), progress=False)
    with pytest.raises(DataError, match=r"lacks column\(s\) \['target'\]"):
        RLTrainer(cfg_for(model_dir, tmp_path), task=_NoTargetTask(), progress=False)


def test_reward_function_checks_and_nan_policy():
    prompts, comps, cols = ["a", "b"], ["7777", "1"], {"target": ["7", "7"]}

    def nan_fn(prompts, completions, **_):
        return [float("nan"), 1.0]

    def short_fn(prompts, completions, **_):
        return [1.0]

    def bad_type(prompts, completions, **_):
        return ["yes", "no"]

    total, per_fn, metrics = compute_rewards([digit_reward, nan_fn], [1.0, 1.0], prompts, comps, cols, "zero")
    assert total.tolist() == [1.0, 1.0] and metrics["rewards/nan_count"] == 1.0
    assert torch.isfinite(total).all()
    with pytest.raises(RewardError, match="'nan_fn' returned NaN for 1 of 2"):
        compute_rewards([nan_fn], [1.0], prompts, comps, cols, "error")
    with pytest.raises(RewardError, match="'short_fn' returned 1 values for 2 completions"):
        compute_rewards([short_fn], [1.0], prompts, comps, cols)
    with pytest.raises(RewardError, match="'bad_type' returned 'yes'"):
        compute_rewards([bad_type], [1.0], prompts, comps, cols)


def test_nan_rewards_never_reach_the_loss(model_dir, tmp_path):
    from trafl.train.trainer import RLTrainer

    def sometimes_nan(prompts, completions, target, **_):
        return [float("nan") if i % 3 == 0 else 1.0 for i in range(len(completions))]

    trainer = RLTrainer(
        cfg_for(model_dir, tmp_path, max_steps=2), task=DigitTask(), progress=False, reward_fns=[sometimes_nan]
    )
    result = trainer.train()
    assert all(math.isfinite(r["loss"]) for r in result.history)
    assert result.history[0]["rewards/nan_count"] == 3.0


class _LongPromptTask(DigitTask):
    """DigitTask with prompts of 4 to 11 characters (one token each) and reward weights of its own."""

    def load(self, split=None, *, path=None, limit=None):
        return [{"prompt": f"{i}+{i}=" + "7" * i, "target": "7"} for i in range(8)]

    def default_reward_weights(self):
        return [2.0, 0.5]


def test_encode_prompts_errors_or_keeps_the_last_tokens():
    from trafl.models import build_char_tokenizer
    from trafl.train.rollout import encode_prompts

    tok, task = build_char_tokenizer(ALPHABET), _LongPromptTask()
    rows = task.load()[:4]  # 4, 5, 6, 7 characters
    with pytest.raises(DataError, match="prompt of 6 tokens exceeds max_prompt_length=5.*prompt_truncation: left"):
        encode_prompts(rows, task, tok, 5, torch.device("cpu"))
    ids, mask, cut = encode_prompts(rows, task, tok, 5, torch.device("cpu"), "left")
    assert cut == 2 and ids.shape == (4, 5)
    for row, line, m in zip(rows, ids, mask):
        text = row["prompt"]
        kept = tok(text, add_special_tokens=True)["input_ids"][-5:]  # the left end is cut, as d1 and ESPO do
        assert line[mask.shape[1] - int(m.sum()) :].tolist() == kept
    assert encode_prompts(rows, task, tok, 7, torch.device("cpu"), "left")[2] == 0


def test_trainer_truncates_left_counts_it_and_uses_the_tasks_default_weights(model_dir, tmp_path):
    from trafl.train.trainer import RLTrainer

    with pytest.raises(ConfigError, match="'prompt_truncation': expected one of 'error', 'left'"):
        cfg_for(model_dir, tmp_path, prompt_truncation="right")
    cfg = cfg_for(model_dir, tmp_path, max_steps=2, max_prompt_length=6, prompt_truncation="left")
    record = RLTrainer(cfg, task=_LongPromptTask(), progress=False).train().history
    # 2 prompts per step, the long ones cut; the task's default weights (2, 0.5) make the reward
    assert [r["rollout/truncated_prompts"] for r in record] == [
        float(sum(n > 6 for n in lengths)) for lengths in _prompt_lengths(cfg, _LongPromptTask())
    ]
    assert sum(r["rollout/truncated_prompts"] for r in record) >= 1
    for r in record:
        digits, length = r["rewards/digit_reward/mean"], r["rewards/length_bonus/mean"]
        assert r["reward"] == pytest.approx(2.0 * digits + 0.5 * length) and length > 0
    with pytest.raises(DataError, match="exceeds max_prompt_length=6"):
        RLTrainer(
            cfg_for(model_dir, tmp_path / "e", max_steps=2, max_prompt_length=6), task=_LongPromptTask(), progress=False
        ).train()


def test_trainer_builds_the_task_with_its_options(model_dir, tmp_path, monkeypatch):
    import trafl.tasks
    from trafl.train.trainer import RLTrainer

    seen = {}

    def recording_get_task(name, **options):
        seen.update(name=name, **options)
        return _LongPromptTask()

    monkeypatch.setattr(trafl.tasks, "get_task", recording_get_task)
    cfg = cfg_for(model_dir, tmp_path, task="gsm8k", task_options={"prompt_template": "d1", "rewards": "d1"})
    trainer = RLTrainer(cfg, progress=False)
    assert seen == {"name": "gsm8k", "prompt_template": "d1", "rewards": "d1"}
    assert list(trainer.rollout.reward_weights) == [2.0, 0.5]  # the task's defaults; a config's weights win:
    assert list(
        RLTrainer(
            cfg_for(model_dir, tmp_path / "w", reward_weights=[1, 0]), task=_LongPromptTask(), progress=False
        ).rollout.reward_weights
    ) == [1.0, 0.0]


def _prompt_lengths(cfg, task):
    """The prompt lengths (characters = tokens) of each step's prompts, in the trainer's order."""
    from trafl.train.data import prompt_indices_for_step

    rows = task.load()
    per_step = cfg.per_device_train_batch_size // cfg.num_generations * cfg.gradient_accumulation_steps
    return [
        [len(rows[i]["prompt"]) for i in prompt_indices_for_step(len(rows), per_step, k, cfg.seed)]
        for k in range(cfg.max_steps)
    ]


def test_shipped_configs_load(monkeypatch):
    # the GPU recipes (device: cuda) load as on the machine they are for; without CUDA they are refused
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    paths = sorted((REPO / "configs").rglob("*.yaml"))
    train_configs = [p for p in paths if "accelerate" not in p.parts and "sft" not in p.parts]
    assert len(train_configs) >= 24
    for p in train_configs:
        cfg = load_config(TrainConfig, p)
        assert cfg.max_completion_length % cfg.block_length == 0
    from trafl.sft.config import SFTConfig

    for p in (REPO / "configs" / "sft").glob("*.yaml"):  # `trafl sft --config` recipes (the long base)
        assert load_config(SFTConfig, p).max_completion_length > 0


# --- fast rollouts (approximate samplers) and the step-time split ----------------------------------


def test_sampler_fields_are_checked_at_load_naming_the_trainer_field(model_dir, tmp_path):
    with pytest.raises(ConfigError, match="'rollout_threshold': must be <= 1.0"):
        cfg_for(model_dir, tmp_path, rollout_threshold=1.5)
    with pytest.raises(ConfigError, match="'rollout_cache': expected one of 'none', 'prefix', 'dual'"):
        cfg_for(model_dir, tmp_path, rollout_cache="full")
    with pytest.raises(ConfigError, match="diffusion_steps=8 must be <= max_completion_length=4"):
        cfg_for(model_dir, tmp_path, diffusion_steps=8)
    with pytest.raises(ConfigError, match="max_completion_length=4 must be a multiple of block_length=3"):
        cfg_for(model_dir, tmp_path, block_length=3)
    with pytest.raises(ConfigError, match="diffusion_steps=3 must be a multiple of the number of blocks"):
        cfg_for(model_dir, tmp_path, max_completion_length=8, diffusion_steps=3)
    cfg = cfg_for(model_dir, tmp_path, rollout_cache="dual", rollout_threshold=0.9)
    assert cfg.sampler == SamplerSettings(
        gen_length=4, steps=4, block_length=4, temperature=1.0, remasking="low_confidence", cache="dual", threshold=0.9
    )
    assert cfg.sampler.approximate and not cfg_for(model_dir, tmp_path).sampler.approximate


def test_on_policy_flag_of_each_objective():
    from trafl.objectives import OBJECTIVES

    assert {name: cls.on_policy_rollouts for name, cls in OBJECTIVES.items()} == {
        "trafl": False,
        "espo": True,
        "justgrpo": True,
        "diffu_grpo": True,
        "wd1": True,
        "spg": True,
    }


def _records(run_dir):
    import json

    return [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]


def test_approximate_rollouts_warn_once_for_on_policy_objectives_and_are_recorded(model_dir, tmp_path, caplog):
    import yaml

    from trafl.train.trainer import run_train

    over = dict(method="espo", num_iterations=1, max_steps=3, rollout_cache="dual", rollout_threshold=0.0)
    with caplog.at_level("WARNING", logger="trafl.train.trainer"):
        run_train(cfg_for(model_dir, tmp_path / "espo", **over), progress=False, task=DigitTask())
    warnings = [r for r in caplog.records if "approximate" in r.getMessage()]
    assert len(warnings) == 1 and "method 'espo'" in warnings[0].getMessage()
    saved = yaml.safe_load((tmp_path / "espo" / "train_config.yaml").read_text())
    assert (saved["rollout_cache"], saved["rollout_threshold"]) == ("dual", 0.0)
    records = _records(tmp_path / "espo")
    assert len(records) == 3
    for r in records:
        assert (r["rollout/approximate"], r["rollout/cache"], r["rollout/threshold"]) == (1.0, "dual", 0.0)
        assert r["rollout/num_forward"] == 1.0  # threshold 0 commits the whole (single) block at its first step

    caplog.clear()
    with caplog.at_level("WARNING", logger="trafl.train.trainer"):  # the exact sampler: no warning, no keys
        run_train(
            cfg_for(model_dir, tmp_path / "exact", method="espo", num_iterations=1, max_steps=1),
            progress=False,
            task=DigitTask(),
        )
    assert not [r for r in caplog.records if "approximate" in r.getMessage()]
    (record,) = _records(tmp_path / "exact")
    assert record["rollout/approximate"] == 0.0 and record["rollout/num_forward"] == 4.0
    assert "rollout/cache" not in record and "rollout/threshold" not in record


def test_trafl_trains_with_dual_cache_and_threshold_without_warning(model_dir, tmp_path, caplog):
    import time as _time

    from trafl.train.trainer import RLTrainer

    def slow_reward(prompts, completions, target, **_):
        _time.sleep(0.05)
        return digit_reward(prompts, completions, target)

    cfg = cfg_for(
        model_dir,
        tmp_path,
        method="trafl",
        max_steps=3,
        max_completion_length=8,
        diffusion_steps=8,
        block_length=4,
        rollout_cache="dual",
        rollout_threshold=0.9,
    )
    before = {k: v.clone() for k, v in RLTrainer(cfg, task=DigitTask(), progress=False).model.state_dict().items()}
    with caplog.at_level("WARNING", logger="trafl.train.trainer"):
        result = RLTrainer(cfg, task=DigitTask(), progress=False, reward_fns=[slow_reward]).train()
    assert not [r for r in caplog.records if "approximate" in r.getMessage()]
    assert len(result.history) == 3 and all(math.isfinite(r["loss"]) for r in result.history)
    after = _final_params(tmp_path)
    assert any(not torch.equal(after[k], before[k]) for k in after if k in before)  # it trained
    for r in result.history:
        assert 2.0 <= r["rollout/num_forward"] <= 8.0  # at least one pass per block, at most the steps
        assert r["time/reward_s"] >= 0.05  # the reward's time is its own (one micro-batch, one call)
        assert all(r[k] >= 0 for k in ("time/rollout_s", "time/prepare_s", "time/update_s"))
        assert r["rollout/cache"] == "dual" and r["rollout/threshold"] == 0.9
