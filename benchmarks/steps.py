"""One policy update of an objective on a fixed rollout group: what the training benchmarks time.

A step is ``objective.prepare`` (surrogate masks, reference surrogates, logZ features; no
gradient), the policy loss, its backward pass and one optimizer step, i.e. ``RLTrainer.train_step``
without the rollout and the reward (those are timed by the sampler benchmark).

``chunks > 1`` splits the backward pass into row chunks (gradient accumulation inside one group),
for TraFL only: its loss ``mean_i w_i delta_i^2`` is a mean of per-row terms once the rewards are
transformed, so transforming them on the whole group first and weighting each chunk's mean by
``|chunk| / N`` gives exactly the full-group gradient with a fraction of the activation memory.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch

from trafl.objectives import OBJECTIVES, RolloutGroup, get_objective
from trafl.objectives.functional import transform_rewards
from trafl.objectives.reference import make_reference

METHODS = tuple(OBJECTIVES)


def random_group(
    num_prompts: int,
    group_size: int,
    prompt_length: int,
    gen_length: int,
    vocab: int,
    eos_token_id: int,
    mask_token_id: int,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> RolloutGroup:
    """A rollout group of random tokens (never the mask token) and random 0/1 rewards."""
    g = torch.Generator().manual_seed(seed)
    n = num_prompts * group_size
    prompts = torch.randint(3, vocab, (num_prompts, prompt_length), generator=g).repeat_interleave(group_size, 0)
    completion = torch.randint(3, vocab, (n, gen_length), generator=g)
    completion[completion == mask_token_id] = eos_token_id
    ids = torch.cat([prompts, completion], dim=1)
    commit = torch.stack([torch.randperm(gen_length, generator=g) for _ in range(n)])
    rewards = torch.randint(0, 2, (num_prompts, group_size), generator=g).float()
    return RolloutGroup(
        input_ids=ids.to(device),
        attention_mask=torch.ones_like(ids).to(device),
        prompt_length=prompt_length,
        rewards=rewards.to(device),
        eos_token_id=eos_token_id,
        commit_step=commit.to(device),
    )


def build_objective(method: str, hidden_size: int, gen_length: int | None = None, **options: Any):
    """Objective ``method`` with its authors' options; with ``gen_length``, bound to a rollout of that
    length whose sampler has 8 blocks, as the recipes' 256 tokens in blocks of 32 (SPG's masks follow them)."""
    if method == "trafl":  # the learned head: its cost is part of the measurement, and row chunks need it
        options.setdefault("hidden_size", hidden_size)
        options.setdefault("logz", "learned")
    objective = get_objective(method, **options)
    if gen_length is not None:
        objective.options.bind_rollout(gen_length, max(1, gen_length // 8))
    return objective


def _row_chunks(group: RolloutGroup, chunks: int) -> list[tuple[RolloutGroup, float]]:
    """Single-prompt row chunks of a prepared TraFL group with transformed (``raw``) rewards."""
    if group.num_prompts != 1:
        raise ValueError("row chunks split one prompt's group; use one prompt per group")
    n = group.input_ids.shape[0]
    bounds = torch.linspace(0, n, chunks + 1).round().long().tolist()
    out = []
    for a, b in zip(bounds[:-1], bounds[1:]):
        rows = slice(a, b)
        pick = lambda x: None if x is None else (x[rows] if isinstance(x, torch.Tensor) else x.select(rows))  # noqa: E731
        sub = replace(
            group,
            input_ids=group.input_ids[rows],
            attention_mask=group.attention_mask[rows],
            rewards=group.rewards[:, rows],
            commit_step=pick(group.commit_step),
            noise=pick(group.noise),
            old=pick(group.old),
            ref=pick(group.ref),
        )
        out.append((sub, (b - a) / n))
    return out


def update_step(
    objective,
    policy: Any,
    reference: Any,
    group: RolloutGroup,
    optimizer: torch.optim.Optimizer,
    generator_seed: int = 0,
    chunks: int = 1,
) -> float:
    """One update (prepare, loss, backward, optimizer step); returns the loss."""
    gen = torch.Generator(device=group.input_ids.device).manual_seed(generator_seed)
    was_training = policy.training
    policy.eval()
    prepared = objective.prepare(group, reference=reference, generator=gen)
    policy.train(was_training)
    optimizer.zero_grad(set_to_none=True)
    if chunks <= 1:
        loss, _ = objective(policy, prepared)
        loss.backward()
        total = float(loss.detach())
    else:
        if objective.name != "trafl":
            raise ValueError("row chunks are implemented for TraFL only")
        if objective.logz_mode in ("vargrad", "partition"):
            raise ValueError("row chunks need a logZ that does not depend on the rows of the group (logz='learned')")
        transform, objective.reward_transform = objective.reward_transform, "raw"
        try:
            r_tilde = transform_rewards(prepared.rewards, transform)
            total = 0.0
            for sub, weight in _row_chunks(replace(prepared, rewards=r_tilde), chunks):
                loss, _ = objective(policy, sub)
                (loss * weight).backward()
                total += float(loss.detach()) * weight
        finally:
            objective.reward_transform = transform
    optimizer.step()
    return total


def rollout_batch_update(
    objective,
    policy: Any,
    reference: Any,
    group: RolloutGroup,
    optimizer: torch.optim.Optimizer,
    num_iterations: int,
    generator_seed: int = 0,
) -> float:
    """Everything one rollout batch costs after sampling, at a method's own recipe.

    ``RLTrainer.train_step`` minus rollout and reward: ``prepare`` with the old policy (when
    ``num_iterations > 1``) and, with ``resample_noise``, one noise draw per inner iteration scored by the
    old policy and the reference; then ``num_iterations`` times loss, backward and optimizer step on
    ``group.for_iteration(i)``. Returns the last inner iteration's loss.
    """
    gen = torch.Generator(device=group.input_ids.device).manual_seed(generator_seed)
    was_training = policy.training
    policy.eval()
    old = policy if num_iterations > 1 else None
    prepared = objective.prepare(
        group, reference=reference, old_policy=old, generator=gen, num_iterations=num_iterations
    )
    policy.train(was_training)
    loss = torch.zeros(())
    for i in range(num_iterations):
        optimizer.zero_grad(set_to_none=True)
        loss, _ = objective(policy, prepared.for_iteration(i))
        loss.backward()
        optimizer.step()
    return float(loss.detach())


def make_trainable(policy: torch.nn.Module, objective, lr: float = 1e-4) -> tuple[Any, torch.optim.Optimizer]:
    """The reference (adapters off under peft, else a frozen copy) and an AdamW over policy + head."""
    reference = make_reference(policy)
    params = [p for p in policy.parameters() if p.requires_grad] + list(objective.parameters())
    return reference, torch.optim.AdamW(params, lr=lr)
