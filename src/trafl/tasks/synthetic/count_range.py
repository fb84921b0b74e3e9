"""Count a range: a synthetic task with long answers (200-480 characters), for long canvases.

Prompt ``"137-229:"``: two three-digit numbers ``a <= b``. The one correct completion lists every
integer from ``a`` to ``b``, space-separated: ``"137 138 139 ... 229"``, of length
``4 (b - a + 1) - 1`` characters. The reward is exact match of the whole answer; a second reward
(weight 0 by default) gives partial credit, the fraction of the ``b - a + 1`` numbers written
correctly at their place.

Why this shape: the sampler's speed-ups (block KV cache, confidence-threshold decoding) have to be
measured at canvases of 256 and 512 tokens, so the task needs answers that long from a short
prompt (a long prompt would double the cost of every forward pass on a CPU). Every character is a
local function of the prompt and of the one four places to its left (the previous number, plus a
carry), and the answer ends where the count reaches ``b``; since tokens depend on their neighbours,
decoding many of them in one step (the threshold rule) can genuinely go wrong, so the accuracy it
costs is a real measurement. The shipped base (src/trafl/assets/long_base, 0.86M parameters, two
``trafl sft`` stages on one GPU and a third on a CPU) solves held-out prompts exactly; its README gives the figures.
Where to stop is the hard part: it needs the current number compared with ``b`` while the rest of
the canvas is still masks, the state the block sampler decodes from (``semi_ar_block_length`` in
``trafl sft``). The partial-credit reward is the finer signal.

Puzzles: every ``(a, b)`` with ``100 <= a <= b <= 999`` and ``min_count <= b - a + 1 <= max_count``
(57,000 with the defaults 51..120: answers of 203..479 characters, which fit a 512-token canvas with
their EOS; ``max_count=63`` keeps them under 252 characters, for a 256-token canvas). Each puzzle
goes to ``test`` / ``validation`` / ``train`` by a seeded hash of ``(a, b)`` alone (10 % / 10 % /
80 %), so the splits stay disjoint across different ``min_count`` / ``max_count`` settings: a
short-answer test set is the long one's test prompts with ``b - a + 1 <= max_count``, never a
prompt the base was trained on. Within a split, rows are ordered by that hash.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from functools import cached_property

from trafl.errors import DataError
from trafl.tasks.base import RewardFn
from trafl.tasks.synthetic.base import SyntheticTask

LOW, HIGH = 100, 999
SPLIT_FRACTIONS = (("test", 0.1), ("validation", 0.1), ("train", 0.8))


def count_answer(a: int, b: int) -> str:
    """The correct completion: the integers ``a, a + 1, ..., b`` joined by single spaces."""
    return " ".join(str(n) for n in range(a, b + 1))


def answer_length(count: int) -> int:
    """Characters of an answer with ``count`` three-digit numbers: ``4 count - 1``."""
    return 4 * count - 1


def partial_credit(completion: str, a: int, b: int) -> float:
    """``#{i : w_i = a + i} / max(n, m)`` for the completion's space-separated words ``w_0..w_{m-1}``
    and the ``n = b - a + 1`` expected numbers: 1 iff exact, extra or missing words cost credit."""
    words = completion.split(" ")
    expected = [str(n) for n in range(a, b + 1)]
    hits = sum(w == e for w, e in zip(words, expected))
    return hits / max(len(expected), len(words))


def step_share(completion: str) -> float:
    """Share of adjacent words ``(w_i, w_{i+1})`` that are three-digit numbers with ``w_{i+1} = w_i + 1``:
    how well a completion follows the counting rule locally, wherever it starts or stops (an answer
    that starts one off scores 0 partial credit but 1 here). 0 for fewer than two words."""
    words = completion.split(" ")
    ok = [len(w) == 3 and w.isdigit() for w in words]
    steps = [ok[i] and ok[i + 1] and int(words[i + 1]) == int(words[i]) + 1 for i in range(len(words) - 1)]
    return sum(steps) / len(steps) if steps else 0.0


def miss_kind(completion: str, a: int, b: int) -> str:
    """Where a completion leaves the answer ``"a a+1 ... b"``, for reading a sampler's misses.

    ``"exact"``: the answer itself. ``"ran_past"``: the whole answer, then a space and more words
    (the count did not stop at ``b``). ``"stopped_early"``: a nonempty proper prefix of the answer
    that ends between words (the count stopped before ``b``). ``"wrong"``: anything else (a wrong or
    garbled number). Surrounding whitespace is ignored, as in exact match.
    """
    answer, completion = count_answer(a, b), completion.strip()
    if completion == answer:
        return "exact"
    if completion.startswith(answer + " "):
        return "ran_past"
    if completion and answer.startswith(completion) and answer[len(completion)] == " ":
        return "stopped_early"
    return "wrong"


MISS_KINDS = ("exact", "ran_past", "stopped_early", "wrong")


class CountRange(SyntheticTask):
    name = "count_range"
    alphabet = "0123456789 -:"

    def __init__(
        self,
        seed: int = 0,
        num_train: int | None = None,
        num_eval: int = 200,
        num_val: int = 200,
        min_count: int = 51,
        max_count: int = 120,
    ) -> None:
        """``num_train`` defaults to every training puzzle; ``min_count`` / ``max_count`` bound the
        numbers in an answer (answer length ``4 count - 1``)."""
        if not 1 <= min_count <= max_count <= HIGH - LOW + 1:
            raise DataError(
                f"{self.name}: need 1 <= min_count <= max_count <= {HIGH - LOW + 1}, "
                f"got min_count={min_count}, max_count={max_count}"
            )
        super().__init__(seed=seed, num_train=num_train or 0, num_eval=num_eval, min_solutions=1)
        self.num_val = num_val
        self.train_all = num_train is None
        self.min_count = min_count
        self.max_count = max_count

    # -- the puzzle family ----------------------------------------------------------------------
    def all_puzzles(self) -> list[dict]:
        return [
            {"a": a, "b": a + n - 1}
            for n in range(self.min_count, self.max_count + 1)
            for a in range(LOW, HIGH - n + 2)
        ]

    def puzzle_prompt(self, puzzle: dict) -> str:
        return f"{puzzle['a']}-{puzzle['b']}:"

    def solutions(self, row: dict) -> list[str]:
        return [count_answer(int(row["a"]), int(row["b"]))]

    def verify(self, completion: str, row: dict) -> bool:
        return completion == count_answer(int(row["a"]), int(row["b"]))

    def well_formed(self, completion: str) -> bool:
        words = completion.split(" ")
        return bool(completion) and all(len(w) == 3 and w.isdigit() for w in words)

    def puzzles(self) -> list[dict]:
        # one answer per puzzle: no need to enumerate solution sets (the base class's filter)
        return [self.make_row(p["a"], p["b"]) for p in self.all_puzzles()]

    def make_row(self, a: int, b: int) -> dict:
        return {
            "prompt": self.puzzle_prompt({"a": a, "b": b}),
            "a": a,
            "b": b,
            "answer": count_answer(a, b),
            "num_solutions": 1,
        }

    # -- splits by a hash of (a, b), stable across min_count / max_count ---------------------------
    def split_key(self, a: int, b: int) -> float:
        """A seeded uniform number in [0, 1) that depends on the puzzle ``(a, b)`` only."""
        return random.Random(f"{self.name}-{self.seed}-{a}-{b}").random()

    def split_rows(self) -> dict[str, list[dict]]:
        return {name: list(rows) for name, rows in self._splits.items()}

    @cached_property
    def _splits(self) -> dict[str, list[dict]]:
        pools: dict[str, list[tuple[float, int, int]]] = {name: [] for name, _ in SPLIT_FRACTIONS}
        for p in self.all_puzzles():
            u = self.split_key(p["a"], p["b"])
            edge = 0.0
            for name, fraction in SPLIT_FRACTIONS:
                edge += fraction
                if u < edge or name == SPLIT_FRACTIONS[-1][0]:
                    pools[name].append((u, p["a"], p["b"]))
                    break
        sizes = {"test": self.num_eval, "validation": self.num_val, "train": None if self.train_all else self.num_train}
        out = {}
        for name, pool in pools.items():
            pool.sort()
            want = sizes[name]
            if want is not None and want > len(pool):
                raise DataError(
                    f"{self.name}: {want} {name} prompts requested but only {len(pool)} puzzles with "
                    f"{self.min_count}..{self.max_count} numbers fall in that split"
                )
            out[name] = [self.make_row(a, b) for _, a, b in pool[:want]]
        return out

    # -- rewards ----------------------------------------------------------------------------------
    def reward_functions(self) -> list[RewardFn]:
        """Exact match (weight 1 by default), well-formedness and partial credit (weight 0)."""

        def partial_reward(prompts, completions, a: Sequence[int], b: Sequence[int], **_) -> list[float]:
            return [partial_credit(c.strip(), int(x), int(y)) for c, x, y in zip(completions, a, b)]

        partial_reward.__name__ = f"{self.name}_partial"
        return [*super().reward_functions(), partial_reward]

    def sft_pairs(self, rows: Sequence[dict], samples_per_prompt: int = 1, seed: int = 0) -> list[dict]:
        """The one correct answer, ``samples_per_prompt`` times per row."""
        return super().sft_pairs(rows, samples_per_prompt, seed)
