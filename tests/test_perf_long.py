"""The shipped long-answer base (``src/trafl/assets/long_base``, task ``count_range``) at a 256-token
canvas, with the exact sampler and with the fast one (dual cache + threshold 0.9): both write
counts that mostly follow the counting rule, and threshold decoding needs far fewer forward passes than
positions. Correctness only: the speed ratios are measured by ``benchmarks/run.py --sections long``.

The base does not solve the task exactly yet (0 % exact match, see its README.md), so the check is
on :func:`~trafl.tasks.synthetic.count_range.step_share`, the share of adjacent numbers that count up
by one (measured on 40 held-out prompts: 70 % with the exact sampler, 49 % with dual + threshold;
an untrained model writes no three-digit numbers at all: 0)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import trafl
from trafl.models import load_pretrained
from trafl.sampling import decode_completions, generate
from trafl.tasks import get_task
from trafl.tasks.synthetic.count_range import step_share

LONG_BASE = Path(trafl.__file__).parent / "assets" / "long_base"


@pytest.fixture(scope="module")
def base():
    if not (LONG_BASE / "model.safetensors").exists():
        pytest.skip("the long base is not shipped in this checkout")
    torch.set_num_threads(1)
    model, tok = load_pretrained(str(LONG_BASE))
    return model.eval(), tok


@pytest.mark.parametrize("cache,threshold", [("none", None), ("dual", 0.9)])
def test_long_base_writes_long_counts_at_L256(base, cache, threshold):
    model, tok = base
    task = get_task("count_range", max_count=63)  # answers <= 251 characters: fit L = 256 with their EOS
    rows = task.load("test")[:4]
    assert model.config.max_sequence_length >= 8 + 512  # prompt + the 512-token canvas it was trained at
    enc = tok([task.format_prompt(r, tok) for r in rows], return_tensors="pt", padding=True)
    out = generate(
        model,
        enc.input_ids,
        enc.attention_mask,
        gen_length=256,
        steps=256,
        block_length=32,
        temperature=0.0,
        cache=cache,
        threshold=threshold,
    )
    texts = decode_completions(tok, out.completion, tok.eos_token_id)
    steps_ok = [step_share(t.strip()) for t in texts]
    assert all(len(r["answer"]) > 200 for r in rows) and all(len(t) > 150 for t in texts), texts
    assert sum(steps_ok) / len(steps_ok) >= 0.3, (steps_ok, texts)
    if threshold is None:
        assert out.num_forward == 256
    else:
        assert out.num_forward < 256 // 2  # confident tokens (the EOS tail, easy digits) commit in parallel
