"""wd1: ratio-free, advantage-weighted likelihood (Tang, Dolga, Yoon and Bogunovic, arXiv 2507.08838).

    s_theta(y|x) = sum_{t counted} log p_theta(y_t | x~, y masked)          (d1's one-step surrogate)
    A(x, y)      = r(x, y) - mean_G r                                      (mean-only advantages)
    log q+(y)    =  psi A(x, y) + lambda (s_ref - s_old)(y|x)              (tilted target, sampled from pi_old)
    log q-(y)    = -psi A(x, y) + lambda (s_ref - s_old)(y|x)
    w+, w-       = softmax_G(log q+), softmax_G(log q-)                    (self-normalised over the group)
    loss         = mean_x [ - c+ sum_G w+ s_theta  +  c- sum_G w- s_theta ]

The positive part fits the policy to the group's samples re-weighted towards the tilted target
``pi_old^(1-lambda) pi_ref^lambda exp(psi A)``; the negative part lowers the likelihood of the
samples weighted towards ``exp(-psi A)`` (the paper's negative-sample unlearning). Only the current
policy's likelihood is differentiated: no ratio, no clip, no KL term. With ``lambda = 0`` the old
policy and the reference are never scored.

The authors' code (xiaohangt/wd1 @ 0898985, ``wd1/trainers/rev_grpo_trainer.py`` l.143-160, the
``wll_d1_neg`` trainer of ``run/wll_NP_*.sh``, the method their README runs): ``psi = 1``,
``lambda = 0``, ``c+ = c- = 1``, d1's one-step surrogate with a fresh prompt mask per inner iteration,
the sequence sum over positions up to and including the first EOS, and the softmax over the rows of
one device's micro-batch, which at their geometry (6 rows per device, G = 6) is exactly one group.
``negative_weight = 0`` is their positive-only variant (``wll_d1_pos_only``, ``run/wll_P_*.sh``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from trafl.likelihood import loss_positions
from trafl.likelihood.batch import LengthNorm
from trafl.likelihood.surrogate import SurrogateName
from trafl.objectives.base import Objective
from trafl.objectives.functional import mean_centred
from trafl.objectives.group import RolloutGroup
from trafl.objectives.options import ObjectiveOptions
from trafl.utils.config import option


def tilted_log_weights(
    advantage: torch.Tensor, psi: float, ref_tilt: float, log_ratio_ref_old: torch.Tensor | None
) -> torch.Tensor:
    """Unnormalised log-weights ``psi A + lambda (s_ref - s_old)``, ``[P, G]`` (the second term only
    when ``lambda != 0``; ``log_ratio_ref_old`` is then ``[P, G]`` and detached)."""
    log_w = psi * advantage
    if ref_tilt != 0.0:
        if log_ratio_ref_old is None:
            raise ValueError("ref_tilt != 0 needs the reference-to-old log-likelihood ratio")
        log_w = log_w + ref_tilt * log_ratio_ref_old
    return log_w


def group_softmax(log_w: torch.Tensor) -> torch.Tensor:
    """``softmax`` over each group's ``G`` samples: ``w_ij = exp(log_w_ij) / sum_k exp(log_w_ik)``, ``[P, G]``."""
    return torch.softmax(log_w, dim=1)


def weighted_likelihood_loss(
    seq_logp: torch.Tensor, w_pos: torch.Tensor, w_neg: torch.Tensor, c_pos: float, c_neg: float
) -> torch.Tensor:
    """``mean_P [ -c+ sum_G w+ s + c- sum_G w- s ]`` for ``seq_logp`` ``[P, G]`` and detached weights."""
    per_group = -c_pos * (w_pos * seq_logp).sum(dim=1) + c_neg * (w_neg * seq_logp).sum(dim=1)
    return per_group.mean()


@dataclass
class Wd1Options(ObjectiveOptions):
    surrogate: SurrogateName = option(
        "onestep", "Sequence log-likelihood surrogate (wd1 uses d1's one-step mean-field one)."
    )
    length_norm: LengthNorm = option(
        "tokens",
        "Positions summed into the sequence log-likelihood: wd1 counts those up to and including the first EOS.",
    )
    resample_noise: bool = option(True, "A fresh prompt mask for every inner iteration (wd1, as d1).")
    psi: float = option(
        1.0, "Inverse temperature of the advantage in the weights' softmax, exp(psi A) (wd1's code: 1).", min=0.0
    )
    ref_tilt: float = option(
        0.0,
        "lambda: exponent of pi_ref / pi_old in the tilted target pi_old^(1-lambda) pi_ref^lambda exp(psi A), "
        "estimated with the surrogate's sequence log-likelihoods (wd1's code: 0, neither the old policy nor the "
        "reference is scored).",
        min=0.0,
        max=1.0,
    )
    positive_weight: float = option(
        1.0, "Coefficient c+ of the positive part, -sum_G softmax(psi A) s_theta (wd1: 1).", min=0.0
    )
    negative_weight: float = option(
        1.0,
        "Coefficient c- of the negative part, +sum_G softmax(-psi A) s_theta (wd1: 1; 0 is its positive-only variant).",
        min=0.0,
    )


class Wd1(Objective):
    name = "wd1"
    Options = Wd1Options
    options: Wd1Options
    # wd1's recipe (run/wll_NP_*.sh NUM_ITER=12; wd1/train.yaml: 128 steps, block 32, low-confidence
    # remasking, the trainer's default; temperature: diffu_grpo_config.py's default 0.9), d1's values.
    train_defaults = {"num_iterations": 12, "temperature": 0.9, "diffusion_steps": 128, "block_length": 32}
    summary = "wd1's ratio-free likelihood weighted by group softmaxes of +-advantages (d1's one-step surrogate)"
    on_policy_rollouts = True  # the weights re-weight samples of the rollout policy

    @property
    def needs_reference(self) -> bool:
        return self.options.ref_tilt > 0

    def prepare(self, group: RolloutGroup, *, old_policy: Any = None, **kwargs: Any) -> RolloutGroup:
        """As :meth:`Objective.prepare`, but the old policy is scored only when the weights read it."""
        return super().prepare(group, old_policy=old_policy if self.options.ref_tilt > 0 else None, **kwargs)

    def loss(self, policy: Any, group: RolloutGroup) -> tuple[torch.Tensor, dict[str, float]]:
        o = self.options
        current = self.policy_surrogate(policy, group)
        counted = loss_positions(group.completion, group.eos_token_id, o.length_norm)
        logp = current.token_logp
        seq_logp = (logp * counted.to(logp.dtype)).sum(dim=1).view(group.num_prompts, group.group_size)
        advantage = mean_centred(group.rewards.to(logp.dtype))
        log_ratio = None
        if o.ref_tilt > 0:
            old = self.old_surrogate(group, current).token_logp.to(logp.dtype)
            ref = self.ref_surrogate(group).token_logp.to(logp.dtype)
            log_ratio = ((ref - old) * counted.to(logp.dtype)).sum(dim=1).detach().view_as(advantage)
        w_pos = group_softmax(tilted_log_weights(advantage, o.psi, o.ref_tilt, log_ratio))
        w_neg = group_softmax(tilted_log_weights(-advantage, o.psi, o.ref_tilt, log_ratio))
        loss = weighted_likelihood_loss(seq_logp, w_pos, w_neg, o.positive_weight, o.negative_weight)
        metrics = {
            "loss": float(loss.detach()),
            "wd1/seq_logp": float(seq_logp.detach().mean()),
            "wd1/max_weight": float(w_pos.detach().max()),
        }
        return loss, metrics
