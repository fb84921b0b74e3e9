"""Behaviour of ``trafl.sampling.generate``: the trajectory's invariants, batching, EOS handling and
bad-input errors."""

from __future__ import annotations

import pytest
import torch

from trafl.errors import ConfigError
from trafl.models import build_char_tokenizer, build_model
from trafl.sampling import (
    SampleOutput,
    SamplerSettings,
    completion_lengths,
    decode_completions,
    fill_after_eos,
    generate,
    row_generators,
    trim_at_eos,
)
from trafl.sampling.toy_models import CanvasTableDenoiser


@pytest.fixture(scope="module")
def micro():
    torch.manual_seed(0)
    return build_model("micro").eval()


class Recorder(torch.nn.Module):
    """Wraps a denoiser and keeps every canvas it is called on."""

    def __init__(self, inner):
        super().__init__()
        self.inner, self.canvases, self.config = inner, [], inner.config

    def forward(self, input_ids, attention_mask=None):
        self.canvases.append(input_ids.clone())
        return self.inner(input_ids, attention_mask=attention_mask)


def left_pad(prompts: list[list[int]], pad: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(map(len, prompts))
    ids = torch.full((len(prompts), width), pad)
    mask = torch.zeros_like(ids)
    for i, p in enumerate(prompts):
        ids[i, width - len(p) :] = torch.tensor(p)
        mask[i, width - len(p) :] = 1
    return ids, mask


def test_output_layout(micro):
    ids, mask = left_pad([[5, 6, 7], [8]])
    out = generate(micro, ids, mask, settings=SamplerSettings(gen_length=8, steps=4, block_length=4), num_samples=3)
    assert isinstance(out, SampleOutput)
    assert out.prompt_length == 3
    assert out.sequences.shape == (6, 11) and out.completion.shape == (6, 8) and out.commit_step.shape == (6, 8)
    assert torch.equal(out.sequences[:, :3], ids.repeat_interleave(3, dim=0))  # prompt-major rows
    assert torch.equal(out.attention_mask[:, :3], mask.repeat_interleave(3, dim=0))
    assert (out.attention_mask[:, 3:] == 1).all()
    assert (out.completion != micro.config.mask_token_id).all()


def test_temperature_zero_is_deterministic(micro):
    ids = torch.randint(3, 64, (2, 4), generator=torch.Generator().manual_seed(0))
    greedy = SamplerSettings(gen_length=8, steps=8, block_length=4)
    a = generate(micro, ids, settings=greedy, generator=torch.Generator().manual_seed(1))
    b = generate(micro, ids, settings=greedy, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a.sequences, b.sequences) and torch.equal(a.commit_step, b.commit_step)
    # The same prompt sampled several times at T = 0 gives the same completion every time.
    c = generate(micro, ids, settings=greedy, num_samples=3)
    assert (c.completion.view(2, 3, 8) == c.completion.view(2, 3, 8)[:, :1]).all()
    # At T > 0 different seeds give different samples.
    hot = SamplerSettings(gen_length=8, steps=8, block_length=4, temperature=1.0)
    d = generate(micro, ids, settings=hot, generator=torch.Generator().manual_seed(1))
    e = generate(micro, ids, settings=hot, generator=torch.Generator().manual_seed(2))
    assert not torch.equal(d.sequences, e.sequences)


@torch.no_grad()
def _reference_greedy(model, prompt: torch.Tensor, gen_length: int, steps: int, block_length: int) -> torch.Tensor:
    """LLaDA's algorithm for one unpadded prompt at T = 0 with low-confidence remasking, written out
    position by position (no batching), as an independent reference."""
    mask_id = model.config.mask_token_id
    x = torch.cat([prompt, torch.full((gen_length,), mask_id)])
    p_len = len(prompt)
    num_blocks = gen_length // block_length
    per_block = steps // num_blocks
    for b in range(num_blocks):
        n = block_length
        ks = [n // per_block + (1 if j < n % per_block else 0) for j in range(per_block)]
        for j in range(per_block):
            logits = model(x.unsqueeze(0)).logits[0].double()
            logits[:, mask_id] = -float("inf")
            candidates = []
            for pos in range(p_len + b * block_length, p_len + (b + 1) * block_length):
                if x[pos] == mask_id:
                    tok = int(logits[pos].argmax())
                    candidates.append((float(logits[pos].softmax(-1)[tok]), pos, tok))
            candidates.sort(key=lambda c: -c[0])
            for _, pos, tok in candidates[: ks[j]]:
                x[pos] = tok
    return x[p_len:]


@pytest.mark.parametrize("gen_length,steps,block_length", [(8, 8, 8), (8, 4, 4), (9, 6, 3)])
def test_greedy_matches_a_direct_transcription_of_the_algorithm(micro, gen_length, steps, block_length):
    prompts = [[5, 9, 11, 20], [7, 7]]
    ids, mask = left_pad(prompts)
    out = generate(
        micro, ids, mask, settings=SamplerSettings(gen_length=gen_length, steps=steps, block_length=block_length)
    )
    for r, p in enumerate(prompts):
        ref = _reference_greedy(micro, torch.tensor(p), gen_length, steps, block_length)
        assert out.completion[r].tolist() == ref.tolist()


@pytest.mark.parametrize("remasking", ["low_confidence", "random"])
def test_committed_tokens_never_change_and_nothing_right_of_the_block_is_committed(micro, remasking):
    model = Recorder(micro)
    ids, mask = left_pad([[5, 6, 7], [9, 10]])
    gen_length, steps, block_length = 12, 6, 4
    out = generate(
        model,
        ids,
        mask,
        settings=SamplerSettings(
            gen_length=gen_length, steps=steps, block_length=block_length, temperature=1.0, remasking=remasking
        ),
        num_samples=2,
        generator=torch.Generator().manual_seed(3),
    )
    mask_id = micro.config.mask_token_id
    P = out.prompt_length
    history = torch.stack(model.canvases + [out.sequences])  # [steps + 1, R, P + L]
    assert len(model.canvases) == steps
    assert (history[:, :, :P] == out.sequences[:, :P]).all()  # the prompt is never touched
    comp = history[:, :, P:]
    committed = comp != mask_id
    # Once committed, a position keeps its token until the end.
    assert (~committed[:-1] | (comp[:-1] == comp[1:])).all()
    assert (committed[:-1] <= committed[1:]).all()
    # Before step t, exactly the positions with commit_step < t are committed.
    for t in range(steps + 1):
        assert torch.equal(committed[t], out.commit_step < t)
    # During block b (its steps b*s'..(b+1)*s'-1) nothing right of the block is committed.
    per_block = steps // (gen_length // block_length)
    for t in range(steps):
        block_end = (t // per_block + 1) * block_length
        assert not committed[t + 1, :, block_end:].any()


def _prompt_alone(model, prompt, gens, **kw) -> torch.Tensor:
    return generate(model, torch.tensor([prompt]), generator=gens, **kw).completion


@pytest.mark.parametrize("remasking", ["low_confidence", "random"])
def test_batch_composition_does_not_change_samples(remasking):
    model = CanvasTableDenoiser(3, 4, seed=2)
    prompts = [[0, 1, 2, 1, 0], [2], [1, 1, 0]]
    ids, mask = left_pad(prompts, pad=2)
    kw = dict(settings=SamplerSettings(gen_length=4, steps=4, block_length=2, temperature=1.0, remasking=remasking))
    batch = generate(model, ids, mask, num_samples=2, generator=row_generators(7, 3, 2), **kw).completion
    for i, p in enumerate(prompts):
        alone = _prompt_alone(model, p, row_generators(7, 1, 2, first_prompt=i), num_samples=2, **kw)
        assert torch.equal(batch[2 * i : 2 * i + 2], alone)
    # Sanity: the two samples of a prompt differ somewhere, so the comparison is not vacuous.
    assert not torch.equal(batch[0::2], batch[1::2])


def test_batch_composition_on_the_native_model():
    torch.manual_seed(0)
    model = build_model("micro", dtype=torch.float64).eval()
    prompts = [[5, 9, 11, 20, 3], [7], [30, 31]]
    ids, mask = left_pad(prompts)
    kw = dict(
        settings=SamplerSettings(gen_length=8, steps=4, block_length=4, temperature=0.8, remasking="low_confidence")
    )
    batch = generate(model, ids, mask, num_samples=2, generator=row_generators(0, 3, 2), **kw).completion
    for i, p in enumerate(prompts):
        alone = _prompt_alone(model, p, row_generators(0, 1, 2, first_prompt=i), num_samples=2, **kw)
        assert torch.equal(batch[2 * i : 2 * i + 2], alone)


class FixedLogits(torch.nn.Module):
    """Logits that ignore the canvas: ``table[i]`` at completion position ``i``."""

    def __init__(self, table: torch.Tensor, mask_token_id: int):
        super().__init__()
        self.table, self.mask_token_id = table, mask_token_id

    def forward(self, input_ids, attention_mask=None):
        out = torch.zeros(*input_ids.shape, self.table.shape[-1])
        out[:, -self.table.shape[0] :] = self.table
        return out


def test_mask_token_is_never_proposed():
    table = torch.zeros(3, 5)
    table[:, 2] = 50.0  # the model "prefers" the mask token (id 2) everywhere
    table[:, 4] = 1.0
    model = FixedLogits(table, mask_token_id=2)
    for remasking in ("low_confidence", "random"):
        settings = SamplerSettings(gen_length=3, steps=3, block_length=3, temperature=0.0, remasking=remasking)
        out = generate(model, torch.tensor([[3]]), settings=settings)
        assert out.completion.tolist() == [[4, 4, 4]]


def test_eos_fill_and_trim():
    eos, tok_a = 1, 4
    table = torch.zeros(4, 5)
    table[:, tok_a] = 5.0
    table[1, eos] = 10.0  # EOS at completion position 1 only
    model = FixedLogits(table, mask_token_id=2)
    kw = dict(settings=SamplerSettings(gen_length=4, steps=4, block_length=4))
    raw = generate(model, torch.tensor([[3]]), eos_token_id=eos, **kw)
    assert raw.completion.tolist() == [[tok_a, eos, tok_a, tok_a]]
    filled = generate(model, torch.tensor([[3]]), eos_token_id=eos, fill_eos=True, **kw)
    assert filled.completion.tolist() == [[tok_a, eos, eos, eos]]
    assert torch.equal(filled.commit_step, raw.commit_step)
    with pytest.raises(ConfigError, match="eos_token_id"):
        generate(model, torch.tensor([[3]]), fill_eos=True, **kw)

    comp = torch.tensor([[4, 1, 4, 0, 4], [4, 4, 4, 4, 4], [0, 4, 1, 4, 4]])
    assert fill_after_eos(comp, 1).tolist() == [[4, 1, 1, 1, 1], [4, 4, 4, 4, 4], [0, 4, 1, 1, 1]]
    assert fill_after_eos(comp, [0, 1]).tolist() == [[4, 1, 1, 1, 1], [4, 4, 4, 4, 4], [0, 0, 0, 0, 0]]
    assert trim_at_eos(comp[0], 1) == [4] and trim_at_eos([4, 4], 1) == [4, 4] and trim_at_eos([0, 1], [0, 1]) == []
    assert completion_lengths(comp, 1).tolist() == [1, 5, 2]


def test_decode_completions_stops_at_eos():
    tok = build_char_tokenizer("ab")
    a, b = tok.convert_tokens_to_ids(["a", "b"])
    comp = torch.tensor([[a, b, tok.eos_token_id, a], [b, b, b, b]])
    assert decode_completions(tok, comp) == ["ab", "bbbb"]


def test_per_row_generators_reproduce_rows(micro):
    ids = torch.tensor([[5, 6], [7, 8]])
    settings = SamplerSettings(gen_length=4, steps=4, block_length=2, temperature=1.0, remasking="random")
    kw = dict(settings=settings, num_samples=2)
    a = generate(micro, ids, generator=row_generators(1, 2, 2), **kw)
    b = generate(micro, ids, generator=row_generators(1, 2, 2), **kw)
    assert torch.equal(a.sequences, b.sequences)


@pytest.mark.parametrize(
    "kwargs,pattern",
    [
        (dict(gen_length=10, steps=5, block_length=4), "multiple of block_length"),
        (dict(gen_length=12, steps=5, block_length=4), "multiple of the number of blocks"),
        (dict(gen_length=8, steps=16, block_length=8), "steps=16 must be <= gen_length=8"),
        (dict(gen_length=8, steps=0, block_length=8), "steps must be >= 1"),
        (dict(gen_length=0, steps=1, block_length=1), "gen_length must be >= 1"),
        (dict(gen_length=8, steps=8, block_length=8, temperature=-0.1), "temperature must be >= 0"),
        (dict(gen_length=8, steps=8, block_length=8, remasking="entropy"), "remasking must be one of"),
        (dict(gen_length=8, steps=8, block_length=8, call=dict(num_samples=0)), "num_samples must be >= 1"),
        (dict(gen_length=126, steps=126, block_length=126), "exceeds the model's context of 128"),
        (
            dict(gen_length=8, steps=8, block_length=8, call=dict(generator=[torch.Generator()] * 3)),
            "one per output row",
        ),
    ],
)
def test_bad_input_errors(micro, kwargs, pattern):
    kwargs = dict(kwargs)
    call = kwargs.pop("call", {})  # generate's own arguments, besides the sampler's settings
    with pytest.raises(ConfigError, match=pattern):
        generate(micro, torch.tensor([[5, 6, 7]]), settings=SamplerSettings(**kwargs), **call)


def test_bad_prompt_errors(micro):
    kw = dict(settings=SamplerSettings(gen_length=4, steps=4, block_length=4))
    with pytest.raises(ConfigError, match="left-padded"):
        generate(micro, torch.tensor([[5, 6, 0]]), torch.tensor([[1, 1, 0]]), **kw)
    with pytest.raises(ConfigError, match="attention_mask shape"):
        generate(micro, torch.tensor([[5, 6, 7]]), torch.tensor([[1, 1]]), **kw)
