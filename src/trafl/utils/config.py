"""Typed dataclass configs: help text on every field, YAML loading, command-line overrides,
validation at load time.

A config is a ``@dataclass`` whose fields are declared with :func:`option`::

    Schedule = Literal["cosine", "constant"]   # declared once, next to the code that implements it

    @dataclass
    class SFTConfig:
        learning_rate: float = option(3e-4, "Peak learning rate of AdamW.", min=0.0)
        schedule: Schedule = option("cosine", "Learning-rate schedule.")

A field's allowed values are its ``Literal`` annotation (:func:`literal_choices`): loading checks
them, ``--help`` and :func:`format_help` list them; no config repeats the list by hand.

        def validate(self) -> None:      # optional cross-field checks
            ...

:func:`load_config` merges, in order, the dataclass defaults, a YAML file and ``key=value`` or
``--key value`` overrides, checks every key and type, and raises :class:`trafl.errors.ConfigError`
naming the field and what was expected.

A config class may list keys it no longer has in a class attribute ``RENAMED: ClassVar[dict[str,
Renamed]]``: an old key in a YAML file, in overrides or on the command line is read as its new field
with a warning naming the new field (:func:`upgrade_keys`), so that renaming a field breaks no one's
config; a key that was removed is refused with the reason, unless it holds ``null`` (a saved config of
an older run, which meant the default).
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import logging
import re
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar, get_args, get_origin

import yaml

from trafl.errors import ConfigError

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T", bound="DataclassInstance")

_MISSING = dataclasses.MISSING
logger = logging.getLogger(__name__)


def option(
    default: Any = _MISSING,
    help: str = "",
    *,
    min: float | None = None,
    max: float | None = None,
    default_factory: Any = _MISSING,
    repeat: bool = False,
) -> Any:
    """Declare a config field with its help text and optional constraints.

    ``min`` / ``max`` are inclusive bounds for numbers. The allowed values of a field with a fixed
    set of them come from its annotation, a ``Literal`` alias declared next to the code that
    implements the choices (:func:`literal_choices`), never from a list here. Mutable defaults (lists, dicts) must be given with ``default_factory``. ``repeat`` (list fields):
    on the command line the flag is repeated, one item per occurrence, taken whole (no comma split).
    """
    if not help:
        raise ValueError("every config field needs help text")
    meta = {"help": help, "min": min, "max": max, "repeat": repeat}
    if default_factory is not _MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    if isinstance(default, (list, dict, set)):
        value = default
        return dataclasses.field(default_factory=lambda: type(value)(value), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def option_of(base: type, name: str, default: Any = _MISSING, help: str | None = None) -> Any:
    """The field ``name`` of the config class ``base`` again, with another ``default`` and/or ``help``.

    A config that extends a shared base (:class:`trafl.utils.run_config.RunConfig`) declares
    ``learning_rate: float = option_of(RunConfig, "learning_rate", 1e-3)``: its own default, the base's
    constraints, and the field keeps its place in the base's order."""
    f = {f.name: f for f in dataclasses.fields(base)}[name]
    meta = dict(f.metadata)
    if default is _MISSING:
        default = f.default if f.default is not _MISSING else f.default_factory()
    return option(
        default,
        help or meta["help"],
        min=meta["min"],
        max=meta["max"],
        repeat=meta["repeat"],
    )


@dataclasses.dataclass(frozen=True)
class Renamed:
    """What became of an old config key: the field ``new`` (``convert`` maps an old value to the new
    field's value when its form changed too), or nothing (``new`` is ``None``; ``why`` says what to do)."""

    new: str | None
    convert: Callable[[Any], Any] | None = None
    why: str = ""


def renamed_keys(cls: type) -> dict[str, Renamed]:
    return dict(getattr(cls, "RENAMED", {}))


def upgrade_keys(cls: type, values: dict[str, Any], source: str, *, saved: bool = False) -> dict[str, Any]:
    """``values`` with every old key of ``cls.RENAMED`` replaced by its new field (logged as deprecated).

    Raises :class:`ConfigError` when an old key and its new field are both given, and for a removed key
    that holds a value. ``saved`` (the config a run wrote, read back on ``--resume``): renames and
    drops silently, since the user wrote nothing, and fills the fields added since with their defaults
    (the older run ran with them)."""
    table = renamed_keys(cls)
    out = dict(values)
    for old in [k for k in values if k in table]:
        entry, raw = table[old], out.pop(old)
        if entry.new is None:
            if raw is None or saved:
                if not saved:
                    logger.warning("config key '%s' in %s is no longer read (%s); drop it", old, source, entry.why)
                continue
            raise ConfigError(f"config key '{old}' in {source} was removed: {entry.why}")
        if entry.new in values:
            raise ConfigError(
                f"config keys '{old}' and '{entry.new}' in {source}: '{old}' is the old name of '{entry.new}'; "
                f"give only '{entry.new}'"
            )
        out[entry.new] = entry.convert(raw) if entry.convert is not None else raw
        if not saved:
            logger.warning(
                "config key '%s' in %s is deprecated: it is now '%s' (the old name will stop working)",
                old,
                source,
                entry.new,
            )
    if saved:
        for f in dataclasses.fields(cls):
            if f.name not in out and not f.metadata.get("flatten") and _default_of(f) != "required":
                out[f.name] = _default_of(f)
    return out


def _type_hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def literal_choices(tp: Any) -> tuple | None:
    """The allowed values of a field annotated ``tp``: the arguments of its ``Literal`` (also inside
    ``X | None`` or ``list[X]``), or ``None`` when the annotation fixes no set of values."""
    origin = get_origin(tp)
    if origin is Literal:
        return get_args(tp)
    if origin in (typing.Union, types.UnionType, list, tuple):
        found = [c for c in (literal_choices(a) for a in get_args(tp)) if c is not None]
        return tuple(v for c in found for v in c) if found else None
    return None


def _describe(tp: Any) -> str:
    origin = get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in get_args(tp))
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if origin in (list, tuple):
        args = get_args(tp)
        return f"a list of {_describe(args[0])}" if args else "a list"
    if origin is dict:
        return "a mapping"
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", str(tp))


def _mapping_of(text: str, name: str) -> dict[str, Any]:
    """A mapping written on the command line: ``key=value,key=value`` (each value read as YAML, so
    ``n=3`` is an integer) or a YAML flow mapping ``{key: value}``; ``""`` is empty."""
    text = text.strip()
    if text.startswith("{"):
        try:
            loaded = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"config field '{name}': not a YAML mapping: {text!r} ({exc})") from exc
        if not isinstance(loaded, dict):
            raise ConfigError(f"config field '{name}': expected a mapping, got {text!r}")
        return loaded
    out: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"config field '{name}': expected key=value[,key=value...], got {text!r}")
        out[key.strip()] = yaml.safe_load(raw) if raw.strip() else ""
    return out


def _coerce(value: Any, tp: Any, name: str) -> Any:
    """Convert ``value`` (from YAML or a command-line string) to ``tp`` or raise ConfigError."""
    origin = get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = get_args(tp)
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            if type(None) in args:
                return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, name)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(f"config field '{name}': expected {_describe(tp)}, got {value!r}")
    if origin is Literal:
        allowed = get_args(tp)
        if value not in allowed:
            raise ConfigError(f"config field '{name}': expected {_describe(tp)}, got {value!r}")
        return value
    if origin in (list, tuple):
        (item_tp,) = get_args(tp)[:1] or (Any,)
        if isinstance(value, str):
            value = [v for v in (s.strip() for s in value.split(",")) if v != ""]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config field '{name}': expected {_describe(tp)}, got {value!r}")
        return [_coerce(v, item_tp, f"{name}[{i}]") for i, v in enumerate(value)]
    if origin is dict or tp is dict:
        if isinstance(value, str):
            value = _mapping_of(value, name)
        if not isinstance(value, dict):
            raise ConfigError(f"config field '{name}': expected a mapping, got {value!r}")
        return dict(value)
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on"):
            return True
        if isinstance(value, str) and value.lower() in ("false", "0", "no", "off"):
            return False
        raise ConfigError(f"config field '{name}': expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, bool):
            raise ConfigError(f"config field '{name}': expected an integer, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                try:
                    f = float(value)
                except ValueError:
                    f = None
                if f is not None and f.is_integer():
                    return int(f)
        raise ConfigError(f"config field '{name}': expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"config field '{name}': expected a number, got {value!r}")
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"config field '{name}': expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"config field '{name}': expected a string, got {value!r}")
    if tp is Path:
        if isinstance(value, (str, Path)):
            return Path(value)
        raise ConfigError(f"config field '{name}': expected a path, got {value!r}")
    return value


def _check_constraints(cfg: Any) -> None:
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        meta = f.metadata
        items = value if isinstance(value, list) else [value]
        for v in items:
            if v is None:
                continue
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                if meta.get("min") is not None and v < meta["min"]:
                    raise ConfigError(f"config field '{f.name}': must be >= {meta['min']}, got {v!r}")
                if meta.get("max") is not None and v > meta["max"]:
                    raise ConfigError(f"config field '{f.name}': must be <= {meta['max']}, got {v!r}")


def _unknown_key_error(cls: type, key: str, source: str) -> ConfigError:
    names = [f.name for f in dataclasses.fields(cls)]
    close = difflib.get_close_matches(key, names, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return ConfigError(
        f"unknown config key '{key}' in {source}{hint}; valid keys of {cls.__name__}: {', '.join(names)}"
    )


def config_from_dict(cls: type[T], values: dict[str, Any], source: str = "config") -> T:
    """Build and validate ``cls`` from a mapping of field names to raw values."""
    hints = _type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values = upgrade_keys(cls, {k.replace("-", "_"): v for k, v in values.items()}, source)
    split = getattr(cls, "split_values", None)
    if callable(split):  # a config that hosts a nested options object built from some of the flat keys
        values = split(values, source)
    kwargs: dict[str, Any] = {}
    for key, raw in values.items():
        name = key.replace("-", "_")
        if name not in fields:
            raise _unknown_key_error(cls, key, source)
        kwargs[name] = _coerce(raw, hints[name], name)
    missing = [
        n for n, f in fields.items() if n not in kwargs and f.default is _MISSING and f.default_factory is _MISSING
    ]
    if missing:
        raise ConfigError(f"{source}: required config field(s) missing: {', '.join(missing)}")
    cfg = cls(**kwargs)
    _check_constraints(cfg)
    validate = getattr(cfg, "validate", None)
    if callable(validate):
        validate()
    return cfg


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """Parse ``["key=value", "--key", "value", "--flag"]`` into a dict of raw strings."""
    out: dict[str, Any] = {}
    i = 0
    while i < len(items):
        item = items[i]
        if item.startswith("--"):
            body = item[2:]
            if "=" in body:
                key, value = body.split("=", 1)
            elif i + 1 < len(items) and not items[i + 1].startswith("--"):
                key, value = body, items[i + 1]
                i += 1
            else:
                key, value = body, "true"
        elif "=" in item:
            key, value = item.split("=", 1)
        else:
            raise ConfigError(f"cannot parse override {item!r}: expected key=value or --key value")
        out[key.replace("-", "_")] = value
        i += 1
    return out


def load_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: expected a mapping of keys to values at the top level")
    return data


def load_config(
    cls: type[T],
    path: str | Path | None = None,
    overrides: list[str] | dict[str, Any] | None = None,
) -> T:
    """Defaults, then the YAML file at ``path``, then ``overrides``; validated."""
    values: dict[str, Any] = {}
    source = "config"
    if path is not None:
        source = str(path)
        values.update(upgrade_keys(cls, {k.replace("-", "_"): v for k, v in load_yaml(path).items()}, source))
    if overrides:
        extra = parse_overrides(overrides) if isinstance(overrides, list) else dict(overrides)
        known = {f.name for f in dataclasses.fields(cls)} | set(getattr(cls, "extra_keys", lambda: ())())
        known |= set(renamed_keys(cls))
        for key in extra:
            if key.replace("-", "_") not in known:
                raise _unknown_key_error(cls, key, "command-line overrides")
        extra = {k.replace("-", "_"): v for k, v in extra.items()}
        values.update(upgrade_keys(cls, extra, "command-line overrides"))
    return config_from_dict(cls, values, source)


def to_dict(cfg: Any) -> dict[str, Any]:
    """A YAML-safe dict of a config (paths as strings); fields marked ``flatten`` (a nested options
    dataclass) contribute their own fields at the top level, so the dict loads back as it was given."""
    out = {}
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        if f.metadata.get("flatten"):
            out.update(to_dict(v) if v is not None else {})
            continue
        out[f.name] = str(v) if isinstance(v, Path) else v
    return out


def save_config(cfg: Any, path: str | Path) -> None:
    from trafl.utils.io import atomic_write_text

    atomic_write_text(path, yaml.safe_dump(to_dict(cfg), sort_keys=False))


def _default_of(f: dataclasses.Field) -> Any:
    """A field's default as help text shows it (``"required"`` when it has none)."""
    if f.default is not _MISSING:
        return f.default
    return f.default_factory() if f.default_factory is not _MISSING else "required"


#: A negative number as argparse should read it after a flag: the flag's value, not an option
#: (``-3``, ``-0.5``, ``-.5``, ``-1e-3``, ``-2E+2``; Python < 3.13 misses the exponent forms).
NEGATIVE_NUMBER = re.compile(r"^-(\d[\d_]*(\.[\d_]*)?|\.\d[\d_]*)([eE][+-]?\d+)?$")


class CliArgumentParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` that takes every negative number as a value.

    Plain argparse reads ``--learning-rate -1e-3`` as two options (it only knows ``-3`` and ``-0.5``
    as numbers) and answers with a usage dump; with this class the config's validation sees the
    number and names the field. Subparsers made by ``add_subparsers`` are of this class too."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = NEGATIVE_NUMBER


def add_config_arguments(parser: argparse.ArgumentParser, cls: type) -> None:
    """Expose every field of ``cls`` as ``--field-name`` (default None = keep config value)."""
    hints = _type_hints(cls)
    group = parser.add_argument_group(f"{cls.__name__} fields (override the YAML config)")
    for f in dataclasses.fields(cls):
        if f.metadata.get("flatten"):
            continue
        default = _default_of(f)
        help_text = f"{f.metadata.get('help', '')} [{_describe(hints[f.name])}; default: {default!r}]"
        extra: dict[str, Any] = {"nargs": "?", "const": "true"} if hints[f.name] is bool else {}
        if f.metadata.get("repeat"):
            extra = {"action": "append"}
        group.add_argument(
            "--" + f.name.replace("_", "-"),
            dest=f"cfg__{f.name}",
            default=None,
            metavar="V",
            help=help_text.replace("%", "%%"),
            **extra,
        )
    for old in renamed_keys(cls):  # old names still parse (hidden); loading maps them, or says why not
        group.add_argument("--" + old.replace("_", "-"), dest=f"cfg__{old}", default=None, help=argparse.SUPPRESS)


def overrides_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The ``--field`` values the user actually gave on the command line."""
    return {k[5:]: v for k, v in vars(args).items() if k.startswith("cfg__") and v is not None}


def format_help(cls: type) -> str:
    """A Markdown table of the fields of ``cls`` (used to generate docs)."""
    hints = _type_hints(cls)
    rows = ["| field | type | default | help |", "|---|---|---|---|"]
    for f in dataclasses.fields(cls):
        if f.metadata.get("flatten"):
            continue
        default = _default_of(f)
        rows.append(f"| `{f.name}` | {_describe(hints[f.name])} | `{default!r}` | {f.metadata.get('help', '')} |")
    return "\n".join(rows)
