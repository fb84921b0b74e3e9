"""SPG, Sandwiched Policy Gradient (arXiv 2510.09541): a lower bound for good rollouts, an upper bound for bad ones.

For the ``G`` completions ``y_n`` of one prompt, with ``|y_n|`` their tokens through the first EOS:

    A_n      = r_n - mean_G r                                          (mean-only advantages, as d1)
    S_nk     = counted positions masked in draw k of row n  (K = num_mc draws, block-wise below)
    t_nk     = |S_nk| / |y_n|
    ELBO_n   = (|y_n| / K) sum_k (1 / |S_nk|) sum_{i in S_nk} log p(y_i | z_nk)          (<= log p(y_n))
    EUBO_n   = |y_n| / (beta |Z_n|) sum_{i in Z_n} log[ (1/K) sum_k 1[i in S_nk] p(y_i | z_nk)^beta / t_nk ]
               with Z_n the positions some draw scores                                   (>= log p(y_n))
    s_n      = ELBO_n                                  if A_n > 0
               EUBO_n | w EUBO_n + (1 - w) ELBO_n | ELBO_n | 0   otherwise (``negative_bound``)
    loss     = mean over groups of  - sum_n A_n s_n / sum_n |y_n|

Maximising a lower bound where ``A > 0`` and minimising an upper bound where ``A < 0`` "sandwiches"
``log p``: both push the true likelihood the way the advantage asks. There is no ratio, clip or KL.

**Block-wise masks** (``z_nk``): the completion is cut into blocks of ``mask_block_length``; one
permutation of the blocks per row, reduced modulo the row's number of non-empty blocks, picks block
``b_nk`` for draw ``k``. Blocks before it stay clean, blocks after it are fully masked, and a
uniform number ``m ~ U{max(floor(l min_t), 1) .. min(floor(l max_t), l)}`` of the block's ``l``
counted positions is masked at random -- the state a block-wise sampler is in while decoding
block ``b_nk``. Positions after the first EOS are masked and never scored. Every clean position
(real prompt tokens and the earlier blocks) is also masked with probability ``p_mask_prompt``.

Source: facebookresearch/SPG @ a1c7120, ``spg/spg_trainer.py`` (``compute_loss`` l.86-126,
``forward_process`` l.334-378, ``_get_per_seq_logps`` l.433-559, advantages l.717-721) and its
launch scripts ``spg/slurm_scripts/spg_{mix,eubo}/*.sbatch`` for the defaults.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

import torch

from trafl.errors import ConfigError
from trafl.likelihood import loss_positions
from trafl.likelihood.batch import LengthNorm
from trafl.likelihood.surrogate import SurrogateName
from trafl.likelihood.tokens import token_logprobs
from trafl.models.interface import mask_token_id_of
from trafl.objectives.base import Objective
from trafl.objectives.functional import mean_centred
from trafl.objectives.group import RolloutGroup
from trafl.objectives.options import ObjectiveOptions
from trafl.utils.config import option

#: The likelihood estimate of rows with a non-positive advantage (SPG's ``logp_estimation``).
NegativeBound = Literal["mix", "eubo", "elbo", "zero"]


@dataclass
class SPGOptions(ObjectiveOptions):
    surrogate: SurrogateName = option(
        "elbo", "SPG scores its own block-wise masked draws (ELBO / EUBO); only 'elbo' is accepted."
    )
    length_norm: LengthNorm = option(
        "tokens", "Positions that count: SPG scores those up to and including the first EOS and masks the rest."
    )
    num_mc: int = option(2, "Block-wise masked draws per completion (SPG's num_t).", min=1)
    antithetic: bool = option(False, "SPG's draws are independent (no antithetic pairs); must stay false.")
    p_mask_prompt: float = option(
        0.15,
        "Probability of masking each clean position (real prompt tokens and the blocks before the scored one).",
        min=0.0,
        max=1.0,
    )
    resample_noise: bool = option(True, "Fresh masks for every inner iteration (SPG's random_masking).")
    negative_bound: NegativeBound = option(
        "mix",
        "Likelihood estimate for rows with A <= 0: 'mix' (mix_weight EUBO + (1 - mix_weight) ELBO), 'eubo' "
        "(the upper bound alone), 'elbo' (no sandwich: the lower bound for every row) or 'zero'.",
    )
    eubo_beta: float = option(1.5, "EUBO's exponent beta (p^beta inside, 1/beta outside the log).", min=1e-6)
    mix_weight: float = option(0.5, "Weight of the EUBO in the 'mix' negative bound.", min=0.0, max=1.0)
    block_masking: bool = option(
        True, "Block-wise masks (SPG's block_random); false: one block spanning the completion (its 'random')."
    )
    mask_block_length: int | None = option(
        None,
        "Block length of the block-wise masks; must divide L. None: the rollout sampler's block_length, as SPG "
        "(32 in its recipe).",
        min=1,
    )
    min_t: float = option(
        0.0, "Smallest masked fraction of the scored block (floor, at least one token).", min=0.0, max=1.0
    )
    max_t: float = option(1.0, "Largest masked fraction of the scored block.", min=0.0, max=1.0)

    def bind_rollout(self, completion_length: int, block_length: int) -> None:
        if self.mask_block_length is None:
            self.mask_block_length = block_length
        block = self.mask_block_length if self.block_masking else completion_length
        check_block_geometry(completion_length, block, self.num_mc)

    def validate(self) -> None:
        super().validate()
        if self.surrogate != "elbo":
            raise ConfigError(
                f"config field 'surrogate': SPG scores block-wise ELBO/EUBO draws, got {self.surrogate!r}"
            )
        if self.antithetic:
            raise ConfigError("config field 'antithetic': SPG's masked draws are independent; set it to false")
        if self.min_t > self.max_t:
            raise ConfigError(f"config fields 'min_t' ({self.min_t}) and 'max_t' ({self.max_t}): need min_t <= max_t")


@dataclass
class BlockMasks:
    """``canvas``: ``[N, K, P+L]`` bool, the positions each of the ``K`` draws masks (prompt included);
    ``block``: ``[N, K]`` the block each draw scores (partly masked)."""

    canvas: torch.Tensor
    block: torch.Tensor

    @property
    def num_mc(self) -> int:
        return self.canvas.shape[1]

    def select(self, rows: torch.Tensor | slice) -> BlockMasks:
        return BlockMasks(self.canvas[rows], self.block[rows])


def check_block_geometry(length: int, block_length: int, num_mc: int) -> None:
    """``mask_block_length`` divides ``L``, and ``num_mc`` block-wise draws have as many blocks to score
    (one block, SPG's 'random' masks, is scored by every draw)."""
    if length % block_length:
        raise ConfigError(
            f"config field 'mask_block_length': {block_length} must divide the completion length {length}"
        )
    num_blocks = length // block_length
    if num_mc > num_blocks > 1:
        raise ConfigError(
            f"config field 'num_mc': {num_mc} block-wise draws need at least as many blocks, got "
            f"{num_blocks} (L {length} / mask_block_length {block_length})"
        )


def draw_block_masks(
    counted: torch.Tensor,
    prompt_real: torch.Tensor,
    num_mc: int,
    block_length: int,
    *,
    min_t: float = 0.0,
    max_t: float = 1.0,
    p_clean: float = 0.0,
    generator: torch.Generator | None = None,
) -> BlockMasks:
    """SPG's block-wise masks for completions whose counted positions are ``counted`` ``[N, L]`` (a prefix).

    Per row ``n`` with ``c_n = ceil(|y_n| / b)`` non-empty blocks: ``b_nk = pi_n(k) mod c_n`` for one
    uniform permutation ``pi_n`` of the ``L / b`` blocks; the draw masks every position from block ``b_nk``
    on, except ``l - m`` uniformly chosen ones of the ``l = min(b, |y_n| - b_nk b)`` counted positions of
    block ``b_nk`` (``m ~ U{max(floor(l min_t), 1) .. min(floor(l max_t), l)}``); every uncounted
    completion position is masked; each clean position (``prompt_real`` ``[N, P]`` and the earlier
    blocks) is masked with probability ``p_clean``.
    """
    n, length = counted.shape
    device = counted.device
    check_block_geometry(length, block_length, num_mc)
    num_blocks = length // block_length
    lengths = counted.sum(dim=1).clamp(min=1)
    nonempty = (lengths - 1) // block_length + 1
    if num_blocks == 1:
        block = torch.zeros(n, num_mc, dtype=torch.long, device=device)
    else:
        perm = torch.rand(n, num_blocks, generator=generator, device=device).argsort(dim=1)
        block = perm[:, :num_mc] % nonempty.unsqueeze(1)  # [N, K]
    start = block * block_length
    in_block = torch.minimum(torch.full_like(start, block_length), lengths.unsqueeze(1) - start)  # l, >= 1
    low = (in_block.double() * min_t).floor().long().clamp(min=1)
    high = torch.minimum((in_block.double() * max_t).floor().long(), in_block)
    if (high < low).any():
        raise ConfigError(f"config fields 'min_t'/'max_t' ({min_t}, {max_t}) leave no mask size for a block")
    u = torch.rand(n, num_mc, generator=generator, device=device, dtype=torch.float64)
    m = low + (u * (high - low + 1).double()).floor().long().clamp(max=(high - low))
    pos = torch.arange(length, device=device).view(1, 1, length)
    window = (pos >= start.unsqueeze(-1)) & (pos < (start + in_block).unsqueeze(-1))  # the block's counted part
    scores = torch.rand(n, num_mc, length, generator=generator, device=device).masked_fill(~window, 2.0)
    rank = scores.argsort(dim=-1).argsort(dim=-1)  # the window's positions rank first (others score 2)
    chosen = window & (rank < m.unsqueeze(-1))
    later = pos >= start.unsqueeze(-1)
    completion = (later & ~window) | chosen | ~counted.unsqueeze(1)
    clean = torch.cat([prompt_real.unsqueeze(1).expand(-1, num_mc, -1), ~later], dim=-1)
    noise = torch.rand(clean.shape, generator=generator, device=device) < p_clean
    prompt_part = torch.zeros(n, num_mc, prompt_real.shape[1], dtype=torch.bool, device=device)
    return BlockMasks(torch.cat([prompt_part, completion], dim=-1) | (clean & noise), block)


def block_elbo(logp: torch.Tensor, scored: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """``[N]`` ``ELBO_n = (|y_n| / K) sum_k (1/|S_nk|) sum_{i in S_nk} logp_nki`` (``scored`` = ``S``, ``[N, K, L]``)."""
    s = scored.to(logp.dtype)
    per_draw = (logp * s).sum(dim=-1) / s.sum(dim=-1).clamp(min=1.0)
    return per_draw.mean(dim=1) * lengths


def block_eubo(logp: torch.Tensor, scored: torch.Tensor, lengths: torch.Tensor, beta: float) -> torch.Tensor:
    """``[N]`` ``EUBO_n = |y_n| / (beta |Z_n|) sum_{i in Z_n} log( (1/K) sum_k 1[i in S_nk] p_nki^beta / t_nk )``,
    ``t_nk = |S_nk| / |y_n|``, ``Z_n = {i : some draw scores i}``."""
    s = scored.to(logp.dtype)
    t = s.sum(dim=-1, keepdim=True) / lengths.view(-1, 1, 1)
    avg = ((beta * logp).exp() * s / t.clamp(min=1e-8)).mean(dim=1)  # [N, L]
    seen = scored.any(dim=1)
    log_avg = torch.where(seen, avg.masked_fill(~seen, 1.0).log(), torch.zeros_like(avg))
    return log_avg.sum(dim=-1) / seen.sum(dim=-1).clamp(min=1) / beta * lengths


def sandwiched(
    advantage: torch.Tensor, elbo: torch.Tensor, eubo: torch.Tensor | None, bound: str, mix_weight: float
) -> torch.Tensor:
    """``[N]`` ``s_n``: the ELBO where ``A_n > 0``, the chosen bound elsewhere (see the module docstring)."""
    if bound == "mix":
        assert eubo is not None
        negative = mix_weight * eubo + (1.0 - mix_weight) * elbo
    elif bound == "eubo":
        assert eubo is not None
        negative = eubo
    elif bound == "elbo":
        negative = elbo
    elif bound == "zero":
        negative = torch.zeros_like(elbo)
    else:
        raise ConfigError(f"config field 'negative_bound': unknown {bound!r}")
    return torch.where(advantage > 0, elbo, negative)


def spg_loss(advantage: torch.Tensor, estimate: torch.Tensor, lengths: torch.Tensor, group_size: int) -> torch.Tensor:
    """``mean_groups( -sum_n A_n s_n / sum_n |y_n| )``: SPG's length-weighted mean over one group."""
    num = (advantage * estimate).view(-1, group_size).sum(dim=1)
    den = lengths.view(-1, group_size).sum(dim=1)
    return -(num / den).mean()


class SPG(Objective):
    name = "spg"
    Options = SPGOptions
    options: SPGOptions
    # SPG's recipe: NUM_ITER=4 in every spg_{mix,eubo}/*.sbatch (l.28); block 32 and 128 steps
    # (slurm_scripts/train.yaml l.62-63); T 0.9 (diffu_grpo_config.py l.187); low-confidence remasking.
    train_defaults = {"num_iterations": 4, "temperature": 0.9, "diffusion_steps": 128, "block_length": 32}
    summary = "SPG: ELBO for positive advantages, EUBO/mixture upper bound for the rest, block-wise masks"
    on_policy_rollouts = True  # an advantage-weighted likelihood: samples must follow the policy's law

    @property
    def needs_reference(self) -> bool:
        return False

    def prepare(
        self,
        group: RolloutGroup,
        *,
        reference: Any = None,
        old_policy: Any = None,
        generator: torch.Generator | None = None,
        num_iterations: int = 1,
    ) -> RolloutGroup:
        """Draw the block-wise masks (one set per inner iteration with ``resample_noise``). SPG has no ratio
        and no KL, so neither the old policy nor the reference is scored."""
        o = self.options
        counted = loss_positions(group.completion, group.eos_token_id, o.length_norm)
        prompt_real = group.attention_mask[:, : group.prompt_length].bool()
        block = counted.shape[1]
        if o.block_masking:
            if o.mask_block_length is None:
                raise ConfigError(
                    "config field 'mask_block_length' is unset: give it, or build the objective from a training "
                    "config, which takes the rollout sampler's block_length"
                )
            block = o.mask_block_length
        draws = [
            draw_block_masks(
                counted,
                prompt_real,
                o.num_mc,
                block,
                min_t=o.min_t,
                max_t=o.max_t,
                p_clean=o.p_mask_prompt,
                generator=generator,
            )
            for _ in range(num_iterations if o.resample_noise else 1)
        ]
        per_iteration: list[tuple[Any, Any, Any]] = [(d, None, None) for d in draws]
        return replace(
            group, noise=draws[0], old=None, ref=None, per_iteration=per_iteration if len(draws) > 1 else None
        )

    def masked_logp(self, policy: Any, group: RolloutGroup, masks: BlockMasks) -> torch.Tensor:
        """``[N, K, L]`` ``log p(y_i | z_nk)`` of every completion token under each draw's masked canvas."""
        model = self.scored(policy, group)
        n, k, total = masks.canvas.shape
        ids = group.input_ids.repeat_interleave(k, dim=0)
        noisy = ids.masked_fill(masks.canvas.reshape(n * k, total), mask_token_id_of(model))
        attn = group.attention_mask.repeat_interleave(k, dim=0)
        p = group.prompt_length
        logp = token_logprobs(model, noisy, attn, ids[:, p:], p, self.surrogate.micro_batch_size)
        return logp.view(n, k, total - p)

    def loss(self, policy: Any, group: RolloutGroup) -> tuple[torch.Tensor, dict[str, float]]:
        o = self.options
        masks = group.noise
        if not isinstance(masks, BlockMasks):
            raise ConfigError("objective 'spg': call prepare(group, ...) before computing the loss")
        logp = self.masked_logp(policy, group, masks)
        counted = loss_positions(group.completion, group.eos_token_id, o.length_norm)
        scored = masks.canvas[:, :, group.prompt_length :] & counted.unsqueeze(1)
        lengths = counted.sum(dim=1).to(logp.dtype)
        advantage = mean_centred(group.rewards.to(logp.dtype)).reshape(-1)
        elbo = block_elbo(logp, scored, lengths)
        eubo = block_eubo(logp, scored, lengths, o.eubo_beta) if o.negative_bound in ("mix", "eubo") else None
        estimate = sandwiched(advantage, elbo, eubo, o.negative_bound, o.mix_weight)
        loss = spg_loss(advantage, estimate, lengths, group.group_size)
        metrics = {
            "loss": float(loss.detach()),
            "spg/positive_fraction": float((advantage > 0).float().mean()),
            "spg/elbo_per_token": float((elbo / lengths).mean().detach()),
        }
        if eubo is not None:
            metrics["spg/eubo_minus_elbo_per_token"] = float(((eubo - elbo) / lengths).mean().detach())
        return loss, metrics
