"""trafl.models: the denoiser networks.

* :class:`LLaDAModelLM` / :class:`LLaDAConfig`: native LLaDA architecture, reading and writing the
  published LLaDA Hugging Face format; registered with transformers' ``AutoConfig``, ``AutoModel``
  and ``AutoModelForMaskedLM`` for ``model_type = "llada"`` when this package is imported;
* :func:`build_model` / :data:`PRESETS`: fresh models of named sizes ("micro", "tiny", "llada-8b");
* :func:`load_pretrained`: a directory or Hub id -> (model, tokenizer), LLaDA natively, Dream
  through its remote code behind :class:`DreamAdapter`;
* :func:`build_char_tokenizer`: character-level tokenizers for tiny synthetic models;
* :mod:`trafl.models.interface`: the denoiser contract everything else codes against;
* :class:`BlockKVCache`: the opt-in block key/value cache of the sampler (prefix / dual cache).
"""

from transformers import AutoConfig, AutoModel, AutoModelForMaskedLM

from trafl.models.adapters import DreamAdapter, shift_logits_right
from trafl.models.configuration_llada import LLaDAConfig
from trafl.models.interface import enable_checkpointing, get_logits, mask_token_id_of
from trafl.models.kv_cache import CACHE_MODES, BlockKVCache
from trafl.models.loading import load_pretrained
from trafl.models.modeling_llada import LLaDAModelLM, SequenceTooLongError
from trafl.models.presets import PRESETS, build_model, preset_config, tokenizer_fields
from trafl.models.tokenizer import build_char_tokenizer


def _register() -> None:
    """Map ``model_type = "llada"`` to the native classes (idempotent)."""
    AutoConfig.register("llada", LLaDAConfig, exist_ok=True)
    AutoModel.register(LLaDAConfig, LLaDAModelLM, exist_ok=True)
    AutoModelForMaskedLM.register(LLaDAConfig, LLaDAModelLM, exist_ok=True)


_register()

__all__ = [
    "BlockKVCache",
    "CACHE_MODES",
    "DreamAdapter",
    "LLaDAConfig",
    "LLaDAModelLM",
    "PRESETS",
    "SequenceTooLongError",
    "build_char_tokenizer",
    "enable_checkpointing",
    "build_model",
    "get_logits",
    "load_pretrained",
    "mask_token_id_of",
    "preset_config",
    "shift_logits_right",
    "tokenizer_fields",
]
