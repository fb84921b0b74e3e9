"""Per-position log-probabilities of the clean tokens under one denoiser pass, micro-batched."""

from __future__ import annotations

import torch

from trafl.models.interface import get_logits


def token_logprobs(
    model,
    noisy_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    targets: torch.Tensor,
    prompt_length: int,
    micro_batch_size: int | None = None,
) -> torch.Tensor:
    """``log p_theta(y_i | noisy canvas)`` at every completion position, ``[N, L]`` float32.

    ``log p(y_i) = logit_{y_i} - logsumexp(logits)``, computed one micro-batch of canvases at a
    time so that only ``[micro_batch_size, L, V]`` logits are alive at once (under ``no_grad``).
    """
    n = noisy_ids.shape[0]
    step = micro_batch_size or max(n, 1)
    out = []
    for start in range(0, n, step):
        rows = slice(start, start + step)
        logits = get_logits(model, noisy_ids[rows], attention_mask[rows])[:, prompt_length:].float()
        tgt = targets[rows].unsqueeze(-1)
        out.append(logits.gather(-1, tgt).squeeze(-1) - logits.logsumexp(-1))
    return torch.cat(out, dim=0) if out else noisy_ids.new_zeros((0, targets.shape[1]), dtype=torch.float32)


def mask_completion(
    batch_ids: torch.Tensor, masked: torch.Tensor, prompt_length: int, mask_token_id: int
) -> torch.Tensor:
    """Replace the completion positions where ``masked`` ([N, L] bool) holds by the mask token."""
    full = torch.zeros_like(batch_ids, dtype=torch.bool)
    full[:, prompt_length:] = masked
    return batch_ids.masked_fill(full, mask_token_id)
