"""The task contract shared by the trainer and the evaluator.

A task turns dataset rows into prompts and grades completions. Its options are the keyword
arguments of its constructor, typed (:func:`trafl.tasks.task_options` reads them; a config's
``task_options`` is checked against them at load time). Rows are plain dicts; every row
carries at least ``prompt`` (the user-facing question text, before any chat template) plus whatever
columns its reward functions need (``answer``, ``tests``, ...). Reward functions follow TRL's
signature ``fn(prompts, completions, **columns) -> list[float]`` where ``columns`` holds one list
per dataset column, aligned with ``prompts``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, Literal

RewardFn = Callable[..., list[float]]
#: The held-out splits a study scores: ``test`` (reported once) or ``validation`` (for choosing settings).
EvalSplit = Literal["test", "validation"]


class Task(ABC):
    """One dataset plus its prompt template, answer extraction and rewards."""

    #: registry name, e.g. ``"gsm8k"``
    name: str = ""
    #: ``"math"``, ``"code"`` or ``"synthetic"``
    kind: str = ""
    #: default splits for training and evaluation
    train_split: str | None = None
    eval_split: str | None = None

    @abstractmethod
    def load(self, split: str | None = None, *, path: str | None = None, limit: int | None = None) -> list[dict]:
        """Rows of the dataset: from ``path`` (a local JSONL or JSON file) when given, else from
        the Hugging Face hub (or the bundled data, for tasks that ship theirs)."""

    @abstractmethod
    def prompt_text(self, row: dict) -> str:
        """The user message for ``row`` (instructions + question), before any chat template."""

    def format_prompt(self, row: dict, tokenizer: Any = None) -> str:
        """The string fed to the model: the tokenizer's chat template when it has one,
        else the plain prompt text."""
        text = self.prompt_text(row)
        template = getattr(tokenizer, "chat_template", None) if tokenizer is not None else None
        if template:
            return tokenizer.apply_chat_template(
                [{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True
            )
        return text

    @abstractmethod
    def reward_functions(self) -> list[RewardFn]:
        """The reward functions used for training, in TRL's signature."""

    def default_reward_weights(self) -> list[float]:
        """The weights of :meth:`reward_functions` when a training config gives no ``reward_weights``:
        1 for the first (correctness), 0 for the rest (logged, not trained on). A task whose rewards
        come from a recipe that weights them otherwise (d1: every reward, weight 1) returns that."""
        return [1.0] + [0.0] * (len(self.reward_functions()) - 1)

    @abstractmethod
    def is_correct(self, completion: str, row: dict) -> bool:
        """Whether ``completion`` solves ``row`` (what pass@k counts)."""

    def answer_key(self, completion: str, row: dict) -> str | None:
        """A normalised identity of the completion's final answer (or program), used to count
        distinct correct solutions. ``None`` when nothing can be extracted."""
        return " ".join(completion.split()) or None

    def grade_batch(self, completions: Sequence[str], rows: Sequence[dict]) -> list[bool]:
        """Grade many completions (tasks with expensive graders override this to parallelise)."""
        return [self.is_correct(c, r) for c, r in zip(completions, rows)]
