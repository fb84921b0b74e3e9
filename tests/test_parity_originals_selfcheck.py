"""Sanity checks of the transcriptions in ``parity_originals`` on hand-computable inputs."""

import math

import torch
from parity_originals import (
    ce_token_logp,
    d1_advantages,
    d1_completion_mask,
    d1_forward_mask,
    d1_loss,
    d1_mask_seed_index,
    espo_advantages,
    espo_elbo,
    espo_elbo_mc,
    espo_forward_masks,
    espo_iteration_index,
    espo_loss,
    espo_mask_counts,
    justgrpo_advantages,
    justgrpo_ar_canvas,
    justgrpo_group_advantages,
    justgrpo_loss,
)

EOS = 9


def test_ce_token_logp_temperature():
    logits = torch.tensor([[[0.0, math.log(3.0)]]])
    assert torch.allclose(ce_token_logp(logits, torch.tensor([[1]])), torch.tensor([[math.log(0.75)]]))
    # at T=2 the logits halve: p = sqrt3 / (1 + sqrt3)
    p = math.sqrt(3) / (1 + math.sqrt(3))
    assert torch.allclose(ce_token_logp(logits, torch.tensor([[1]]), 2.0), torch.tensor([[math.log(p)]]))


# ---- d1 -------------------------------------------------------------------------------------


def test_d1_completion_mask_includes_first_eos():
    ids = torch.tensor([[5, EOS, 7, EOS], [1, 2, 3, 4], [EOS, 1, 1, 1]])
    expected = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]])
    assert torch.equal(d1_completion_mask(ids, EOS), expected)


def test_d1_forward_mask_masks_padding_and_whole_completion():
    u = torch.tensor([[0.1, 0.9, 0.5, 0.0, 0.99]])
    m = d1_forward_mask(u, prompt_length=3, p_mask_prompt=0.15)
    assert m.tolist() == [[True, False, False, True, True]]


def test_d1_seed_index_quirk():
    # GA=2, mu=12: slot 0 is micro-steps 0, 2, 4, ...: only odd indices, each twice
    seen = [d1_mask_seed_index(s, 12) for s in range(0, 24, 2)]
    assert seen == [1, 3, 5, 7, 9, 11, 1, 3, 5, 7, 9, 11]


def test_d1_advantages_mean_only():
    assert torch.allclose(
        d1_advantages(torch.tensor([[1.0, 0.0, 0.0, 0.0]])), torch.tensor([0.75, -0.25, -0.25, -0.25])
    )


def test_d1_loss_ratio_one_token_pooled_mean():
    # rows: A = +0.5 over 2 counted tokens, A = -0.5 over 1 counted token; pooled mean over 3 tokens
    logp = torch.zeros(2, 3)
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    loss = d1_loss(logp, None, None, torch.tensor([[1.0, 0.0]]), mask, beta=0.0, epsilon=0.5)
    assert torch.allclose(loss, torch.tensor(-(2 * 0.5 - 0.5) / 3))


def test_d1_loss_kl_and_clip():
    logp = torch.zeros(2, 1)
    old = torch.full((2, 1), math.log(0.5))  # ratio 2 -> clipped to 1.5 for A > 0
    ref = torch.full((2, 1), math.log(0.5))
    mask = torch.ones(2, 1)
    loss = d1_loss(logp, old, ref, torch.tensor([[1.0, 0.0]]), mask, beta=0.1, epsilon=0.5)
    # A = [0.5, -0.5]: row0 -min(1, 0.75) = -0.75; row1 -min(-1, -0.75) = 1.0
    kl = 0.5 - math.log(0.5) - 1
    assert torch.allclose(loss, torch.tensor((-0.75 + 1.0) / 2 + 0.1 * kl))


def test_d1_loss_gradient_is_token_pooled():
    logp = torch.zeros(2, 3, requires_grad=True)
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    d1_loss(logp, None, None, torch.tensor([[1.0, 0.0]]), mask, beta=0.0, epsilon=0.2).backward()
    expected = torch.tensor([[-0.5, -0.5, 0.0], [0.5, 0.0, 0.0]]) / 3
    assert torch.allclose(logp.grad, expected)


# ---- ESPO -----------------------------------------------------------------------------------


def test_espo_mask_counts_stratified_over_rows():
    assert espo_mask_counts(0, 2, 3).tolist() == [0, 2]
    assert espo_mask_counts(3, 2, 3).tolist() == [3, 1]
    assert espo_mask_counts(1, 4, 7).tolist() == [1, 3, 5, 7]
    assert espo_mask_counts(5, 4, 7).tolist() == [5, 7, 1, 3]


def test_espo_forward_masks_permutation_semantics():
    perms = torch.tensor([[2, 0, 1], [0, 1, 2]])
    is_mask, p = espo_forward_masks(3, perms, 3)  # m = [3, 1]
    assert is_mask.tolist() == [[True, True, True], [True, False, False]]
    assert torch.allclose(p, torch.tensor([0.75, 0.25]))
    is_mask, _ = espo_forward_masks(1, torch.tensor([[2, 0, 1], [1, 2, 0]]), 3)  # m = [1, 3]
    assert is_mask.tolist() == [[False, True, False], [True, True, True]]


def test_espo_elbo_weights():
    # L = 2, m = 1: both halves weigh (L+1)/1 = 3, then /2
    lp = torch.tensor([[-1.0, -2.0]])
    lc = torch.tensor([[-10.0, -20.0]])
    e = espo_elbo(lp, lc, torch.tensor([[True, False]]), torch.tensor([1 / 3]))
    assert torch.allclose(e, torch.tensor([(3 * -1.0 + 3 * -20.0) / 2]))
    # without the coupled pass: no /2
    e = espo_elbo(lp, None, torch.tensor([[True, False]]), torch.tensor([1 / 3]))
    assert torch.allclose(e, torch.tensor([-3.0]))


def test_espo_elbo_unbiased_over_m():
    # constant per-token log-prob c: averaging over m in {0..L} gives exactly L * c
    length, c = 5, -0.7
    vals = []
    for m in range(length + 1):
        is_mask = torch.arange(length).unsqueeze(0) < m
        vals.append(
            espo_elbo(torch.full((1, length), c), torch.full((1, length), c), is_mask, torch.tensor([m / (length + 1)]))
        )
    assert torch.allclose(espo_elbo_mc(vals), torch.tensor([length * c]))


def test_espo_advantages_loo():
    r = torch.tensor([[1.0, 0.0, 0.0]])
    assert torch.allclose(espo_advantages(r), torch.tensor([1.0, -0.5, -0.5]))
    std = r.std()  # unbiased
    assert torch.allclose(espo_advantages(r, scale_rewards=True), torch.tensor([1.0, -0.5, -0.5]) / (std + 1e-4))


def test_espo_loss_ratio_one_is_minus_mean_advantage():
    e = torch.tensor([-3.0, -5.0, -4.0])
    loss = espo_loss(e, None, None, torch.tensor([[1.0, 0.0, 0.0]]), gen_length=4, beta=0.0, epsilon_low=0.2)
    assert torch.allclose(loss, torch.tensor(0.0))  # LOO advantages sum to 0 in a group


def test_espo_loss_ratio_and_kl():
    length = 4
    old = torch.tensor([-3.0, -5.0])
    e = old + length * torch.log(torch.tensor([1.1, 2.0]))  # ratios 1.1 and 2.0 (-> 1.2 clipped)
    ref = e - torch.tensor([2.0, 0.0])
    adv = torch.tensor([1.0, 1.0])
    loss = espo_loss(e, old, ref, adv, gen_length=length, beta=0.5, epsilon_low=0.2)
    expected = -(1.1 + 1.2) / 2 + 0.5 * (2.0**2 / 2) / (2 * length)
    assert torch.allclose(loss, torch.tensor(expected))


def test_espo_iteration_index():
    # GA=2, mu=3: micro-steps 0..5 -> iterations 0,0,1,1,2,2, then repeat
    assert [espo_iteration_index(s, 3, 2) for s in range(8)] == [0, 0, 1, 1, 2, 2, 0, 0]


# ---- JustGRPO -------------------------------------------------------------------------------


def test_justgrpo_ar_canvas():
    x = justgrpo_ar_canvas(torch.tensor([[7, 8]]), torch.tensor([[1, 2, 3]]), 1, mask_id=0)
    assert x.tolist() == [[7, 8, 1, 0, 0]]


def test_justgrpo_advantages_unbiased_std_and_layout():
    r = torch.tensor([[1.0, 0.0], [0.0, 0.0]])  # prompt-major [P=2, G=2]
    a = justgrpo_advantages(r)
    s = math.sqrt(0.5)  # unbiased std of {1, 0}
    assert torch.allclose(a, torch.tensor([0.5 / (s + 1e-4), -0.5 / (s + 1e-4), 0.0, 0.0]))
    # the literal generation-major form: [g0p0, g0p1, g1p0, g1p1]
    flat = torch.tensor([1.0, 0.0, 0.0, 0.0])
    assert torch.allclose(justgrpo_group_advantages(flat, 2), torch.tensor([a[0], a[2], a[1], a[3]]))


def test_justgrpo_loss_value_and_gradient():
    length = 4
    adv = torch.tensor([1.0, 0.0, -0.5])  # V = 2 valid samples
    logp = torch.zeros(3, length, requires_grad=True)
    loss = justgrpo_loss(logp, adv)
    scale = 1.0 / length / (2 + 1e-5)
    assert torch.allclose(loss, torch.tensor(-(length * 1.0 + length * -0.5) * scale))
    loss.backward()
    assert torch.allclose(logp.grad, (-adv.view(-1, 1) * scale).expand(3, length))
