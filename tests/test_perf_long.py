"""The shipped long-answer base (``src/trafl/assets/long_base``, task ``count_range``) answers at long
canvases, with the exact sampler and with a fast one (dual cache + threshold 0.9), and threshold
decoding needs far fewer forward passes than positions. Correctness only: the speed ratios and the
accuracy over 104 held-out prompts per variant are measured by ``benchmarks/run.py --sections long``
(docs/performance.md, "Long answers").

Measured on 104 held-out prompts (exact match): L = 512, exact 85.6 %, dual + threshold 0.9 84.6 %;
L = 256, exact 58.7 %, dual + threshold 0.9 85.6 %, with 98-100 % of the numbers right at their place
(the misses are where the count stops). An untrained model writes no three-digit numbers at all."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import trafl
from trafl.models import load_pretrained
from trafl.sampling import SamplerSettings, decode_completions, generate
from trafl.tasks import get_task
from trafl.tasks.synthetic.count_range import partial_credit, step_share

LONG_BASE = Path(trafl.__file__).parent / "assets" / "long_base"


@pytest.fixture(scope="module")
def base():
    if not (LONG_BASE / "model.safetensors").exists():
        pytest.skip("the long base is not shipped in this checkout")
    torch.set_num_threads(1)
    model, tok = load_pretrained(str(LONG_BASE))
    return model.eval(), tok


def _sample(base, rows, task, gen_length, cache, threshold):
    model, tok = base
    enc = tok([task.format_prompt(r, tok) for r in rows], return_tensors="pt", padding=True)
    out = generate(
        model,
        enc.input_ids,
        enc.attention_mask,
        settings=SamplerSettings(
            gen_length=gen_length, steps=gen_length, block_length=32, temperature=0.0, cache=cache, threshold=threshold
        ),
    )
    return [t.strip() for t in decode_completions(tok, out.completion, tok.eos_token_id)], out.num_forward


@pytest.mark.parametrize("cache,threshold", [("none", None), ("dual", 0.9)])
def test_long_base_counts_at_L256(base, cache, threshold):
    task = get_task("count_range", max_count=63)  # answers <= 251 characters: fit L = 256 with their EOS
    rows = task.load("test")[:4]
    assert base[0].config.max_sequence_length >= 8 + 512  # prompt + the 512-token canvas it was trained at
    texts, num_forward = _sample(base, rows, task, 256, cache, threshold)
    assert all(len(r["answer"]) > 200 for r in rows)
    assert min(step_share(t) for t in texts) > 0.95, texts
    assert sum(partial_credit(t, r["a"], r["b"]) for t, r in zip(texts, rows)) / len(rows) > 0.9, texts
    if threshold is None:
        assert num_forward == 256
    else:
        assert num_forward < 256 // 4  # confident tokens (the EOS tail, easy digits) commit in parallel


@pytest.mark.slow
def test_long_base_solves_most_prompts_at_L512_with_the_fast_sampler(base):
    task = get_task("count_range")
    rows = task.load("test")[:8]
    texts, num_forward = _sample(base, rows, task, 512, "dual", 0.9)
    solved = [task.is_correct(t, r) for t, r in zip(texts, rows)]
    assert sum(solved) >= 5, [(r["prompt"], len(t), len(r["answer"])) for t, r in zip(texts, rows)]
    assert num_forward < 512 // 8


@pytest.mark.slow
def test_long_base_solves_most_prompts_at_L256_with_the_recommended_fast_sampler(base):
    """Dual cache + threshold 0.99 (the threshold chosen on the validation split) at the short canvas,
    where answers of 227-251 characters end in its last block: 83.7 % of 104 test prompts."""
    task = get_task("count_range", max_count=63)
    rows = task.load("test")[:8]
    texts, num_forward = _sample(base, rows, task, 256, "dual", 0.99)
    solved = [task.is_correct(t, r) for t, r in zip(texts, rows)]
    assert sum(solved) >= 5, [(r["prompt"], len(t), len(r["answer"])) for t, r in zip(texts, rows)]
    assert num_forward < 256 // 8
