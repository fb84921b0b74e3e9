"""Per-position log-probabilities of the clean tokens under one denoiser pass, micro-batched."""

from __future__ import annotations

import torch

from trafl.models.interface import get_logits, get_target_logprobs, scores_targets


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
    time (under ``no_grad`` only one micro-batch's activations are alive at once). A model that scores
    target ids itself (:func:`~trafl.models.interface.scores_targets`: trafl's LLaDA) never holds the
    ``[N, L, V]`` logits, in the forward or the backward pass: it runs the output head and the float32
    log-softmax a chunk of tokens at a time (:mod:`trafl.models.target_logprobs`). Any other denoiser
    returns its logits, of which the completion's are upcast to float32.
    """
    n = noisy_ids.shape[0]
    step = micro_batch_size or max(n, 1)
    chunked = scores_targets(model)
    out = []
    for start in range(0, n, step):
        rows = slice(start, start + step)
        if chunked:
            out.append(get_target_logprobs(model, noisy_ids[rows], attention_mask[rows], targets[rows]))
            continue
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
