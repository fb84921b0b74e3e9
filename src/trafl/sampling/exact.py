"""The sampler's exact law on tiny problems, by enumerating every step's random choices.

For a fixed prompt, :func:`generate` is a Markov chain on partially masked canvases. At a step with
masked block positions ``M`` that must commit ``k`` of them, let ``p_i = softmax(l_i / T)`` (a point
mass on ``argmax l_i`` at ``T = 0``; the mask token excluded, as in the sampler). Then

* ``random`` remasking: the committed set ``S`` is uniform over the ``k``-subsets of ``M`` and
  independent of the proposals, so
  ``P(z -> z[S := v]) = C(|M|, k)^{-1} prod_{i in S} p_i(v_i)``;
* ``low_confidence``: all proposals ``v in V^M`` are drawn jointly with probability
  ``prod_{i in M} p_i(v_i)``; they determine ``S`` = the ``k`` positions of largest
  ``c_i = softmax(l_i)(v_i)`` (ties to the leftmost position, as in
  :func:`~trafl.sampling.schedule.select_top_k`), and the chain moves to ``z[S := v_S]``.

Propagating the distribution over canvases through all steps gives ``P(y | x)`` for every
completion ``y``. The cost grows like ``V^{block_length}`` per state, so this is for vocabularies
and lengths of a few tokens (tests and toy studies).
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from typing import Any

import torch

from trafl.errors import ConfigError
from trafl.models.interface import mask_token_id_of
from trafl.sampling.generate import _block_logits, validate
from trafl.sampling.schedule import num_transfer_tokens
from trafl.sampling.settings import SamplerSettings

State = tuple[int, ...]


def _token_probs(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """``[..., V]`` proposal distribution: ``softmax(l / T)``, or a point mass on ``argmax l`` at ``T = 0``."""
    if temperature == 0:
        return torch.nn.functional.one_hot(logits.argmax(dim=-1), logits.shape[-1]).to(torch.float64)
    return torch.softmax(logits / temperature, dim=-1)


def _support(p: torch.Tensor) -> list[list[tuple[int, float]]]:
    """For each position of ``p`` ``[N, V]`` the (token, probability) pairs with positive probability."""
    return [[(v, float(row[v])) for v in torch.nonzero(row > 0).flatten().tolist()] for row in p]


def _transitions_random(state: State, offset: int, masked: list[int], k: int, p: torch.Tensor) -> dict[State, float]:
    out: dict[State, float] = defaultdict(float)
    support = _support(p)
    subsets = list(itertools.combinations(range(len(masked)), k))
    for subset in subsets:
        for choice in itertools.product(*(support[masked[a]] for a in subset)):
            new = list(state)
            prob = 1.0 / len(subsets)
            for a, (v, pv) in zip(subset, choice):
                new[offset + masked[a]] = v
                prob *= pv
            out[tuple(new)] += prob
    return out


def _transitions_low_confidence(
    state: State, offset: int, masked: list[int], k: int, p: torch.Tensor, conf: torch.Tensor
) -> dict[State, float]:
    out: dict[State, float] = defaultdict(float)
    support = _support(p)
    for draw in itertools.product(*(support[i] for i in masked)):
        scores = [float(conf[i, v]) for i, (v, _) in zip(masked, draw)]
        ranked = sorted(range(len(masked)), key=lambda a: (-scores[a], masked[a]))
        new = list(state)
        for a in ranked[:k]:
            new[offset + masked[a]] = draw[a][0]
        out[tuple(new)] += math.prod(pv for _, pv in draw)
    return out


@torch.no_grad()
def exact_distribution(
    model: Any,
    prompt_ids: torch.Tensor | list[int],
    settings: SamplerSettings,
    *,
    mask_token_id: int | None = None,
) -> dict[tuple[int, ...], float]:
    """``{completion: probability}`` of :func:`~trafl.sampling.generate` with ``settings`` for one
    unpadded prompt.

    Completions with probability 0 are absent; the values sum to 1 (up to rounding). The model is
    called on batches of canvases, one batch per step. Only the exact sampler has this law: settings
    whose cache or threshold approximate it (:attr:`SamplerSettings.approximate`) are an error.
    """
    if mask_token_id is None:
        mask_token_id = mask_token_id_of(model)
    prompt = torch.as_tensor(prompt_ids, dtype=torch.long).flatten()
    validate(settings, prompt_length=prompt.numel(), num_samples=1, max_length=None)
    if settings.approximate:
        raise ConfigError(
            f"exact_distribution enumerates the exact sampler; cache={settings.cache!r}, "
            f"threshold={settings.threshold} approximate it"
        )
    gen_length, steps, block_length = settings.gen_length, settings.resolved_steps, settings.block_length
    temperature, remasking = settings.temperature, settings.remasking
    num_blocks = gen_length // block_length
    steps_per_block = steps // num_blocks
    # Every block is fully masked when it starts (nothing right of a block is committed early).
    counts = num_transfer_tokens(torch.ones(1, block_length, dtype=torch.bool), steps_per_block)[0].tolist()

    dist: dict[State, float] = {(mask_token_id,) * gen_length: 1.0}
    for block in range(num_blocks):
        offset = block * block_length
        for j in range(steps_per_block):
            states = list(dist)
            canvas = torch.cat([prompt.expand(len(states), -1), torch.tensor(states, dtype=torch.long)], dim=1)
            lo = prompt.numel() + offset
            logits = _block_logits(model, canvas, torch.ones_like(canvas), lo, lo + block_length, mask_token_id)
            probs = _token_probs(logits, temperature)
            conf = torch.softmax(logits, dim=-1)
            nxt: dict[State, float] = defaultdict(float)
            for r, state in enumerate(states):
                masked = [i for i in range(block_length) if state[offset + i] == mask_token_id]
                if remasking == "random":
                    moves = _transitions_random(state, offset, masked, counts[j], probs[r])
                else:
                    moves = _transitions_low_confidence(state, offset, masked, counts[j], probs[r], conf[r])
                for new, q in moves.items():
                    nxt[new] += dist[state] * q
            dist = dict(nxt)
    return dist
