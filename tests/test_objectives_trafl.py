"""TraFL, the baselines' maths, the logZ head and the reference model."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from trafl.errors import ConfigError
from trafl.likelihood.exact import JointDenoiser, TableDenoiser, all_completions
from trafl.objectives import (
    FrozenReference,
    RolloutGroup,
    get_objective,
    group_normalise,
    k3_kl,
    loo_advantage,
    make_reference,
    ppo_clip,
    trafl_residual,
)

V, L = 3, 2


def group_of(ys: torch.Tensor, rewards: torch.Tensor) -> RolloutGroup:
    prompt = torch.zeros(ys.shape[0], 1, dtype=torch.long)
    ids = torch.cat([prompt, ys], dim=1)
    return RolloutGroup(ids, torch.ones_like(ids), 1, rewards)


# ---- pure maths -------------------------------------------------------------------------------
def test_advantages_and_penalties():
    r = torch.tensor([[1.0, 0.0, 0.0, 1.0], [2.0, 2.0, 2.0, 2.0]])
    torch.testing.assert_close(loo_advantage(r)[0], torch.tensor([1 - 1 / 3, 0 - 2 / 3, 0 - 2 / 3, 1 - 1 / 3]))
    torch.testing.assert_close(group_normalise(r)[0], torch.tensor([0.5, -0.5, -0.5, 0.5]) / (0.5 + 1e-4))
    assert group_normalise(r)[1].abs().max() == 0
    lr = torch.log(torch.tensor([0.5, 1.0, 1.5]))
    torch.testing.assert_close(ppo_clip(lr, torch.tensor(1.0), 0.2, 0.2), torch.tensor([0.5, 1.0, 1.2]))
    torch.testing.assert_close(ppo_clip(lr, torch.tensor(-1.0), 0.2, 0.2), torch.tensor([-0.8, -1.0, -1.5]))
    logp, ref = torch.tensor([-1.0, -2.0]), torch.tensor([-1.0, -1.5])
    torch.testing.assert_close(k3_kl(logp, ref), torch.tensor([0.0, torch.e**0.5 - 1.5]))


def test_trafl_gradient_equals_autograd_of_the_written_loss():
    """grad loss = mean_n 2 w_n delta_n grad s_theta(y_n): no gradient through w or VarGrad's logZ."""
    g = torch.Generator().manual_seed(0)
    policy, old, ref = (TableDenoiser(V, L, generator=g, init_std=0.5) for _ in range(3))
    ys = all_completions(V, L)[torch.randint(0, V**L, (8,), generator=g)]
    rewards = torch.rand(2, 4, generator=g)
    obj = get_objective(
        "trafl", beta=0.3, logz="vargrad", reward_transform="loo", importance_weight="clipped", epsilon=0.05
    )
    group = obj.prepare(group_of(ys, rewards), reference=ref, old_policy=old, generator=g)
    loss, metrics = obj(policy, group)
    loss.backward()
    auto = policy.logits.grad.clone()
    policy.logits.grad = None
    # by hand: the written loss and its gradient
    s = obj.policy_surrogate(policy, group).value / L
    s_ref, s_old = group.ref.value / L, group.old.value / L
    r_t = loo_advantage(rewards).reshape(-1)
    c = -(s - s_ref - 0.3 * r_t).detach().view(2, 4).mean(1).repeat_interleave(4)
    delta = trafl_residual(c, s, s_ref, r_t, 0.3)
    w = (s - s_old).detach().exp().clamp(0.95, 1.05)
    assert (w != 1).any()
    torch.testing.assert_close(loss, (w * delta**2).mean())
    (2 * w * delta.detach() * s).mean().backward()
    torch.testing.assert_close(auto, policy.logits.grad)


def test_loss_at_optimal_logz_is_zero_exactly_at_the_target():
    """With an exact surrogate (a joint model's left-to-right log-likelihood) and VarGrad's logZ
    (the optimum of mean delta^2 for uniform weights), loss = Var(log pi_theta - log pi_ref - beta r)."""
    ys = all_completions(V, L)
    rewards = (ys.sum(dim=1) % 2 == 0).double().view(1, -1)
    beta = 0.7
    ref = JointDenoiser(V, L, generator=torch.Generator().manual_seed(1))
    target = JointDenoiser(V, L)
    with torch.no_grad():
        target.joint_logits.copy_(ref.log_joint() + beta * L * rewards.view(-1))
    obj = get_objective(
        "trafl", beta=beta, logz="vargrad", reward_transform="raw", importance_weight="none", surrogate="autoregressive"
    )
    group = obj.prepare(group_of(ys, rewards), reference=ref)
    with torch.no_grad():
        at_target, _ = obj(target, group)
        at_ref, _ = obj(ref, group)
    assert float(at_target) < 1e-10
    assert float(at_ref) > 1e-2


# ---- logZ head ----------------------------------------------------------------------------------
class TinyNet(nn.Module):
    """A small real network with hidden states, following the denoiser contract."""

    def __init__(self, vocab: int = 6, hidden: int = 8):
        super().__init__()
        self.config = SimpleNamespace(mask_token_id=vocab - 1, hidden_size=hidden)
        self.emb = nn.Embedding(vocab, hidden)
        self.mix = nn.Linear(hidden, hidden)
        self.out = nn.Linear(hidden, vocab)

    def forward(self, input_ids, attention_mask=None, output_hidden_states=False):
        h = self.emb(input_ids)
        h = torch.tanh(self.mix(h + h.mean(dim=1, keepdim=True)))
        return SimpleNamespace(logits=self.out(h), hidden_states=(h,) if output_hidden_states else None)


@pytest.mark.parametrize("mode", ["learned", "learned_policy"])
def test_logz_head_gradients_reach_the_head_and_only_the_policy_trunk_in_learned_policy(mode):
    torch.manual_seed(0)
    policy = TinyNet()
    ref = make_reference(policy)
    assert isinstance(ref, FrozenReference)
    ids = torch.randint(0, 4, (4, 5))
    ids[:2, 0] = 0
    attn = torch.ones_like(ids)
    attn[:2, 0] = 0  # left padding
    group = RolloutGroup(ids, attn, 2, torch.tensor([[1.0, 0.0], [0.0, 0.5]]))
    obj = get_objective("trafl", logz=mode, hidden_size=8, logz_width=16, reward_transform="raw")
    group = obj.prepare(group, reference=ref, generator=torch.Generator().manual_seed(0))
    assert (group.logz_features is not None) == (mode == "learned")
    loss, metrics = obj(policy, group)
    loss.backward()
    assert obj.logz_head.net[-1].bias.grad is not None and obj.logz_head.net[-1].bias.grad.abs() > 0
    assert all(p.grad is None for p in ref.parameters())
    assert policy.emb.weight.grad is not None
    assert list(obj.parameters()) == list(obj.logz_head.parameters())


# ---- reference --------------------------------------------------------------------------------
def test_lora_reference_shares_the_weights_and_ignores_the_adapters():
    peft = pytest.importorskip("peft")
    torch.manual_seed(0)
    base = TinyNet()
    ids = torch.randint(0, 5, (3, 6))
    before = base(ids).logits.detach()
    policy = peft.get_peft_model(base, peft.LoraConfig(r=2, lora_alpha=4, target_modules=["mix", "out"]))
    with torch.no_grad():
        for name, p in policy.named_parameters():
            if "lora_B" in name:
                p.normal_()
    ref = make_reference(policy)
    assert sum(1 for _ in ref.parameters()) == 0  # no second copy of anything
    assert not torch.allclose(policy(ids).logits, before)
    torch.testing.assert_close(ref(ids).logits, before)
    assert ref(ids).logits.requires_grad is False


# ---- registry and baselines ---------------------------------------------------------------------
def test_registry_rejects_unknown_names_and_options():
    with pytest.raises(ConfigError, match="unknown objective"):
        get_objective("ppo")
    with pytest.raises(ConfigError, match="logz_lr"):
        get_objective("espo", logz_lr=1.0)
    with pytest.raises(ConfigError, match="hidden_size"):
        get_objective("trafl", logz="learned")


@pytest.mark.parametrize("name", ["espo", "justgrpo", "diffu_grpo"])
def test_baseline_gradient_raises_the_likelihood_of_above_average_completions(name):
    g = torch.Generator().manual_seed(4)
    policy, ref = TableDenoiser(V, L, generator=g), TableDenoiser(V, L, generator=g)
    ys = all_completions(V, L)[:4]
    rewards = torch.tensor([[1.0, 0.0, 0.0, 0.0]])
    obj = get_objective(name)
    group = obj.prepare(group_of(ys, rewards), reference=ref, generator=g)
    before = obj.policy_surrogate(policy, group).value.detach()
    opt = torch.optim.SGD(policy.parameters(), lr=0.5)
    loss, metrics = obj(policy, group)
    assert "loss" in metrics
    loss.backward()
    opt.step()
    after = obj.policy_surrogate(policy, group).value.detach()
    gain = after - before
    assert gain[0] > 0 and gain[0] > gain[1:].max()  # the rewarded completion gains the most


@pytest.mark.parametrize("surrogate", ["elbo", "trajectory"])
def test_select_prompts_keeps_every_per_row_field_aligned(surrogate):
    """Micro-batching an update by whole prompt groups: the loss over the parts, weighted by their
    share of prompts, equals the loss over the whole group (tensors, masks and caches all sliced)."""
    g = torch.Generator().manual_seed(7)
    policy, ref = TableDenoiser(V, L, generator=g), TableDenoiser(V, L, generator=g)
    ys = all_completions(V, L)[:8]
    order = torch.tensor([[0, 1], [1, 0]] * 4)
    prompt = torch.zeros(8, 1, dtype=torch.long)
    ids = torch.cat([prompt, ys], dim=1)
    group = RolloutGroup(ids, torch.ones_like(ids), 1, torch.rand(4, 2, generator=g), commit_step=order)
    obj = get_objective("trafl", beta=0.5, logz="vargrad", surrogate=surrogate)
    group = obj.prepare(group, reference=ref, generator=g)
    whole, _ = obj(policy, group)
    halves = [group.select_prompts(slice(0, 1)), group.select_prompts(slice(1, 4))]
    assert halves[1].commit_step.shape == (6, 2) and torch.equal(halves[1].commit_step, order[2:])
    parts = sum(obj(policy, h)[0] * h.num_prompts / group.num_prompts for h in halves)
    torch.testing.assert_close(parts, whole)


def test_partition_logz_estimates_the_targets_normaliser_and_ignores_a_uniform_drain():
    from trafl.objectives.functional import partition_logz, vargrad_logz

    torch.manual_seed(0)
    L, beta, G = 4, 0.5, 20000
    # A reference over 3 sequences with rewards 0, 1, 0; the exact Z = E_ref[exp(L beta r)].
    p_ref = torch.tensor([0.5, 0.2, 0.3], dtype=torch.float64)
    r = torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64)
    z = float((p_ref * torch.exp(L * beta * r)).sum())
    # Samples from a different rollout policy; s = log p / L.
    p_old = torch.tensor([0.2, 0.6, 0.2], dtype=torch.float64)
    idx = torch.multinomial(p_old, G, replacement=True)
    s_ref, s_old = p_ref.log()[idx] / L, p_old.log()[idx] / L
    lengths = torch.full((G,), float(L), dtype=torch.float64)
    est = partition_logz(s_ref, s_old, r[idx], beta, lengths, G)
    assert float(est[0]) * L == pytest.approx(math.log(z), abs=0.02)
    # A uniform drain (the policy lowers every sampled sequence by c) leaves it unchanged; VarGrad follows it.
    c = 0.3
    small = slice(0, 8)
    args = (s_ref[small], s_old[small], r[idx][small], beta, lengths[small], 8)
    assert torch.allclose(
        partition_logz(*args), partition_logz(s_ref[small], s_old[small] - c, r[idx][small], beta, lengths[small], 8)
    )
    theta = s_old[small]
    vg, vg_drained = (
        vargrad_logz(theta, s_ref[small], r[idx][small], beta, 8),
        vargrad_logz(theta - c, s_ref[small], r[idx][small], beta, 8),
    )
    assert torch.allclose(vg_drained - vg, torch.full_like(vg, c))
