"""Decoy + hidden rule: a task on which reward-maximising RL learns *and* locks, at CPU scale.

Prompt ``"dghl-k:"``: four allowed letters (sorted), ``-``, one *decoy* letter outside the set, ``:``.
A completion is four letters. It is **correct** iff

* every letter is in the allowed set, and
* the sum of the letters' indices (``a`` = 0, ..., ``n`` = 13) is ``= 0 (mod 3)``: the *hidden rule*,
  never stated in the prompt and never taught to the base.

Why this shape (see docs/study.md and the probe notes it builds on):

* **Hit-or-miss verifier with a partial shortcut.** About a third of the in-set strings satisfy
  the rule, so the base (which ignores it) succeeds now and then. RL can raise reward fastest with
  the shortcut "write only letters whose index is ``= 0 (mod 3)``" (``a d g j m``), which solves
  every prompt whose set holds such a letter (``has_shortcut``, about 87% of prompts) and none of
  the others. On the no-shortcut prompts only diversity helps: that is where trajectory locking
  costs pass@k at large k.
* **A concentrated error.** The base's SFT data (:meth:`DecoyRule.sft_pairs`) is, per example,
  with probability ``p_clean`` a uniformly random in-set string and otherwise such a string with one
  position replaced by the decoy. The decoy is shown in the prompt, so the error survives
  low-confidence remasking (a wrong letter spread at random would be remasked away).
* Decoys are never ``= 0 (mod 3)``, so a decoy never looks like the shortcut.

Puzzles: every 4-letter set with at least ``min_solutions`` correct strings, times ``decoys_per_set``
decoys drawn (seeded) from the letters outside the set that are not ``= 0 (mod 3)``: 2,985 puzzles
with the defaults. The split is **by letter set** (all decoys of a set go to the same split), so
held-out prompts are sets the base and the policy never saw: ``test`` (held out, scored once),
``validation`` (carved from the training family, for choosing settings) and ``train``.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence

from trafl.errors import DataError
from trafl.tasks.synthetic.base import SyntheticTask

LETTERS = "abcdefghijklmn"


def letter_index(ch: str) -> int:
    return LETTERS.index(ch)


def satisfies_rule(word: str, modulus: int = 3) -> bool:
    """The hidden rule: ``sum(index(c) for c in word) = 0 (mod modulus)``."""
    return sum(letter_index(c) for c in word) % modulus == 0


class DecoyRule(SyntheticTask):
    name = "decoy_rule"
    alphabet = LETTERS + "-:"

    def __init__(
        self,
        seed: int = 0,
        num_train: int | None = None,
        num_eval: int = 120,
        num_val: int = 60,
        decoys_per_set: int = 3,
        word_length: int = 4,
        set_size: int = 4,
        modulus: int = 3,
        min_solutions: int = 5,
        p_clean: float = 0.4,
    ) -> None:
        """``num_eval`` / ``num_val`` count letter *sets* (each gives ``decoys_per_set`` prompts);
        ``num_train`` (sets) defaults to all the rest."""
        super().__init__(seed=seed, num_train=num_train or 0, num_eval=num_eval, min_solutions=min_solutions)
        self.num_val = num_val
        self.train_all = num_train is None
        self.decoys_per_set = decoys_per_set
        self.word_length = word_length
        self.set_size = set_size
        self.modulus = modulus
        self.p_clean = p_clean

    # -- the puzzle family ----------------------------------------------------------------------
    def all_puzzles(self) -> list[dict]:
        puzzles = []
        for letters in itertools.combinations(LETTERS, self.set_size):
            allowed = "".join(letters)
            pool = [c for c in LETTERS if c not in allowed and letter_index(c) % self.modulus != 0]
            rng = random.Random(f"{self.name}-decoys-{allowed}")
            for decoy in sorted(rng.sample(pool, min(self.decoys_per_set, len(pool)))):
                puzzles.append(
                    {
                        "letters": allowed,
                        "decoy": decoy,
                        "has_shortcut": any(letter_index(c) % self.modulus == 0 for c in allowed),
                    }
                )
        return puzzles

    def puzzle_prompt(self, puzzle: dict) -> str:
        return f"{puzzle['letters']}-{puzzle['decoy']}:"

    def in_set_words(self, row: dict) -> list[str]:
        return ["".join(w) for w in itertools.product(row["letters"], repeat=self.word_length)]

    def solutions(self, row: dict) -> list[str]:
        return sorted(w for w in self.in_set_words(row) if satisfies_rule(w, self.modulus))

    def verify(self, completion: str, row: dict) -> bool:
        return (
            len(completion) == self.word_length
            and all(c in row["letters"] for c in completion)
            and satisfies_rule(completion, self.modulus)
        )

    def well_formed(self, completion: str) -> bool:
        return len(completion) == self.word_length and all(c in LETTERS for c in completion)

    # -- splits by letter set -------------------------------------------------------------------
    def split_rows(self) -> dict[str, list[dict]]:
        rows = self.puzzles()
        by_set: dict[str, list[dict]] = {}
        for row in rows:
            by_set.setdefault(row["letters"], []).append(row)
        sets = sorted(by_set)
        random.Random(f"{self.name}-split-{self.seed}").shuffle(sets)
        n_train = len(sets) - self.num_eval - self.num_val if self.train_all else self.num_train
        if n_train <= 0 or self.num_eval + self.num_val + n_train > len(sets):
            raise DataError(
                f"{self.name}: {self.num_eval} test + {self.num_val} validation + {n_train} train "
                f"letter sets requested but only {len(sets)} sets have >= {self.min_solutions} solutions"
            )
        cut = [0, self.num_eval, self.num_eval + self.num_val, self.num_eval + self.num_val + n_train]
        names = ("test", "validation", "train")
        return {name: [r for s in sets[cut[i] : cut[i + 1]] for r in by_set[s]] for i, name in enumerate(names)}

    # -- the base's data: a concentrated error ----------------------------------------------------
    def sft_pairs(self, rows: Sequence[dict], samples_per_prompt: int = 24, seed: int = 0) -> list[dict]:
        """Per example: a uniform in-set word (probability ``p_clean``, ignoring the hidden rule), else
        such a word with one uniformly chosen position replaced by the prompt's decoy."""
        rng = random.Random(f"sft-{self.name}-{seed}")
        pairs = []
        for row in rows:
            for _ in range(samples_per_prompt):
                word = [rng.choice(row["letters"]) for _ in range(self.word_length)]
                if rng.random() >= self.p_clean:
                    word[rng.randrange(self.word_length)] = row["decoy"]
                pairs.append({"prompt": self.prompt_text(row), "completion": "".join(word)})
        return pairs
