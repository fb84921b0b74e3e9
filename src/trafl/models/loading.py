"""``load_pretrained``: a model directory or Hub id -> (denoiser, tokenizer).

* ``model_type == "llada"`` loads into the native :class:`LLaDAModelLM` (no remote code, even
  though LLaDA's published config.json carries an ``auto_map`` to its own modeling file);
* ``model_type == "Dream"`` loads Dream's own code through transformers (``trust_remote_code=True``
  required) and wraps it in :class:`~trafl.models.adapters.DreamAdapter`.

A local directory is checked before any weight is read, so a broken checkpoint fails with a
:class:`~trafl.errors.CheckpointError` naming the file and the problem (missing directory,
missing or malformed config.json, unknown or wrongly-typed field, missing weights, tensors missing,
unexpected or of the wrong shape) instead of loading with silently re-initialised parameters.

A name that does not exist is a hub id only when it could be one: ``runs/x`` with a ``runs/`` folder
here, ``./x/y`` or ``x/`` fail at once as missing folders, without a network round trip; offline
(``HF_HUB_OFFLINE=1``) a hub id absent from the local hub cache fails at once too.
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Any, Literal, get_args

import torch
from safetensors import safe_open
from transformers import AutoModel, AutoTokenizer, PretrainedConfig

from trafl.errors import CheckpointError, ConfigError
from trafl.models.adapters import DreamAdapter
from trafl.models.configuration_llada import LLaDAConfig, check_known_fields
from trafl.models.modeling_llada import LLaDAModelLM

log = logging.getLogger(__name__)

CONFIG_FILE = "config.json"
SAFETENSORS_FILE = "model.safetensors"
SAFETENSORS_INDEX = "model.safetensors.index.json"
TORCH_WEIGHT_FILES = ("pytorch_model.bin", "pytorch_model.bin.index.json")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")

#: The dtype names a model is loaded in (``auto``: as stored), and their torch dtypes.
DtypeName = Literal["auto", "float32", "bfloat16", "float16"]
DTYPES: dict[str, torch.dtype | None] = {n: None if n == "auto" else getattr(torch, n) for n in get_args(DtypeName)}
#: The parameter dtypes a trainer keeps (``bfloat16``: bf16 autocast on CUDA).
TrainDtype = Literal["float32", "bfloat16"]
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def load_pretrained(
    path_or_hub_id: str | Path,
    *,
    device: str | torch.device | None = None,
    dtype: torch.dtype | str | None = None,
    trust_remote_code: bool = False,
) -> tuple[torch.nn.Module, Any]:
    """Load a dLLM and its tokenizer (``None`` when the checkpoint has none).

    ``dtype`` (e.g. ``torch.bfloat16`` or ``"bfloat16"``) defaults to the dtype stored in the
    checkpoint; ``device`` to the CPU. The model is returned in eval mode.
    """
    source, local = resolve_model_source(path_or_hub_id)
    config_dict = _read_config(source, local)
    model_type = config_dict.get("model_type")
    where = str(Path(source) / CONFIG_FILE) if local else f"{source}/{CONFIG_FILE}"
    if model_type == "llada":
        config = _llada_config(config_dict, where)
        if local:
            check_weights(Path(source), expected_tensor_shapes(config))
        model = _from_pretrained(LLaDAModelLM, source, config=config, dtype=dtype)
    elif isinstance(model_type, str) and model_type.lower() == "dream":
        if not trust_remote_code:
            raise CheckpointError(
                f"{where}: model_type '{model_type}' is loaded through the checkpoint's own modeling code; "
                "pass trust_remote_code=True to allow it"
            )
        model = _from_pretrained(AutoModel, source, dtype=dtype, trust_remote_code=True)
    else:
        raise CheckpointError(
            f"{where}: model_type {model_type!r} is not supported; expected 'llada' (native) or 'Dream' (remote code)"
        )
    tokenizer = _load_tokenizer(source, local, trust_remote_code)
    if isinstance(model_type, str) and model_type.lower() == "dream":
        mask_id = getattr(model.config, "mask_token_id", None)
        if mask_id is None and tokenizer is not None:
            mask_id = tokenizer.mask_token_id
        model = DreamAdapter(model, mask_token_id=mask_id)
    if tokenizer is not None:
        reconcile_special_tokens(model.config, tokenizer, where)
    if device is not None:
        model = model.to(device)
    return model.eval(), tokenizer


# --- steps ---------------------------------------------------------------------------------------


def resolve_model_source(path_or_hub_id: str | Path) -> tuple[str, bool]:
    """(source, is_local): an existing directory, or a Hub id ``owner/name`` (never asks the hub).

    A missing path that reads as local (see :func:`local_path_reason`) fails here instead of being
    looked up on the hub, and so does, in offline mode, a hub id absent from the local hub cache."""
    path = Path(path_or_hub_id).expanduser()
    if path.exists():
        if not path.is_dir():
            raise CheckpointError(f"model path '{path}' is a file; expected a checkpoint directory")
        return str(path), True
    text = str(path_or_hub_id)
    reason = local_path_reason(text)
    if reason is not None:
        raise CheckpointError(f"model folder '{text}' does not exist (read as a local path: {reason})")
    offline = hub_offline_setting()
    if offline is not None and not in_hub_cache(text):
        raise CheckpointError(
            f"'{text}' is not a local folder and not in the offline hub cache ({offline} is set): download it "
            "with network access first, or give a local checkpoint folder"
        )
    return text, False


def local_path_reason(text: str) -> str | None:
    """Why ``text`` names a local path rather than a hub id, or ``None`` when it may be a hub id.

    Local: it starts with ``./``, ``../``, ``/`` or ``~``, ends with a path separator, is not of the
    form ``owner/name``, or its first component is a folder here (``runs/x`` when ``runs/`` exists)."""
    separators = tuple({"/", os.sep})
    prefix = next((p for p in ("./", "../", ".\\", "..\\", "/", "~") if text.startswith(p)), None)
    if prefix is not None:
        return f"it starts with '{prefix}'"
    if text.endswith(separators):
        return "it ends with a path separator"
    first = re.split(r"[/\\]", text, maxsplit=1)[0]
    if first != text and first and Path(first).is_dir():
        return f"its first component '{first}' is a folder here"
    if not _HUB_ID.match(text):
        return "it is not a hub id of the form owner/name"
    return None


def is_hub_id(text: str) -> bool:
    """Whether a path that does not exist is to be read as a Hugging Face hub id."""
    return local_path_reason(text) is None


def hub_offline_setting() -> str | None:
    """The setting that puts the Hugging Face hub offline (``HF_HUB_OFFLINE``, ``TRANSFORMERS_OFFLINE``,
    or huggingface_hub's constant read when it was imported), or ``None`` when it is online."""
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(name, "").strip().upper() in ("1", "ON", "YES", "TRUE"):
            return name
    from huggingface_hub import constants

    return "huggingface_hub.constants.HF_HUB_OFFLINE" if constants.HF_HUB_OFFLINE else None


def in_hub_cache(repo_id: str) -> bool:
    """Whether the local hub cache holds ``repo_id``'s config.json (a file lookup, no network)."""
    from huggingface_hub import try_to_load_from_cache

    try:
        return isinstance(try_to_load_from_cache(repo_id, CONFIG_FILE), str)
    except Exception:  # an id the hub's validators refuse is not cached either
        return False


def _read_config(source: str, local: bool) -> dict[str, Any]:
    if not local:
        try:
            config_dict, _ = PretrainedConfig.get_config_dict(source)
        except Exception as err:  # network, auth, missing repo: say which
            reason = " ".join(str(err).split())
            raise CheckpointError(f"'{source}' is not a local folder and not reachable on the hub: {reason}") from err
        return config_dict
    path = Path(source) / CONFIG_FILE
    if not path.is_file():
        raise CheckpointError(f"'{source}' has no {CONFIG_FILE}; expected a Hugging Face model directory")
    try:
        config_dict = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{path} is not valid JSON: {err}") from err
    if not isinstance(config_dict, dict):
        raise CheckpointError(f"{path} must hold a JSON object, got {type(config_dict).__name__}")
    if "model_type" not in config_dict:
        raise CheckpointError(f"{path} has no 'model_type' field")
    return config_dict


def _llada_config(config_dict: dict[str, Any], where: str) -> LLaDAConfig:
    try:
        check_known_fields(config_dict)
        return LLaDAConfig.from_dict(config_dict)
    except ConfigError as err:
        raise CheckpointError(f"{where}: {err}") from err


def _from_pretrained(cls: Any, source: str, dtype: torch.dtype | str | None = None, **kwargs: Any) -> Any:
    if dtype is not None:
        kwargs["dtype"] = _as_dtype(dtype)
    model, info = cls.from_pretrained(source, output_loading_info=True, **kwargs)
    problems = {k: sorted(info.get(k) or []) for k in ("missing_keys", "unexpected_keys", "mismatched_keys")}
    problems = {k: v for k, v in problems.items() if v}
    if problems:
        raise CheckpointError(f"weights in '{source}' do not match the model: {_summarise(problems)}")
    return model


def _as_dtype(dtype: torch.dtype | str) -> torch.dtype | str:
    if isinstance(dtype, torch.dtype) or dtype == "auto":
        return dtype
    resolved = getattr(torch, str(dtype), None)
    if not isinstance(resolved, torch.dtype):
        raise ConfigError(f"dtype {dtype!r} is not a torch dtype (e.g. 'bfloat16', 'float32', 'auto')")
    return resolved


def _load_tokenizer(source: str, local: bool, trust_remote_code: bool) -> Any:
    if local and not any((Path(source) / name).is_file() for name in TOKENIZER_FILES):
        log.warning("'%s' has no tokenizer files; returning tokenizer=None", source)
        return None
    try:
        return AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code)
    except OSError as err:
        if local:
            raise CheckpointError(f"tokenizer files in '{source}' could not be loaded: {err}") from err
        log.warning("no tokenizer loaded for '%s' (%s); returning tokenizer=None", source, err)
        return None


def reconcile_special_tokens(config: Any, tokenizer: Any, where: str = "checkpoint") -> None:
    """Make the tokenizer's mask/EOS ids agree with the model config's, or raise.

    A tokenizer without a declared mask token (LLaDA's declares none: ``<|mdm_mask|>`` is just an
    added token) is given the config's mask id; a *different* declared id is an error.
    """
    for name in ("mask_token_id", "eos_token_id"):
        model_id = getattr(config, name, None)
        tok_id = getattr(tokenizer, name, None)
        if isinstance(model_id, list):  # some configs list several EOS ids
            if tok_id is not None and tok_id not in model_id:
                raise CheckpointError(f"{where}: tokenizer {name}={tok_id} is not among the config's {model_id}")
            continue
        if model_id is None or tok_id == model_id:
            continue
        if tok_id is None and name == "mask_token_id" and model_id < len(tokenizer):
            tokenizer.mask_token = tokenizer.convert_ids_to_tokens(model_id)
            continue
        raise CheckpointError(f"{where}: model config {name}={model_id} but the tokenizer's {name} is {tok_id}")


# --- weight checks ------------------------------------------------------------------------------


def expected_tensor_shapes(config: LLaDAConfig) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every tensor a checkpoint of ``config`` must hold (built on the meta device)."""
    with torch.device("meta"):
        model = LLaDAModelLM(config)
    return {name: tuple(p.shape) for name, p in model.state_dict().items()}


def stored_tensor_shapes(model_dir: Path) -> dict[str, tuple[int, ...]] | None:
    """Name -> shape of every tensor in the directory's safetensors (headers only); ``None`` for .bin."""
    index = model_dir / SAFETENSORS_INDEX
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise CheckpointError(f"{index} is not a valid safetensors index: {err}") from err
        files = sorted(set(weight_map.values()))
    elif (model_dir / SAFETENSORS_FILE).is_file():
        files = [SAFETENSORS_FILE]
    elif any((model_dir / name).is_file() for name in TORCH_WEIGHT_FILES):
        return None
    else:
        raise CheckpointError(
            f"'{model_dir}' has no weights: expected {SAFETENSORS_FILE} or {SAFETENSORS_INDEX} (with its shards)"
        )
    shapes: dict[str, tuple[int, ...]] = {}
    for name in files:
        path = model_dir / name
        if not path.is_file():
            raise CheckpointError(f"weight shard '{path}' listed in {SAFETENSORS_INDEX} is missing")
        try:
            with safe_open(str(path), framework="pt") as handle:
                for key in handle.keys():
                    shapes[key] = tuple(handle.get_slice(key).get_shape())
        except Exception as err:
            raise CheckpointError(f"'{path}' is not a readable safetensors file: {err}") from err
    return shapes


def check_weights(model_dir: Path, expected: dict[str, tuple[int, ...]]) -> None:
    """Raise :class:`CheckpointError` unless the stored tensors are exactly the expected names and shapes."""
    stored = stored_tensor_shapes(model_dir)
    if stored is None:
        return
    problems = {
        "missing_keys": sorted(set(expected) - set(stored)),
        "unexpected_keys": sorted(set(stored) - set(expected)),
        "mismatched_shapes": [
            f"{k}: stored {list(stored[k])}, config implies {list(expected[k])}"
            for k in sorted(set(expected) & set(stored))
            if stored[k] != expected[k]
        ],
    }
    problems = {k: v for k, v in problems.items() if v}
    if problems:
        raise CheckpointError(f"weights in '{model_dir}' do not match its config.json: {_summarise(problems)}")


def _summarise(problems: dict[str, list[str]], limit: int = 5) -> str:
    parts = []
    for kind, items in problems.items():
        more = f" and {len(items) - limit} more" if len(items) > limit else ""
        parts.append(f"{kind.replace('_', ' ')} ({len(items)}): {items[:limit]}{more}")
    return "; ".join(parts)
