"""Drawing the random masks of the Monte-Carlo ELBO (kept apart from evaluating it).

Drawing and evaluation are separate so that one draw serves the policy, the old policy and the
reference within an update (common random numbers): differences such as ``ELBO_theta - ELBO_ref``
then carry much less noise than either term.

One draw for a completion of length ``L`` is a mask set ``M`` with ``|M| = m``, where
``m ~ U{1..L}`` and ``M`` is uniform among the ``C(L, m)`` subsets of that size. Two variance
reductions, both leaving every draw's marginal law unchanged (so the estimator stays unbiased):

* **stratified counts**: the ``K`` base draws of a row take ``m_k = floor((k + u_k) L / K) + 1``
  with ``u_k ~ U(0,1)``, one draw per stratum of ``{1..L}``; the equal mixture of the strata is
  ``U{1..L}``.
* **antithetic pairs**: each base draw ``M`` (size ``m``) is paired with
  ``M' = complement(M) + {one uniform element of M}``, of size ``L + 1 - m``. ``L + 1 - m`` is
  again uniform on ``{1..L}`` and ``M'`` is exchangeable, so ``M'`` has the same law as ``M``;
  but ``M`` and ``M'`` together cover every position, and a lightly masked draw is paired with a
  heavily masked one, which makes their two estimates negatively correlated. (The plain complement
  has size ``L - m``, which can be 0: it does not have the law of a draw.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import torch

from trafl.errors import ConfigError


@dataclass
class ElboMasks:
    """``masked``: ``[N, K, L]`` bool, the masked completion positions of each of the ``K`` draws.

    ``weight_scale``: the numerator of each draw's weight ``scale / m`` (``None``: ``L``, trafl's
    estimator over ``m ~ U{1..L}``; ESPO's estimator over ``m ~ U{0..L}`` uses ``L + 1``).
    """

    masked: torch.Tensor
    weight_scale: float | None = None

    @property
    def counts(self) -> torch.Tensor:
        """``[N, K]`` mask sizes ``m``."""
        return self.masked.sum(dim=-1)

    @property
    def num_mc(self) -> int:
        return self.masked.shape[1]

    def select(self, rows: torch.Tensor | slice) -> ElboMasks:
        return ElboMasks(self.masked[rows], self.weight_scale)


def stratified_counts(
    num_rows: int,
    num_strata: int,
    gen_length: int,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """``[N, K]`` counts ``m_k = floor((k + u_k) * L / K) + 1``: one draw per stratum of ``{1..L}``."""
    u = torch.rand(num_rows, num_strata, generator=generator, device=device, dtype=torch.float64)
    k = torch.arange(num_strata, device=device, dtype=torch.float64)
    m = torch.floor((k + u) * gen_length / num_strata).long() + 1
    return m.clamp(1, gen_length)


def uniform_subsets(
    counts: torch.Tensor, gen_length: int, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Uniform subsets of sizes ``counts`` ``[...]``: returns ``(masked [..., L], rank [..., L])``.

    Position ``i`` is masked when its rank under i.i.d. uniform scores is below ``m``; ``rank == 0``
    marks a uniformly chosen element of every non-empty subset.
    """
    scores = torch.rand(*counts.shape, gen_length, generator=generator, device=counts.device)
    rank = scores.argsort(dim=-1).argsort(dim=-1)
    return rank < counts.unsqueeze(-1), rank


def antithetic_partner(masked: torch.Tensor, rank: torch.Tensor) -> torch.Tensor:
    """``M' = complement(M) + {the rank-0 element of M}``; ``|M'| = L + 1 - |M|``."""
    return ~masked | (rank == 0)


def draw_elbo_masks(
    num_rows: int,
    gen_length: int,
    num_mc: int,
    *,
    antithetic: bool = True,
    stratified: bool = True,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> ElboMasks:
    """Draw ``num_mc`` ELBO masks for each of ``num_rows`` completions of length ``gen_length``.

    With ``antithetic`` the draws come in adjacent pairs ``(M, M')`` and ``num_mc`` must be even.
    """
    if num_mc < 1:
        raise ConfigError(f"num_mc must be >= 1, got {num_mc}")
    if antithetic and num_mc % 2:
        raise ConfigError(
            f"num_mc ({num_mc}) must be even when antithetic pairs are used (each mask comes with its partner)"
        )
    base = num_mc // 2 if antithetic else num_mc
    if stratified:
        counts = stratified_counts(num_rows, base, gen_length, generator, device)
    else:
        counts = torch.randint(1, gen_length + 1, (num_rows, base), generator=generator, device=device)
    masked, rank = uniform_subsets(counts, gen_length, generator)
    if antithetic:
        masked = torch.stack([masked, antithetic_partner(masked, rank)], dim=2).flatten(1, 2)
    return ElboMasks(masked)


#: How :func:`espo_row_counts` spreads one offset over the rows: ``uniform`` (exact integer offsets,
#: every row's law exactly uniform) or ``espo_float32`` (ESPO's own float32 linspace-and-round).
EspoCountLaw = Literal["uniform", "espo_float32"]
ESPO_COUNT_LAWS: tuple[EspoCountLaw, ...] = get_args(EspoCountLaw)


def espo_offset_counts(k: int, num_rows: int, gen_length: int, law: EspoCountLaw = "uniform") -> torch.Tensor:
    """``[N]`` mask sizes in ``{0..L}`` of the ``N`` rows for the shared offset ``k`` in ``{0..L}``.

    ``uniform``:      ``m_i = (k + d_i) mod (L+1)`` with ``d_i = floor(i (L+1) / N + 1/2)``, computed in
                      integers as ``floor((2 i (L+1) + N) / (2 N))``. The ``d_i`` are fixed integers, so for
                      ``k ~ U{0..L}`` every row's ``m_i`` is exactly uniform on ``{0..L}`` (a shift of a
                      uniform law mod ``L+1``), whatever ``N``; for ``N <= L+1`` the rows' sizes are distinct.
    ``espo_float32``: ESPO's formula as its code evaluates it (ML-GSAI/ESPO ``espo_trainer.py``,
                      ``forward_process``): ``round(linspace(k, k + (N-1)(L+1)/N, N)) mod (L+1)`` in float32 with
                      round-half-to-even. Where ``i (L+1) / N`` is a half-integer (e.g. ``N = 2`` or ``6`` rows
                      at ``L = 256``) the rounding depends on ``k`` and the float32 error, and that row's law
                      is not uniform (at ``6 x 256`` row 3 reaches 129 of the 257 sizes); its ELBO is then biased.
    """
    if not 0 <= k <= gen_length:
        raise ValueError(f"offset k must lie in [0, {gen_length}], got {k}")
    length1 = gen_length + 1
    if law == "espo_float32":
        start = torch.tensor(k)  # ESPO's k is an int64 tensor, so the end point is a float32 sum
        end = start + (num_rows - 1) * (length1 / num_rows)
        x = torch.linspace(float(start), float(end), steps=num_rows, dtype=torch.float32)
        return torch.round(x).long() % length1
    if law != "uniform":
        raise ConfigError(f"ESPO mask-count law must be one of {ESPO_COUNT_LAWS}, got {law!r}")
    i = torch.arange(num_rows)
    return (k + (2 * i * length1 + num_rows) // (2 * num_rows)) % length1


def espo_row_counts(
    num_rows: int,
    gen_length: int,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    law: EspoCountLaw = "uniform",
) -> torch.Tensor:
    """ESPO's mask sizes for one draw: ``[N]`` counts in ``{0..L}``, systematic across the rows.

    One offset ``k ~ U{0..L}`` is shared by the ``N`` rows; :func:`espo_offset_counts` spreads it.
    """
    k = int(torch.randint(0, gen_length + 1, (1,), generator=generator).item())
    return espo_offset_counts(k, num_rows, gen_length, law).to(device)


def draw_espo_masks(
    num_rows: int,
    gen_length: int,
    num_mc: int,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    law: EspoCountLaw = "uniform",
) -> ElboMasks:
    """ESPO's ELBO masks: ``num_mc / 2`` coupled pairs ``(M, complement(M))`` per row.

    ``|M| = m`` from :func:`espo_row_counts` (a fresh offset per pair, spread over the rows by
    ``law``), ``M`` uniform among subsets of that size; each draw is weighted ``(L + 1) / |draw|``,
    i.e. ``1 / t`` with ``t = m / (L + 1)``, and a draw of size 0 contributes 0. Unbiased for the
    ELBO when ``|M|`` is uniform on ``{0..L}`` (always under ``uniform``): then so is ``L - |M|``, and
    ``(1/(L+1)) sum_{m=1..L} ((L+1)/m) E_{|M|=m}[...] = ELBO``.
    """
    if num_mc < 2 or num_mc % 2:
        raise ConfigError(f"num_mc ({num_mc}) must be a positive even number with ESPO's coupled pairs")
    draws = []
    for _ in range(num_mc // 2):
        counts = espo_row_counts(num_rows, gen_length, generator, device, law)
        masked, _ = uniform_subsets(counts, gen_length, generator)
        draws += [masked, ~masked]
    return ElboMasks(torch.stack(draws, dim=1), weight_scale=float(gen_length + 1))


def draw_prompt_masks(
    attention_mask: torch.Tensor, prompt_length: int, p_mask_prompt: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """d1's prompt corruption: each real prompt token is masked with probability ``p_mask_prompt``.

    Returns ``[N, P]`` bool (padding is never masked).
    """
    real = attention_mask[:, :prompt_length].bool()
    u = torch.rand(real.shape, generator=generator, device=attention_mask.device)
    return (u < p_mask_prompt) & real
