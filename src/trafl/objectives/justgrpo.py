"""JustGRPO: token-level GRPO on the exact left-to-right (autoregressive) likelihood.

    rho_t(x, y) = exp( log p_theta(y_t | x, y_<t) - log p_old(y_t | x, y_<t) )
    A(x, y)     = (r - mean_G r) / (std_G r + 1e-4)          (std: unbiased, as torch.std)
    loss        = - (1 / (L V)) sum_{(x,y)} sum_t min(rho_t A, clip(rho_t, 1 - eps_low, 1 + eps_high) A)

with ``V`` the number of samples of the micro-batch whose advantage is nonzero
(``per_informative_sample``; else all): JustGRPO counts per accumulation micro-step too (its
``train.py`` counts inside the accumulation loop), and adds the micro-steps' gradients where trafl
averages them, so its clip at 1.0 over 8 micro-steps is ``max_grad_norm`` 0.125 here.

No KL term and no reference model. The authors' premise (LeapLabTHU/JustGRPO): the dLLM is
*sampled* left to right (block length 1, one token per step, temperature 1), so the autoregressive
likelihood it trains on is the exact log-probability of its own rollouts; the trainer samples so
(``rollout_order = "left_to_right"``) and refuses another sampler unless asked explicitly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from trafl.likelihood.surrogate import SurrogateName
from trafl.objectives.base import Objective, clip_range
from trafl.objectives.chunked import ChunkedLoss
from trafl.objectives.functional import clip_fraction, group_normalise, ppo_clip
from trafl.objectives.group import RolloutGroup
from trafl.objectives.options import ObjectiveOptions
from trafl.utils.config import option


@dataclass
class JustGRPOOptions(ObjectiveOptions):
    surrogate: SurrogateName = option(
        "autoregressive", "Sequence log-likelihood surrogate (JustGRPO: the exact autoregressive one)."
    )
    epsilon: float = option(0.2, "Token-ratio clip range (lower side).", min=0.0)
    epsilon_high: float | None = option(None, "Upper clip (default: epsilon).", min=0.0)
    unbiased_std: bool = option(
        True, "Advantage denominator: the unbiased group std (JustGRPO, torch.std) or the population std."
    )
    per_informative_sample: bool = option(
        True,
        "Divide the summed token loss by L times the number of the micro-batch's samples with a nonzero "
        "advantage (JustGRPO, per accumulation micro-step), not by L times all samples: groups whose rewards "
        "are all equal then do not dilute the step.",
    )
    score_temperature: bool = option(
        True, "Score log-likelihoods at the rollout temperature (JustGRPO divides logits by it)."
    )


class JustGRPO(Objective):
    name = "justgrpo"
    Options = JustGRPOOptions
    options: JustGRPOOptions
    train_defaults = {"temperature": 1.0, "num_iterations": 1}
    rollout_order = "left_to_right"
    summary = "token GRPO on the exact left-to-right likelihood of left-to-right rollouts, no KL"
    on_policy_rollouts = True  # clipped ratios to the rollout policy: samples must follow its law
    chunked_backward = True  # per-token terms: backpropagated per forward chunk (loss_chunks)

    def __init__(self, options: JustGRPOOptions | None = None, **kwargs: Any):
        super().__init__(options, **kwargs)
        self.eps_low, self.eps_high = clip_range(self.options.epsilon, self.options.epsilon_high)

    @property
    def needs_reference(self) -> bool:
        return False

    def loss(self, policy: Any, group: RolloutGroup) -> tuple[torch.Tensor, dict[str, float]]:
        _, log_ratio = self.token_log_ratio(policy, group)
        return self.loss_and_metrics(log_ratio, group)

    def loss_chunks(self, policy: Any, group: RolloutGroup) -> ChunkedLoss | None:
        """The same loss backpropagated per forward chunk of the exact ordered likelihood (same gradient,
        same value and metrics; one chunk's graph alive at a time): its terms are per token."""
        advantage, weights = self.advantage_and_weights(group)

        def terms(logp: torch.Tensor, log_ratio: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
            return token_terms(
                log_ratio, advantage[rows].to(logp.dtype), weights[rows].to(logp.dtype), self.eps_low, self.eps_high
            )

        return self.chunked_token_loss(
            policy, group, terms, lambda logp, log_ratio: self.loss_and_metrics(log_ratio, group)
        )

    def advantage_and_weights(self, group: RolloutGroup) -> tuple[torch.Tensor, torch.Tensor]:
        """``([N, 1] advantages, [N, L] token weights)``, the latter divided by the informative share when asked."""
        advantage = group_normalise(group.rewards.float(), unbiased=self.options.unbiased_std).reshape(-1, 1)
        weights = self.token_weights(group)
        if self.options.per_informative_sample and self.options.token_reduction == "sequence":
            informative = (advantage.reshape(-1) != 0).sum().clamp(min=1)
            weights = weights * (weights.shape[0] / informative)
        return advantage, weights

    def loss_and_metrics(self, log_ratio: torch.Tensor, group: RolloutGroup) -> tuple[torch.Tensor, dict[str, float]]:
        advantage, weights = self.advantage_and_weights(group)
        dtype = log_ratio.dtype
        loss = token_terms(log_ratio, advantage.to(dtype), weights.to(dtype), self.eps_low, self.eps_high).sum()
        return loss, {
            "loss": float(loss.detach()),
            "justgrpo/clip_fraction": float(clip_fraction(log_ratio, self.eps_low, self.eps_high)),
        }


def token_terms(
    log_ratio: torch.Tensor, advantage: torch.Tensor, weights: torch.Tensor, eps_low: float, eps_high: float
) -> torch.Tensor:
    """``-w_t min(rho_t A, clip(rho_t, 1 - eps_low, 1 + eps_high) A)``: each token's share of the loss."""
    return -(ppo_clip(log_ratio, advantage, eps_low, eps_high) * weights)
