"""The objectives' maths as small pure functions over tensors.

Rewards and advantages are ``[num_prompts, G]``; per-sequence quantities are ``[N]`` with
``N = num_prompts * G`` in prompt-major order.
"""

from __future__ import annotations

from typing import Literal, get_args

import torch

from trafl.errors import ConfigError

#: The reward transforms of :func:`transform_rewards`.
RewardTransform = Literal["group_norm", "loo", "raw"]
REWARD_TRANSFORMS: tuple[RewardTransform, ...] = get_args(RewardTransform)


def group_normalise(r: torch.Tensor, eps: float = 1e-4, unbiased: bool = False) -> torch.Tensor:
    """``(r - mean_G r) / (std_G r + eps)`` within each group (population std, or ``unbiased``: / (G - 1))."""
    mean = r.mean(dim=1, keepdim=True)
    std = r.std(dim=1, unbiased=unbiased, keepdim=True)
    return (r - mean) / (std + eps)


def loo_advantage(r: torch.Tensor) -> torch.Tensor:
    """Leave-one-out baseline: ``r_i - (1/(G-1)) sum_{j != i} r_j = G/(G-1) (r_i - mean_G r)``."""
    g = r.shape[1]
    if g < 2:
        raise ConfigError("leave-one-out advantages need at least 2 samples per prompt")
    return (r - r.mean(dim=1, keepdim=True)) * g / (g - 1)


def mean_centred(r: torch.Tensor) -> torch.Tensor:
    """``r - mean_G r`` (d1's mean-only advantages)."""
    return r - r.mean(dim=1, keepdim=True)


def transform_rewards(r: torch.Tensor, transform: str) -> torch.Tensor:
    """TraFL's ``r~``: ``group_norm``, ``loo`` or ``raw``."""
    if transform == "group_norm":
        return group_normalise(r)
    if transform == "loo":
        return loo_advantage(r)
    if transform == "raw":
        return r
    raise ConfigError(f"reward_transform must be one of {REWARD_TRANSFORMS}, got {transform!r}")


def trafl_residual(
    logz: torch.Tensor, s_theta: torch.Tensor, s_ref: torch.Tensor, r_tilde: torch.Tensor, beta: float
) -> torch.Tensor:
    """Trajectory-balance residual ``delta = logZ(x) + s_theta(y|x) - s_ref(y|x) - beta * r~(x,y)``."""
    return logz + s_theta - s_ref - beta * r_tilde


def vargrad_logz(
    s_theta: torch.Tensor, s_ref: torch.Tensor, r_tilde: torch.Tensor, beta: float, group_size: int
) -> torch.Tensor:
    """VarGrad's ``logZ(x) = sg( mean_G -(s_theta - s_ref - beta r~) )``, broadcast to ``[N]``."""
    centre = -(s_theta - s_ref - beta * r_tilde).detach().view(-1, group_size).mean(dim=1)
    return centre.repeat_interleave(group_size)


def partition_logz(
    s_ref: torch.Tensor, s_old: torch.Tensor, r_tilde: torch.Tensor, beta: float, lengths: torch.Tensor, group_size: int
) -> torch.Tensor:
    """The target's own log-partition, per token, from a self-normalised importance estimate over the group:

        Z^(x)   = sum_j w_j exp(L_j beta r~_j) / sum_j w_j,   w_j = pi_ref(y_j) / pi_old(y_j) = exp(L_j (s_ref - s_old)_j)
        logZ(x) = sg( log Z^(x) ) / L_i                       (row i; L = L_norm)

    ``Z^`` estimates ``E_ref[exp(L beta r~)]``, the partition function of ``pi_ref exp(L beta r~)``,
    from the rollout policy's samples; it is consistent (at ``pi_old = pi*`` it tends to ``Z``). Unlike
    VarGrad's group mean, it does not move when the policy lowers the likelihood of every sampled
    sequence by the same amount (the weights are self-normalised), so such a uniform drain of mass
    from a prompt costs ``delta^2``. Returns ``[N]``, detached.
    """
    a = (lengths * (s_ref - s_old)).detach().view(-1, group_size)
    b = (lengths * beta * r_tilde).detach().view(-1, group_size)
    log_z = torch.logsumexp(a + b, dim=1) - torch.logsumexp(a, dim=1)
    return log_z.repeat_interleave(group_size) / lengths.detach()


def clipped_importance_weight(log_ratio: torch.Tensor, eps_low: float, eps_high: float) -> torch.Tensor:
    """``sg( clip(exp(log_ratio), 1 - eps_low, 1 + eps_high) )``."""
    return log_ratio.detach().exp().clamp(1.0 - eps_low, 1.0 + eps_high)


def ppo_clip(log_ratio: torch.Tensor, advantage: torch.Tensor, eps_low: float, eps_high: float) -> torch.Tensor:
    """PPO's clipped surrogate to *maximise*: ``min(rho A, clip(rho, 1-eps_low, 1+eps_high) A)``."""
    rho = log_ratio.exp()
    return torch.minimum(rho * advantage, rho.clamp(1.0 - eps_low, 1.0 + eps_high) * advantage)


def k3_kl(logp: torch.Tensor, logp_ref: torch.Tensor) -> torch.Tensor:
    """Schulman's k3 estimator of ``KL(pi || pi_ref)``: ``exp(d) - d - 1`` with ``d = logp_ref - logp``."""
    d = logp_ref - logp
    return d.exp() - d - 1.0


def clip_fraction(log_ratio: torch.Tensor, eps_low: float, eps_high: float) -> torch.Tensor:
    """Share of ratios outside ``[1 - eps_low, 1 + eps_high]``."""
    rho = log_ratio.detach().exp()
    return ((rho < 1.0 - eps_low) | (rho > 1.0 + eps_high)).float().mean()
