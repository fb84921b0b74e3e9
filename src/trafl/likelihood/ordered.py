"""Exact log-likelihood of a completion along a given unmasking order.

If position ``i`` is revealed at step ``o_i`` (positions sharing a step are revealed together),

    log p_o(y|x) = sum_i log p(y_i | x, y_j for o_j < o_i, every other position masked).

* ``autoregressive`` (JustGRPO): ``o_i = i``, the exact left-to-right log-likelihood.
* ``trajectory``: ``o_i`` = the sampler step at which position ``i`` was committed. Under random
  remasking the position choices do not depend on the model, so this is the log-probability of the
  rollout's denoising trajectory up to a constant that cancels between policy, old policy and
  reference.

Each (row, step) pair needs its own forward pass; the ``N * S`` canvases are built lazily and run
``chunk_size`` at a time.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from trafl.likelihood.batch import CanvasBatch
from trafl.likelihood.output import SurrogateOutput
from trafl.likelihood.tokens import mask_completion, token_logprobs
from trafl.models.interface import mask_token_id_of


@dataclass(frozen=True)
class OrderedChunk:
    """One forward pass of an ordered likelihood: canvas ``j`` is row ``rows[j]`` with every position
    revealed at step ``>= steps[j]`` masked; it scores the positions revealed at step ``steps[j]``."""

    rows: torch.Tensor  # [c] long
    steps: torch.Tensor  # [c, 1] long


def ordered_chunks(order: torch.Tensor, chunk_size: int = 64) -> list[OrderedChunk]:
    """Every (row, step) pair of ``order`` ``[N, L]`` that reveals at least one position, ``chunk_size``
    pairs per chunk (row-major): each position of each row is scored by exactly one pair."""
    steps = torch.unique(order)
    present = (order.unsqueeze(1) == steps.view(1, -1, 1)).any(dim=-1)  # [N, S]
    rows, step_idx = present.nonzero(as_tuple=True)
    step_vals = steps[step_idx]
    return [
        OrderedChunk(rows[start : start + chunk_size], step_vals[start : start + chunk_size].unsqueeze(1))
        for start in range(0, rows.numel(), chunk_size)
    ]


def chunk_logprobs(model, batch: CanvasBatch, order: torch.Tensor, chunk: OrderedChunk) -> torch.Tensor:
    """``[c, L]``: ``log p(y_i | x, y_j for o_j < s)`` at the positions ``i`` of row ``r`` with ``o_i = s``
    (for each pair ``(r, s)`` of ``chunk``), 0 at the others. Differentiable unless under ``no_grad``."""
    row_order = order[chunk.rows]
    noisy = mask_completion(
        batch.input_ids[chunk.rows], row_order >= chunk.steps, batch.prompt_length, mask_token_id_of(model)
    )
    logp = token_logprobs(
        model, noisy, batch.attention_mask[chunk.rows], batch.completion[chunk.rows], batch.prompt_length
    )
    return logp * (row_order == chunk.steps).float()


def checked_order(batch: CanvasBatch, order: torch.Tensor) -> torch.Tensor:
    """``order`` as a long tensor on the batch's device, after checking it is ``[N, L]``."""
    n, length = batch.completion.shape
    if order.shape != (n, length):
        raise ValueError(f"order has shape {tuple(order.shape)}, expected {(n, length)}")
    return order.to(batch.input_ids.device).long()


def ordered_loglik(model, batch: CanvasBatch, order: torch.Tensor, *, chunk_size: int = 64) -> SurrogateOutput:
    """Token log-probabilities ``[N, L]`` of each completion revealed in the order ``order`` ``[N, L]``.

    Every chunk's graph is kept until the caller's backward pass; an objective whose loss is a sum of
    per-token terms can instead backpropagate chunk by chunk (:func:`ordered_chunks`,
    :func:`chunk_logprobs`; ``trafl.objectives.chunked``).
    """
    order = checked_order(batch, order)
    token_logp = torch.zeros(batch.completion.shape, device=batch.input_ids.device, dtype=torch.float32)
    for chunk in ordered_chunks(order, chunk_size):
        token_logp = token_logp.index_add(0, chunk.rows, chunk_logprobs(model, batch, order, chunk))
    return SurrogateOutput(token_logp=token_logp)


def left_to_right_order(batch: CanvasBatch) -> torch.Tensor:
    """``[N, L]`` ``o_i = i``: position ``i`` is revealed at step ``i``."""
    n, length = batch.completion.shape
    return torch.arange(length, device=batch.input_ids.device).expand(n, length)


def autoregressive(model, batch: CanvasBatch, *, chunk_size: int = 64) -> SurrogateOutput:
    """Exact left-to-right ``log p(y|x) = sum_t log p(y_t | x, y_<t, y_>=t masked)``."""
    return ordered_loglik(model, batch, left_to_right_order(batch), chunk_size=chunk_size)


def trajectory(model, batch: CanvasBatch, commit_step: torch.Tensor, *, chunk_size: int = 64) -> SurrogateOutput:
    """Log-probability of the sampled denoising trajectory (order = the sampler's commit steps)."""
    return ordered_loglik(model, batch, commit_step, chunk_size=chunk_size)
