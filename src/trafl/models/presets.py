"""Named model sizes and :func:`build_model`, which builds a fresh, randomly initialised native model.

* ``micro``: ~25k parameters, for unit tests (milliseconds per forward);
* ``mini``: ~0.86M parameters, 4 layers at width 128, context 1088: the long-answer base
  (``count_range``, 512-token canvases; ~1.3 s per SFT step of 16 pairs on one CPU thread);
* ``tiny``: ~1.8M parameters, trains on a 2-core CPU in minutes (the CPU-scale studies);
* ``small``: ~106M parameters (d 768, 8 layers, 32k vocabulary), a mid-size check of ``trafl plan``'s
  memory model on CPU (``benchmarks/plan_memory.py``);
* ``llada-8b``: the exact shape of LLaDA-8B (8,015,581,184 parameters), for random-weight GPU checks.

The two small presets use a 64-id vocabulary by default; in practice ``vocab_size`` and the
special ids come from the tokenizer (``build_model("tiny", vocab_size=len(tok), ...)``).
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any

import torch

from trafl.errors import ConfigError
from trafl.models.configuration_llada import DEFAULTS, LLADA_FIELDS, LLaDAConfig, check_known_fields
from trafl.models.modeling_llada import LLaDAModelLM

_SMALL_VOCAB = {"vocab_size": 64, "embedding_size": 64, "pad_token_id": 0, "eos_token_id": 1, "mask_token_id": 2}

PRESETS: dict[str, dict[str, Any]] = {
    "micro": {
        "d_model": 32,
        "n_heads": 4,
        "n_kv_heads": 4,
        "n_layers": 2,
        "mlp_hidden_size": 64,
        "max_sequence_length": 128,
        "rope_theta": 10000.0,
        "init_device": None,
        "precision": None,
        **_SMALL_VOCAB,
    },
    "mini": {
        "d_model": 128,
        "n_heads": 4,
        "n_kv_heads": 4,
        "n_layers": 4,
        "mlp_hidden_size": 384,
        "max_sequence_length": 1088,
        "rope_theta": 10000.0,
        "init_device": None,
        "precision": None,
        **_SMALL_VOCAB,
    },
    "tiny": {
        "d_model": 192,
        "n_heads": 6,
        "n_kv_heads": 6,
        "n_layers": 4,
        "mlp_hidden_size": 512,
        "max_sequence_length": 512,
        "rope_theta": 10000.0,
        "init_device": None,
        "precision": None,
        **_SMALL_VOCAB,
    },
    "small": {
        "d_model": 768,
        "n_heads": 12,
        "n_kv_heads": 12,
        "n_layers": 8,
        "mlp_hidden_size": 2048,
        "max_sequence_length": 1024,
        "rope_theta": 10000.0,
        "init_device": None,
        "precision": None,
        "vocab_size": 32000,
        "embedding_size": 32000,
        "pad_token_id": 0,
        "eos_token_id": 1,
        "mask_token_id": 2,
    },
    "llada-8b": dict(DEFAULTS),
}


def preset_config(name: str, **overrides: Any) -> LLaDAConfig:
    """The :class:`LLaDAConfig` of preset ``name`` with field ``overrides`` applied."""
    if name not in PRESETS:
        raise ConfigError(f"unknown model preset '{name}'; expected one of {sorted(PRESETS)}")
    return make_config({**PRESETS[name], **overrides})


def make_config(fields: dict[str, Any]) -> LLaDAConfig:
    """Build a config from LLaDA field names, rejecting unknown names and wrong types."""
    check_known_fields(fields)
    return LLaDAConfig(**fields)


def build_model(
    preset_or_config: str | dict[str, Any] | LLaDAConfig,
    *,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
    **overrides: Any,
) -> LLaDAModelLM:
    """A freshly initialised :class:`LLaDAModelLM` from a preset name, a field dict or a config.

    ``overrides`` are LLaDA config fields (e.g. ``vocab_size=``, ``n_kv_heads=``). ``device`` and
    ``dtype`` choose where and in which precision parameters are created (building ``llada-8b``
    directly on a GPU in bfloat16 avoids a 32 GB float32 copy in host memory). Seed with
    ``torch.manual_seed`` beforehand for reproducible weights.
    """
    if isinstance(preset_or_config, str):
        config = preset_config(preset_or_config, **overrides)
    elif isinstance(preset_or_config, LLaDAConfig):
        fields = {k: v for k, v in preset_or_config.to_dict().items() if k in LLADA_FIELDS}
        config = make_config({**fields, **overrides}) if overrides else preset_or_config
    elif isinstance(preset_or_config, dict):
        config = make_config({**preset_or_config, **overrides})
    else:
        raise ConfigError(
            f"build_model expects a preset name, a dict of LLaDA config fields or an LLaDAConfig, "
            f"got {type(preset_or_config).__name__}"
        )
    with torch.device(device) if device is not None else nullcontext():
        if dtype is None:
            return LLaDAModelLM(config)
        previous = torch.get_default_dtype()
        torch.set_default_dtype(dtype)
        try:
            return LLaDAModelLM(config)
        finally:
            torch.set_default_dtype(previous)


def tokenizer_fields(tokenizer: Any) -> dict[str, int]:
    """The config fields a model must share with its tokenizer: ``vocab_size`` / ``embedding_size``
    (``len(tokenizer)``) and the pad, EOS and mask ids, for ``build_model(preset, **tokenizer_fields(tok))``."""
    return {
        "vocab_size": len(tokenizer),
        "embedding_size": len(tokenizer),
        "pad_token_id": tokenizer.pad_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "mask_token_id": tokenizer.mask_token_id,
    }
