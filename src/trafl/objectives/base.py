"""What every objective shares: its options, the surrogate, the rollout-time caches and the common call.

Use::

    objective = get_objective("trafl", beta=0.05, hidden_size=4096)
    group = objective.prepare(group, reference=ref, old_policy=policy if mu > 1 else None,
                              generator=g, num_iterations=mu)   # once per rollout batch, no gradients
    for i in range(mu):
        loss, metrics = objective(policy, group.for_iteration(i))   # differentiable in policy (and the head)
        loss.backward(); ...

``prepare`` draws the surrogate's randomness (once, or once per inner iteration when the options
say ``resample_noise``) so that the policy, the old policy and the reference are evaluated on the
same masks (common random numbers) at every inner iteration.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, ClassVar

import torch
from torch import nn

from trafl.errors import ConfigError
from trafl.likelihood import Surrogate, SurrogateOutput, loss_positions
from trafl.models.interface import get_logits, get_target_logprobs, mask_token_id_of
from trafl.objectives.chunked import ChunkedLoss, Finish, TokenTerms
from trafl.objectives.group import RolloutGroup
from trafl.objectives.options import ObjectiveOptions


@dataclass(frozen=True)
class SameAs:
    """A ``train_defaults`` value that is another trainer field's resolved value, e.g.
    ``{"diffusion_steps": SameAs("max_completion_length")}``: one token per step whatever ``L`` is."""

    field: str

    def __repr__(self) -> str:
        return f"= {self.field}"


def clip_range(epsilon: float, epsilon_high: float | None) -> tuple[float, float]:
    """``(eps_low, eps_high)`` of a clipped ratio; ``epsilon_high`` defaults to ``epsilon``."""
    return epsilon, (epsilon if epsilon_high is None else epsilon_high)


class TemperatureScaled:
    """A denoiser whose logits are divided by ``temperature``: the distribution a sampler at that
    temperature draws each token from, ``softmax(logits / T)``."""

    def __init__(self, model: Any, temperature: float):
        self.model, self.temperature = model, temperature
        self.config = getattr(model, "config", None)
        self.mask_token_id = mask_token_id_of(model)

    def __call__(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        target_ids: torch.Tensor | None = None,
        temperature: float = 1.0,
        **kwargs: Any,
    ) -> torch.Tensor:
        if target_ids is not None:  # the model scores the targets itself, at the compounded temperature
            return get_target_logprobs(
                self.model, input_ids, attention_mask, target_ids, temperature=temperature * self.temperature
            )
        return get_logits(self.model, input_ids, attention_mask) / self.temperature


class Objective(nn.Module):
    """Base class: holds the options, the surrogate and the rollout-time caches; subclasses define ``loss``.

    Class attributes a new objective sets (with its module, that is all it takes; see docs/objectives.md):

    * ``name``: the registry name (``--method``);
    * ``Options``: its options dataclass, a subclass of :class:`ObjectiveOptions` carrying the
      authors' defaults;
    * ``train_defaults``: the authors' values of trainer fields the user leaves unset
      (``num_iterations``, and the rollout sampler their recipe fixes: ``temperature``,
      ``diffusion_steps``, ``block_length``); :class:`SameAs` names a value that follows another
      trainer field (``diffusion_steps = max_completion_length``);
    * ``rollout_order``: ``"left_to_right"`` when its likelihood is the rollout's exact
      log-probability only for left-to-right sampling (JustGRPO); the trainer then samples so and
      refuses any other sampler unless asked explicitly;
    * ``on_policy_rollouts``: ``True`` when its estimator assumes the rollouts are samples of the
      rollout policy's own law (a ratio to the old policy, an advantage-weighted likelihood: the
      GRPO family), so an approximate sampler (a KV cache, a confidence threshold) biases its
      gradient; ``False`` when any sampler with full support serves (TraFL's trajectory-balance
      residual is zero for every ``y`` at the target). The trainer warns about the former.
    """

    name: ClassVar[str] = ""
    Options: ClassVar[type[ObjectiveOptions]] = ObjectiveOptions
    train_defaults: ClassVar[dict[str, Any]] = {}
    rollout_order: ClassVar[str | None] = None
    on_policy_rollouts: ClassVar[bool] = True
    summary: ClassVar[str] = ""
    #: ``True`` when :meth:`loss_chunks` gives the loss per forward chunk of an ordered surrogate (its loss
    #: is a sum of per-token terms): then only one chunk's graph is alive at a time.
    chunked_backward: ClassVar[bool] = False

    def __init__(self, options: ObjectiveOptions | None = None, *, micro_batch_size: int | None = None):
        super().__init__()
        self.options = options if options is not None else self.Options()
        if not isinstance(self.options, self.Options):
            raise ConfigError(
                f"objective '{self.name}' takes {self.Options.__name__}, got {type(self.options).__name__}"
            )
        o = self.options
        self.length_norm = o.length_norm
        self.surrogate = Surrogate(
            o.surrogate,
            num_mc=o.num_mc,
            antithetic=o.antithetic,
            p_mask_prompt=o.p_mask_prompt,
            chunk_size=o.ar_chunk_size,
            micro_batch_size=micro_batch_size,
            elbo_estimator=o.elbo_estimator,
        )

    @property
    def needs_reference(self) -> bool:
        """Whether the loss reads the reference model (the trainer builds one only then)."""
        return True

    # ---- rollout time -------------------------------------------------------------------------
    def scored(self, model: Any, group: RolloutGroup) -> Any:
        """``model`` as the objective scores it: at the rollout temperature when ``score_temperature``."""
        t = group.temperature
        if model is None or not self.options.score_temperature or t <= 0 or t == 1.0:
            return model
        return TemperatureScaled(model, t)

    def _evaluate(self, model: Any, group: RolloutGroup, noise: Any) -> SurrogateOutput:
        return self.surrogate.evaluate(self.scored(model, group), group.batch, noise, group.commit_step)

    def prepare(
        self,
        group: RolloutGroup,
        *,
        reference: Any = None,
        old_policy: Any = None,
        generator: torch.Generator | None = None,
        num_iterations: int = 1,
    ) -> RolloutGroup:
        """Draw the surrogate noise and cache the old-policy and reference surrogates (no grad).

        With ``resample_noise`` and a random surrogate, ``num_iterations`` independent draws are made
        now, each scored by the old policy and the reference, and inner iteration ``i`` uses draw ``i``
        (:meth:`RolloutGroup.for_iteration`); otherwise one draw serves every iteration.
        """
        if self.needs_reference and reference is None:
            raise ConfigError(f"objective '{self.name}' needs a reference model")
        random_noise = self.surrogate.name in ("elbo", "onestep")
        draws = num_iterations if (self.options.resample_noise and random_noise) else 1
        per_iteration = []
        with torch.no_grad():
            for _ in range(draws):
                noise = self.surrogate.draw(group.batch, generator)
                old = None if old_policy is None else self._evaluate(old_policy, group, noise)
                ref = self._evaluate(reference, group, noise) if self.needs_reference else None
                per_iteration.append((noise, old, ref))
        noise, old, ref = per_iteration[0]
        return replace(group, noise=noise, old=old, ref=ref, per_iteration=per_iteration if draws > 1 else None)

    # ---- update time --------------------------------------------------------------------------
    def policy_surrogate(self, policy: Any, group: RolloutGroup) -> SurrogateOutput:
        return self._evaluate(policy, group, group.noise)

    def old_surrogate(self, group: RolloutGroup, current: SurrogateOutput) -> SurrogateOutput:
        """The rollout policy's surrogate; with one inner iteration it is the current one, detached."""
        return group.old if group.old is not None else current.detach()

    def token_log_ratio(self, policy: Any, group: RolloutGroup) -> tuple[torch.Tensor, torch.Tensor]:
        """``(log pi_theta,t, log pi_theta,t - log pi_old,t)``, both ``[N, L]``, for token-level objectives."""
        current = self.policy_surrogate(policy, group)
        logp = current.token_logp
        return logp, logp - self.old_surrogate(group, current).token_logp.to(logp.dtype)

    def ref_surrogate(self, group: RolloutGroup) -> SurrogateOutput:
        if group.ref is None:
            raise ConfigError(f"objective '{self.name}' needs reference surrogates: call prepare(group, reference=...)")
        return group.ref

    def token_weights(self, group: RolloutGroup) -> torch.Tensor:
        """``[N, L]`` weights ``w`` such that a token-level loss is ``sum_{n,t} w_nt loss_nt``.

        ``sequence``: ``1[t counts] / (L_norm(n) N)`` (mean over sequences of per-sequence means);
        ``batch_tokens``: ``1[t counts] / sum_{n,t} 1[t counts]`` (one mean over the micro-batch's tokens).
        """
        counts = loss_positions(group.completion, group.eos_token_id, self.length_norm).float()
        if self.options.token_reduction == "batch_tokens":
            return counts / counts.sum().clamp(min=1.0)
        return counts / group.lengths(self.length_norm).unsqueeze(1) / counts.shape[0]

    def loss(self, policy: Any, group: RolloutGroup) -> tuple[torch.Tensor, dict[str, float]]:
        raise NotImplementedError

    @property
    def backward_per_chunk(self) -> bool:
        """Whether the trainer backpropagates this objective's loss one forward chunk at a time."""
        return self.chunked_backward and self.surrogate.ordered

    def loss_chunks(self, policy: Any, group: RolloutGroup) -> ChunkedLoss | None:
        """The loss as pieces to backpropagate one at a time (:mod:`trafl.objectives.chunked`), or ``None``
        when the objective computes it in one graph only (the default)."""
        return None

    def chunked_token_loss(
        self, policy: Any, group: RolloutGroup, terms: TokenTerms, finish: Finish
    ) -> ChunkedLoss | None:
        """A :class:`ChunkedLoss` over the ordered surrogate's chunks (``None`` for other surrogates), with the
        rollout policy's cached log-probabilities as the ratio's denominator (:meth:`old_surrogate`'s rule)."""
        if not self.surrogate.ordered:
            return None
        order = self.surrogate.order(group.batch, group.commit_step)
        return ChunkedLoss(
            self.scored(policy, group),
            group.batch,
            order,
            self.surrogate.chunks(order),
            old_logp=None if group.old is None else group.old.token_logp,
            terms=terms,
            finish=finish,
        )

    def forward(self, policy: Any, group: RolloutGroup) -> tuple[torch.Tensor, dict[str, float]]:
        if group.noise is None and self.surrogate.name in ("elbo", "onestep"):
            raise ConfigError(f"objective '{self.name}': call prepare(group, ...) before computing the loss")
        return self.loss(policy, group)
