"""One object that names a surrogate, draws its randomness and evaluates it.

spec  = Surrogate("elbo", num_mc=2, antithetic=True)
noise = spec.draw(batch, generator)            # once per rollout batch
s_pol = spec.evaluate(policy, batch, noise)    # with gradients
with torch.no_grad():
    s_ref = spec.evaluate(reference, batch, noise)   # same masks: common random numbers
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import torch

from trafl.errors import ConfigError
from trafl.likelihood.batch import CanvasBatch
from trafl.likelihood.elbo import elbo
from trafl.likelihood.masks import ElboMasks, EspoCountLaw, draw_elbo_masks, draw_espo_masks, draw_prompt_masks
from trafl.likelihood.onestep import onestep
from trafl.likelihood.ordered import (
    OrderedChunk,
    autoregressive,
    checked_order,
    left_to_right_order,
    ordered_chunks,
    trajectory,
)
from trafl.likelihood.output import SurrogateOutput

#: The sequence log-likelihood surrogates :class:`Surrogate` evaluates.
SurrogateName = Literal["elbo", "onestep", "autoregressive", "trajectory"]
SURROGATES: tuple[SurrogateName, ...] = get_args(SurrogateName)
#: The ELBO's mask laws (:class:`Surrogate`'s ``elbo_estimator``).
ElboEstimator = Literal["stratified", "espo", "espo_float32"]
ELBO_ESTIMATORS: tuple[ElboEstimator, ...] = get_args(ElboEstimator)


@dataclass(frozen=True)
class Surrogate:
    """A sequence log-likelihood surrogate and its options.

    Attributes:
        name: ``elbo``, ``onestep``, ``autoregressive`` or ``trajectory`` (needs commit steps).
        num_mc: ELBO mask draws per sequence.
        antithetic: pair each ELBO mask with its complement-plus-one partner.
        p_mask_prompt: one-step surrogate's prompt masking probability.
        chunk_size: canvases per forward pass of the ordered surrogates.
        micro_batch_size: canvases per forward pass of the ELBO / one-step surrogates (None: all).
        elbo_estimator: ``stratified`` (m ~ U{1..L} stratified over a row's draws, antithetic partner
            = complement plus one) or ``espo`` (ESPO's: m ~ U{0..L} systematic over the batch's rows,
            partner = exact complement, weights (L+1)/m; ``num_mc`` counts both draws of a pair; each row's
            size exactly uniform) or ``espo_float32`` (the same with ESPO's float32 rounding of the rows'
            sizes, which is not uniform for every row count: see :func:`~trafl.likelihood.masks.espo_offset_counts`).
    """

    name: SurrogateName = "elbo"
    num_mc: int = 2
    antithetic: bool = True
    p_mask_prompt: float = 0.15
    chunk_size: int = 64
    micro_batch_size: int | None = None
    elbo_estimator: ElboEstimator = "stratified"

    def __post_init__(self) -> None:
        if self.name not in SURROGATES:
            raise ConfigError(f"surrogate must be one of {SURROGATES}, got {self.name!r}")
        if self.elbo_estimator not in ELBO_ESTIMATORS:
            raise ConfigError(f"elbo_estimator must be one of {ELBO_ESTIMATORS}, got {self.elbo_estimator!r}")
        if self.name == "elbo" and (self.antithetic or self.elbo_estimator != "stratified") and self.num_mc % 2:
            raise ConfigError(f"num_mc ({self.num_mc}) must be even when antithetic is true")
        if not 0.0 <= self.p_mask_prompt <= 1.0:
            raise ConfigError(f"p_mask_prompt must lie in [0, 1], got {self.p_mask_prompt}")

    def draw(self, batch: CanvasBatch, generator: torch.Generator | None = None):
        """The randomness of one evaluation: ELBO masks, prompt masks, or ``None`` (deterministic)."""
        if self.name == "elbo" and self.elbo_estimator != "stratified":
            law: EspoCountLaw = "espo_float32" if self.elbo_estimator == "espo_float32" else "uniform"
            return draw_espo_masks(
                len(batch), batch.gen_length, self.num_mc, generator=generator, device=batch.input_ids.device, law=law
            )
        if self.name == "elbo":
            return draw_elbo_masks(
                len(batch),
                batch.gen_length,
                self.num_mc,
                antithetic=self.antithetic,
                generator=generator,
                device=batch.input_ids.device,
            )
        if self.name == "onestep":
            return draw_prompt_masks(batch.attention_mask, batch.prompt_length, self.p_mask_prompt, generator)
        return None

    @property
    def ordered(self) -> bool:
        """Whether the surrogate is an exact ordered likelihood, run as chunks of (row, step) canvases."""
        return self.name in ("autoregressive", "trajectory")

    def order(self, batch: CanvasBatch, commit_step: torch.Tensor | None = None) -> torch.Tensor:
        """``[N, L]`` reveal step of every position (ordered surrogates): left to right, or the commit steps."""
        if self.name == "autoregressive":
            return left_to_right_order(batch)
        if self.name != "trajectory":
            raise ValueError(f"surrogate '{self.name}' has no reveal order")
        if commit_step is None:
            raise ValueError("the trajectory surrogate needs the rollout's commit steps")
        return checked_order(batch, commit_step)

    def chunks(self, order: torch.Tensor) -> list[OrderedChunk]:
        """The forward passes of an ordered surrogate, ``chunk_size`` canvases each (:func:`ordered_chunks`)."""
        return ordered_chunks(order, self.chunk_size)

    def evaluate(
        self, model, batch: CanvasBatch, noise=None, commit_step: torch.Tensor | None = None
    ) -> SurrogateOutput:
        if self.name == "elbo":
            if not isinstance(noise, ElboMasks):
                raise ValueError("the elbo surrogate needs the masks returned by draw()")
            return elbo(model, batch, noise, micro_batch_size=self.micro_batch_size)
        if self.name == "onestep":
            return onestep(model, batch, noise, micro_batch_size=self.micro_batch_size)
        if self.name == "autoregressive":
            return autoregressive(model, batch, chunk_size=self.chunk_size)
        if commit_step is None:
            raise ValueError("the trajectory surrogate needs the rollout's commit steps")
        return trajectory(model, batch, commit_step, chunk_size=self.chunk_size)
