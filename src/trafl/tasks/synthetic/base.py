"""Synthetic tasks with many correct answers per prompt, for CPU-scale studies.

A synthetic task is a finite family of *puzzles*. Each puzzle has a short prompt and a set of
correct completions that the task can enumerate exactly, so that

* the verifier is exact and fast (no parsing heuristics),
* SFT data can draw completions *uniformly* from the correct set (a base model that covers all
  solutions equally, the situation in which trajectory locking is visible),
* the number of distinct correct answers the model finds can be compared with the true count.

Train and held-out prompts are disjoint: all puzzles are listed in a fixed order, shuffled with the
seed, and the first ``num_eval`` go to ``test``, the next ``num_train`` to ``train``.
Rows carry ``prompt``, the puzzle's parameters, ``answer`` (one correct completion, for display)
and ``num_solutions``.
"""

from __future__ import annotations

import json
import random
from abc import abstractmethod
from collections.abc import Sequence
from pathlib import Path

from trafl.errors import DataError
from trafl.tasks.base import RewardFn, Task
from trafl.tasks.loading import convert, read_records
from trafl.utils.io import atomic_write_text


class SyntheticTask(Task):
    kind = "synthetic"
    train_split, eval_split = "train", "test"
    #: every character a prompt or a completion can contain (for a character-level tokenizer)
    alphabet: str = ""

    def __init__(self, seed: int = 0, num_train: int = 2000, num_eval: int = 200, min_solutions: int = 5) -> None:
        self.seed = seed
        self.num_train = num_train
        self.num_eval = num_eval
        self.min_solutions = min_solutions

    # -- the puzzle family ------------------------------------------------------------------
    @abstractmethod
    def all_puzzles(self) -> list[dict]:
        """Every puzzle's parameters, in a fixed order (e.g. ``{"digits": "235", "target": 11}``)."""

    @abstractmethod
    def puzzle_prompt(self, puzzle: dict) -> str:
        """The prompt string of a puzzle."""

    @abstractmethod
    def solutions(self, row: dict) -> list[str]:
        """All correct completions of a puzzle, sorted."""

    @abstractmethod
    def verify(self, completion: str, row: dict) -> bool:
        """Exact check of one completion (must agree with ``solutions``)."""

    # -- data ------------------------------------------------------------------------------
    def puzzles(self) -> list[dict]:
        """Puzzles with at least ``min_solutions`` correct answers, as rows."""
        rows = []
        for puzzle in self.all_puzzles():
            row = {"prompt": self.puzzle_prompt(puzzle), **puzzle}
            sols = self.solutions(row)
            if len(sols) >= self.min_solutions:
                rows.append({**row, "answer": sols[0], "num_solutions": len(sols)})
        return rows

    def split_rows(self) -> dict[str, list[dict]]:
        rows = self.puzzles()
        random.Random(f"{self.name}-{self.seed}").shuffle(rows)
        if self.num_eval + self.num_train > len(rows):
            raise DataError(
                f"{self.name}: {self.num_train} train + {self.num_eval} test prompts requested but only "
                f"{len(rows)} puzzles have >= {self.min_solutions} solutions"
            )
        return {"test": rows[: self.num_eval], "train": rows[self.num_eval : self.num_eval + self.num_train]}

    def load(self, split: str | None = None, *, path: str | None = None, limit: int | None = None) -> list[dict]:
        if path:
            rows = read_records(path)
            missing = [k for k in ("prompt", *self.all_puzzles()[0]) if rows and k not in rows[0]]
            if missing:
                raise DataError(f"{path}: {self.name} rows need field(s) {', '.join(missing)}")
            return convert(rows, lambda r: r, limit)
        split = split or self.train_split
        splits = self.split_rows()
        if split not in splits:
            raise DataError(f"{self.name}: unknown split '{split}' (valid: {', '.join(splits)})")
        return splits[split][:limit] if limit is not None else splits[split]

    def sft_pairs(self, rows: Sequence[dict], samples_per_prompt: int = 8, seed: int = 0) -> list[dict]:
        """``samples_per_prompt`` completions per row, each drawn uniformly from its correct set."""
        rng = random.Random(f"sft-{self.name}-{seed}")
        pairs = []
        for row in rows:
            sols = self.solutions(row)
            for _ in range(samples_per_prompt):
                pairs.append({"prompt": self.prompt_text(row), "completion": rng.choice(sols)})
        return pairs

    def write_sft(
        self, path: str | Path, rows: Sequence[dict] | None = None, samples_per_prompt: int = 8, seed: int = 0
    ) -> int:
        """Write SFT pairs (``prompt``, ``completion``) as JSONL; returns the number of lines."""
        pairs = self.sft_pairs(self.load("train") if rows is None else rows, samples_per_prompt, seed)
        atomic_write_text(path, "".join(json.dumps(p) + "\n" for p in pairs))
        return len(pairs)

    # -- the Task contract -----------------------------------------------------------------
    def prompt_text(self, row: dict) -> str:
        return row["prompt"]

    def is_correct(self, completion: str, row: dict) -> bool:
        return self.verify(completion.strip(), row)

    def reward_functions(self) -> list[RewardFn]:
        task = self

        def correctness_reward(prompts, completions, **columns) -> list[float]:
            rows = [dict(zip(columns, values)) for values in zip(*columns.values())]
            return [float(task.is_correct(c, r)) for c, r in zip(completions, rows)]

        def format_reward(prompts, completions, **columns) -> list[float]:
            return [float(task.well_formed(c.strip())) for c in completions]

        correctness_reward.__name__ = f"{self.name}_correct"
        format_reward.__name__ = f"{self.name}_format"
        return [correctness_reward, format_reward]

    def well_formed(self, completion: str) -> bool:
        return bool(completion) and all(ch in self.alphabet for ch in completion)
