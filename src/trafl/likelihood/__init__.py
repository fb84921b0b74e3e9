"""Sequence log-likelihood surrogates of masked diffusion language models.

* :func:`elbo` — Monte-Carlo ELBO with stratified mask counts and antithetic pairs
  (masks drawn by :func:`draw_elbo_masks`, shared across models: common random numbers);
* :func:`onestep` — d1's fully-masked one-pass mean-field surrogate;
* :func:`autoregressive` — exact left-to-right log-likelihood, positions batched in chunks;
* :func:`trajectory` — exact log-likelihood along the sampler's own unmasking order;
* :func:`normalising_length` — ``canvas`` (L) or ``tokens`` (|y| through the first EOS).

All take a :class:`CanvasBatch` and any denoiser (see :mod:`trafl.models.interface`).
"""

from trafl.likelihood.batch import (
    LENGTH_NORMS,
    CanvasBatch,
    loss_positions,
    normalising_length,
    tokens_through_first_eos,
)
from trafl.likelihood.elbo import elbo, elbo_weights
from trafl.likelihood.masks import (
    ElboMasks,
    antithetic_partner,
    draw_elbo_masks,
    draw_espo_masks,
    draw_prompt_masks,
    espo_offset_counts,
    espo_row_counts,
    stratified_counts,
)
from trafl.likelihood.onestep import onestep
from trafl.likelihood.ordered import (
    OrderedChunk,
    autoregressive,
    chunk_logprobs,
    ordered_chunks,
    ordered_loglik,
    trajectory,
)
from trafl.likelihood.output import SurrogateOutput
from trafl.likelihood.surrogate import ELBO_ESTIMATORS, SURROGATES, Surrogate

__all__ = [
    "ELBO_ESTIMATORS",
    "LENGTH_NORMS",
    "SURROGATES",
    "CanvasBatch",
    "ElboMasks",
    "OrderedChunk",
    "Surrogate",
    "SurrogateOutput",
    "antithetic_partner",
    "autoregressive",
    "chunk_logprobs",
    "draw_elbo_masks",
    "draw_espo_masks",
    "draw_prompt_masks",
    "espo_offset_counts",
    "espo_row_counts",
    "elbo",
    "elbo_weights",
    "loss_positions",
    "normalising_length",
    "onestep",
    "ordered_chunks",
    "ordered_loglik",
    "stratified_counts",
    "tokens_through_first_eos",
    "trajectory",
]
