"""Log-probabilities of given target tokens from hidden states, without all the logits at once.

For final hidden states ``h`` ``[B, L, d]``, an output head ``W`` and target ids ``y`` ``[B, L]``:

    log p(y_i | h_i) = z_i[y_i] - logsumexp_v z_i[v],     z_i = float32(W h_i) / temperature

The head's logits ``[B, L, V]`` are the largest tensors of a training step (LLaDA-8B: ``V`` =
126,464; 32 canvases of 512 completion tokens hold 7.7 GiB of float32 logits, and ``logsumexp``'s
backward three more copies). Here the ``B L`` tokens run in chunks of ``chunk_tokens``: each chunk's
logits exist only while its log-probabilities are computed, and with gradients each chunk runs under
non-reentrant activation checkpointing, so its backward recomputes the chunk's logits from the saved
hidden rows (the head is called as a module both times: ZeRO-3 / FSDP gather its weight as usual).
What stays alive is ``h`` (``B L d`` in the compute dtype) and the ``[B, L]`` float32 result.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.utils.checkpoint import checkpoint

#: Tokens per chunk: at LLaDA's vocabulary a chunk's float32 logits are 0.48 GiB.
TARGET_CHUNK_TOKENS = 1024


def chunk_logprobs(
    hidden: torch.Tensor, targets: torch.Tensor, head: Callable[[torch.Tensor], torch.Tensor], temperature: float
) -> torch.Tensor:
    """``[c]`` ``z[y] - logsumexp(z)`` with ``z = float32(head(hidden)) / temperature`` for ``c`` tokens."""
    logits = head(hidden).float()
    if temperature != 1.0:
        logits = logits / temperature
    return logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - logits.logsumexp(-1)


def target_logprobs(
    hidden: torch.Tensor,
    targets: torch.Tensor,
    head: Callable[[torch.Tensor], torch.Tensor],
    *,
    temperature: float = 1.0,
    chunk_tokens: int | None = None,
) -> torch.Tensor:
    """``[B, L]`` float32 log-probabilities of ``targets`` ``[B, L]`` under ``head(hidden)`` (see the module
    docstring), ``chunk_tokens`` (default :data:`TARGET_CHUNK_TOKENS`) tokens at a time; differentiable in
    ``hidden`` and the head's weights."""
    chunk_tokens = TARGET_CHUNK_TOKENS if chunk_tokens is None else chunk_tokens
    if hidden.shape[:2] != targets.shape:
        raise ValueError(f"hidden {tuple(hidden.shape)} and targets {tuple(targets.shape)} must share [B, L]")
    if chunk_tokens < 1:
        raise ValueError(f"chunk_tokens must be positive, got {chunk_tokens}")
    b, length, d = hidden.shape
    flat_h, flat_y = hidden.reshape(b * length, d), targets.reshape(b * length)
    grad = torch.is_grad_enabled()
    out = []
    for start in range(0, b * length, chunk_tokens):
        h, y = flat_h[start : start + chunk_tokens], flat_y[start : start + chunk_tokens]
        if grad:
            out.append(checkpoint(chunk_logprobs, h, y, head, temperature, use_reentrant=False))
        else:
            out.append(chunk_logprobs(h, y, head, temperature))
    if not out:
        return hidden.new_zeros((b, length), dtype=torch.float32)
    return torch.cat(out).view(b, length)
