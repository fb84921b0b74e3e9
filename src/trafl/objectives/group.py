"""The rollout group: what one update of any objective consumes.

Rows are prompt-major: the ``G`` completions of prompt 0 first, then prompt 1's, and so on, so
``N = num_prompts * G`` and per-group statistics are reductions over ``view(num_prompts, G)``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import torch

from trafl.likelihood import CanvasBatch, SurrogateOutput, normalising_length


@dataclass
class RolloutGroup:
    """``num_prompts`` groups of ``G`` sampled completions, their rewards and cached surrogates.

    Attributes:
        input_ids: ``[N, P+L]`` canvases (left-padded prompt, completion).
        attention_mask: ``[N, P+L]``.
        prompt_length: ``P``.
        rewards: ``[num_prompts, G]`` scalar rewards.
        eos_token_id: for ``length_norm="tokens"`` (``None``: every position counts).
        commit_step: ``[N, L]`` sampler step at which each completion position was committed.
        noise: the surrogate's randomness (ELBO masks / prompt masks), shared by every model.
        old: the rollout policy's surrogate (``None``: the current policy, detached).
        ref: the reference model's surrogate.
        logz_features: ``[num_prompts, H]`` pooled prompt features for a learned logZ head.
        temperature: the rollout sampling temperature (for ``score_temperature``).
        per_iteration: with per-iteration noise, ``(noise, old, ref)`` of each inner iteration.
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    prompt_length: int
    rewards: torch.Tensor
    eos_token_id: int | None = None
    commit_step: torch.Tensor | None = None
    noise: Any = None
    old: SurrogateOutput | None = None
    ref: SurrogateOutput | None = None
    logz_features: torch.Tensor | None = None
    temperature: float = 1.0
    per_iteration: list[tuple[Any, SurrogateOutput | None, SurrogateOutput | None]] | None = None

    def __post_init__(self) -> None:
        if self.rewards.dim() != 2:
            raise ValueError(f"rewards must be [num_prompts, G], got shape {tuple(self.rewards.shape)}")
        if self.rewards.numel() != self.input_ids.shape[0]:
            raise ValueError(f"rewards {tuple(self.rewards.shape)} do not match {self.input_ids.shape[0]} completions")

    @property
    def num_prompts(self) -> int:
        return self.rewards.shape[0]

    @property
    def group_size(self) -> int:
        return self.rewards.shape[1]

    @property
    def batch(self) -> CanvasBatch:
        return CanvasBatch(self.input_ids, self.attention_mask, self.prompt_length)

    @property
    def completion(self) -> torch.Tensor:
        return self.input_ids[:, self.prompt_length :]

    @property
    def prompt_ids(self) -> torch.Tensor:
        """``[num_prompts, P]`` one copy of each prompt."""
        return self.input_ids[:: self.group_size, : self.prompt_length]

    @property
    def prompt_attention_mask(self) -> torch.Tensor:
        return self.attention_mask[:: self.group_size, : self.prompt_length]

    def lengths(self, length_norm: str) -> torch.Tensor:
        """``[N]`` normalising lengths ``L_norm``."""
        return normalising_length(self.completion, self.eos_token_id, length_norm)

    def for_iteration(self, i: int) -> RolloutGroup:
        """The group as inner iteration ``i`` sees it: that iteration's noise and cached surrogates."""
        if self.per_iteration is None:
            return self
        noise, old, ref = self.per_iteration[i % len(self.per_iteration)]
        return replace(self, noise=noise, old=old, ref=ref)

    def select_prompts(self, prompts: slice) -> RolloutGroup:
        """The sub-group of whole prompt groups ``prompts`` (for micro-batching an update)."""
        g = self.group_size
        start, stop, _ = prompts.indices(self.num_prompts)
        rows = slice(start * g, stop * g)

        def pick(x):
            if x is None:
                return None
            if isinstance(x, torch.Tensor):
                return x[rows]
            if hasattr(x, "select"):
                return x.select(rows)
            return x[rows]

        return replace(
            self,
            input_ids=self.input_ids[rows],
            attention_mask=self.attention_mask[rows],
            rewards=self.rewards[prompts],
            commit_step=pick(self.commit_step),
            noise=pick(self.noise),
            old=pick(self.old),
            ref=pick(self.ref),
            logz_features=None if self.logz_features is None else self.logz_features[prompts],
            per_iteration=None
            if self.per_iteration is None
            else [tuple(pick(x) for x in it) for it in self.per_iteration],
        )
