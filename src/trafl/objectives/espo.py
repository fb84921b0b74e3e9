"""ESPO: sequence-level PPO on the ELBO.

    rho(x, y) = exp( (ELBO_theta(y|x) - ELBO_old(y|x)) / L_norm )
    A(x, y)   = r(x, y) - mean_{y' != y} r(x, y')                       (leave-one-out)
    loss      = - mean_{(x,y)} min(rho A, clip(rho, 1 - eps_low, 1 + eps_high) A)
                + beta * mean_{(x,y)} 0.5 * (ELBO_theta(y|x) - ELBO_ref(y|x))^2 / L_norm

The authors' recipe (ML-GSAI/ESPO): ``num_iterations`` inner updates per rollout batch, each on a
fresh ELBO mask draw scored by the old policy and the reference; coupled (antithetic) mask pairs;
rollouts at T 1.0, one token per step, blocks of 32, low-confidence remasking.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from trafl.likelihood.surrogate import ElboEstimator
from trafl.objectives.base import Objective, SameAs, clip_range
from trafl.objectives.functional import clip_fraction, loo_advantage, ppo_clip
from trafl.objectives.group import RolloutGroup
from trafl.objectives.options import ObjectiveOptions
from trafl.utils.config import option


@dataclass
class ESPOOptions(ObjectiveOptions):
    beta: float = option(
        1e-3,
        "KL coefficient of the quadratic ELBO penalty to the reference (ESPO recipe: 1e-3 "
        "for math, 1e-2 for code; 0 drops the term and the reference model).",
        min=0.0,
    )
    epsilon: float = option(0.2, "Sequence-ratio clip range (lower side).", min=0.0)
    epsilon_high: float | None = option(None, "Upper clip (default: epsilon).", min=0.0)
    num_mc: int = option(4, "ELBO masked forwards per sequence: ESPO's num_mc = 2 coupled pairs is 4 here.", min=1)
    elbo_estimator: ElboEstimator = option(
        "espo",
        "ELBO mask law: 'espo' (ESPO's: m ~ U{0..L} systematic across the micro-batch's rows, exact-complement "
        "pairs, every row's size exactly uniform) or 'espo_float32' (the same with ESPO's own float32 "
        "round-half-to-even spreading of the rows' sizes, reproducing its code; at a micro-batch of N rows where "
        "i (L+1) / N is a half-integer, e.g. 2 or 6 rows at L = 256, one row's size law is then not uniform and "
        "its ELBO is biased).",
    )
    resample_noise: bool = option(
        True, "A fresh ELBO mask draw for every inner iteration (ESPO's per-iteration mask seed)."
    )


class ESPO(Objective):
    name = "espo"
    Options = ESPOOptions
    options: ESPOOptions
    # ESPO's recipe (recipes/train.yaml, run_*_llada.sh): T 1.0, diffusion_steps = max_completion_length
    # = 256, block 32 (espo_trainer.py's generate call), low-confidence remasking (the trainer's default)
    train_defaults = {
        "num_iterations": 8,
        "temperature": 1.0,
        "diffusion_steps": SameAs("max_completion_length"),
        "block_length": 32,
    }
    summary = "sequence-level PPO on the ELBO, leave-one-out advantages, quadratic ELBO KL"
    on_policy_rollouts = True  # clipped ratios to the rollout policy: samples must follow its law

    def __init__(self, options: ESPOOptions | None = None, **kwargs: Any):
        super().__init__(options, **kwargs)
        self.beta = self.options.beta
        self.eps_low, self.eps_high = clip_range(self.options.epsilon, self.options.epsilon_high)

    @property
    def needs_reference(self) -> bool:
        return self.beta > 0

    def loss(self, policy: Any, group: RolloutGroup) -> tuple[torch.Tensor, dict[str, float]]:
        lengths = group.lengths(self.length_norm)
        current = self.policy_surrogate(policy, group)
        elbo_theta = current.value
        log_ratio = (elbo_theta - self.old_surrogate(group, current).value.to(elbo_theta.dtype)) / lengths
        advantage = loo_advantage(group.rewards.to(elbo_theta.dtype)).reshape(-1)
        policy_term = ppo_clip(log_ratio, advantage, self.eps_low, self.eps_high)
        loss = -policy_term.mean()
        metrics = {"espo/clip_fraction": float(clip_fraction(log_ratio, self.eps_low, self.eps_high))}
        if self.beta > 0:
            diff = elbo_theta - self.ref_surrogate(group).value.to(elbo_theta.dtype)
            kl = (0.5 * diff.pow(2) / lengths).mean()
            loss = loss + self.beta * kl
            metrics["kl"] = float(kl.detach())
        metrics["loss"] = float(loss.detach())
        return loss, metrics
