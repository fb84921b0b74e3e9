"""Every random draw of a run is derived from the config's ``seed``, through this module.

Two kinds of derivation:

* :func:`seeded_rng`: a Python ``random.Random`` seeded by the *string* ``"p0-p1-...-pn"`` of its
  parts (a salt naming the draw, the config's seed, then the step, position, ...). Seeding by a
  string hashes the whole string (SHA-512), so nearby parts give unrelated streams. The prompt
  order of each epoch, SFT's canvas draws and :func:`step_seed` go through it.
* :func:`step_seed`: a 63-bit seed for one ``torch.Generator`` (or ``torch.manual_seed``) draw of
  optimizer step ``step``: ``seeded_rng(salt, seed, step, index, sample).getrandbits(63)``. It depends
  only on *what* is drawn, never on which process draws it, so a resumed run and a run on ``n``
  processes make the same draws as one uninterrupted process.

:func:`seed_everything` seeds the global generators once at the start of a run (the model's
initialisation, LoRA's adapters, the logZ head). The values these functions return are part of
every saved run's reproducibility: changing a format string changes every run.
"""

from __future__ import annotations

import random

import numpy as np
import torch


def seeded_rng(*parts: object) -> random.Random:
    """``random.Random("p0-p1-...")``: the generator of the draw named by ``parts`` (``str`` of each, joined by ``-``)."""
    return random.Random("-".join(str(p) for p in parts))


def step_seed(seed: int, step: int, prompt_index: int, sample: int, salt: str = "rollout") -> int:
    """A 63-bit seed for one draw of step ``step`` (a rollout row, a micro-batch's masks, a process's
    global RNG, told apart by ``salt``): ``seeded_rng(salt, seed, step, prompt_index, sample).getrandbits(63)``."""
    return seeded_rng(salt, seed, step, prompt_index, sample).getrandbits(63)


def seed_everything(seed: int) -> None:
    """Seed Python's, numpy's and torch's global generators with ``seed`` (numpy's modulo 2**32)."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
