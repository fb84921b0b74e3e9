"""Randomness of the sampler: uniform draws per output row, and Gumbel-max sampling.

``generator`` is ``None`` (torch's global RNG), one :class:`torch.Generator` shared by the batch,
or a list with one generator per output row. With a list, row ``r``'s draws come only from
``generator[r]`` and have a shape that does not depend on the batch (not on the prompt's padding
either), so a row's sample is independent of which other rows are sampled with it.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import torch

Generators = torch.Generator | Sequence[torch.Generator] | None


def uniform(shape: tuple[int, ...], generator: Generators, device: torch.device) -> torch.Tensor:
    """``U[0, 1)`` float64 draws of ``shape = (rows, ...)``; with a list of generators, row ``r`` from ``generator[r]``."""
    if generator is None or isinstance(generator, torch.Generator):
        gen_device = generator.device if generator is not None else device
        return torch.rand(shape, generator=generator, dtype=torch.float64, device=gen_device).to(device)
    rows = [torch.rand(shape[1:], generator=g, dtype=torch.float64, device=g.device) for g in generator]
    return torch.stack(rows).to(device)


def gumbel_argmax(logits: torch.Tensor, temperature: float, u: torch.Tensor | None) -> torch.Tensor:
    """Sample ``argmax_v`` of ``softmax(logits / T)`` by the Gumbel-max trick, in float64.

    LLaDA writes the perturbed score as ``exp(l_v) / (-log u_v)^T``; we take its logarithm,

        x0 = argmax_v  l_v - T * log(-log u_v),      u_v ~ U(0, 1) i.i.d.,

    which has the same argmax (log is increasing) and cannot overflow. Since ``-log(-log u)`` is a
    standard Gumbel variable, ``x0 ~ softmax(l / T)``. At ``T = 0`` this is ``argmax_v l_v`` and
    ``u`` is not used. ``u`` (float64, shaped like ``logits``) is overwritten: at a 126k vocabulary
    each temporary is as large as the logits, so the noise is transformed in place.
    """
    if temperature == 0:
        return logits.argmax(dim=-1)
    if u is None:
        raise ValueError("gumbel_argmax needs the uniforms u at temperature > 0")
    scores = u.log_().neg_().log_().mul_(-temperature).add_(logits)
    return scores.argmax(dim=-1)


def row_seed(seed: int, prompt_index: int, sample_index: int) -> int:
    """A 63-bit seed for one (prompt, sample) row that depends only on ``seed`` and the row's identity."""
    return random.Random(f"trafl.sample-{seed}-{prompt_index}-{sample_index}").getrandbits(63)


def row_generators(
    seed: int, num_prompts: int, num_samples: int, device: torch.device | str = "cpu", first_prompt: int = 0
) -> list[torch.Generator]:
    """One generator per output row, prompt-major, seeded by :func:`row_seed`."""
    return [
        torch.Generator(device=device).manual_seed(row_seed(seed, first_prompt + i, j))
        for i in range(num_prompts)
        for j in range(num_samples)
    ]
