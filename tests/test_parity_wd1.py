"""Parity of trafl's ``wd1`` objective with the authors' loss (xiaohangt/wd1 @ 0898985).

Same harness as ``tests/test_parity_baselines.py``: the float64 micro denoiser, the hand-built
3-prompt x G = 4 group (group 0 with all-equal rewards; EOS early, at 0, last and never), trafl's
inner loop (``prepare`` once, then ``objective(policy, group.for_iteration(i))`` with a parameter
update in between), and the original's loss on the same inputs from the transcription in
:mod:`parity_originals_wd1`, fed d1's one-step log-probabilities built from the prompt masks trafl
drew for that iteration. Loss and gradient must agree to a relative error < 1e-5; each mechanic has
a flip that changes it and must be detected (> 1e-3).

The original computes its softmaxes over the rows of one device's micro-batch: one group at its
geometry (6 rows per device, G = 6). Its loss here is therefore its micro-batch loss on each group,
averaged over the groups (the HF Trainer's division by the accumulation steps and DDP's mean over
devices). The one deliberate deviation, trafl's per-group softmax when a micro-batch holds several
prompts, is measured in ``test_deviation_softmax_over_a_two_prompt_micro_batch``.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
from parity_originals import d1_completion_mask
from parity_originals_wd1 import wd1_advantages, wd1_micro_batch_loss
from test_parity_baselines import (
    DETECT,
    EOS,
    TOL,
    MicroDenoiser,
    P,
    d1_original_logp,
    make_group,
    objective_for,
    rel_errors,
    run_iterations,
)

from trafl.objectives import get_objective
from trafl.objectives.wd1 import group_softmax, tilted_log_weights

MAX_REL: dict[str, float] = {}


def wd1_original(negative: bool = True, prompts_per_micro_batch: int = 1):
    """The original's loss on trafl's iteration group: d1's one-step log-probs from the iteration's prompt
    masks, then ``wd1_micro_batch_loss`` on each micro-batch of ``prompts_per_micro_batch`` whole groups,
    averaged over the micro-batches."""

    def loss(policy, old, ref, it_group, i):
        noise = it_group.noise  # an ELBO flip has no prompt masks: the original then keeps the prompt clean
        masks = noise if isinstance(noise, torch.Tensor) else torch.zeros(it_group.input_ids.shape[0], P, dtype=bool)
        logp = d1_original_logp(policy, it_group, masks)
        cmask = d1_completion_mask(it_group.completion, EOS)
        adv = wd1_advantages(it_group.rewards)
        rows = prompts_per_micro_batch * it_group.group_size
        parts = [
            wd1_micro_batch_loss(logp[s : s + rows], cmask[s : s + rows], adv[s : s + rows], negative=negative)
            for s in range(0, logp.shape[0], rows)
        ]
        return torch.stack(parts).mean()

    return loss


def record(name: str, *errs: float) -> None:
    MAX_REL[name] = max(MAX_REL.get(name, 0.0), *errs)


@pytest.mark.parametrize("source", ["defaults", "paper"])
def test_wd1_parity_loss_and_grad_over_iterations(source):
    objective = objective_for("wd1", source)
    mu = 4
    results, prepared = run_iterations(
        objective, make_group(False, temperature=0.9), wd1_original(), mu=mu, padded=False
    )
    assert len(prepared.per_iteration) == mu
    draws = [prepared.per_iteration[i][0] for i in range(mu)]
    assert any(d.any() for d in draws) and not all(torch.equal(draws[0], d) for d in draws[1:])
    for i, (loss_t, grads_t, loss_o, grads_o, it_group, _) in enumerate(results):
        assert it_group.noise is draws[i]
        lr_, gr_ = rel_errors(loss_t, grads_t, loss_o, grads_o)
        record("wd1 (NP)", lr_, gr_)
        assert lr_ < TOL and gr_ < TOL, (i, lr_, gr_)


def test_wd1_positive_only_parity():
    """``negative_weight = 0`` is the authors' positive-only trainer (``run/wll_P_*.sh``)."""
    objective = get_objective("wd1", negative_weight=0.0)
    results, _ = run_iterations(objective, make_group(False), wd1_original(negative=False), mu=3, padded=False)
    for loss_t, grads_t, loss_o, grads_o, _, _ in results:
        lr_, gr_ = rel_errors(loss_t, grads_t, loss_o, grads_o)
        record("wd1 (P)", lr_, gr_)
        assert lr_ < TOL and gr_ < TOL, (lr_, gr_)


def test_wd1_all_equal_group_contributes_nothing():
    """Equal rewards: both softmaxes are uniform and the two parts cancel, in loss and gradient."""
    equal = make_group(False, rewards=[[1.0] * 4, [0.0] * 4, [0.5] * 4])
    results, _ = run_iterations(get_objective("wd1"), equal, wd1_original(), mu=2, padded=False)
    for loss_t, grads_t, _, _, _, _ in results:
        assert abs(float(loss_t.detach())) < 1e-12
        assert max(float(g.abs().max()) for g in grads_t) < 1e-12
    # positive-only does not cancel: it is then a plain likelihood fit of the group
    results, _ = run_iterations(
        get_objective("wd1", negative_weight=0.0), equal, wd1_original(False), mu=1, padded=False
    )
    assert abs(float(results[0][0].detach())) > 1.0


def test_wd1_old_policy_and_reference_are_not_scored_by_default():
    objective = get_objective("wd1")
    assert not objective.needs_reference
    prepared = objective.prepare(
        make_group(False), old_policy=MicroDenoiser(2), generator=torch.Generator().manual_seed(0), num_iterations=3
    )
    assert prepared.old is None and prepared.ref is None
    assert all(old is None and ref is None for _, old, ref in prepared.per_iteration)
    tilted = get_objective("wd1", ref_tilt=0.5)
    assert tilted.needs_reference
    prepared = tilted.prepare(
        make_group(False),
        reference=MicroDenoiser(1),
        old_policy=MicroDenoiser(2),
        generator=torch.Generator().manual_seed(0),
        num_iterations=2,
    )
    assert all(old is not None and ref is not None for _, old, ref in prepared.per_iteration)


def test_wd1_reference_tilt_weights_by_hand():
    """``lambda > 0``: ``w+ ∝ exp(psi A) (pi_ref / pi_old)^lambda`` with sequence log-likelihoods over the
    counted positions, checked against an explicit exp-and-normalise over each group."""
    group = make_group(False)
    psi, lam = 2.0, 0.5
    objective = get_objective("wd1", psi=psi, ref_tilt=lam)
    ref, old, policy = MicroDenoiser(1), MicroDenoiser(2), MicroDenoiser(0)
    prepared = objective.prepare(group, reference=ref, old_policy=old, generator=torch.Generator().manual_seed(3))
    counted = d1_completion_mask(group.completion, EOS).double()
    s_ref = (prepared.ref.token_logp.double() * counted).sum(1)
    s_old = (prepared.old.token_logp.double() * counted).sum(1)
    s_pol = (d1_original_logp(policy, prepared, prepared.noise).double() * counted).sum(1)
    adv = wd1_advantages(group.rewards)
    expected = 0.0
    for p in range(3):
        rows = slice(4 * p, 4 * p + 4)
        wp = torch.exp(psi * adv[rows] + lam * (s_ref - s_old)[rows])
        wn = torch.exp(-psi * adv[rows] + lam * (s_ref - s_old)[rows])
        expected += -(wp / wp.sum() * s_pol[rows]).sum() + (wn / wn.sum() * s_pol[rows]).sum()
    loss, _ = objective(policy, prepared)
    expected = float(expected.detach()) / 3
    assert abs(float(loss.detach()) - expected) < 1e-5 * abs(expected)
    # and the pure helpers agree with softmax(psi A) at lambda = 0
    a = adv.view(3, 4)
    assert torch.allclose(group_softmax(tilted_log_weights(a, psi, 0.0, None)), torch.softmax(psi * a, dim=1))


@pytest.mark.parametrize(
    "flip",
    [
        {"psi": 2.0},
        {"negative_weight": 0.0},
        {"positive_weight": 0.5},
        {"ref_tilt": 0.5},
        {"length_norm": "canvas"},
        {"score_temperature": True},
        {"surrogate": "elbo"},
    ],
)
def test_wd1_flips_are_detected(flip):
    """The advantage temperature, each part, the reference tilt, counting post-EOS positions, scoring at the
    rollout temperature (0.9; wd1 scores at T = 1) and the likelihood estimator are each caught against the
    authors' loss. (The prompt-mask rate is not: the original is fed trafl's masks.)"""
    objective = get_objective("wd1", **flip)
    group = make_group(False, temperature=0.9)
    results, _ = run_iterations(objective, group, wd1_original(), mu=3, padded=False, step_scale=0.3)
    assert max(max(rel_errors(*r[:4])) for r in results) > DETECT


def test_wd1_flip_stale_iteration_masks_is_detected():
    """One prompt mask for every iteration (``resample_noise`` off) is caught at the second iteration."""
    objective = get_objective("wd1", p_mask_prompt=0.5)
    orig = wd1_original()
    holder = {}

    def stale(policy, old, ref, it_group, i):
        holder.setdefault(0, it_group.noise)
        return orig(policy, old, ref, dataclasses.replace(it_group, noise=holder[0]), i)

    results, prepared = run_iterations(objective, make_group(False), stale, mu=2, padded=False)
    assert not torch.equal(prepared.per_iteration[0][0], prepared.per_iteration[1][0])
    assert max(rel_errors(*results[1][:4])) > DETECT


def test_deviation_softmax_over_a_two_prompt_micro_batch(capsys):
    """The original's softmax runs over a device's micro-batch; with two prompts per micro-batch (not the
    authors' geometry) it mixes the groups' weights, where trafl keeps one softmax per group. Measured here:
    the loss and gradient differ by more than the detection threshold (printed)."""
    group = make_group(False)
    two = dataclasses.replace(
        group,
        input_ids=group.input_ids[:8],
        attention_mask=group.attention_mask[:8],
        rewards=torch.tensor([[1.0, 0.0, 0.0, 1.0], [0.5, 0.0, 1.0, 0.25]], dtype=torch.float64),
    )
    results, _ = run_iterations(get_objective("wd1"), two, wd1_original(prompts_per_micro_batch=2), mu=1, padded=False)
    errs = rel_errors(*results[0][:4])
    with capsys.disabled():
        print(f"\n[wd1 deviation: softmax over 2 prompts' rows vs per group] loss {errs[0]:.2e}, grad {errs[1]:.2e}")
    assert max(errs) > DETECT
    # at one prompt per micro-batch (the authors' geometry) the same inputs agree
    results, _ = run_iterations(get_objective("wd1"), two, wd1_original(prompts_per_micro_batch=1), mu=1, padded=False)
    assert max(rel_errors(*results[0][:4])) < TOL


def test_authors_defaults():
    o = get_objective("wd1").options
    assert (o.surrogate, o.p_mask_prompt, o.length_norm, o.resample_noise, o.score_temperature) == (
        "onestep",
        0.15,
        "tokens",
        True,
        False,
    )
    assert (o.psi, o.ref_tilt, o.positive_weight, o.negative_weight) == (1.0, 0.0, 1.0, 1.0)
    assert get_objective("wd1").train_defaults == {
        "num_iterations": 12,
        "temperature": 0.9,
        "diffusion_steps": 128,
        "block_length": 32,
    }


def test_zz_report_max_relative_errors(capsys):
    with capsys.disabled():
        print("\nwd1 max relative errors (loss, grad):", {k: f"{v:.2e}" for k, v in MAX_REL.items()})
