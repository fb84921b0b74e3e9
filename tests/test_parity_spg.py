"""Parity of trafl's SPG objective with the original's loss (facebookresearch/SPG @ a1c7120).

The style of tests/test_parity_baselines.py, whose float64 micro denoiser, rollout groups (3 prompts x
G = 4: group 0 with all-equal rewards, EOS-terminated, EOS-only and EOS-free rows, left-padded prompts
or not) and inner loop (``run_iterations``: ``prepare`` once, then several inner iterations with a
parameter step in between) this file reuses. At every inner iteration the original's forward process
(:func:`parity_originals_spg.spg_forward_block_random`) is fed the random choices trafl made (block
permutations, mask sizes, placements, clean-position uniforms) and must rebuild trafl's masked canvases
exactly; its per-sequence estimates and loss (:func:`spg_per_seq_logps`, :func:`spg_loss`, one group
per device as the launch scripts run it, devices averaged) are then compared with trafl's loss and
gradient: both within 1e-5 relative. Flip tests change one mechanic and require a mismatch > 1e-3.

Deliberate deviations (inputs are built so they do not arise; see docs/objectives.md):

* SPG masks left-padding prompt tokens with probability ``p_mask_prompt`` (it has no notion of padding);
  trafl never masks padding. Both pass the attention mask to the model, so a masked pad token is
  invisible either way (the original's LLaDA ignores the attention mask, which trafl's does not: the
  deviation d1 has too).
* SPG reseeds the global RNG with one of ``2**12`` seeds per inner iteration (``set_seed``) and indexes
  it by micro-step modulo ``num_iterations``; trafl draws each iteration's masks from the step's own
  generator. Same law per draw (checked by :func:`test_block_choice_and_mask_size_follow_the_original_law`).
"""

from __future__ import annotations

import dataclasses
import itertools
from collections import Counter
from fractions import Fraction

import pytest
import test_parity_baselines as base
import torch
from parity_originals_spg import (
    spg_advantages,
    spg_completion_mask,
    spg_forward_block_random,
    spg_loss,
    spg_per_seq_logps,
    spg_token_logp_and_prob,
)

from trafl.errors import ConfigError
from trafl.objectives import get_objective
from trafl.objectives.spg import draw_block_masks

P, L, EOS, MASK = base.P, base.L, base.EOS, base.MASK
TOL, DETECT = base.TOL, base.DETECT
MAX_REL: dict[str, float] = {}
#: L = 6 in blocks of 2: three blocks, two draws per row (SPG asks num_t <= number of blocks).
BLOCK = 2


def original_random_choices(masks, completion_mask: torch.Tensor, block_length: int):
    """The original's random draws that reproduce trafl's block-wise masks: block permutations whose first
    ``K`` entries reduce to trafl's blocks, each draw's mask size, its placement and clean-position uniforms."""
    canvas, blocks = masks.canvas, masks.block
    n, k, _ = canvas.shape
    num_blocks = L // block_length
    lengths = completion_mask.sum(1)
    nonempty = (lengths - 1) // block_length + 1
    perms, nums, inner = [], torch.zeros(n, k, dtype=torch.long), []
    uniforms = torch.ones(canvas.shape)
    for i in range(n):
        used: list[int] = []
        for j in range(k):
            b = int(blocks[i, j])
            used.append(next(v for v in range(b, num_blocks, int(nonempty[i])) if v not in used))
        perms.append(torch.tensor(used + [v for v in range(num_blocks) if v not in used]))
        row = []
        for j in range(k):
            start = int(blocks[i, j]) * block_length
            length = min(block_length, int(lengths[i]) - start)
            window = canvas[i, j, P + start : P + start + length]
            nums[i, j] = int(window.sum())
            order = torch.cat([window.nonzero().flatten(), (~window).nonzero().flatten()])
            row.append(order.argsort())  # perm[q] < m exactly where trafl masked window position q
            clean = torch.zeros(P + L, dtype=torch.bool)
            clean[:P] = True
            clean[P : P + start] = True
            uniforms[i, j] = torch.where(clean & canvas[i, j], 0.0, 1.0)
        inner.append(row)
    return torch.stack(perms), nums, inner, uniforms


def original_group_loss(policy, it_group, o, block_length: int = BLOCK):
    """SPG's loss on trafl's group: its own forward process rebuilt from trafl's draws (asserted equal to
    trafl's canvases), then one ``compute_loss`` per group (one device each), averaged over devices."""
    ids, attn = it_group.input_ids, it_group.attention_mask
    cm = spg_completion_mask(ids[:, P:], EOS)
    masks = it_group.noise
    perms, nums, inner, uniforms = original_random_choices(masks, cm, block_length)
    is_mask = spg_forward_block_random(
        ids,
        P,
        cm,
        num_t=o.num_mc,
        block_length=block_length,
        min_t=o.min_t,
        max_t=o.max_t,
        p_mask_prompt=o.p_mask_prompt,
        block_perms=perms,
        mask_nums=nums,
        inner_perms=inner,
        random_matrix=uniforms,
    )
    assert torch.equal(is_mask, masks.canvas), "the original's forward process does not rebuild trafl's masks"
    logps, probs = [], []
    for j in range(o.num_mc):
        logits = policy(ids.masked_fill(is_mask[:, j], MASK), attention_mask=attn)
        lp, pr = spg_token_logp_and_prob(logits[:, P:], ids[:, P:])
        logps.append(lp)
        probs.append(pr)
    logp, prob = torch.stack(logps, 1), torch.stack(probs, 1)
    adv, reward_mask = spg_advantages(it_group.rewards)
    g = it_group.group_size
    losses = []
    for s in range(0, len(ids), g):
        rows = slice(s, s + g)
        per_seq = spg_per_seq_logps(
            logp[rows],
            prob[rows],
            cm[rows],
            is_mask[rows, :, P:],
            reward_mask[rows],
            logp_estimation=o.negative_bound,
            eubo_beta=o.eubo_beta,
            mix_weight=o.mix_weight,
        )
        losses.append(spg_loss(per_seq, adv[rows], cm[rows]))
    return torch.stack(losses).mean()


def original(reference_options):
    def loss(policy, old, ref, it_group, i):
        return original_group_loss(policy, it_group, reference_options)

    return loss


def record(name: str, *errs: float) -> None:
    MAX_REL[name] = max(MAX_REL.get(name, 0.0), *errs)


@pytest.mark.parametrize("bound", ["mix", "eubo", "elbo", "zero"])
@pytest.mark.parametrize("padded", [False, True])
def test_spg_parity_loss_and_grad_over_iterations(padded, bound):
    objective = get_objective("spg", mask_block_length=BLOCK, negative_bound=bound)
    mu = 4
    results, prepared = base.run_iterations(
        objective, base.make_group(padded, temperature=0.9), original(objective.options), mu=mu, padded=padded
    )
    assert len(prepared.per_iteration) == mu
    draws = [prepared.per_iteration[i][0].canvas for i in range(mu)]
    assert not all(torch.equal(draws[0], d) for d in draws[1:]), "every inner iteration needs its own masks"
    for i, (loss_t, grads_t, loss_o, grads_o, _, _) in enumerate(results):
        lr_, gr_ = base.rel_errors(loss_t, grads_t, loss_o, grads_o)
        record(f"spg/{bound}", lr_, gr_)
        assert lr_ < TOL and gr_ < TOL, (i, lr_, gr_)


def test_spg_parity_one_block_is_the_originals_block_random_with_one_block():
    """``block_masking: false`` (one block spanning the completion, SPG's ``random`` forward type) with one
    draw equals the block-random original with ``block_length = L``."""
    objective = get_objective("spg", block_masking=False, num_mc=1)
    results, _ = base.run_iterations(
        objective,
        base.make_group(True),
        lambda policy, old, ref, it, i: original_group_loss(policy, it, objective.options, block_length=L),
        mu=2,
        padded=True,
    )
    for loss_t, grads_t, loss_o, grads_o, _, _ in results:
        lr_, gr_ = base.rel_errors(loss_t, grads_t, loss_o, grads_o)
        record("spg/one_block", lr_, gr_)
        assert lr_ < TOL and gr_ < TOL


@pytest.mark.parametrize(
    "flip",
    [
        {"negative_bound": "elbo"},
        {"negative_bound": "eubo"},
        {"eubo_beta": 1.0},
        {"mix_weight": 0.25},
        {"length_norm": "canvas"},
    ],
)
def test_spg_flips_are_detected(flip):
    """The ELBO for negative rows, the EUBO alone, another beta, another mixture weight, or counting the
    positions after EOS are each caught against the original at its recipe (mix, beta 1.5, weight 0.5),
    on the masks the recipe draws."""
    reference = get_objective("spg", mask_block_length=BLOCK)
    flipped = get_objective("spg", mask_block_length=BLOCK, **flip)
    policy = base.MicroDenoiser(0)
    prepared = reference.prepare(base.make_group(True), generator=torch.Generator().manual_seed(7), num_iterations=3)
    worst = 0.0
    for i in range(3):
        it = prepared.for_iteration(i)
        loss_t = flipped(policy, it)[0]
        loss_o = original_group_loss(policy, it, reference.options)
        grads_o = base.grads_of(loss_o, policy)
        worst = max(worst, *base.rel_errors(loss_t, base.grads_of(loss_t, policy), loss_o, grads_o))
        loss_r = reference(policy, it)[0]
        assert max(base.rel_errors(loss_r, base.grads_of(loss_r, policy), loss_o, grads_o)) < TOL  # same masks
        base.perturb(policy, 0.3, 2000 + i)
    assert worst > DETECT, worst


def test_spg_flip_wrong_iteration_masks_is_detected():
    objective = get_objective("spg", mask_block_length=BLOCK)
    orig = original(objective.options)
    holder = {}

    def stale(policy, old, ref, it_group, i):
        holder.setdefault(0, it_group.noise)
        return orig(policy, old, ref, dataclasses.replace(it_group, noise=holder[0]), i)

    results, prepared = base.run_iterations(objective, base.make_group(False), stale, mu=2, padded=False)
    assert not torch.equal(prepared.per_iteration[0][0].canvas, prepared.per_iteration[1][0].canvas)
    assert max(base.rel_errors(*results[1][:4])) > DETECT


def test_spg_advantage_sign_selects_the_bound():
    """Rows with A > 0 get the ELBO, the rest the mixture: swapping the rewards' sign changes the loss by more
    than a sign (the bounds differ), and a group with all-equal rewards contributes nothing."""
    objective = get_objective("spg", mask_block_length=BLOCK)
    policy = base.MicroDenoiser(0)
    group = base.make_group(True)
    prepared = objective.prepare(group, generator=torch.Generator().manual_seed(3), num_iterations=1)
    loss, _ = objective(policy, prepared)
    flipped = dataclasses.replace(prepared, rewards=-prepared.rewards)
    loss_flipped, _ = objective(policy, flipped)
    assert abs(float((loss + loss_flipped).detach())) > DETECT * abs(float(loss.detach()))
    only_equal = prepared.select_prompts(slice(0, 1))
    assert float(objective(policy, only_equal)[0].detach()) == 0.0


def _exact_block_law(num_blocks: int, nonempty: int, k: int) -> dict[tuple[int, ...], Fraction]:
    """The original's law of ``(perm % c)[:k]`` over the ``num_blocks!`` permutations (l.342-345)."""
    counts = Counter(tuple(v % nonempty for v in p[:k]) for p in itertools.permutations(range(num_blocks)))
    total = sum(counts.values())
    return {key: Fraction(c, total) for key, c in counts.items()}


def test_block_choice_and_mask_size_follow_the_original_law():
    """trafl's block choice is the original's ``randperm % completion_num_blocks`` law (exactly enumerated),
    its mask size is uniform on ``{1..l}`` (min_t 0, max_t 1), and the clean positions masked w.p. p include
    the blocks before the scored one, as in the original (l.374)."""
    torch.manual_seed(0)
    n, k, draws = 4000, 2, 12
    # rows of length 3 (two non-empty blocks of 2) in L = 12 (six blocks): the law is not uniform
    counted = torch.zeros(n, 12, dtype=torch.bool)
    counted[:, :3] = True
    prompt_real = torch.ones(n, 3, dtype=torch.bool)
    gen = torch.Generator().manual_seed(1)
    masks = draw_block_masks(counted, prompt_real, k, 2, p_clean=0.25, generator=gen)
    law = _exact_block_law(6, 2, k)
    seen = Counter(tuple(r.tolist()) for r in masks.block)
    for key, prob in law.items():
        assert abs(seen[key] / n - float(prob)) < 4 * (float(prob) * (1 - float(prob)) / n) ** 0.5 + 1e-3, (key, prob)
    assert set(seen) <= set(law)
    # mask sizes in the scored block: block 0 holds 2 counted positions -> m uniform on {1, 2}
    sizes = []
    for _ in range(draws):
        m = draw_block_masks(counted, prompt_real, k, 2, generator=gen)
        first = m.block[:, 0] == 0
        sizes.append(m.canvas[first, 0, 3:5].sum(-1))
    sizes_t = torch.cat(sizes)
    frac_one = float((sizes_t == 1).float().mean())
    assert abs(frac_one - 0.5) < 0.03 and set(sizes_t.tolist()) == {1, 2}
    # earlier blocks are masked with probability p_clean; later blocks and post-EOS positions always
    second = masks.block[:, 0] == 1
    earlier = masks.canvas[second, 0, 3:5].float().mean()
    assert abs(float(earlier) - 0.25) < 0.04
    assert masks.canvas[second, 0, 3 + 3 :].all()


def test_spg_authors_defaults():
    o = get_objective("spg").options
    assert (
        o.negative_bound,
        o.eubo_beta,
        o.mix_weight,
        o.num_mc,
        o.block_masking,
        o.mask_block_length,
        o.min_t,
        o.max_t,
        o.p_mask_prompt,
        o.resample_noise,
        o.length_norm,
        o.antithetic,
    ) == ("mix", 1.5, 0.5, 2, True, None, 0.0, 1.0, 0.15, True, "tokens", False)  # None: the sampler's block
    assert not get_objective("spg").needs_reference


@pytest.mark.parametrize(
    "options,field",
    [
        ({"surrogate": "onestep"}, "surrogate"),
        ({"antithetic": True}, "antithetic"),
        ({"min_t": 0.6, "max_t": 0.5}, "min_t"),
        ({"mask_block_length": 4}, "mask_block_length"),  # does not divide L = 6
        ({"mask_block_length": 3, "num_mc": 3}, "num_mc"),  # 3 draws, 2 blocks
    ],
)
def test_spg_rejects_settings_the_original_cannot_run(options, field):
    with pytest.raises(ConfigError, match=field):
        objective = get_objective("spg", **options)
        objective.prepare(base.make_group(False), generator=torch.Generator().manual_seed(0))


def test_zz_report_max_relative_errors(capsys):
    with capsys.disabled():
        print("\nSPG max relative errors (loss, grad):", {k: f"{v:.2e}" for k, v in MAX_REL.items()})


def test_spg_block_geometry_is_checked_when_the_training_config_loads():
    """The mask block is the sampler's block unless given; one that does not divide L (or too few blocks for
    num_mc) stops the run at load, before any rollout."""
    from trafl.train.config import TrainConfig
    from trafl.utils.config import load_config

    base = {
        "model": "m",
        "task": "t",
        "method": "spg",
        "max_completion_length": 5,
        "block_length": 5,
        "diffusion_steps": 5,
    }
    assert load_config(TrainConfig, None, base).objective.mask_block_length == 5
    recipe = {**base, "max_completion_length": 256, "block_length": None, "diffusion_steps": None}
    assert load_config(TrainConfig, None, recipe).objective.mask_block_length == 32
    with pytest.raises(ConfigError, match="'mask_block_length': 2 must divide the completion length 5"):
        load_config(TrainConfig, None, {**base, "mask_block_length": 2})
    with pytest.raises(ConfigError, match="'num_mc': 4 block-wise draws need at least as many blocks"):
        load_config(
            TrainConfig,
            None,
            {
                **base,
                "max_completion_length": 6,
                "block_length": 6,
                "diffusion_steps": 6,
                "mask_block_length": 2,
                "num_mc": 4,
            },
        )
