"""diffu-GRPO (d1): token-level GRPO on the one-step mean-field surrogate, k3 KL to the reference.

    rho_t = exp( log p_theta(y_t | x~, y masked) - log p_old(y_t | x~, y masked) )
    A     = r - mean_G r                                         (mean-only advantages)
    loss  = - sum_{(x,y),t} w_t [ min(rho_t A, clip(rho_t, 1 - eps_low, 1 + eps_high) A) - beta KL_t ]
    KL_t  = exp(l_ref - l_theta) - (l_ref - l_theta) - 1         (k3)

``x~`` is the prompt with each token masked with probability ``p_mask_prompt``. The authors'
mechanics (dllm-reasoning/d1): a fresh prompt mask for each of the ``num_iterations`` inner
updates (their stated regulariser), positions up to and including the first EOS, and one token mean
over the micro-batch (``w_t = 1 / #counted tokens``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from trafl.likelihood.batch import LengthNorm
from trafl.likelihood.surrogate import SurrogateName
from trafl.objectives.base import Objective, clip_range
from trafl.objectives.functional import clip_fraction, k3_kl, mean_centred, ppo_clip
from trafl.objectives.group import RolloutGroup
from trafl.objectives.options import ObjectiveOptions, TokenReduction
from trafl.utils.config import option


@dataclass
class DiffuGRPOOptions(ObjectiveOptions):
    surrogate: SurrogateName = option("onestep", "Sequence log-likelihood surrogate (d1: the one-step mean-field one).")
    beta: float = option(
        0.04, "k3 KL coefficient to the reference (0 drops the term and the reference model).", min=0.0
    )
    epsilon: float = option(0.5, "Token-ratio clip range (lower side).", min=0.0)
    epsilon_high: float | None = option(None, "Upper clip (default: epsilon).", min=0.0)
    length_norm: LengthNorm = option(
        "tokens", "Positions that count: d1 counts those up to and including the first EOS."
    )
    token_reduction: TokenReduction = option("batch_tokens", "d1 averages over every counted token of the micro-batch.")
    resample_noise: bool = option(True, "A fresh prompt mask for every inner iteration (d1).")


class DiffuGRPO(Objective):
    name = "diffu_grpo"
    Options = DiffuGRPOOptions
    options: DiffuGRPOOptions
    # d1's recipe (diffu-grpo/slurm_scripts/train.yaml; temperature: diffu_grpo_config.py's default):
    # T 0.9, 128 steps, block 32, low-confidence remasking (the trainer's default)
    train_defaults = {"num_iterations": 12, "temperature": 0.9, "diffusion_steps": 128, "block_length": 32}
    summary = "d1's token GRPO on the one-step surrogate with random prompt masking and k3 KL"
    on_policy_rollouts = True  # clipped ratios to the rollout policy: samples must follow its law

    def __init__(self, options: DiffuGRPOOptions | None = None, **kwargs: Any):
        super().__init__(options, **kwargs)
        self.beta = self.options.beta
        self.eps_low, self.eps_high = clip_range(self.options.epsilon, self.options.epsilon_high)

    @property
    def needs_reference(self) -> bool:
        return self.beta > 0

    def loss(self, policy: Any, group: RolloutGroup) -> tuple[torch.Tensor, dict[str, float]]:
        logp, log_ratio = self.token_log_ratio(policy, group)
        advantage = mean_centred(group.rewards.to(logp.dtype)).reshape(-1, 1)
        per_token = ppo_clip(log_ratio, advantage, self.eps_low, self.eps_high)
        weights = self.token_weights(group).to(logp.dtype)
        metrics = {"diffu_grpo/clip_fraction": float(clip_fraction(log_ratio, self.eps_low, self.eps_high))}
        if self.beta > 0:
            kl = k3_kl(logp, self.ref_surrogate(group).token_logp.to(logp.dtype))
            per_token = per_token - self.beta * kl
            metrics["kl"] = float((kl * weights).sum().detach())
        loss = -(per_token * weights).sum()
        metrics["loss"] = float(loss.detach())
        return loss, metrics
