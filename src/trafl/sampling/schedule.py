"""How many tokens each denoising step commits, and which ones.

LLaDA's reverse process discretises ``t in [0, 1]`` into ``s`` equal intervals under a linear noise
schedule, so every step should unmask the same expected number of tokens. With ``n`` masked tokens
in a block the counts are made integral by spreading the remainder over the first steps:

    k_j = floor(n / s) + [j < n mod s],        j = 0, ..., s - 1,       sum_j k_j = n.

Given per-position confidences, a step commits the ``k`` most confident still-masked positions of
its row (rows may commit different numbers of tokens).
"""

from __future__ import annotations

import torch


def num_transfer_tokens(mask_index: torch.Tensor, steps: int) -> torch.Tensor:
    """``[B, steps]`` tokens committed at each step for the ``[B, n_positions]`` boolean ``mask_index``.

    ``k_{b,j} = n_b // steps + (j < n_b mod steps)`` with ``n_b`` the number of masked positions of
    row ``b``; each row sums to ``n_b``.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    n = mask_index.sum(dim=-1, keepdim=True).to(torch.long)  # [B, 1]
    j = torch.arange(steps, device=mask_index.device)  # [steps]
    return n // steps + (j < n % steps).to(torch.long)


def select_top_k(confidence: torch.Tensor, k: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    """``[B, N]`` boolean: for each row ``b`` the ``k_b`` candidates of highest ``confidence``.

    ``confidence`` is ``[B, N]``, ``k`` is ``[B]`` (at most the number of candidates of its row) and
    ``candidates`` ``[B, N]`` boolean. Ties are broken towards the leftmost position (a stable sort),
    so the choice is a deterministic function of the confidences. Batched: every row is ranked by
    one sort and keeps the positions of rank ``< k_b``.
    """
    score = torch.where(candidates, confidence, torch.full_like(confidence, -torch.inf))
    order = torch.sort(score, dim=-1, descending=True, stable=True).indices  # [B, N]
    rank = torch.empty_like(order).scatter_(
        -1, order, torch.arange(order.shape[-1], device=order.device).expand_as(order)
    )
    return (rank < k.unsqueeze(-1)) & candidates


def above_threshold(confidence: torch.Tensor, candidates: torch.Tensor, threshold: float) -> torch.Tensor:
    """``[B, N]`` boolean: the candidates whose confidence exceeds ``threshold`` (parallel decoding).

        commit_i = candidate_i and c_i > tau

    Used on top of the scheduled top-k (which commits at least one position per step), so a step
    commits every position the model is already sure of instead of only its quota.
    """
    return candidates & (confidence > threshold)
