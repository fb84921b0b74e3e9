"""A toy task and a tiny model directory for trainer tests (importable by subprocesses:
``task: rl_toys:DigitTask`` with ``tests/`` on PYTHONPATH)."""

from __future__ import annotations

from pathlib import Path

import torch

from trafl.tasks.base import Task

ALPHABET = list("0123456789+=")


def digit_reward(prompts, completions, target, **_):
    """Fraction of the completion's characters equal to the row's target digit."""
    return [sum(ch == t for ch in c) / 4.0 for c, t in zip(completions, target)]


def length_bonus(prompts, completions, **_):
    return [min(len(c), 4) / 4.0 for c in completions]


class DigitTask(Task):
    name = "digits"
    kind = "synthetic"
    train_split = "train"
    required_columns = ("target",)

    def load(self, split=None, *, path=None, limit=None):
        rows = [{"prompt": f"{i}+{i}=", "target": "7"} for i in range(8)]
        return rows[:limit] if limit else rows

    def prompt_text(self, row):
        return row["prompt"]

    def reward_functions(self):
        return [digit_reward, length_bonus]

    def is_correct(self, completion, row):
        return completion.count(row["target"]) >= 3


# ---- the toy learning check (tests/test_train.py; its margin is measured by tests/learning_spread.py) ----

#: Optimizer steps of the learning check: 30 rollout batches of 8 prompts x 4 samples.
LEARNING_STEPS = 30

#: Each method's settings in the learning check, on top of the trainer test's base config; the rest is
#: the method's own recipe (ESPO 8 and diffu-GRPO 12 inner iterations, JustGRPO left to right at T = 1).
#: diffu-GRPO takes 1e-3 instead of the shared 3e-3: with its 12 inner iterations per batch, 3e-3
#: overshoots on this toy and oscillates (measured: reward 0.97 at step 12, 0.0 at step 29 under
#: AVX2 kernels), so whether it ends high depended on the CPU's float rounding.
LEARNING_SETTINGS: dict[str, dict] = {
    "trafl": {"beta": 0.5, "logz": "vargrad"},
    "espo": {},
    "justgrpo": {},
    "diffu_grpo": {"learning_rate": 1e-3},
}

#: The bar every method's :func:`learning_gain` must clear. Measured over 8 seeds x 3 CPU kernel sets x
#: 1 and 2 threads (tests/learning_spread.py; the table is in tests/test_train.py), it lies at least 4
#: standard deviations below each method's mean gain and below every single run.
LEARNING_MARGIN = 0.1


def learning_gain(rewards: list[float]) -> float:
    """Mean reward of the last 10 steps minus that of the first 3 (whose rollouts come from, or near,
    the base model): the end of training against its start, each averaged over many rollouts."""
    if len(rewards) < 13:
        raise ValueError(f"the learning check needs at least 13 steps, got {len(rewards)}")
    return sum(rewards[-10:]) / 10 - sum(rewards[:3]) / 3


def make_model_dir(path: Path, preset: str = "micro", seed: int = 0) -> Path:
    """A freshly initialised model + character tokenizer saved in HF format."""
    from trafl.models import build_char_tokenizer, build_model, tokenizer_fields

    tok = build_char_tokenizer(ALPHABET)
    torch.manual_seed(seed)
    model = build_model(
        preset,
        **tokenizer_fields(tok),
    )
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path
