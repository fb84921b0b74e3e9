"""The native LLaDA network: its maths against an independent reference, and its behaviours."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
import torch.nn.functional as F

from trafl.models import SequenceTooLongError, build_model, preset_config
from trafl.models.layers import apply_rope, key_padding_mask, repeat_kv, rms_norm, rope_angles
from trafl.models.loading import expected_tensor_shapes

# Parameter names of one LLaDA block, as listed in GSAI-ML/LLaDA-8B-Instruct's model.safetensors.index.json.
LLADA_BLOCK_PARAMS = ("attn_norm", "attn_out", "ff_norm", "ff_out", "ff_proj", "k_proj", "q_proj", "up_proj", "v_proj")
LLADA_TOP_PARAMS = ("model.transformer.wte.weight", "model.transformer.ln_f.weight", "model.transformer.ff_out.weight")


def randomised(model: torch.nn.Module, seed: int = 0, scale: float = 0.3) -> torch.nn.Module:
    """Give every parameter (norm weights included) random values so no term is trivially 1 or 0."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * scale + (1.0 if p.dim() == 1 else 0.0))
    return model.eval()


def reference_logits(model, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """LLaDA's forward written out head by head and frequency by frequency from the state dict."""
    cfg = model.config
    sd = {k: v.double() for k, v in model.state_dict().items()}
    H, G, D = cfg.n_heads, cfg.effective_n_kv_heads, cfg.d_model // cfg.n_heads
    B, T = input_ids.shape
    keep = torch.ones(B, T, dtype=torch.bool) if attention_mask is None else attention_mask.bool()

    def rms(v, w):
        return w * v / torch.sqrt(v.pow(2).mean(-1, keepdim=True) + cfg.rms_norm_eps)

    def rope(v):  # v [B, T, D]; pairs (i, i + D/2) rotated by t * theta^(-2i/D)
        out = v.clone()
        t = torch.arange(T, dtype=torch.float64)[None, :]
        for i in range(D // 2):
            ang = t * cfg.rope_theta ** (-2.0 * i / D)
            a, b = v[..., i], v[..., i + D // 2]
            out[..., i] = a * torch.cos(ang) - b * torch.sin(ang)
            out[..., i + D // 2] = b * torch.cos(ang) + a * torch.sin(ang)
        return out

    x = sd["model.transformer.wte.weight"][input_ids]
    for layer in range(cfg.n_layers):
        p = lambda name: sd[f"model.transformer.blocks.{layer}.{name}.weight"]  # noqa: E731
        n = rms(x, p("attn_norm"))
        q, k, v = n @ p("q_proj").T, n @ p("k_proj").T, n @ p("v_proj").T
        heads = []
        for h in range(H):
            g = h // (H // G)
            qh, kh, vh = (
                rope(q[..., h * D : (h + 1) * D]),
                rope(k[..., g * D : (g + 1) * D]),
                v[..., g * D : (g + 1) * D],
            )
            scores = qh @ kh.transpose(1, 2) / math.sqrt(D)
            scores = scores.masked_fill(~keep[:, None, :], float("-inf"))
            heads.append(torch.softmax(scores, dim=-1) @ vh)
        x = x + torch.cat(heads, dim=-1) @ p("attn_out").T
        m = rms(x, p("ff_norm"))
        x = x + (F.silu(m @ p("ff_proj").T) * (m @ p("up_proj").T)) @ p("ff_out").T
    x = rms(x, sd["model.transformer.ln_f.weight"])
    out_w = sd["model.transformer.wte.weight"] if cfg.weight_tying else sd["model.transformer.ff_out.weight"]
    return x @ out_w.T


# --- the maths ----------------------------------------------------------------------------------


@pytest.mark.parametrize("n_kv_heads", [4, 2, 1])
def test_forward_matches_reference(n_kv_heads):
    torch.manual_seed(0)
    model = randomised(build_model("micro", n_kv_heads=n_kv_heads))
    ids = torch.randint(0, 64, (2, 9))
    mask = torch.tensor([[1] * 9, [0, 0, 0] + [1] * 6])
    with torch.no_grad():
        got = model(ids, attention_mask=mask).logits.double()
    want = reference_logits(model, ids, mask)
    real = mask.bool()
    assert torch.allclose(got[real], want[real], atol=1e-4, rtol=1e-4)


def test_weight_tying_uses_embedding_as_output_layer():
    torch.manual_seed(0)
    model = randomised(build_model("micro", weight_tying=True))
    assert "model.transformer.ff_out.weight" not in model.state_dict()
    ids = torch.randint(0, 64, (1, 7))
    with torch.no_grad():
        got = model(ids).logits.double()
    assert torch.allclose(got, reference_logits(model, ids), atol=1e-4, rtol=1e-4)


def test_rms_norm_formula():
    x = torch.tensor([[3.0, 4.0]])
    w = torch.tensor([2.0, 1.0])
    # rms = sqrt((9 + 16) / 2) = sqrt(12.5)
    want = torch.tensor([[2 * 3 / math.sqrt(12.5), 4 / math.sqrt(12.5)]])
    assert torch.allclose(rms_norm(x, w, None, eps=0.0), want)


def test_rope_is_rotate_half_and_relative():
    D = 8
    angles = rope_angles(6, D, theta=10000.0)
    assert torch.allclose(angles[1, :4], torch.tensor([10000.0 ** (-2 * i / D) for i in range(4)]))
    assert torch.equal(angles[:, :4], angles[:, 4:])  # rotate-half layout: frequencies repeat in halves
    # x = e_0 rotated by angle a lands on (cos a) e_0 + (sin a) e_{D/2}  (pairs (i, i + D/2), not (2i, 2i+1))
    e0 = torch.zeros(1, 1, 6, D)
    e0[..., 0] = 1.0
    rotated = apply_rope(e0, angles.cos(), angles.sin())
    assert torch.allclose(rotated[0, 0, :, 0], angles[:, 0].cos())
    assert torch.allclose(rotated[0, 0, :, D // 2], angles[:, 0].sin())
    assert torch.count_nonzero(rotated[0, 0, :, 1]) == 0
    # <R_s q, R_t k> depends on t - s only
    gen = torch.Generator().manual_seed(0)
    q, k = torch.randn(1, 1, 1, D, generator=gen), torch.randn(1, 1, 1, D, generator=gen)
    qs = apply_rope(q.expand(1, 1, 6, D), angles.cos(), angles.sin())[0, 0]
    ks = apply_rope(k.expand(1, 1, 6, D), angles.cos(), angles.sin())[0, 0]
    assert torch.allclose(qs[1] @ ks[3], qs[2] @ ks[4], atol=1e-5)


def test_repeat_kv_groups_consecutive_query_heads():
    kv = torch.arange(2.0).view(1, 2, 1, 1)
    assert repeat_kv(kv, 3).flatten().tolist() == [0, 0, 0, 1, 1, 1]


def test_key_padding_mask():
    assert key_padding_mask(torch.ones(2, 3, dtype=torch.long)) is None
    mask = key_padding_mask(torch.tensor([[0, 1, 1], [0, 0, 0]]))
    assert mask.shape == (2, 1, 1, 3)
    assert mask[0, 0, 0].tolist() == [False, True, True]
    assert mask[1, 0, 0].tolist() == [True, True, True]  # all-padding row: kept finite


# --- behaviours ---------------------------------------------------------------------------------


def test_padding_invariance_left_padded_batch():
    torch.manual_seed(0)
    model = randomised(build_model("micro", n_kv_heads=2))
    lengths = [12, 9, 5, 1]
    T = max(lengths)
    rows = [torch.randint(0, 64, (n,)) for n in lengths]
    ids = torch.randint(0, 64, (len(rows), T))  # padding positions hold arbitrary ids: they must not matter
    mask = torch.zeros(len(rows), T, dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, T - len(row) :] = row
        mask[i, T - len(row) :] = 1
    with torch.no_grad():
        batched = model(ids, attention_mask=mask).logits
        for i, row in enumerate(rows):
            alone = model(row[None]).logits[0]
            assert torch.allclose(batched[i, T - len(row) :], alone, atol=1e-5), f"row {i}"


def test_model_is_bidirectional():
    torch.manual_seed(0)
    model = randomised(build_model("micro"))
    ids = torch.randint(3, 64, (1, 10))
    changed = ids.clone()
    changed[0, 8] = (ids[0, 8] + 1) % 64
    with torch.no_grad():
        a, b = model(ids).logits, model(changed).logits
    assert (a[0, 2] - b[0, 2]).abs().max() > 1e-3  # a later token changes an earlier position


def test_gqa_shapes():
    model = build_model("micro", n_kv_heads=2)
    sd = model.state_dict()
    assert sd["model.transformer.blocks.0.k_proj.weight"].shape == (2 * 8, 32)
    assert sd["model.transformer.blocks.0.q_proj.weight"].shape == (32, 32)
    assert model(torch.randint(0, 64, (2, 5))).logits.shape == (2, 5, 64)


def test_hidden_states_follow_llada():
    model = build_model("micro")
    out = model(torch.randint(0, 64, (2, 5)), output_hidden_states=True)
    assert len(out.hidden_states) == model.config.n_layers + 1
    assert all(h.shape == (2, 5, 32) for h in out.hidden_states)
    assert model(torch.randint(0, 64, (2, 5))).hidden_states is None


def test_sequence_longer_than_max_is_an_error():
    model = build_model("micro", max_sequence_length=16)
    model(torch.zeros(1, 16, dtype=torch.long))
    with pytest.raises(SequenceTooLongError, match="17 tokens.*max_sequence_length is 16"):
        model(torch.zeros(1, 17, dtype=torch.long))


def _grads(model, ids, mask):
    model.zero_grad()
    logits = model(ids, attention_mask=mask).logits
    F.cross_entropy(logits.flatten(0, 1), ids.flatten()).backward()
    return {n: p.grad.clone() for n, p in model.named_parameters()}


def test_gradient_checkpointing_same_gradients():
    torch.manual_seed(0)
    model = randomised(build_model("micro", n_kv_heads=2)).train()
    ids = torch.randint(0, 64, (3, 11))
    mask = torch.ones_like(ids)
    mask[1, :4] = 0
    calls = []
    model.model.transformer.blocks[0].attn_norm.register_forward_hook(lambda *a: calls.append(1))
    plain = _grads(model, ids, mask)
    assert len(calls) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # transformers 5 renames it activation_checkpointing_enable
        model.gradient_checkpointing_enable()
        assert model.is_gradient_checkpointing
    calls.clear()
    ckpt = _grads(model, ids, mask)
    assert len(calls) == 2  # the block really was recomputed in the backward pass
    for name in plain:
        assert torch.allclose(plain[name], ckpt[name], atol=1e-6), name


def test_bfloat16_forward():
    torch.manual_seed(0)
    model = randomised(build_model("micro"), scale=0.1)
    ids = torch.randint(0, 64, (2, 8))
    mask = torch.tensor([[1] * 8, [0, 0] + [1] * 6])
    with torch.no_grad():
        full = model(ids, attention_mask=mask).logits
        half = model.to(torch.bfloat16)(ids, attention_mask=mask).logits
    assert half.dtype == torch.bfloat16
    assert torch.isfinite(half).all()
    assert (half.float() - full).abs().max() < 0.1 * full.abs().max()


def test_build_in_bfloat16_on_device():
    model = build_model("micro", dtype=torch.bfloat16, device="cpu")
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    assert torch.get_default_dtype() == torch.float32


def test_peft_lora_wraps_model():
    peft = pytest.importorskip("peft")
    torch.manual_seed(0)
    model = randomised(build_model("micro"))
    ids = torch.randint(0, 64, (2, 6))
    with torch.no_grad():
        base = model(ids).logits
    targets = ["q_proj", "k_proj", "v_proj", "attn_out", "ff_proj", "up_proj", "ff_out"]
    lora = peft.get_peft_model(
        model, peft.LoraConfig(r=4, lora_alpha=8, target_modules=targets, init_lora_weights=True)
    )
    trainable = [n for n, p in lora.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    wrapped = {n.split(".")[-1] for n, m in lora.named_modules() if hasattr(m, "lora_A")}
    assert wrapped == set(targets)
    out = lora(input_ids=ids).logits
    assert torch.allclose(out, base, atol=1e-6)  # LoRA's B starts at zero
    F.cross_entropy(out.flatten(0, 1), ids.flatten()).backward()
    assert all(p.grad is not None for n, p in lora.named_parameters() if p.requires_grad and "lora_B" in n)


def test_llada_8b_preset_matches_published_checkpoint():
    """291 tensors, LLaDA's names, and 8,015,581,184 parameters (16,031,162,368 bytes in bf16 per the index)."""
    shapes = expected_tensor_shapes(preset_config("llada-8b"))
    want = {f"model.transformer.blocks.{i}.{p}.weight" for i in range(32) for p in LLADA_BLOCK_PARAMS}
    want |= set(LLADA_TOP_PARAMS)
    assert set(shapes) == want and len(shapes) == 291
    assert shapes["model.transformer.wte.weight"] == (126464, 4096)
    assert shapes["model.transformer.ff_out.weight"] == (126464, 4096)
    assert shapes["model.transformer.blocks.0.ff_proj.weight"] == (12288, 4096)
    assert shapes["model.transformer.blocks.0.ff_out.weight"] == (4096, 12288)
    assert sum(math.prod(s) for s in shapes.values()) * 2 == 16031162368
