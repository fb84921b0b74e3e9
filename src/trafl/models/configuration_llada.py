"""The LLaDA model configuration, field for field as in the published checkpoints.

``config.json`` of ``GSAI-ML/LLaDA-8B-Instruct`` is an OLMo-style ``ModelConfig`` serialised by
transformers: :data:`LLADA_FIELDS` lists every one of its model fields with its type, and
:class:`LLaDAConfig` reads and writes exactly these names (plus transformers' bookkeeping keys
``model_type``, ``architectures``, ``transformers_version``). The ``auto_map`` entry of the
published file (pointing to remote code) is accepted and ignored: ``import trafl.models``
registers this class for ``model_type = "llada"``, so no remote code is needed.

Defaults are the LLaDA-8B architecture (Llama-style block, SiLU-gated MLP, RMSNorm, RoPE, no
biases, untied output layer), not OLMo's GPT-2 defaults: a config built here describes the same
kind of network the published checkpoints do. Every field is written on save, so the file also
loads with LLaDA's own remote code.

The architecture this package implements is the one the published checkpoints use. Values that
select anything else (ALiBi, QK-norm, OLMo's fused "sequential" block, LayerNorm, block groups)
are rejected with a :class:`~trafl.errors.ConfigError` rather than silently ignored.
"""

from __future__ import annotations

from typing import Any

from transformers import PretrainedConfig

from trafl.errors import ConfigError

# name -> (accepted types, nullable). ``float`` fields accept ints; ``int`` fields reject bools.
LLADA_FIELDS: dict[str, tuple[type, bool]] = {
    "d_model": (int, False),
    "n_heads": (int, False),
    "n_kv_heads": (int, True),
    "n_layers": (int, False),
    "mlp_ratio": (int, False),
    "mlp_hidden_size": (int, True),
    "activation_type": (str, False),
    "block_type": (str, False),
    "block_group_size": (int, False),
    "alibi": (bool, False),
    "alibi_bias_max": (float, False),
    "rope": (bool, False),
    "rope_full_precision": (bool, False),
    "rope_theta": (float, False),
    "flash_attention": (bool, False),
    "attention_dropout": (float, False),
    "multi_query_attention": (bool, True),
    "attention_layer_norm": (bool, False),
    "attention_layer_norm_with_affine": (bool, False),
    "residual_dropout": (float, False),
    "embedding_dropout": (float, False),
    "input_emb_norm": (bool, False),
    "layer_norm_type": (str, False),
    "layer_norm_with_affine": (bool, False),
    "rms_norm_eps": (float, False),
    "bias_for_layer_norm": (bool, True),
    "max_sequence_length": (int, False),
    "include_bias": (bool, False),
    "include_qkv_bias": (bool, True),
    "scale_logits": (bool, False),
    "vocab_size": (int, False),
    "embedding_size": (int, True),
    "weight_tying": (bool, False),
    "eos_token_id": (int, True),
    "pad_token_id": (int, True),
    "mask_token_id": (int, True),
    "init_device": (str, True),
    "init_fn": (str, False),
    "init_std": (float, False),
    "init_cutoff_factor": (float, True),
    "precision": (str, True),
    "use_cache": (bool, False),
}

# Values each choice field may take in LLaDA's configuration_llada.py, and the subset implemented.
LLADA_CHOICES: dict[str, tuple[str, ...]] = {
    "activation_type": ("gelu", "relu", "silu", "swiglu"),
    "block_type": ("sequential", "parallel", "llama"),
    "layer_norm_type": ("default", "low_precision", "rms", "gemma_rms", "amd_compatible"),
    "init_fn": ("mitchell", "normal", "kaiming_normal", "fan_in", "full_megatron"),
}
SUPPORTED_VALUES: dict[str, tuple[Any, ...]] = {
    "block_type": ("llama",),
    "activation_type": ("silu", "gelu", "relu"),
    "layer_norm_type": ("rms",),
    "rope": (True,),
    "alibi": (False,),
    "attention_layer_norm": (False,),
    "block_group_size": (1,),
}

# Keys transformers itself writes into config.json next to the model fields.
HF_BOOKKEEPING_KEYS = frozenset(PretrainedConfig().to_dict()) | {"auto_map", "torch_dtype", "dtype"}

# LLaDA-8B's architecture: the defaults of this package (see the module docstring).
DEFAULTS: dict[str, Any] = {
    "d_model": 4096,
    "n_heads": 32,
    "n_kv_heads": 32,
    "n_layers": 32,
    "mlp_ratio": 4,
    "mlp_hidden_size": 12288,
    "activation_type": "silu",
    "block_type": "llama",
    "block_group_size": 1,
    "alibi": False,
    "alibi_bias_max": 8.0,
    "rope": True,
    "rope_full_precision": True,
    "rope_theta": 500000.0,
    "flash_attention": False,
    "attention_dropout": 0.0,
    "multi_query_attention": None,
    "attention_layer_norm": False,
    "attention_layer_norm_with_affine": True,
    "residual_dropout": 0.0,
    "embedding_dropout": 0.0,
    "input_emb_norm": False,
    "layer_norm_type": "rms",
    "layer_norm_with_affine": True,
    "rms_norm_eps": 1e-5,
    "bias_for_layer_norm": False,
    "max_sequence_length": 4096,
    "include_bias": False,
    "include_qkv_bias": False,
    "scale_logits": False,
    "vocab_size": 126464,
    "embedding_size": 126464,
    "weight_tying": False,
    "eos_token_id": 126081,
    "pad_token_id": 126081,
    "mask_token_id": 126336,
    "init_device": "meta",
    "init_fn": "mitchell",
    "init_std": 0.02,
    "init_cutoff_factor": None,
    "precision": "amp_bf16",
    "use_cache": False,
}


def check_field_type(name: str, value: Any) -> None:
    """Raise :class:`ConfigError` unless ``value`` has the type LLaDA's config gives field ``name``."""
    expected, nullable = LLADA_FIELDS[name]
    if value is None:
        if nullable:
            return
        raise ConfigError(f"config field '{name}' must not be null; expected {expected.__name__}")
    if expected is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif expected is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, expected)
    if not ok:
        raise ConfigError(
            f"config field '{name}' has value {value!r} of type {type(value).__name__}; "
            f"expected {expected.__name__}{' or null' if nullable else ''}"
        )
    if name in LLADA_CHOICES and value not in LLADA_CHOICES[name]:
        raise ConfigError(f"config field '{name}' = {value!r}; expected one of {LLADA_CHOICES[name]}")


def check_known_fields(fields: dict[str, Any]) -> None:
    """Raise :class:`ConfigError` for keys that are neither LLaDA fields nor transformers bookkeeping."""
    unknown = sorted(k for k in fields if k not in LLADA_FIELDS and k not in HF_BOOKKEEPING_KEYS)
    if unknown:
        raise ConfigError(f"unknown config field(s) {unknown}; LLaDA configs have: {sorted(LLADA_FIELDS)}")


class LLaDAConfig(PretrainedConfig):
    """Configuration of a LLaDA-architecture denoiser (field names as in LLaDA's config.json)."""

    model_type = "llada"
    #: :class:`LLaDAModelLM` accepts ``target_ids=`` and returns their log-probabilities, chunked
    #: (:func:`trafl.models.interface.scores_targets`); a class attribute, never written to config.json.
    scores_target_ids = True
    attribute_map = {"hidden_size": "d_model", "num_attention_heads": "n_heads", "num_hidden_layers": "n_layers"}

    def __init__(self, **kwargs: Any) -> None:
        kwargs.pop("tie_word_embeddings", None)  # tying is LLaDA's own ``weight_tying`` field
        for name, default in DEFAULTS.items():
            value = kwargs.pop(name, default)
            check_field_type(name, value)
            setattr(self, name, float(value) if LLADA_FIELDS[name][0] is float and value is not None else value)
        kwargs.setdefault("architectures", ["LLaDAModelLM"])
        # transformers 5 types PreTrainedConfig.__init__ by its declared fields only, but its __init__
        # stores any other keyword (transformers 4 declares **kwargs), so the extra one is accepted
        super().__init__(tie_word_embeddings=False, **kwargs)  # type: ignore[call-arg]
        self._check_consistency()

    # --- derived quantities -------------------------------------------------------------
    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @property
    def effective_n_kv_heads(self) -> int:
        """Key/value heads: ``n_kv_heads``, or 1 / ``n_heads`` from ``multi_query_attention`` (as in LLaDA)."""
        if self.n_kv_heads is None:
            return 1 if self.multi_query_attention else self.n_heads
        return self.n_kv_heads

    @property
    def effective_mlp_hidden_size(self) -> int:
        return self.mlp_hidden_size if self.mlp_hidden_size is not None else self.mlp_ratio * self.d_model

    @property
    def effective_embedding_size(self) -> int:
        """Rows of the embedding and of the output layer (logits are over this many ids)."""
        return self.embedding_size or self.vocab_size

    @property
    def qkv_bias(self) -> bool:
        return bool(self.include_bias or self.include_qkv_bias)

    @property
    def norm_bias(self) -> bool:
        return bool(self.include_bias if self.bias_for_layer_norm is None else self.bias_for_layer_norm)

    # --- checks -------------------------------------------------------------------------
    def _check_consistency(self) -> None:
        for name, allowed in SUPPORTED_VALUES.items():
            if getattr(self, name) not in allowed:
                raise ConfigError(
                    f"config field '{name}' = {getattr(self, name)!r} is not supported by trafl's LLaDA model "
                    f"(supported: {allowed}); it implements the architecture of the published LLaDA checkpoints"
                )
        for name in ("d_model", "n_heads", "n_layers", "vocab_size", "max_sequence_length"):
            if getattr(self, name) < 1:
                raise ConfigError(f"config field '{name}' = {getattr(self, name)} must be positive")
        if self.d_model % self.n_heads:
            raise ConfigError(
                f"config field 'd_model' = {self.d_model} must be divisible by 'n_heads' = {self.n_heads}"
            )
        if self.head_dim % 2:
            raise ConfigError(f"head dimension d_model / n_heads = {self.head_dim} must be even for RoPE")
        if self.n_kv_heads is not None and self.multi_query_attention is not None:
            if self.n_kv_heads != (1 if self.multi_query_attention else self.n_heads):
                raise ConfigError("config fields 'n_kv_heads' and 'multi_query_attention' disagree; set only one")
        kv = self.effective_n_kv_heads
        if kv < 1 or self.n_heads % kv:
            raise ConfigError(f"config field 'n_kv_heads' = {kv} must divide 'n_heads' = {self.n_heads}")
        if self.effective_embedding_size < self.vocab_size:
            raise ConfigError(
                f"config field 'embedding_size' = {self.embedding_size} must be at least 'vocab_size' = {self.vocab_size}"
            )
        for name in ("mask_token_id", "eos_token_id", "pad_token_id"):
            tid = getattr(self, name)
            if tid is not None and not 0 <= tid < self.effective_embedding_size:
                raise ConfigError(
                    f"config field '{name}' = {tid} is outside the embedding table [0, {self.effective_embedding_size})"
                )

    # --- serialisation: every LLaDA field, always -----------------------------------------
    def to_diff_dict(self) -> dict[str, Any]:
        """What ``save_pretrained`` writes: every LLaDA field (even at its default) plus bookkeeping.

        transformers would drop fields equal to this class's defaults; LLaDA's own loader would then
        fill them with *its* (different) defaults, so all of them are written.
        """
        full = self.to_dict()
        keep = set(LLADA_FIELDS) | {"model_type", "architectures", "transformers_version"}
        out = {k: v for k, v in full.items() if k in keep}
        if full.get("dtype") is not None:
            out["dtype"] = full["dtype"]
        return dict(sorted(out.items()))
