"""A batch of full canvases ``[prompt | completion]`` and its length bookkeeping.

Prompts are left-padded to a common length ``P``; every completion occupies the last ``L``
positions of the canvas (after the first EOS the sampler fills the canvas with EOS, so there is no
right padding). Every surrogate in this package reads a :class:`CanvasBatch`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import torch

from trafl.errors import ConfigError

#: Which completion positions count and normalise (:func:`normalising_length`).
LengthNorm = Literal["canvas", "tokens"]
LENGTH_NORMS: tuple[LengthNorm, ...] = get_args(LengthNorm)


@dataclass
class CanvasBatch:
    """``N`` canvases of length ``T = P + L``.

    Attributes:
        input_ids: ``[N, T]`` clean tokens (left-padded prompt, then the completion).
        attention_mask: ``[N, T]``, 1 on real tokens, 0 on left padding.
        prompt_length: ``P``, the (padded) prompt length; the completion is ``input_ids[:, P:]``.
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    prompt_length: int

    def __post_init__(self) -> None:
        if self.input_ids.dim() != 2 or self.attention_mask.shape != self.input_ids.shape:
            raise ValueError(
                f"input_ids {tuple(self.input_ids.shape)} and attention_mask "
                f"{tuple(self.attention_mask.shape)} must both be [N, P+L]"
            )
        if not 0 <= self.prompt_length < self.input_ids.shape[1]:
            raise ValueError(f"prompt_length {self.prompt_length} must lie in [0, {self.input_ids.shape[1]})")

    @property
    def completion(self) -> torch.Tensor:
        """``[N, L]`` completion tokens."""
        return self.input_ids[:, self.prompt_length :]

    @property
    def gen_length(self) -> int:
        return self.input_ids.shape[1] - self.prompt_length

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    def select(self, rows: torch.Tensor | slice) -> CanvasBatch:
        return CanvasBatch(self.input_ids[rows], self.attention_mask[rows], self.prompt_length)


def tokens_through_first_eos(completion: torch.Tensor, eos_token_id: int | None) -> torch.Tensor:
    """``[N, L]`` bool: positions up to and including the first EOS (all positions without one)."""
    if eos_token_id is None:
        return torch.ones_like(completion, dtype=torch.bool)
    is_eos = completion == eos_token_id
    eos_before = is_eos.long().cumsum(dim=1) - is_eos.long()  # EOS strictly before position t
    return eos_before == 0


def normalising_length(completion: torch.Tensor, eos_token_id: int | None, length_norm: str) -> torch.Tensor:
    """``L_norm`` per row, float ``[N]``: ``L`` (``canvas``) or ``|y|`` through the first EOS (``tokens``)."""
    if length_norm == "canvas":
        return torch.full((completion.shape[0],), float(completion.shape[1]), device=completion.device)
    if length_norm == "tokens":
        return tokens_through_first_eos(completion, eos_token_id).sum(dim=1).float()
    raise ConfigError(f"length_norm must be one of {LENGTH_NORMS}, got {length_norm!r}")


def loss_positions(completion: torch.Tensor, eos_token_id: int | None, length_norm: str) -> torch.Tensor:
    """Positions that enter a token-level loss: the whole canvas, or the tokens through the first EOS."""
    if length_norm == "canvas":
        return torch.ones_like(completion, dtype=torch.bool)
    return tokens_through_first_eos(completion, eos_token_id)
