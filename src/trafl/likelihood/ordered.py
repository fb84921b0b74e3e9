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

import torch

from trafl.likelihood.batch import CanvasBatch
from trafl.likelihood.output import SurrogateOutput
from trafl.likelihood.tokens import mask_completion, token_logprobs
from trafl.models.interface import mask_token_id_of


def ordered_loglik(model, batch: CanvasBatch, order: torch.Tensor, *, chunk_size: int = 64) -> SurrogateOutput:
    """Token log-probabilities ``[N, L]`` of each completion revealed in the order ``order`` ``[N, L]``."""
    n, length = batch.completion.shape
    if order.shape != (n, length):
        raise ValueError(f"order has shape {tuple(order.shape)}, expected {(n, length)}")
    order = order.to(batch.input_ids.device).long()
    mask_id = mask_token_id_of(model)
    p = batch.prompt_length
    # every (row, step) pair that reveals at least one position
    steps = torch.unique(order)
    present = (order.unsqueeze(1) == steps.view(1, -1, 1)).any(dim=-1)  # [N, S]
    rows, step_idx = present.nonzero(as_tuple=True)
    step_vals = steps[step_idx]
    token_logp = torch.zeros(n, length, device=batch.input_ids.device, dtype=torch.float32)
    for start in range(0, rows.numel(), chunk_size):
        r = rows[start : start + chunk_size]
        s = step_vals[start : start + chunk_size].unsqueeze(1)
        row_order = order[r]
        noisy = mask_completion(batch.input_ids[r], row_order >= s, p, mask_id)
        logp = token_logprobs(model, noisy, batch.attention_mask[r], batch.completion[r], p)
        revealed = (row_order == s).float()
        token_logp = token_logp.index_add(0, r, logp * revealed)
    return SurrogateOutput(token_logp=token_logp)


def autoregressive(model, batch: CanvasBatch, *, chunk_size: int = 64) -> SurrogateOutput:
    """Exact left-to-right ``log p(y|x) = sum_t log p(y_t | x, y_<t, y_>=t masked)``."""
    n, length = batch.completion.shape
    order = torch.arange(length, device=batch.input_ids.device).expand(n, length)
    return ordered_loglik(model, batch, order, chunk_size=chunk_size)


def trajectory(model, batch: CanvasBatch, commit_step: torch.Tensor, *, chunk_size: int = 64) -> SurrogateOutput:
    """Log-probability of the sampled denoising trajectory (order = the sampler's commit steps)."""
    return ordered_loglik(model, batch, commit_step, chunk_size=chunk_size)
