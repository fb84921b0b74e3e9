"""Fixed point of TraFL on an enumerable space, and where the baselines go on the same problem.

V = 3, L = 2, one prompt. The policy is a :class:`TableDenoiser` (a free logit vector for every
partially masked canvas and position: any set of conditionals, consistent or not), sampled in
random order one token per step, whose exact law ``P_theta`` is enumerated over orders and tokens.
Rollouts are drawn from ``P_theta``; the reference starts consistent (conditionals of one joint).
Target: ``pi*(y) = P_ref(y) exp(L beta r(y)) / Z``. We measure the exact TV to the target, the
entropy and the ELBO slack ``max_y log P(y) - ELBO(y)`` (nats).
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from trafl.likelihood.exact import (
    JointDenoiser,
    TableDenoiser,
    all_completions,
    entropy,
    exact_elbo,
    random_order_logprob,
    total_variation,
)
from trafl.objectives import RolloutGroup, get_objective

V, L, G, BETA = 3, 2, 16, 0.75
CORRECT = [(0, 1), (1, 2), (2, 0)]


class FeatureTable(TableDenoiser):
    """A table denoiser whose "trunk" gives one constant prompt feature (for the learned logZ head)."""

    def forward(self, input_ids, attention_mask=None, output_hidden_states=False):
        if output_hidden_states:
            return SimpleNamespace(hidden_states=(torch.ones(*input_ids.shape, 1, dtype=torch.float64),))
        return super().forward(input_ids, attention_mask)


def run(method: str, steps: int = 400, **options) -> dict[str, float]:
    torch.manual_seed(0)
    joint = JointDenoiser(V, L, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        table = joint.conditional_logits().clone()
    ref, policy = FeatureTable(V, L), FeatureTable(V, L)
    ref.logits.data.copy_(table)
    policy.logits.data.copy_(table)
    ref.requires_grad_(False)
    ys = all_completions(V, L)
    reward = torch.zeros(len(ys), dtype=torch.float64)
    for y in CORRECT:
        reward[(ys == torch.tensor(y)).all(dim=1)] = 1.0
    target = (random_order_logprob(ref.conditional_logprobs(), V) + BETA * L * reward).log_softmax(0)
    objective = get_objective(method, **options)
    opt = torch.optim.Adam(list(policy.parameters()) + list(objective.parameters()), lr=0.05)
    gen = torch.Generator().manual_seed(0)
    for _ in range(steps):
        with torch.no_grad():
            probs = random_order_logprob(policy.conditional_logprobs(), V).exp()
        idx = torch.multinomial(probs.float(), G, replacement=True, generator=gen)
        ids = torch.cat([torch.zeros(G, 1, dtype=torch.long), ys[idx]], dim=1)
        order = torch.rand(G, L, generator=gen).argsort(dim=1).argsort(dim=1)  # a random-order trajectory
        group = RolloutGroup(ids, torch.ones_like(ids), 1, reward[idx].float().view(1, G), commit_step=order)
        group = objective.prepare(group, reference=ref, generator=gen)
        loss, _ = objective(policy, group)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        cond = policy.conditional_logprobs()
        logp = random_order_logprob(cond, V)
        return {
            "tv": float(total_variation(logp, target)),
            "entropy": float(entropy(logp)),
            "target_entropy": float(entropy(target)),
            "reward": float((logp.exp() * reward).sum()),
            "target_reward": float((target.exp() * reward).sum()),
            "slack": float((logp - exact_elbo(cond, V)).max()),
        }


def report(capsys, name: str, m: dict[str, float]) -> None:
    with capsys.disabled():
        print(
            f"\n[fixed point] {name:28s} TV {m['tv']:.4f}  H {m['entropy']:.3f} (target {m['target_entropy']:.3f})  "
            f"reward {m['reward']:.3f} (target {m['target_reward']:.3f})  slack {m['slack']:.3f}"
        )


TRAFL = dict(beta=BETA, reward_transform="raw", importance_weight="clipped")


@pytest.mark.parametrize("logz", ["learned", "vargrad", "partition"])
def test_trafl_with_the_elbo_reaches_the_tilted_reference(capsys, logz):
    m = run("trafl", logz=logz, hidden_size=1, logz_width=32, **TRAFL)
    report(capsys, f"trafl elbo {logz}", m)
    assert m["tv"] < 0.05


def test_trafl_on_the_trajectory_likelihood_reaches_it_exactly(capsys):
    m = run("trafl", logz="vargrad", surrogate="trajectory", **TRAFL)
    report(capsys, "trafl trajectory vargrad", m)
    assert m["tv"] < 1e-3


@pytest.mark.parametrize("method", ["espo", "justgrpo", "diffu_grpo"])
def test_reward_maximising_baselines_concentrate(capsys, method):
    m = run(method)
    report(capsys, method, m)
    assert m["entropy"] < m["target_entropy"] - 0.1
    assert m["tv"] > 0.1
