"""Toys for checks that run the real trainer: a digit task and a freshly initialised tiny model.

The test suite and the GPU checks under benchmarks/ both train on these, and a launched subprocess
finds the task by name (``task: trafl.testing:DigitTask``), so they live in the package rather than
in tests/: a benchmark then needs nothing outside ``trafl`` and ``benchmarks``.
"""

from __future__ import annotations

from pathlib import Path

import torch

from trafl.tasks.base import Task

#: The toy model's characters: the prompts ``i+i=`` and the answers (digits).
ALPHABET = list("0123456789+=")


def digit_reward(prompts, completions, target, **_):
    """Fraction of the completion's characters equal to the row's target digit."""
    return [sum(ch == t for ch in c) / 4.0 for c, t in zip(completions, target)]


def length_bonus(prompts, completions, **_):
    return [min(len(c), 4) / 4.0 for c in completions]


class DigitTask(Task):
    """Eight prompts ``i+i=`` whose reward counts the digit 7 in a 4-character answer."""

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


def make_model_dir(path: Path, preset: str = "micro", seed: int = 0) -> Path:
    """A freshly initialised model + character tokenizer (:data:`ALPHABET`) saved in HF format."""
    from trafl.models import build_char_tokenizer, build_model, tokenizer_fields

    tok = build_char_tokenizer(ALPHABET)
    torch.manual_seed(seed)
    model = build_model(preset, **tokenizer_fields(tok))
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path
