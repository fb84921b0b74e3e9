"""The sampler's settings, one typed object shared by ``trafl sample``, ``train``, ``eval`` and ``demo``.

:class:`SamplerSettings` holds what :func:`trafl.sampling.generate` needs besides the model and the
prompts (canvas length, steps, block length, temperature, remasking rule, and the two opt-in
speed-ups); :func:`check_sampler` is the one place its rules live:

* ``L = gen_length >= 1`` and ``b = block_length`` divides it (``L / b`` blocks);
* ``1 <= steps <= L`` (each step commits at least one token) and ``steps`` is a multiple of ``L / b``
  (every block gets ``steps / (L / b)`` steps);
* ``temperature >= 0``; ``remasking`` in :data:`~trafl.sampling.remasking.REMASKING`;
* ``cache`` in ``('none', 'prefix', 'dual')``; ``threshold`` is ``None`` or a confidence in ``[0, 1]``.

A config that stores these under other names (``TrainConfig``: ``max_completion_length``,
``diffusion_steps``, ``rollout_cache``, ...; :data:`TRAIN_NAMES`) passes ``names`` so that an error
names *its* field.
``cache='none'`` and ``threshold=None`` are the exact sampler; anything else is an approximation of
its law (:attr:`SamplerSettings.approximate`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from trafl.errors import ConfigError
from trafl.models.kv_cache import CACHE_MODES, CacheMode
from trafl.sampling.remasking import REMASKING, Remasking
from trafl.utils.config import config_from_dict, option


@dataclass(frozen=True)
class SamplerSettings:
    gen_length: int = option(128, "Completion canvas length L (tokens).", min=1)
    steps: int | None = option(
        None,
        "Denoising steps for the whole completion: at most gen_length and a multiple of "
        "the number of blocks gen_length / block_length (default: gen_length, one token "
        "per step).",
        min=1,
    )
    block_length: int = option(32, "Semi-autoregressive block length; divides gen_length.", min=1)
    temperature: float = option(0.0, "Sampling temperature (0: greedy).", min=0.0)
    remasking: Remasking = option(
        "low_confidence", "Which proposals a step commits: the most confident (low_confidence) or random ones."
    )
    cache: CacheMode = option(
        "none",
        "Block KV cache: none (exact), prefix or dual (Fast-dLLM; approximate, faster; native LLaDA models only).",
    )
    threshold: float | None = option(
        None,
        "Confidence-threshold parallel decoding: a step also commits every masked "
        "position of the block with confidence above this (approximate, fewer "
        "forward passes); null: off.",
        min=0.0,
        max=1.0,
    )

    def validate(self) -> None:
        check_sampler(self)

    @property
    def resolved_steps(self) -> int:
        """``steps``, or ``gen_length`` (one token per step) when unset."""
        return self.gen_length if self.steps is None else self.steps

    @property
    def approximate(self) -> bool:
        """True when a speed-up changes the sampler's law: a KV cache, or a threshold below 1 (no
        confidence exceeds 1, so ``threshold=1`` commits what the exact sampler does), on blocks of
        several steps. With one step per block (``steps = gen_length / block_length``, e.g. left to
        right) both are exact: the step commits its whole block from a full forward pass."""
        several_steps = self.resolved_steps > self.gen_length // max(self.block_length, 1)
        speedup = self.cache != "none" or (self.threshold is not None and self.threshold < 1.0)
        return several_steps and speedup

    def describe(self) -> dict[str, Any]:
        """What a results file records about the sampler: steps, block length and remasking, plus
        ``cache`` / ``threshold`` only when they are not the exact sampler's (so records of exact
        runs keep their old form)."""
        out: dict[str, Any] = {
            "steps": self.resolved_steps,
            "block_length": self.block_length,
            "remasking": self.remasking,
        }
        if self.cache != "none":
            out["cache"] = self.cache
        if self.threshold is not None:
            out["threshold"] = self.threshold
        return out


FIELDS = tuple(f.name for f in dataclasses.fields(SamplerSettings))

#: The names a training config (``TrainConfig``; TRL's vocabulary) gives the sampler's settings
#: (LLaDA's vocabulary). The completion length is LLaDA's ``gen_length`` in the sampler and TRL's
#: ``max_completion_length`` in every training config (``TrainConfig``, ``SFTConfig``); the
#: rollout-only speed-ups carry a ``rollout_`` prefix. This mapping is the one place where the two
#: vocabularies meet: :func:`sampler_from` reads a config through it, :func:`fields_for` writes one,
#: and :func:`check_sampler` names a config's own field with it.
TRAIN_NAMES: dict[str, str] = {
    "gen_length": "max_completion_length",
    "steps": "diffusion_steps",
    "block_length": "block_length",
    "temperature": "temperature",
    "remasking": "remasking",
    "cache": "rollout_cache",
    "threshold": "rollout_threshold",
}


def sampler_from(config: Any, names: Mapping[str, str] = TRAIN_NAMES) -> SamplerSettings:
    """The :class:`SamplerSettings` that ``config`` holds under ``names`` (a sampler field -> the
    config's field)."""
    return SamplerSettings(**{f: getattr(config, names.get(f, f)) for f in FIELDS})


def fields_for(
    settings: SamplerSettings, fields: tuple[str, ...] = FIELDS, names: Mapping[str, str] = TRAIN_NAMES
) -> dict[str, Any]:
    """``settings``' values of ``fields`` under a config's ``names``: the keyword arguments of that
    config (e.g. ``TrainConfig(**fields_for(s))``)."""
    return {names.get(f, f): getattr(settings, f) for f in fields}


def sampler_option(name: str, default: Any = dataclasses.MISSING, help: str | None = None) -> Any:
    """A config field declared like ``SamplerSettings.<name>`` (same help text and bounds), for
    configs that hold a sampler setting under their own name or with another default. Its allowed
    values come from its annotation, which must be ``SamplerSettings``' own (``Remasking``,
    ``CacheMode``; the metadata key ``sampler_setting`` lets a test check that)."""
    field = next(f for f in dataclasses.fields(SamplerSettings) if f.name == name)
    meta = {**field.metadata, "sampler_setting": name}
    if help is not None:
        meta["help"] = help
    return dataclasses.field(default=field.default if default is dataclasses.MISSING else default, metadata=meta)


def check_sampler(settings: SamplerSettings, names: Mapping[str, str] | None = None) -> None:
    """Raise :class:`ConfigError` naming the offending field when ``settings`` break a rule of the
    module docstring; ``names`` maps a :class:`SamplerSettings` field to the caller's field name."""
    n = {f: (names or {}).get(f, f) for f in FIELDS}
    s = settings
    if s.gen_length < 1:
        raise ConfigError(f"{n['gen_length']} must be >= 1, got {s.gen_length}")
    if s.block_length < 1:
        raise ConfigError(f"{n['block_length']} must be >= 1, got {s.block_length}")
    if s.gen_length % s.block_length:
        raise ConfigError(
            f"{n['gen_length']}={s.gen_length} must be a multiple of {n['block_length']}={s.block_length}"
        )
    blocks = s.gen_length // s.block_length
    steps = s.resolved_steps
    if steps < 1:
        raise ConfigError(f"{n['steps']} must be >= 1, got {steps}")
    if steps % blocks:
        raise ConfigError(
            f"{n['steps']}={steps} must be a multiple of the number of blocks "
            f"{n['gen_length']}/{n['block_length']}={blocks}"
        )
    if steps > s.gen_length:
        raise ConfigError(
            f"{n['steps']}={steps} must be <= {n['gen_length']}={s.gen_length} (each step commits at least one token)"
        )
    if not s.temperature >= 0:  # also rejects NaN
        raise ConfigError(f"{n['temperature']} must be >= 0, got {s.temperature}")
    if s.remasking not in REMASKING:
        raise ConfigError(f"{n['remasking']} must be one of {list(REMASKING)}, got {s.remasking!r}")
    if s.cache not in CACHE_MODES:
        raise ConfigError(f"{n['cache']} must be one of {list(CACHE_MODES)}, got {s.cache!r}")
    if s.threshold is not None and not 0.0 <= s.threshold <= 1.0:  # also rejects NaN
        raise ConfigError(f"{n['threshold']} must lie in [0, 1] (a confidence), or be null; got {s.threshold}")


def split_sampler_values(values: dict[str, Any], source: str, field: str = "sampler") -> dict[str, Any]:
    """For a config hosting a :class:`SamplerSettings` under ``field`` (flattened, see
    ``trafl.utils.config.to_dict``): move the flat sampler keys of ``values`` into it, typed and
    validated. Used as the config class's ``split_values``."""
    pulled = {k: values[k] for k in FIELDS if k in values}
    rest = {k: v for k, v in values.items() if k not in pulled}
    nested = rest.pop(field, None)
    if isinstance(nested, SamplerSettings):
        nested = dataclasses.asdict(nested)
    rest[field] = config_from_dict(SamplerSettings, {**(nested or {}), **pulled}, source)
    return rest


def sampler_field(
    help: str = "The sampler's settings, given as flat keys (gen_length, steps, block_length, "
    "temperature, remasking, cache, threshold).",
) -> Any:
    """The ``flatten`` field of a config hosting a :class:`SamplerSettings` (see :func:`split_sampler_values`)."""
    return dataclasses.field(default_factory=SamplerSettings, metadata={"help": help, "flatten": True})
