"""Masked-diffusion SFT: the loss is LLaDA's, the prompt is never masked, training on a toy task
lowers held-out loss and greedy samples solve held-out prompts; bad data is a clear error."""

from __future__ import annotations

import json
import math
import random
import shutil

import pytest
import torch
import torch.nn.functional as F

from trafl.errors import DataError
from trafl.sft.config import SFTConfig
from trafl.sft.data import read_pairs
from trafl.sft.loss import (
    end_blocks,
    forward_process,
    masked_diffusion_loss,
    mixed_forward_process,
    semi_ar_forward_process,
)
from trafl.utils.config import load_config


def test_forward_process_masks_only_the_completion_at_rate_p():
    g = torch.Generator().manual_seed(0)
    ids = torch.arange(20).repeat(4000, 1)
    completion = torch.zeros_like(ids, dtype=torch.bool)
    completion[:, 8:] = True
    noisy, masked, p = forward_process(ids, completion, mask_token_id=99, eps=0.1, generator=g)
    assert not masked[:, :8].any() and torch.equal(noisy[:, :8], ids[:, :8])
    assert torch.equal(noisy[masked], torch.full_like(noisy[masked], 99))
    assert p.min() >= 0.1 and p.max() <= 1.0
    # per row, the masked fraction of the 12 completion tokens tracks p_mask
    frac = masked[:, 8:].float().mean(dim=1, keepdim=True)
    assert abs(float((frac - p).mean())) < 0.01


def test_semi_ar_corruption_is_the_block_samplers_state():
    """Per row: blocks before k clean, block k masked at its rate, every later token masked; only block k's
    masked tokens are targets; k is uniform over the K blocks and p_mask is the block's rate / K."""
    g = torch.Generator().manual_seed(0)
    prompt, length, block = 3, 12, 4  # K = 3 blocks
    ids = torch.arange(prompt + length).repeat(6000, 1)
    completion = torch.zeros_like(ids, dtype=torch.bool)
    completion[:, prompt:] = True
    noisy, masked, p = semi_ar_forward_process(ids, completion, 99, block, eps=0.1, generator=g)
    hidden = noisy == 99
    assert not hidden[:, :prompt].any() and not masked[:, :prompt].any()
    assert torch.equal(noisy[~hidden], ids[~hidden]) and bool((hidden | ~masked).all())
    comp_hidden = hidden[:, prompt:].view(-1, length // block, block)
    comp_masked = masked[:, prompt:].view(-1, length // block, block)
    blocks_with_targets = comp_masked.any(dim=2)
    counts = torch.zeros(3, dtype=torch.long)
    for row in range(ids.shape[0]):
        k = int(torch.nonzero(blocks_with_targets[row])[0]) if blocks_with_targets[row].any() else None
        if k is None:  # block k drew no mask: later blocks are still all hidden
            k = int((~comp_hidden[row].all(dim=1)).nonzero()[-1])
        counts[k] += 1
        assert not comp_hidden[row, :k].any()  # earlier blocks clean
        assert comp_hidden[row, k + 1 :].all()  # later blocks all masks
        assert not comp_masked[row, k + 1 :].any()  # ... and not targets
        assert torch.equal(comp_masked[row, k], comp_hidden[row, k])  # block k: hidden = target
    assert (counts - 2000).abs().max() < 150  # k ~ U{0, 1, 2}
    assert int(blocks_with_targets.sum(dim=1).max()) <= 1  # targets lie in one block
    rate = p * 3
    assert rate.min() >= 0.1 and rate.max() <= 1.0
    share = comp_masked.float().sum(dim=(1, 2)) / block  # the block's masked share tracks its rate
    assert abs(float((share - rate.squeeze(1)).mean())) < 0.01


def test_semi_ar_loss_is_the_block_bound_and_off_is_the_plain_process():
    """With the block's masked tokens and p / K, masked_diffusion_loss is (1/B) sum CE / rate over block k;
    with the semi-AR share at 0 the mixed process draws exactly what forward_process draws."""
    torch.manual_seed(1)
    ids = torch.randint(3, 9, (5, 10))
    completion = torch.zeros_like(ids, dtype=torch.bool)
    completion[:, 2:] = True
    noisy, masked, p = semi_ar_forward_process(ids, completion, 0, 4, generator=torch.Generator().manual_seed(3))
    logits = torch.randn(5, 10, 9)
    ce = F.cross_entropy(logits.reshape(-1, 9), ids.reshape(-1), reduction="none").view(5, 10)
    rate = p * 2
    expected = torch.stack([(ce[b][masked[b]] / rate[b]).sum() / 4 for b in range(5)]).mean()
    assert torch.allclose(masked_diffusion_loss(logits, ids, masked, p, completion), expected)
    a = forward_process(ids, completion, 0, 1e-3, torch.Generator().manual_seed(7))
    b = mixed_forward_process(ids, completion, 0, 1e-3, torch.Generator().manual_seed(7), 4, 0.0)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    mixed = mixed_forward_process(ids.repeat(400, 1), completion.repeat(400, 1), 0, 1e-3, torch.Generator(), 4, 0.5)
    semi = (mixed[0][:, 2:] == 0) & ~mixed[1][:, 2:]  # a hidden non-target: only the semi-AR suffix has them
    assert 0.25 < semi.any(dim=1).float().mean() < 0.5  # half the rows, minus those whose k is the last block
    with pytest.raises(ValueError, match="block_length"):
        semi_ar_forward_process(ids, completion, 0, 3)


def test_end_blocks_find_the_first_eos_of_the_completion():
    """The block of the first EOS inside the completion (an EOS in the prompt does not count; no EOS: the
    last block), per row, for canvases of different lengths in one batch."""
    eos = 1
    ids = torch.tensor(
        [
            [1, 5, 5, 5, 1, 1, 1, 1, 1, 1],  # prompt EOS ignored; first completion EOS at index 2: block 1
            [5, 1, 5, 5, 5, 5, 5, 5, 5, 5],  # no EOS in the completion: its last block
            [5, 5, 1, 1, 1, 1, 1, 1, 0, 0],  # EOS at completion index 0; a 6-token canvas, right-padded
        ]
    )
    completion = torch.zeros_like(ids, dtype=torch.bool)
    completion[:2, 2:] = True
    completion[2, 2:8] = True
    assert end_blocks(ids, completion, eos, 2).flatten().tolist() == [1, 3, 0]


def test_end_share_draws_the_end_block_more_and_keeps_the_loss_unbiased():
    """k ~ q_k = (1 - s) / K + s [k = k_end], p_mask = rate * q_k, and the loss's expectation over the draws is
    the uniform-block one: mean_k (1/B) sum_{i in block k} CE_i = (1/L) sum_i CE_i, whatever s (Monte Carlo,
    within 4 standard errors); at s = 0 the draws are those of the uniform process."""
    prompt, length, block, rows = 2, 12, 4, 30000  # K = 3
    ids = torch.randint(3, 9, (1, prompt + length)).repeat(rows, 1)
    completion = torch.zeros_like(ids, dtype=torch.bool)
    completion[:, prompt:] = True
    end = torch.full((rows, 1), 1)
    logits = torch.randn(1, prompt + length, 9).expand(rows, -1, -1)
    ce = F.cross_entropy(logits[0], ids[0], reduction="none")[prompt:]
    target = float(ce.mean())
    for share in (0.0, 0.6):
        g = torch.Generator().manual_seed(5)
        noisy, masked, p = semi_ar_forward_process(ids, completion, 0, block, 0.5, g, end, share)
        k = masked[:, prompt:].view(rows, 3, block).any(dim=2).float().argmax(dim=1)
        drew = masked[:, prompt:].any(dim=1)  # k is read from the targets: rows with at least one
        q_end = (1 - share) / 3 + share
        assert abs(float((k[drew] == 1).float().mean()) - q_end) < 0.02
        rate = p / torch.where(k.view(-1, 1) == 1, q_end, (1 - share) / 3)
        assert torch.allclose(rate[drew], rate[drew].clamp(0.5, 1.0))  # rate = p / q_k lies in [eps, 1]
        chunks = [  # the mean loss of 100 chunks of rows: their spread gives the standard error
            masked_diffusion_loss(
                logits[r : r + 300], ids[r : r + 300], masked[r : r + 300], p[r : r + 300], completion[r : r + 300]
            )
            for r in range(0, rows, 300)
        ]
        per_row = torch.stack(chunks)
        se = float(per_row.std()) / len(per_row) ** 0.5
        assert abs(float(per_row.mean()) - target) < 4 * se
        if share == 0.0:
            plain = semi_ar_forward_process(ids, completion, 0, block, 0.5, torch.Generator().manual_seed(5))
            assert all(torch.equal(x, y) for x, y in zip(plain, (noisy, masked, p)))
    with pytest.raises(ValueError, match="end_block"):
        semi_ar_forward_process(ids[:2], completion[:2], 0, block, end_share=0.5)


def test_loss_is_ce_over_p_mask_divided_by_completion_length():
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 7)
    targets = torch.randint(0, 7, (2, 5))
    completion = torch.tensor([[0, 1, 1, 1, 1], [0, 0, 1, 1, 1]], dtype=torch.bool)
    masked = torch.tensor([[0, 1, 0, 1, 0], [0, 0, 1, 1, 1]], dtype=torch.bool)
    p = torch.tensor([[0.5], [0.25]])
    ce = F.cross_entropy(logits.reshape(-1, 7), targets.reshape(-1), reduction="none").view(2, 5)
    row0 = (ce[0, 1] + ce[0, 3]) / 0.5 / 4
    row1 = (ce[1, 2] + ce[1, 3] + ce[1, 4]) / 0.25 / 3
    expected = (row0 + row1) / 2
    assert torch.allclose(masked_diffusion_loss(logits, targets, masked, p, completion), expected)


def test_extra_canvases_are_drawn_per_example_and_collated_outside_attention():
    """Each answer is padded to a canvas that holds it (both used when it fits both, seeded, none drawn
    without extra lengths); a mixed batch is right-padded outside the attention mask, and a row's
    logits there equal its logits alone at its own canvas."""
    from trafl.models import build_model, tokenizer_fields
    from trafl.models.tokenizer import build_char_tokenizer
    from trafl.sft.data import collate, encode_pairs

    tok = build_char_tokenizer(list("abcdef>"))
    rows = [{"prompt": "ab>", "completion": "c" * (1 + i % 9)} for i in range(200)]  # answers of 2..10 with EOS
    pairs = encode_pairs(rows, tok, 12, extra_lengths=[4, 8], seed=3)
    canvas = [len(p.completion_ids) for p in pairs]
    assert set(canvas) == {4, 8, 12}
    for row, n in zip(rows, canvas):
        assert n >= len(row["completion"]) + 1
    short = [n for row, n in zip(rows, canvas) if len(row["completion"]) + 1 <= 4]
    assert 0.2 < short.count(4) / len(short) < 0.5  # one of three canvases, uniformly
    assert canvas == [len(p.completion_ids) for p in encode_pairs(rows, tok, 12, extra_lengths=[4, 8], seed=3)]
    assert {len(p.completion_ids) for p in encode_pairs(rows, tok, 12)} == {12}

    batch = collate([pairs[0], pairs[1], pairs[9]], tok.pad_token_id)
    lengths = batch["completion_mask"].sum(dim=1).tolist()
    assert lengths == [canvas[0], canvas[1], canvas[9]]
    assert torch.equal(batch["attention_mask"].bool().sum(dim=1), torch.tensor([3 + n for n in lengths]))
    torch.manual_seed(0)
    model = build_model(
        "micro",
        **tokenizer_fields(tok),
    ).eval()
    with torch.no_grad():
        mixed = model(batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        for b, pair in enumerate([pairs[0], pairs[1], pairs[9]]):
            alone = collate([pair], tok.pad_token_id)
            own = model(alone["input_ids"], attention_mask=alone["attention_mask"]).logits[0]
            assert torch.allclose(mixed[b, : own.shape[0]], own, atol=1e-5)


def test_extra_canvas_fields_are_validated():
    from trafl.errors import ConfigError

    ok = load_config(SFTConfig, None, {"data": "x", "max_completion_length": 64, "extra_completion_lengths": "32,16"})
    assert ok.extra_completion_lengths == [32, 16]
    for bad, match in [
        ({"extra_completion_lengths": [64]}, "extra_completion_lengths"),
        ({"extra_completion_lengths": [24], "semi_ar_block_length": 16}, "divide 'extra_completion_lengths'"),
        ({"semi_ar_block_length": 48}, "divide 'max_completion_length'"),
        ({"semi_ar_end_share": 0.5}, "semi_ar_end_share"),
    ]:
        with pytest.raises(ConfigError, match=match):
            load_config(SFTConfig, None, {"data": "x", "max_completion_length": 64, **bad})


def _reverse_data(path, n, seed, alphabet="0123456789"):
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        s = "".join(rng.choice(alphabet) for _ in range(4))
        rows.append({"prompt": s + ">", "completion": s[::-1]})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return rows


@pytest.mark.slow
def test_sft_learns_a_toy_task(tmp_path):
    from trafl.models import load_pretrained
    from trafl.sampling import SamplerSettings, decode_completions, generate
    from trafl.sft.trainer import run_sft

    train = _reverse_data(tmp_path / "train.jsonl", 3000, seed=0)
    held = [r for r in _reverse_data(tmp_path / "held.jsonl", 200, seed=1) if r not in train]
    (tmp_path / "held.jsonl").write_text("".join(json.dumps(r) + "\n" for r in held))
    cfg = load_config(
        SFTConfig,
        None,
        dict(
            data=str(tmp_path / "train.jsonl"),
            eval_data=str(tmp_path / "held.jsonl"),
            output_dir=str(tmp_path / "run"),
            model="tiny",
            max_completion_length=5,
            max_steps=300,
            batch_size=64,
            learning_rate=2e-3,
            warmup_steps=20,
            eval_steps=0,
            save_steps=0,
            num_threads=2,
            seed=0,
        ),
    )
    result = run_sft(cfg, progress=False)
    print(f"\nheld-out masked-token loss {result.initial_eval_loss:.3f} -> {result.final_eval_loss:.3f}")
    assert result.final_eval_loss < 0.5 * result.initial_eval_loss

    model, tok = load_pretrained(result.output_dir)
    prompts = [r["prompt"] for r in held[:100]]
    enc = tok(prompts, return_tensors="pt", padding=True)
    out = generate(
        model,
        enc.input_ids,
        enc.attention_mask,
        settings=SamplerSettings(gen_length=5, steps=5, block_length=5, temperature=0.0),
        eos_token_id=tok.eos_token_id,
    )
    texts = decode_completions(tok, out.completion, tok.eos_token_id)
    solved = sum(t == r["completion"] for t, r in zip(texts, held[:100])) / len(texts)
    print(f"greedy solves {solved:.0%} of 100 held-out reversal prompts")
    assert solved >= 0.5


def test_bad_data_is_a_clear_error(tmp_path):
    f = tmp_path / "d.jsonl"
    with pytest.raises(DataError, match="data file not found"):
        read_pairs(f)
    f.write_text('{"prompt": "a", "completion": "b"}\nnot json\n')
    with pytest.raises(DataError, match=r"d.jsonl:2: not valid JSON"):
        read_pairs(f)
    f.write_text('{"prompt": "a", "answer": "b"}\n')
    with pytest.raises(DataError, match="missing field 'completion'"):
        read_pairs(f)
    f.write_text('{"prompt": "a", "completion": 3}\n')
    with pytest.raises(DataError, match="'completion' must be a string"):
        read_pairs(f)
    f.write_text("\n")
    with pytest.raises(DataError, match="has no examples"):
        read_pairs(f)


def test_completion_longer_than_canvas_is_an_error(tmp_path):
    from trafl.sft.trainer import run_sft

    f = tmp_path / "d.jsonl"
    f.write_text('{"prompt": "ab", "completion": "abcdefgh"}\n' * 20)
    cfg = load_config(
        SFTConfig,
        None,
        dict(
            data=str(f),
            output_dir=str(tmp_path / "o"),
            model="micro",
            max_completion_length=4,
            max_steps=1,
            warmup_steps=0,
        ),
    )
    with pytest.raises(DataError, match="longer than max_completion_length=4"):
        run_sft(cfg, progress=False)


def test_sft_cli_errors_name_the_field(tmp_path, capsys):
    from trafl.cli import main

    assert main(["sft", "--data", str(tmp_path / "none.jsonl"), "--max-steps", "x"]) == 2
    assert "'max_steps': expected an integer" in capsys.readouterr().err
    assert main(["sft", "--data", str(tmp_path / "none.jsonl")]) == 2
    assert "data file not found" in capsys.readouterr().err


def _old_factor(kind, warmup, total, step):
    """trafl 0.1's hand-written schedule, kept here as the reference of the transformers one."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    if kind == "constant":
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    if kind == "linear":
        return 1.0 - progress
    return 0.5 * (1.0 + math.cos(math.pi * progress))


@pytest.mark.parametrize("kind", ["constant", "cosine", "linear"])
@pytest.mark.parametrize("warmup", [0, 5])
def test_transformers_schedule_matches_the_old_one_after_warmup(kind, warmup):
    from trafl.utils.schedule import make_scheduler

    total = 20
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=2.0)
    sched = make_scheduler(opt, kind, warmup, total)
    lrs = []
    for _ in range(total):
        lrs.append(sched.get_last_lr()[0])
        opt.step()
        sched.step()
    for k, lr in enumerate(lrs):
        # warm-up runs one step behind (k / W instead of (k + 1) / W); after it the two are equal
        expected = 2.0 * (k / warmup if k < warmup else _old_factor(kind, warmup, total, k))
        assert lr == pytest.approx(expected, abs=1e-12), (k, lr, expected)
        if k >= warmup:
            assert lr == pytest.approx(2.0 * _old_factor(kind, warmup, total, k), abs=1e-12)


def test_sft_resumes_bit_identically_and_truncates_metrics(tmp_path):
    from safetensors.torch import load_file

    from trafl.sft.trainer import run_sft

    _reverse_data(tmp_path / "d.jsonl", 64, seed=0)
    common = dict(
        data=str(tmp_path / "d.jsonl"),
        model="micro",
        max_completion_length=5,
        max_steps=6,
        batch_size=8,
        gradient_accumulation_steps=2,
        learning_rate=3e-3,
        warmup_steps=2,
        save_steps=2,
        eval_steps=3,
        num_threads=1,
        device="cpu",
        seed=0,
    )
    full = run_sft(load_config(SFTConfig, None, {**common, "output_dir": str(tmp_path / "full")}), progress=False)
    cut = tmp_path / "cut"
    run_sft(load_config(SFTConfig, None, {**common, "output_dir": str(cut)}), progress=False)
    assert sorted(p.name for p in cut.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4"]
    assert (cut / "checkpoint-2" / "model" / "model.safetensors").is_file()
    # as if the run had died after its first checkpoint
    shutil.rmtree(cut / "checkpoint-4")
    shutil.rmtree(cut / "model")
    resumed = run_sft(load_config(SFTConfig, None, {**common, "output_dir": str(cut), "resume": True}), progress=False)
    assert [r["step"] for r in resumed.history] == [3, 4, 5, 6]
    a = load_file(str(tmp_path / "full" / "model" / "model.safetensors"))
    b = load_file(str(cut / "model" / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.final_eval_loss == full.final_eval_loss
    lines = [json.loads(x) for x in (cut / "sft_metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == [1, 2, 3, 4, 5, 6]
    assert [r["loss"] for r in lines] == [r["loss"] for r in full.history]


def test_a_model_that_is_no_preset_folder_or_hub_id_is_a_clear_error(tmp_path):
    """SFT reads ``model`` with the loader's rule for a hub id (``trafl.models.loading.is_hub_id``)."""
    from trafl.errors import ConfigError
    from trafl.sft.trainer import init_model_and_tokenizer

    rows = [{"prompt": "ab", "completion": "ba"}]
    for name in ("tinyy", "./no-such-folder", str(tmp_path / "missing")):
        cfg = load_config(SFTConfig, None, {"data": "x", "model": name})
        with pytest.raises(ConfigError, match="neither a preset .* nor a hub id"):
            init_model_and_tokenizer(cfg, rows)
