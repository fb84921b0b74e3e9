"""A hand-made exact denoiser for checking samplers against enumeration.

:class:`CanvasTableDenoiser` looks its logits up in a fixed random table indexed by the *whole*
canvas: the completion (its last ``L`` positions) exactly, as a base-``(V+1)`` number with the mask
as digit ``V``, and the prompt through a hash of its real tokens (left padding, marked by
``attention_mask``, is ignored, so padding a prompt does not change its logits). Its conditionals
need not be consistent with any joint distribution, so the order in which positions are unmasked
changes the law of the samples: exactly what a sampler test must be sensitive to.

Token ids ``0..V-1`` are the vocabulary, ``V`` is the mask token; logits have ``V + 1`` entries
with the mask's at ``-inf``.
"""

from __future__ import annotations

import torch
from torch import nn


class CanvasTableDenoiser(nn.Module):
    table: torch.Tensor  # a buffer (registered in __init__)

    def __init__(
        self,
        vocab_size: int,
        gen_length: int,
        *,
        prompt_buckets: int = 7,
        scale: float = 2.0,
        seed: int = 0,
        max_sequence_length: int | None = None,
    ):
        super().__init__()
        self.vocab_size = vocab_size
        self.gen_length = gen_length
        self.mask_token_id = vocab_size
        self.prompt_buckets = prompt_buckets
        states = (vocab_size + 1) ** gen_length
        g = torch.Generator().manual_seed(seed)
        table = scale * torch.randn(prompt_buckets, states, gen_length, vocab_size, generator=g, dtype=torch.float64)
        self.register_buffer("table", table)
        self.config = type(
            "Config",
            (),
            {"mask_token_id": vocab_size, "eos_token_id": None, "max_sequence_length": max_sequence_length},
        )()

    def completion_state(self, completion: torch.Tensor) -> torch.Tensor:
        """``[B]`` index of ``[B, L]`` completions in ``[0, (V+1)^L)``."""
        powers = (self.vocab_size + 1) ** torch.arange(self.gen_length - 1, -1, -1, device=completion.device)
        return (completion * powers).sum(dim=-1)

    def prompt_bucket(self, prompt: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """``[B]`` hash of the real prompt tokens: ``sum_t (x_t + 1) 31^(P-1-t) mod buckets`` over real ``t``."""
        width = prompt.shape[1]
        powers = torch.tensor([pow(31, width - 1 - t, self.prompt_buckets) for t in range(width)], device=prompt.device)
        return ((prompt + 1) * powers * attention_mask).sum(dim=-1) % self.prompt_buckets

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        prompt, completion = input_ids[:, : -self.gen_length], input_ids[:, -self.gen_length :]
        bucket = self.prompt_bucket(prompt, attention_mask[:, : -self.gen_length])
        rows = self.table[bucket, self.completion_state(completion)]  # [B, L, V]
        out = torch.zeros(*input_ids.shape, self.vocab_size + 1, dtype=self.table.dtype, device=input_ids.device)
        out[:, -self.gen_length :, : self.vocab_size] = rows
        out[..., self.vocab_size] = -torch.inf
        return out
