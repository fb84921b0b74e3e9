"""The opt-in speed-ups of the sampler: block KV cache and threshold parallel decoding.

* the cached window forward reproduces the full forward exactly while the canvas is unchanged;
* with one step per block the cache is never stale, so the cached sampler equals the exact one;
* threshold decoding at tau = 1 commits nothing extra (exact sampler); at tau = 0 it commits a
  whole block per forward pass;
* the default sampler is token-identical to the plain LLaDA reference loop of the benchmark;
* bad options are rejected naming the option.
"""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

from benchmarks.reference_sampler import reference_generate
from trafl.errors import ConfigError
from trafl.models import BlockKVCache, build_char_tokenizer, build_model, tokenizer_fields
from trafl.models.kv_cache import cache_window, splice_window
from trafl.sampling import SamplerSettings, above_threshold, generate, row_generators


@pytest.fixture(scope="module")
def micro():
    torch.manual_seed(0)
    return build_model("micro", n_kv_heads=2).eval()  # GQA: 4 query heads share 2 key/value heads


def prompts(vocab: int = 64, batch: int = 3, width: int = 5, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, vocab, (batch, width), generator=g)
    attn = torch.ones_like(ids)
    attn[0, :2] = 0  # left padding
    return ids, attn


def test_splice_window_replaces_exactly_the_window():
    cached = torch.arange(10.0).view(1, 1, 5, 2)
    fresh = -torch.ones(1, 1, 2, 2)
    out = splice_window(cached, fresh, 2)
    assert torch.equal(out[..., :2, :], cached[..., :2, :])
    assert torch.equal(out[..., 2:4, :], fresh)
    assert torch.equal(out[..., 4:, :], cached[..., 4:, :])
    assert cache_window("prefix", 3, 5, 9) == (3, 9) and cache_window("dual", 3, 5, 9) == (3, 5)


@pytest.mark.parametrize("mode", ["prefix", "dual"])
def test_window_forward_equals_full_forward_on_an_unchanged_canvas(micro, mode):
    ids, attn = prompts()
    canvas = torch.cat([ids, torch.full((3, 8), micro.config.mask_token_id)], dim=1)
    canvas[:, 7] = 9  # some committed completion tokens
    full_attn = torch.cat([attn, torch.ones(3, 8, dtype=attn.dtype)], dim=1)
    with torch.no_grad():
        full = micro(canvas, attention_mask=full_attn).logits
    cache = BlockKVCache()
    recorded = micro.forward_window(canvas, full_attn, cache, 0, (5, 9))
    torch.testing.assert_close(recorded, full[:, 5:9], rtol=1e-5, atol=1e-5)
    assert len(cache.keys) == micro.config.n_layers and cache.keys[0].shape[1] == 2  # GQA heads are cached
    a, b = cache_window(mode, 9, 13, canvas.shape[1])
    window = micro.forward_window(canvas[:, a:b], full_attn, cache, a, (9, 13))
    torch.testing.assert_close(window, full[:, 9:13], rtol=1e-5, atol=1e-5)


def test_stale_cache_is_an_approximation(micro):
    """After tokens change the cached keys are stale: the window forward no longer equals the full one."""
    ids, attn = prompts()
    canvas = torch.cat([ids, torch.full((3, 8), micro.config.mask_token_id)], dim=1)
    full_attn = torch.cat([attn, torch.ones(3, 8, dtype=attn.dtype)], dim=1)
    cache = BlockKVCache()
    micro.forward_window(canvas, full_attn, cache, 0)
    canvas[:, 5:9] = 7
    with torch.no_grad():
        full = micro(canvas, attention_mask=full_attn).logits[:, 5:9]
    window = micro.forward_window(canvas[:, 5:9], full_attn, cache, 5)
    assert not torch.allclose(window, full, atol=1e-6)


@pytest.mark.parametrize("cache", ["prefix", "dual"])
@pytest.mark.parametrize("temperature", [0.0, 0.8])
def test_one_step_per_block_makes_the_cache_exact(micro, cache, temperature):
    ids, attn = prompts()
    settings = SamplerSettings(gen_length=8, steps=4, block_length=2, temperature=temperature)
    exact = generate(micro, ids, attn, settings=settings, generator=row_generators(0, 3, 2), num_samples=2)
    cached = generate(
        micro, ids, attn, settings=replace(settings, cache=cache), generator=row_generators(0, 3, 2), num_samples=2
    )
    assert torch.equal(exact.sequences, cached.sequences)
    assert torch.equal(exact.commit_step, cached.commit_step)


def test_cached_sampler_runs_and_commits_every_position(micro):
    ids, attn = prompts()
    for cache in ("prefix", "dual"):
        settings = SamplerSettings(gen_length=16, steps=16, block_length=4, cache=cache, threshold=0.5)
        out = generate(micro, ids, attn, settings=settings)
        assert (out.completion != micro.config.mask_token_id).all()
        assert (out.commit_step >= 0).all()


def test_threshold_one_is_the_exact_sampler_and_zero_decodes_a_block_per_pass(micro):
    ids, attn = prompts()
    settings = SamplerSettings(gen_length=12, steps=12, block_length=4, temperature=0.7)

    def run(threshold):
        at = replace(settings, threshold=threshold)
        return generate(micro, ids, attn, settings=at, generator=row_generators(3, 3, 2), num_samples=2)

    exact = run(None)
    same = run(1.0)
    assert torch.equal(exact.sequences, same.sequences) and exact.num_forward == same.num_forward == 12
    greedy = run(0.0)
    assert greedy.num_forward == 3  # one forward pass per block
    steps_used = greedy.commit_step.view(6, 3, 4)
    assert torch.equal(steps_used, torch.tensor([0, 4, 8]).view(1, 3, 1).expand(6, 3, 4))


def test_above_threshold_by_enumeration():
    conf = torch.tensor([[0.1, 0.95, 0.9, 0.99], [0.2, 0.3, 0.4, 0.5]])
    cand = torch.tensor([[True, True, True, False], [True, False, True, True]])
    for tau in (0.0, 0.3, 0.9, 0.95, 1.0):
        got = above_threshold(conf, cand, tau)
        for r in range(2):
            for i in range(4):
                assert bool(got[r, i]) == (bool(cand[r, i]) and float(conf[r, i]) > tau)


def test_default_sampler_matches_the_reference_loop(micro):
    ids, attn = prompts(batch=4)
    for steps, block in ((8, 8), (8, 4), (4, 4)):
        ours = generate(micro, ids, attn, settings=SamplerSettings(gen_length=8, steps=steps, block_length=block))
        ref = reference_generate(
            micro, ids, attn, gen_length=8, steps=steps, block_length=block, mask_token_id=micro.config.mask_token_id
        )
        assert torch.equal(ours.sequences, ref)
        assert ours.num_forward == steps


def test_bad_options_are_rejected(micro):
    ids, attn = prompts()
    settings = SamplerSettings(gen_length=4, steps=4, block_length=4)
    with pytest.raises(ConfigError, match="cache"):
        generate(micro, ids, attn, settings=replace(settings, cache="full"))
    with pytest.raises(ConfigError, match="threshold"):
        generate(micro, ids, attn, settings=replace(settings, threshold=1.5))
    no_cache_model = lambda x, attention_mask=None: torch.zeros(*x.shape, 8)  # noqa: E731
    no_cache_model.mask_token_id = 2
    with pytest.raises(ConfigError, match="block KV cache"):
        generate(no_cache_model, ids.clamp(max=7), attn, settings=replace(settings, cache="dual"))


def test_sample_cli_flags(tmp_path, capsys):
    from trafl.cli import main

    tok = build_char_tokenizer("0123456789+= ")
    torch.manual_seed(0)
    model = build_model(
        "micro",
        **tokenizer_fields(tok),
    )
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    base = [
        "sample",
        "--model",
        str(tmp_path),
        "--device",
        "cpu",
        "--gen-length",
        "8",
        "--steps",
        "8",
        "--block-length",
        "4",
        "--prompt",
        "1+2=",
        "--n",
        "2",
        "--json",
    ]
    assert main(base) == 0
    exact = json.loads(capsys.readouterr().out)
    assert main(base + ["--threshold", "1.0"]) == 0
    assert json.loads(capsys.readouterr().out) == exact
    assert main(base + ["--cache", "dual", "--threshold", "0.9"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 2
