"""LLaDA's Hugging Face checkpoint format: round trips, published names, hand-written dirs, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from test_models_llada import LLADA_BLOCK_PARAMS, LLADA_TOP_PARAMS, randomised
from transformers import AutoConfig, AutoModel, AutoModelForMaskedLM

from trafl.errors import CheckpointError
from trafl.models import LLaDAConfig, LLaDAModelLM, build_char_tokenizer, build_model, load_pretrained, tokenizer_fields

# Every key of GSAI-ML/LLaDA-8B-Instruct's config.json (values as published, except the sizes).
PUBLISHED_CONFIG = {
    "activation_type": "silu",
    "alibi": False,
    "alibi_bias_max": 8.0,
    "architectures": ["LLaDAModelLM"],
    "attention_dropout": 0.0,
    "attention_layer_norm": False,
    "attention_layer_norm_with_affine": True,
    "auto_map": {
        "AutoConfig": "configuration_llada.LLaDAConfig",
        "AutoModelForCausalLM": "modeling_llada.LLaDAModelLM",
        "AutoModel": "modeling_llada.LLaDAModelLM",
    },
    "bias_for_layer_norm": False,
    "block_group_size": 1,
    "block_type": "llama",
    "d_model": 4096,
    "embedding_dropout": 0.0,
    "embedding_size": 126464,
    "eos_token_id": 126081,
    "flash_attention": False,
    "include_bias": False,
    "include_qkv_bias": False,
    "init_cutoff_factor": None,
    "init_device": "meta",
    "init_fn": "mitchell",
    "init_std": 0.02,
    "input_emb_norm": False,
    "layer_norm_type": "rms",
    "layer_norm_with_affine": True,
    "mask_token_id": 126336,
    "max_sequence_length": 4096,
    "mlp_hidden_size": 12288,
    "mlp_ratio": 4,
    "model_type": "llada",
    "multi_query_attention": None,
    "n_heads": 32,
    "n_kv_heads": 32,
    "n_layers": 32,
    "pad_token_id": 126081,
    "precision": "amp_bf16",
    "residual_dropout": 0.0,
    "rms_norm_eps": 1e-05,
    "rope": True,
    "rope_full_precision": True,
    "rope_theta": 500000.0,
    "scale_logits": False,
    "transformers_version": "4.46.3",
    "use_cache": False,
    "vocab_size": 126464,
    "weight_tying": False,
}
MICRO = {
    "d_model": 16,
    "n_heads": 2,
    "n_kv_heads": 2,
    "n_layers": 2,
    "mlp_hidden_size": 24,
    "vocab_size": 40,
    "embedding_size": 40,
    "eos_token_id": 38,
    "pad_token_id": 38,
    "mask_token_id": 39,
    "max_sequence_length": 64,
}


def llada_names(n_layers: int) -> set[str]:
    return {f"model.transformer.blocks.{i}.{p}.weight" for i in range(n_layers) for p in LLADA_BLOCK_PARAMS} | set(
        LLADA_TOP_PARAMS
    )


@pytest.fixture()
def saved(tmp_path):
    torch.manual_seed(0)
    tok = build_char_tokenizer("abc 0123+=")
    model = randomised(
        build_model(
            "micro",
            **tokenizer_fields(tok),
        )
    )
    model.save_pretrained(tmp_path / "ckpt")
    tok.save_pretrained(tmp_path / "ckpt")
    return model, tmp_path / "ckpt"


def test_round_trip_is_bit_exact(saved):
    model, path = saved
    loaded, tok = load_pretrained(path)
    assert isinstance(loaded, LLaDAModelLM) and not loaded.training
    a, b = model.state_dict(), loaded.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    ids = torch.randint(0, 14, (2, 7))
    mask = torch.tensor([[1] * 7, [0, 0] + [1] * 5])
    with torch.no_grad():
        assert torch.equal(model(ids, attention_mask=mask).logits, loaded(ids, attention_mask=mask).logits)
    assert tok.mask_token_id == loaded.config.mask_token_id and tok.eos_token_id == loaded.config.eos_token_id


def test_saved_files_use_llada_names(saved):
    model, path = saved
    with safe_open(str(path / "model.safetensors"), framework="pt") as f:
        keys = set(f.keys())
    assert keys == llada_names(model.config.n_layers)
    config_keys = set(json.loads((path / "config.json").read_text()))
    assert config_keys - {"dtype"} == set(PUBLISHED_CONFIG) - {"auto_map"}


def test_saved_dir_loads_through_transformers_auto_classes(saved):
    model, path = saved
    ids = torch.randint(0, 14, (1, 5))
    assert isinstance(AutoConfig.from_pretrained(path), LLaDAConfig)
    for auto in (AutoModel, AutoModelForMaskedLM):
        loaded = auto.from_pretrained(path)
        assert isinstance(loaded, LLaDAModelLM)
        with torch.no_grad():
            assert torch.equal(loaded(ids).logits, model(ids).logits)


def write_llada_dir(path: Path, config: dict, tensors: dict[str, torch.Tensor], shards: int = 2) -> None:
    """A checkpoint laid out like the published one: config.json, sharded safetensors and an index."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps(config, indent=2))
    names = sorted(tensors)
    weight_map = {}
    for s in range(shards):
        shard = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
        part = {n: tensors[n].contiguous() for n in names[s::shards]}
        save_file(part, str(path / shard), metadata={"format": "pt"})
        weight_map.update({n: shard for n in part})
    total = sum(t.numel() * t.element_size() for t in tensors.values())
    (path / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map})
    )


def handwritten_tensors(cfg: dict, dtype=torch.bfloat16) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    d, hid, vocab = cfg["d_model"], cfg["mlp_hidden_size"], cfg["embedding_size"]
    kv = cfg["n_kv_heads"] * d // cfg["n_heads"]
    shapes = {
        "attn_norm": (d,),
        "ff_norm": (d,),
        "q_proj": (d, d),
        "k_proj": (kv, d),
        "v_proj": (kv, d),
        "attn_out": (d, d),
        "ff_proj": (hid, d),
        "up_proj": (hid, d),
        "ff_out": (d, hid),
    }
    out = {
        f"model.transformer.blocks.{i}.{n}.weight": torch.randn(s, generator=gen).to(dtype) * 0.2
        for i in range(cfg["n_layers"])
        for n, s in shapes.items()
    }
    out["model.transformer.wte.weight"] = torch.randn(vocab, d, generator=gen).to(dtype)
    out["model.transformer.ln_f.weight"] = torch.ones(d, dtype=dtype)
    out["model.transformer.ff_out.weight"] = torch.randn(vocab, d, generator=gen).to(dtype) * 0.2
    return out


@pytest.fixture()
def handwritten(tmp_path):
    cfg = {**PUBLISHED_CONFIG, **MICRO}
    tensors = handwritten_tensors(cfg)
    write_llada_dir(tmp_path / "llada", cfg, tensors)
    return tmp_path / "llada", cfg, tensors


def test_handwritten_llada_checkpoint_loads_without_remote_code(handwritten):
    path, cfg, tensors = handwritten
    model, tok = load_pretrained(path)
    assert tok is None
    assert isinstance(model, LLaDAModelLM)
    state = model.state_dict()
    assert set(state) == set(tensors)
    assert all(torch.equal(state[k].to(torch.bfloat16), tensors[k]) for k in tensors)
    assert model.config.mask_token_id == 39 and model.config.rope_theta == 500000.0
    for trust in (None, False, True):  # the native class wins even where remote code is allowed
        kwargs = {} if trust is None else {"trust_remote_code": trust}
        assert isinstance(AutoModel.from_pretrained(path, **kwargs), LLaDAModelLM)
    assert model.model.transformer.wte.weight.dtype == torch.bfloat16  # the stored dtype by default
    assert load_pretrained(path, dtype="float32")[0].model.transformer.wte.weight.dtype == torch.float32


def test_handwritten_checkpoint_resaves_in_the_same_format(tmp_path, handwritten):
    path, cfg, tensors = handwritten
    model, _ = load_pretrained(path)
    model.save_pretrained(tmp_path / "again")
    saved = json.loads((tmp_path / "again" / "config.json").read_text())
    assert set(saved) - {"dtype"} == set(cfg) - {"auto_map"}  # no pointer to remote code we do not ship
    assert all(saved[k] == cfg[k] for k in cfg if k not in ("auto_map", "transformers_version"))
    again, _ = load_pretrained(tmp_path / "again")
    assert all(torch.equal(again.state_dict()[k], tensors[k]) for k in tensors)


# --- bad input ----------------------------------------------------------------------------------


def _expect(path, pattern):
    with pytest.raises(CheckpointError, match=pattern):
        load_pretrained(path)


def test_missing_directory(tmp_path):
    _expect(tmp_path / "nope", "does not exist")


def test_path_is_a_file(tmp_path):
    (tmp_path / "f").write_text("x")
    _expect(tmp_path / "f", "is a file")


def test_missing_config(tmp_path):
    (tmp_path / "m").mkdir()
    _expect(tmp_path / "m", "has no config.json")


def test_config_not_json(handwritten):
    path, _, _ = handwritten
    (path / "config.json").write_text("{not json")
    _expect(path, r"config.json is not valid JSON")


def test_config_without_model_type(handwritten):
    path, cfg, _ = handwritten
    (path / "config.json").write_text(json.dumps({k: v for k, v in cfg.items() if k != "model_type"}))
    _expect(path, "no 'model_type'")


def test_unknown_config_field(handwritten):
    path, cfg, _ = handwritten
    (path / "config.json").write_text(json.dumps({**cfg, "n_head": 4}))
    _expect(path, r"config.json: unknown config field\(s\) \['n_head'\]")


@pytest.mark.parametrize(
    "field,value,pattern",
    [
        ("n_heads", "2", r"'n_heads' has value '2' of type str; expected int"),
        ("weight_tying", 0, r"'weight_tying' has value 0 of type int; expected bool"),
        ("rope_theta", None, r"'rope_theta' must not be null"),
        ("n_layers", True, r"'n_layers' has value True of type bool; expected int"),
        ("block_type", "sequential", r"'block_type' = 'sequential' is not supported"),
        ("activation_type", "tanh", r"'activation_type' = 'tanh'; expected one of"),
    ],
)
def test_wrongly_typed_config_field(handwritten, field, value, pattern):
    path, cfg, _ = handwritten
    (path / "config.json").write_text(json.dumps({**cfg, field: value}))
    _expect(path, pattern)


def test_weights_missing(handwritten):
    path, _, _ = handwritten
    for f in path.glob("*.safetensors*"):
        f.unlink()
    _expect(path, "has no weights")


def test_weight_shard_missing(handwritten):
    path, _, _ = handwritten
    (path / "model-00002-of-00002.safetensors").unlink()
    _expect(path, "weight shard .*model-00002-of-00002.safetensors.* is missing")


def test_weight_shape_mismatch(tmp_path, handwritten):
    path, cfg, tensors = handwritten
    tensors["model.transformer.blocks.1.up_proj.weight"] = torch.zeros(cfg["mlp_hidden_size"] + 1, cfg["d_model"])
    write_llada_dir(tmp_path / "bad", cfg, tensors)
    _expect(
        tmp_path / "bad",
        r"mismatched shapes \(1\).*blocks.1.up_proj.weight: stored \[25, 16\], config implies \[24, 16\]",
    )


def test_tensor_missing_or_unexpected(tmp_path, handwritten):
    path, cfg, tensors = handwritten
    tensors.pop("model.transformer.ln_f.weight")
    tensors["model.transformer.blocks.0.gate_proj.weight"] = torch.zeros(2, 2)
    write_llada_dir(tmp_path / "bad", cfg, tensors)
    _expect(tmp_path / "bad", r"missing keys \(1\): \['model.transformer.ln_f.weight'\].*unexpected keys \(1\)")


def test_unsupported_model_type(tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text(json.dumps({"model_type": "bert"}))
    _expect(tmp_path / "m", "model_type 'bert' is not supported")


def test_dream_needs_trust_remote_code(tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text(json.dumps({"model_type": "Dream"}))
    _expect(tmp_path / "m", "pass trust_remote_code=True")


def test_tokenizer_disagreeing_with_config(saved):
    _, path = saved
    cfg = json.loads((path / "config.json").read_text())
    cfg["mask_token_id"] = 5
    (path / "config.json").write_text(json.dumps(cfg))
    _expect(path, r"model config mask_token_id=5 but the tokenizer's mask_token_id is 2")


def test_tokenizer_without_mask_token_gets_the_config_one(handwritten):
    path, cfg, _ = handwritten
    tok = build_char_tokenizer("abcdefghijklmnopqrstuvwxyz0123456789"[: cfg["vocab_size"] - 4])
    tok.mask_token = None  # like LLaDA's tokenizer: <|mdm_mask|> exists but is not declared as mask
    tok.save_pretrained(path)
    cfg2 = {**cfg, "eos_token_id": tok.eos_token_id, "pad_token_id": tok.pad_token_id, "mask_token_id": 2}
    (path / "config.json").write_text(json.dumps(cfg2))
    model, tok2 = load_pretrained(path)
    assert tok2.mask_token_id == 2 == model.config.mask_token_id
