"""TraFL's log-partition estimate ``logZ_phi(x)``.

* ``learned``: an MLP head on the mean over real prompt tokens of the final hidden states of a
  prompt-only forward pass of the frozen reference (computed once per rollout batch, no gradient
  into any trunk);
* ``learned_policy``: the same head on the policy's own prompt-only hidden states, with gradients
  flowing into the policy;
* ``vargrad``: no parameters; ``logZ(x)`` is the detached group mean of
  ``-(s_theta - s_ref - beta r~)`` (see :func:`trafl.objectives.functional.vargrad_logz`);
* ``partition``: no parameters; the target's own partition function ``E_ref[exp(L beta r~)]``,
  estimated by self-normalised importance weighting over the group
  (:func:`trafl.objectives.functional.partition_logz`).

The head's parameters are exposed (``TraFL.logz_head.parameters()``) so that the trainer can give
them their own learning rate.
"""

from __future__ import annotations

from typing import Literal, get_args

import torch
from torch import nn

from trafl.errors import TraflError

#: The log-partition estimates of the module docstring.
LogZMode = Literal["learned", "learned_policy", "vargrad", "partition"]
LOGZ_MODES: tuple[LogZMode, ...] = get_args(LogZMode)


class LogZHead(nn.Module):
    """``logZ_phi(h) = W3 GELU(LN(W2 GELU(LN(W1 h))))``: three linear layers with LayerNorm and GELU.

    The last layer starts at zero, so ``logZ = 0`` before training.
    """

    def __init__(self, hidden_size: int, width: int = 256):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(hidden_size, width),
            nn.LayerNorm(width),
            nn.GELU(),
            nn.Linear(width, width),
            nn.LayerNorm(width),
            nn.GELU(),
            out := nn.Linear(width, 1),  # built last, as the layers' random init draws in this order
        )
        nn.init.zeros_(out.weight)
        nn.init.zeros_(out.bias)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """``[B, H]`` pooled prompt features -> ``[B]`` log-partition estimates (float32)."""
        first = next(self.net.parameters())  # the first layer's weight
        return self.net(features.to(device=first.device, dtype=first.dtype)).squeeze(-1)


def final_hidden_states(model, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """``[B, T, H]`` last-layer hidden states (the model must accept ``output_hidden_states=True``)."""
    try:
        out = model(input_ids, attention_mask=attention_mask, output_hidden_states=True)
    except TypeError as exc:
        raise TraflError(
            f"{type(model).__name__} does not return hidden states (output_hidden_states=True); "
            "use logz='vargrad' with this model"
        ) from exc
    hidden = getattr(out, "hidden_states", None)
    if not hidden:
        raise TraflError(f"{type(model).__name__} returned no hidden_states; use logz='vargrad' with this model")
    return hidden[-1]


def pooled_prompt_features(model, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor) -> torch.Tensor:
    """``[B, H]`` mean of the final hidden states over the real (unpadded) prompt tokens, float32."""
    hidden = final_hidden_states(model, prompt_ids, prompt_mask).float()
    weights = prompt_mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)


def hidden_size_of(model) -> int:
    """The trunk width from ``model.config.hidden_size`` (or ``d_model``)."""
    config = getattr(model, "config", None)
    for name in ("hidden_size", "d_model", "n_embd"):
        if config is not None and getattr(config, name, None):
            return int(getattr(config, name))
    raise TraflError(f"cannot find the hidden size of {type(model).__name__}: pass hidden_size explicitly")
