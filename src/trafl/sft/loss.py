"""The masked-diffusion training loss (LLaDA's SFT objective).

Forward process: draw ``t ~ U(0, 1)`` per sequence, set ``p_mask = (1 - eps) * t + eps`` so that
``p_mask`` lies in ``[eps, 1]``, and replace every completion token by the mask token independently
with probability ``p_mask``. The prompt is never masked.

Loss (an upper bound on the completion's negative log-likelihood):

    loss = E_t E_{y_t} [ (1 / L_y) * sum_{i masked} -log p_theta(y_i | x, y_t) / p_mask ]

where ``L_y`` is the completion length (EOS padding included, as in LLaDA's SFT, so the model
learns to fill the end of the canvas with EOS). The ``1 / p_mask`` weight makes the estimator
unbiased for the ELBO, whose expectation over ``t`` integrates ``1/t`` against the mask rate.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def forward_process(
    input_ids: torch.Tensor,
    completion_mask: torch.Tensor,
    mask_token_id: int,
    eps: float = 1e-3,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mask each completion token with probability ``p_mask = (1 - eps) t + eps``, ``t ~ U(0,1)``.

    Args:
        input_ids: ``[B, T]`` clean canvases (prompt and completion).
        completion_mask: ``[B, T]`` bool, True on completion positions (the only maskable ones).
        mask_token_id: id written at masked positions.
        eps: lower bound of the masking rate.
        generator: optional RNG for reproducibility.

    Returns:
        ``(noisy_ids, masked, p_mask)``: the corrupted canvas, the bool ``[B, T]`` set of masked
        positions, and ``p_mask`` as ``[B, 1]``.
    """
    batch = input_ids.shape[0]
    t = torch.rand(batch, 1, device=input_ids.device, generator=generator)
    p_mask = (1.0 - eps) * t + eps
    u = torch.rand(input_ids.shape, device=input_ids.device, generator=generator)
    masked = (u < p_mask) & completion_mask.bool()
    noisy = torch.where(masked, torch.full_like(input_ids, mask_token_id), input_ids)
    return noisy, masked, p_mask


def masked_diffusion_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    masked: torch.Tensor,
    p_mask: torch.Tensor,
    completion_mask: torch.Tensor,
) -> torch.Tensor:
    """``mean_b (1/L_b) * sum_{i masked} CE(logits_bi, y_bi) / p_mask_b``.

    Args:
        logits: ``[B, T, V]`` model outputs on the noisy canvas.
        targets: ``[B, T]`` clean tokens.
        masked: ``[B, T]`` bool, positions that were masked.
        p_mask: ``[B, 1]`` masking rate of each row.
        completion_mask: ``[B, T]`` bool, completion positions (``L_b`` = its row sums).
    """
    lengths = completion_mask.sum(dim=1).clamp(min=1).to(logits.dtype)
    ce = F.cross_entropy(logits[masked].float(), targets[masked], reduction="none")
    weights = (1.0 / p_mask.expand_as(masked))[masked]
    row = masked.nonzero(as_tuple=True)[0]
    per_row = torch.zeros(logits.shape[0], dtype=ce.dtype, device=logits.device)
    per_row = per_row.index_add(0, row, ce * weights)
    return (per_row / lengths.float()).mean()


def masked_token_nll(logits: torch.Tensor, targets: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the masked tokens (an unweighted diagnostic, for held-out loss)."""
    if not masked.any():
        return logits.new_zeros(())
    return F.cross_entropy(logits[masked].float(), targets[masked])
