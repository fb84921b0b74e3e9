"""Adapters that give other dLLMs loaded through transformers the native model's interface.

Dream (``model_type = "Dream"``) was initialised from an autoregressive model and keeps its
output convention: the logits at position i predict the token at i + 1. The denoiser contract of
:mod:`trafl.models.interface` wants the logits at i to predict token i, so the adapter realigns

    aligned[:, 0] = raw[:, 0],   aligned[:, i] = raw[:, i - 1]   (i >= 1)

exactly as Dream's own sampler does. Position 0 (always a prompt token in practice) gets a copy of
the first prediction. Padding follows Dream's sampler too: a ``[B, T]`` mask with zeros becomes
a ``[B, 1, T, T]`` boolean mask (real query and real key) plus position ids counting real tokens;
an unpadded batch is run with Dream's ``"full"`` (bidirectional, unmasked) attention.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from transformers.modeling_outputs import MaskedLMOutput


def shift_logits_right(logits: torch.Tensor) -> torch.Tensor:
    """Next-token-aligned logits ``[B, T, V]`` -> position-aligned: cat(raw[:, :1], raw[:, :-1])."""
    return torch.cat([logits[:, :1], logits[:, :-1]], dim=1)


def dream_attention_inputs(attention_mask: torch.Tensor | None) -> tuple[Any, torch.Tensor | None]:
    """Dream's attention arguments from a ``[B, T]`` padding mask: (``"full"`` or [B,1,T,T] bool, position ids)."""
    if attention_mask is None or bool(attention_mask.to(torch.bool).all()):
        return "full", None
    real = attention_mask.to(torch.bool)
    position_ids = real.long().cumsum(-1) - 1
    position_ids = position_ids.masked_fill(~real, 1)
    pair_mask = real[:, None, None, :] & real[:, None, :, None]
    return pair_mask, position_ids


class DreamAdapter(nn.Module):
    """Wraps a Dream model so that ``adapter(input_ids, attention_mask).logits`` are position-aligned.

    ``adapter.config`` is the wrapped model's config (with ``mask_token_id`` filled in), and
    ``adapter.mask_token_id`` the mask id. Attributes the adapter does not define (``device``,
    ``save_pretrained``, ``gradient_checkpointing_enable``, ...) are those of the wrapped model.
    """

    def __init__(self, model: nn.Module, mask_token_id: int | None = None) -> None:
        super().__init__()
        self.model = model
        config = getattr(model, "config", None)
        if mask_token_id is None:
            mask_token_id = getattr(config, "mask_token_id", None)
        if mask_token_id is None:
            raise ValueError("Dream model has no mask_token_id in its config; pass mask_token_id=")
        if config is not None:
            config.mask_token_id = int(mask_token_id)
        self.mask_token_id = int(mask_token_id)

    @property
    def config(self) -> Any:
        return self.model.config

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(super().__getattr__("model"), name)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        output_hidden_states: bool = False,
        **kwargs: Any,
    ) -> MaskedLMOutput:
        dream_mask, position_ids = dream_attention_inputs(attention_mask)
        out = self.model(
            input_ids,
            attention_mask=dream_mask,
            position_ids=position_ids,
            output_hidden_states=output_hidden_states,
            **kwargs,
        )
        logits = out.logits if hasattr(out, "logits") else out[0]
        hidden = getattr(out, "hidden_states", None) if output_hidden_states else None
        return MaskedLMOutput(logits=shift_logits_right(logits), hidden_states=hidden)
