"""Per-objective options: each objective declares a dataclass of its options with its authors' defaults.

:class:`ObjectiveOptions` holds what every objective has: the sequence log-likelihood surrogate,
how its randomness is drawn, which positions a token-level loss counts and how it is reduced, and
whether log-likelihoods are scored at the rollout temperature. Each objective subclasses it, adds
its own fields (``beta``, ``epsilon``, ...) and overrides the defaults with its authors' recipe, so
``trafl train --method X`` with no other flag runs X as its authors defined it.

Options load like every config in trafl (:mod:`trafl.utils.config`): typed, with help text,
validated when loaded; ``trafl train`` accepts them as flat keys (``--beta 0.01``) next to the
trainer's own fields and rejects an option the chosen method does not have.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from trafl.errors import ConfigError
from trafl.likelihood.batch import LengthNorm
from trafl.likelihood.surrogate import ElboEstimator, SurrogateName
from trafl.utils.config import option

#: How a token-level loss is reduced over a micro-batch.
TokenReduction = Literal["sequence", "batch_tokens"]


@dataclass
class ObjectiveOptions:
    surrogate: SurrogateName = option(
        "elbo",
        "Sequence log-likelihood surrogate (elbo, onestep, autoregressive, trajectory: the "
        "exact log-likelihood of the rollout's own unmasking order, needs remasking=random).",
    )
    length_norm: LengthNorm = option(
        "canvas",
        "Positions that count and the length L_norm that normalises: 'canvas' (all L positions, L_norm = L) or "
        "'tokens' (positions up to and including the first EOS, L_norm = their number).",
    )
    token_reduction: TokenReduction = option(
        "sequence",
        "Token-level objectives: 'sequence' (each sequence's sum over counted positions / L_norm, then the mean over "
        "sequences) or 'batch_tokens' (sum over every counted position of the micro-batch / their number, as TRL "
        "and d1 do). Ignored by sequence-level objectives.",
    )
    num_mc: int = option(
        2, "ELBO: masked forward passes per sequence (with antithetic pairs, a pair counts as two).", min=1
    )
    antithetic: bool = option(
        True, "ELBO (stratified estimator): pair each mask with its complement plus one position."
    )
    elbo_estimator: ElboEstimator = option(
        "stratified",
        "ELBO mask law: 'stratified' (m ~ U{1..L} stratified over a row's draws, weights L/m), 'espo' (ESPO's: "
        "m ~ U{0..L} systematic over the batch's rows, each row's size exactly uniform, coupled exact-complement "
        "pairs, weights (L+1)/m) or 'espo_float32' (as 'espo' with ESPO's own float32 rounding of the rows' sizes, "
        "not uniform for every row count).",
    )
    p_mask_prompt: float = option(
        0.15, "One-step surrogate: probability of masking each prompt token.", min=0.0, max=1.0
    )
    ar_chunk_size: int = option(
        64,
        (
            "Autoregressive / trajectory surrogate: canvases per batched forward (JustGRPO backpropagates each "
            "chunk before the next, so its activations scale with this, not with B L)."
        ),
        min=1,
    )
    resample_noise: bool = option(
        False,
        "Draw fresh surrogate noise (ELBO masks, one-step prompt masks) for every inner iteration instead of one "
        "draw per rollout batch; the old policy and the reference are scored on each iteration's draw.",
    )
    score_temperature: bool = option(
        False,
        "Score every log-likelihood on logits divided by the rollout temperature, i.e. under the distribution the "
        "sampler drew from (as TRL does). False scores the model at T = 1.",
    )

    def bind_rollout(self, completion_length: int, block_length: int) -> None:
        """Resolve the options that follow the rollout sampler and check those that must agree with it
        (the completion length ``L`` and the sampler's block length). Called when a training config loads,
        so a mismatch stops the run before its first rollout; nothing by default."""

    def validate(self) -> None:
        if self.surrogate == "elbo" and self.antithetic and self.num_mc % 2:
            raise ConfigError(
                f"config field 'num_mc': {self.num_mc} must be even when antithetic is true "
                "(each mask comes with its partner)"
            )
