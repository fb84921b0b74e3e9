"""The masked-diffusion evidence lower bound of a completion.

For a completion ``y`` of length ``L`` after prompt ``x``:

    ELBO(y|x) = E_{m ~ U{1..L}} E_{M : |M| = m} [ (L / m) * sum_{i in M} log p(y_i | x, y with M masked) ]

Equivalently ``ELBO = E_sigma[ log p_sigma(y) ]``, the average over uniformly random unmasking
orders ``sigma`` of the order's left-to-right log-likelihood, so ``ELBO <= log E_sigma p_sigma(y)
= log P(y)`` (Jensen) with equality when the conditionals agree across orders. The Monte-Carlo
estimate averages the bracket over the ``K`` draws of :func:`~trafl.likelihood.masks.draw_elbo_masks`.
The prompt is never masked.
"""

from __future__ import annotations

import torch

from trafl.likelihood.batch import CanvasBatch
from trafl.likelihood.masks import ElboMasks
from trafl.likelihood.output import SurrogateOutput
from trafl.likelihood.tokens import mask_completion, token_logprobs
from trafl.models.interface import mask_token_id_of


def elbo_weights(masked: torch.Tensor, scale: float | None = None) -> torch.Tensor:
    """``[N, K, L]`` weights ``(scale / m) * 1[i in M]`` of the ELBO's per-draw sum (``scale``: ``L``
    by default; ``L + 1`` for ESPO's draws with ``m ~ U{0..L}``; an empty draw weighs nothing)."""
    length = masked.shape[-1]
    m = masked.sum(dim=-1, keepdim=True).clamp(min=1).float()
    return masked.float() * ((length if scale is None else scale) / m)


def elbo(model, batch: CanvasBatch, masks: ElboMasks, *, micro_batch_size: int | None = None) -> SurrogateOutput:
    """Monte-Carlo ELBO of every completion in ``batch`` under ``model`` with the given masks.

    Returns a :class:`SurrogateOutput` whose ``per_draw`` ``[N, K]`` holds each draw's estimate,
    ``value`` ``[N]`` their mean, and ``token_logp`` ``[N, L]`` each position's share of it.
    Differentiable in the model's parameters unless called under ``torch.no_grad()``.
    """
    n, k, length = masks.masked.shape
    if n != len(batch) or length != batch.gen_length:
        raise ValueError(
            f"masks {tuple(masks.masked.shape)} do not fit a batch of {len(batch)} canvases with L={batch.gen_length}"
        )
    ids = batch.input_ids.repeat_interleave(k, dim=0)
    attn = batch.attention_mask.repeat_interleave(k, dim=0)
    flat_masked = masks.masked.reshape(n * k, length)
    noisy = mask_completion(ids, flat_masked, batch.prompt_length, mask_token_id_of(model))
    logp = token_logprobs(model, noisy, attn, ids[:, batch.prompt_length :], batch.prompt_length, micro_batch_size)
    contrib = logp.view(n, k, length) * elbo_weights(masks.masked, masks.weight_scale)
    return SurrogateOutput(token_logp=contrib.mean(dim=1), per_draw=contrib.sum(dim=-1))
