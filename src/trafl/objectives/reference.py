"""The frozen reference model, without a second copy of the weights under LoRA.

With peft adapters the reference is the policy with its adapters disabled
(``model.disable_adapter()``): the base weights are shared, nothing is copied. Without adapters a
frozen deep copy is the fallback. Either way the reference runs under ``torch.no_grad()``.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn


def is_peft_model(model: Any) -> bool:
    return hasattr(model, "disable_adapter") and hasattr(model, "peft_config")


@contextlib.contextmanager
def reference_mode(model: Any) -> Iterator[Any]:
    """Within the block ``model`` computes the reference (adapters disabled, no gradients)."""
    if not is_peft_model(model):
        raise TypeError(
            f"reference_mode needs a peft model with adapters; {type(model).__name__} has none "
            "(use make_reference(), which falls back to a frozen copy)"
        )
    with model.disable_adapter(), torch.no_grad():
        yield model


class AdapterDisabledReference(nn.Module):
    """A denoiser view of ``policy`` with its LoRA adapters switched off (shares all weights)."""

    policy: nn.Module  # set with object.__setattr__ in __init__

    def __init__(self, policy: nn.Module):
        super().__init__()
        object.__setattr__(self, "policy", policy)  # not registered: no parameters of its own
        self.config = getattr(policy, "config", None)
        self.mask_token_id = getattr(policy, "mask_token_id", None)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, **kwargs: Any) -> Any:
        with reference_mode(self.policy):
            return self.policy(input_ids, attention_mask=attention_mask, **kwargs)


class FrozenReference(nn.Module):
    """A frozen deep copy of the initial policy (the fallback for full fine-tuning)."""

    def __init__(self, policy: nn.Module):
        super().__init__()
        self.model = copy.deepcopy(policy).eval().requires_grad_(False)
        self.config = getattr(self.model, "config", None)
        self.mask_token_id = getattr(self.model, "mask_token_id", None)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, **kwargs: Any) -> Any:
        with torch.no_grad():
            return self.model(input_ids, attention_mask=attention_mask, **kwargs)


def make_reference(policy: nn.Module) -> nn.Module:
    """The reference for ``policy``: adapters disabled under peft, else a frozen copy."""
    return AdapterDisabledReference(policy) if is_peft_model(policy) else FrozenReference(policy)
