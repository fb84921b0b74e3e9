"""Each method runs as its authors defined it: option defaults pinned against docs/objectives.md,
recipe trainer defaults, left-to-right rollouts for JustGRPO, per-iteration noise, no unused reference."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from rl_toys import DigitTask, make_model_dir

from trafl.errors import ConfigError
from trafl.objectives import RolloutGroup, get_objective
from trafl.objectives.registry import OBJECTIVES, defaults_table
from trafl.train.config import TrainConfig
from trafl.utils.config import load_config

DOCS = Path(__file__).resolve().parent.parent / "docs" / "objectives.md"


def test_defaults_table_in_docs_matches_the_registry():
    text = DOCS.read_text()
    assert defaults_table() in text, (
        "docs/objectives.md's defaults table is stale: paste trafl.objectives.registry.defaults_table()"
    )


@pytest.mark.parametrize(
    "method,expected",
    [
        ("espo", dict(beta=1e-3, epsilon=0.2, num_mc=4, elbo_estimator="espo", resample_noise=True, num_iterations=8)),
        (
            "diffu_grpo",
            dict(
                beta=0.04,
                epsilon=0.5,
                length_norm="tokens",
                token_reduction="batch_tokens",
                resample_noise=True,
                surrogate="onestep",
                num_iterations=12,
            ),
        ),
        (
            "justgrpo",
            dict(
                surrogate="autoregressive",
                unbiased_std=True,
                per_informative_sample=True,
                num_iterations=1,
                block_length=1,
                diffusion_steps=16,
                temperature=1.0,
                score_temperature=True,
            ),
        ),
        ("trafl", dict(surrogate="elbo", num_iterations=1)),
        (
            "wd1",
            dict(
                surrogate="onestep",
                length_norm="tokens",
                resample_noise=True,
                psi=1.0,
                ref_tilt=0.0,
                positive_weight=1.0,
                negative_weight=1.0,
                num_iterations=12,
            ),
        ),
        (
            "spg",
            dict(
                negative_bound="mix",
                eubo_beta=1.5,
                mix_weight=0.5,
                num_mc=2,
                block_masking=True,
                mask_block_length=16,  # the sampler's block_length (16 here; 32 in SPG's recipe)
                length_norm="tokens",
                resample_noise=True,
                num_iterations=4,
                temperature=0.9,
            ),
        ),
    ],
)
def test_method_with_no_flags_runs_its_authors_recipe(method, expected):
    cfg = load_config(
        TrainConfig,
        None,
        {
            "model": "m",
            "task": "t",
            "method": method,
            "max_completion_length": 16,
            "block_length": None if method == "justgrpo" else 16,
            "diffusion_steps": None if method == "justgrpo" else 16,
        },
    )
    for key, value in expected.items():
        got = getattr(cfg.objective, key) if hasattr(cfg.objective, key) else getattr(cfg, key)
        assert got == value, (method, key, got, value)


@pytest.mark.parametrize(
    "method,length,expected",
    [
        # ESPO: recipes/train.yaml (generation_temperature 1.0, diffusion_steps 256 = max_completion_length),
        # espo_trainer.py's generate call (block_length=32, remasking low_confidence)
        ("espo", 256, (1.0, 256, 32, "low_confidence")),
        ("espo", 512, (1.0, 512, 32, "low_confidence")),
        # d1: slurm_scripts/train.yaml (block 32, 128 steps, low_confidence), diffu_grpo_config.py (T 0.9)
        ("diffu_grpo", 256, (0.9, 128, 32, "low_confidence")),
        ("diffu_grpo", 512, (0.9, 128, 32, "low_confidence")),
        ("justgrpo", 256, (1.0, 256, 1, "low_confidence")),
        ("trafl", 256, (0.9, 128, 32, "low_confidence")),
        # wd1: wd1/train.yaml (block 32, 128 steps, low_confidence), diffu_grpo_config.py (T 0.9)
        ("wd1", 256, (0.9, 128, 32, "low_confidence")),
        # SPG: spg/slurm_scripts/train.yaml (block 32, 128 steps), diffu_grpo_config.py (T 0.9)
        ("spg", 256, (0.9, 128, 32, "low_confidence")),
        ("spg", 512, (0.9, 128, 32, "low_confidence")),
    ],
)
def test_method_with_no_sampler_flags_samples_as_its_authors(method, length, expected):
    """No sampler flag: the rollout sampler (temperature, steps, block, remasking) is the authors'; an
    L-dependent default follows max_completion_length; an explicit value wins."""
    base = {"model": "m", "task": "t", "method": method, "max_completion_length": length}
    cfg = load_config(TrainConfig, None, base)
    assert (cfg.temperature, cfg.diffusion_steps, cfg.block_length, cfg.remasking) == expected
    if method != "justgrpo":
        explicit = load_config(
            TrainConfig, None, {**base, "temperature": 0.7, "diffusion_steps": 64, "block_length": 64}
        )
        assert (explicit.temperature, explicit.diffusion_steps, explicit.block_length) == (0.7, 64, 64)


def test_espo_adds_only_its_recipe_kl_and_justgrpo_has_none():
    assert get_objective("espo").beta == 1e-3  # ESPO's own recipe (not a shared beta)
    assert not get_objective("espo", beta=0.0).needs_reference
    assert not get_objective("justgrpo").needs_reference
    with pytest.raises(ConfigError, match="objective 'justgrpo' has no option.*'beta' belongs to"):
        load_config(TrainConfig, None, {"model": "m", "task": "t", "method": "justgrpo", "beta": 0.1})


def test_justgrpo_refuses_a_non_left_to_right_sampler_unless_asked():
    base = {"model": "m", "task": "t", "method": "justgrpo", "max_completion_length": 8}
    with pytest.raises(ConfigError, match="samples left to right"):
        load_config(TrainConfig, None, {**base, "block_length": 8, "diffusion_steps": 8})
    cfg = load_config(
        TrainConfig, None, {**base, "block_length": 8, "diffusion_steps": 8, "allow_any_rollout_order": True}
    )
    assert (cfg.block_length, cfg.diffusion_steps) == (8, 8)


def test_saved_config_round_trips_with_flat_option_keys(tmp_path):
    from trafl.utils.config import save_config

    cfg = load_config(TrainConfig, None, {"model": "m", "task": "t", "method": "espo", "beta": 0.01, "num_mc": 6})
    save_config(cfg, tmp_path / "c.yaml")
    text = (tmp_path / "c.yaml").read_text()
    assert re.search(r"^beta: 0.01$", text, re.M) and re.search(r"^num_iterations: 8$", text, re.M)
    again = load_config(TrainConfig, tmp_path / "c.yaml")
    assert again.objective == cfg.objective and again.num_iterations == 8


class _Table(torch.nn.Module):
    mask_token_id = 3

    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(4, 4)

    def forward(self, ids, attention_mask=None):
        return self.emb(ids)


@pytest.mark.parametrize("method", ["espo", "diffu_grpo"])
def test_resampled_noise_gives_each_inner_iteration_its_own_draw(method):
    torch.manual_seed(0)
    model = _Table()
    ids = torch.randint(0, 3, (4, 2 + 6))
    group = RolloutGroup(ids, torch.ones_like(ids), 2, torch.tensor([[1.0, 0.0], [0.0, 1.0]]), eos_token_id=2)
    obj = get_objective(method)
    g = torch.Generator().manual_seed(0)
    prepared = obj.prepare(group, reference=model, old_policy=model, generator=g, num_iterations=3)
    draws = [prepared.for_iteration(i).noise for i in range(3)]
    tensors = [d.masked if hasattr(d, "masked") else d for d in draws]
    assert not torch.equal(tensors[0], tensors[1]) or not torch.equal(tensors[1], tensors[2])
    # each iteration's cached old / reference surrogate is the one of its own draw
    for i in range(3):
        it = prepared.for_iteration(i)
        again = obj.surrogate.evaluate(model, it.batch, it.noise, None)
        assert torch.allclose(again.token_logp, it.old.token_logp)
        assert torch.allclose(again.token_logp, it.ref.token_logp)
    # TraFL keeps one draw for every iteration
    single = get_objective("trafl", logz="vargrad").prepare(group, reference=model, generator=g, num_iterations=3)
    assert single.per_iteration is None


def _param_bytes(*modules) -> int:
    seen, total = set(), 0
    for m in modules:
        if m is None:
            continue
        for p in m.parameters():
            if p.data_ptr() not in seen:
                seen.add(p.data_ptr())
                total += p.numel() * p.element_size()
    return total


@pytest.mark.parametrize("method,beta", [("espo", 0.0), ("justgrpo", None), ("wd1", None), ("spg", None)])
def test_no_reference_copy_when_the_objective_never_reads_it(method, beta, tmp_path):
    from trafl.train.trainer import RLTrainer

    model_dir = make_model_dir(tmp_path / "base")
    common = {
        "model": str(model_dir),
        "task": "rl_toys:DigitTask",
        "num_generations": 4,
        "per_device_train_batch_size": 8,
        "max_completion_length": 4,
        "max_prompt_length": 16,
        "device": "cpu",
        "output_dir": str(tmp_path / "run"),
    }
    if method != "justgrpo":
        common.update(diffusion_steps=4, block_length=4)
    without = RLTrainer(
        load_config(TrainConfig, None, {**common, "method": method, **({"beta": beta} if beta is not None else {})}),
        task=DigitTask(),
        progress=False,
    )
    with_ref = RLTrainer(
        load_config(
            TrainConfig, None, {**common, "method": "espo", "beta": 1e-3, "diffusion_steps": 4, "block_length": 4}
        ),
        task=DigitTask(),
        progress=False,
    )
    held_without = _param_bytes(without.model, without.reference)
    held_with = _param_bytes(with_ref.model, with_ref.reference)
    model_bytes = _param_bytes(with_ref.model)
    print(f"\n{method}: parameter bytes held {held_without} vs {held_with} with a reference (model {model_bytes})")
    assert without.reference is None
    assert held_with - held_without == model_bytes


def test_every_registered_objective_has_documented_options():
    for name, cls in OBJECTIVES.items():
        import dataclasses

        for f in dataclasses.fields(cls.Options):
            assert f.metadata.get("help"), (name, f.name)
