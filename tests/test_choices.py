"""Every fixed list of option values is declared once, as a ``Literal`` next to the code that
implements it, and everything else reads it: the config loader, ``--help``, scripts' argparse
choices, other configs hosting the same setting, and the docs.

The checks are properties of the whole source tree, so a list copied by hand (a ``choices=(...)``
tuple, a validation tuple repeating a declared list, a config field typed ``str`` where the value
set is fixed, a docs row listing other values) fails here wherever it is reintroduced.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import importlib
import inspect
import pkgutil
import re
import typing
from pathlib import Path

import pytest

import trafl
from trafl.errors import ConfigError
from trafl.sampling.settings import SamplerSettings
from trafl.utils.config import _describe, add_config_arguments, format_help, literal_choices, load_config, option

REPO = Path(__file__).resolve().parent.parent
SOURCES = [REPO / "src", REPO / "scripts", REPO / "benchmarks"]


def _trees() -> list[tuple[Path, ast.AST]]:
    return [(p, ast.parse(p.read_text(), str(p))) for root in SOURCES for p in sorted(root.rglob("*.py"))]


def _strings(node: ast.AST) -> tuple[str, ...] | None:
    """The values of a tuple / list / set display of two or more string constants, else None."""
    if not isinstance(node, (ast.Tuple, ast.List, ast.Set)) or len(node.elts) < 2:
        return None
    if not all(isinstance(e, ast.Constant) and isinstance(e.value, str) for e in node.elts):
        return None
    return tuple(e.value for e in node.elts)  # type: ignore[attr-defined]


def _literal_slices(tree: ast.AST) -> list[ast.AST]:
    """The argument tuples of ``Literal[...]`` subscripts: the declarations themselves."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript):
            name = node.value.attr if isinstance(node.value, ast.Attribute) else getattr(node.value, "id", None)
            if name == "Literal":
                out.append(node.slice)
    return out


def _declared() -> dict[frozenset[str], list[str]]:
    """Value set -> where a ``Literal`` of two or more strings declares it (under src/)."""
    found: dict[frozenset[str], list[str]] = {}
    for path, tree in _trees():
        if REPO / "src" not in path.parents:
            continue
        for sl in _literal_slices(tree):
            values = _strings(sl)
            if values is not None:
                found.setdefault(frozenset(values), []).append(f"{path.relative_to(REPO)}:{sl.lineno}")
    return found


def test_each_choice_list_is_declared_once():
    declared = _declared()
    assert len(declared) >= 15  # remasking, cache modes, surrogates, schedules, dtypes, ...
    assert {k: v for k, v in declared.items() if len(v) > 1} == {}


def test_no_choice_list_is_written_out_by_hand():
    declared = _declared()
    offences = []
    for path, tree in _trees():
        where = path.relative_to(REPO)
        in_literal = {id(sl) for sl in _literal_slices(tree)}
        for node in ast.walk(tree):
            if isinstance(node, ast.keyword) and node.arg == "choices":
                if isinstance(node.value, (ast.Tuple, ast.List, ast.Set)):
                    offences.append(f"{where}:{node.value.lineno}: choices= written out (read a Literal's get_args)")
            values = _strings(node)
            if values is not None and id(node) not in in_literal and frozenset(values) in declared:
                home = declared[frozenset(values)][0]
                offences.append(f"{where}:{node.lineno}: {values} repeats the Literal declared at {home}")
    assert offences == []


def test_option_has_no_choices_argument():
    # a field's allowed values can only come from its annotation
    assert "choices" not in inspect.signature(option).parameters


def _config_classes() -> list[type]:
    """Every dataclass in trafl declared with :func:`option` (help text on its fields)."""
    found: dict[str, type] = {}
    for info in pkgutil.walk_packages(trafl.__path__, "trafl."):
        if info.name.endswith(".__main__"):  # runs a command when imported
            continue
        try:
            module = importlib.import_module(info.name)
        except ImportError:  # an optional dependency that is not installed
            continue
        for obj in vars(module).values():
            if (
                inspect.isclass(obj)
                and dataclasses.is_dataclass(obj)
                and obj.__module__.startswith("trafl.")
                and any("help" in f.metadata for f in dataclasses.fields(obj))
            ):
                found[f"{obj.__module__}.{obj.__qualname__}"] = obj
    return list(found.values())


CONFIGS = _config_classes()


def _literal_fields(cls: type) -> list[tuple[str, tuple, typing.Any]]:
    hints = typing.get_type_hints(cls)
    return [
        (f.name, choices, hints[f.name])
        for f in dataclasses.fields(cls)
        if not f.metadata.get("flatten") and (choices := literal_choices(hints[f.name])) is not None
    ]


def test_the_config_classes_are_found():
    names = {c.__name__ for c in CONFIGS}
    assert {"TrainConfig", "SFTConfig", "SamplerSettings", "SampleConfig", "EvalConfig", "DemoConfig"} <= names
    assert {"TraFLOptions", "ESPOOptions", "PlanConfig"} <= names
    assert sum(len(_literal_fields(c)) for c in CONFIGS) >= 20


@pytest.mark.parametrize("cls", CONFIGS, ids=lambda c: c.__name__)
def test_loader_help_and_table_read_each_literal(cls):
    parser = argparse.ArgumentParser()
    add_config_arguments(parser, cls)
    help_text = parser.format_help()
    table = format_help(cls)
    for name, choices, tp in _literal_fields(cls):
        assert f"| `{name}` | {_describe(tp)} |" in table
        assert all(repr(c) in help_text for c in choices), name
        if typing.get_origin(tp) is list:
            continue
        with pytest.raises(ConfigError, match=rf"'{name}': expected one of {re.escape(repr(choices[0]))}"):
            load_config(cls, None, {name: "not-a-choice"})


@pytest.mark.parametrize("cls", CONFIGS, ids=lambda c: c.__name__)
def test_hosted_sampler_settings_keep_the_samplers_literal(cls):
    ours, theirs = typing.get_type_hints(cls), typing.get_type_hints(SamplerSettings)
    for f in dataclasses.fields(cls):
        setting = f.metadata.get("sampler_setting")
        if setting is not None:
            assert ours[f.name] == theirs[setting], f"{cls.__name__}.{f.name} must be typed like {setting}"


def test_docs_list_the_declared_values():
    """Config tables show a Literal field's type as the loader describes it; a docs row that lists a
    field's values as backticked words lists exactly its Literal."""
    by_name: dict[str, set] = {}
    for cls in CONFIGS:
        for name, choices, tp in _literal_fields(cls):
            by_name.setdefault(name, set()).add((frozenset(choices), _describe(tp)))
    # names some config types without a Literal (e.g. a free-form ``device``): a "str" row may be theirs
    free = {
        f.name
        for cls in CONFIGS
        for f in dataclasses.fields(cls)
        if f.name not in dict((n, None) for n, _, _ in _literal_fields(cls))
    }
    checked = 0
    for doc in sorted((REPO / "docs").glob("*.md")):
        for name, column in re.findall(r"^\| `([a-z_0-9]+)` \| ([^|]+) \|", doc.read_text(), flags=re.M):
            if name not in by_name:
                continue
            column = column.strip()
            words = re.findall(r"`([^`]+)`", column)
            if column.startswith("one of ") or (column in ("str", "str or null") and name not in free):
                assert column in {d for _, d in by_name[name]}, f"{doc.name}: {name} | {column}"
                checked += 1
            elif len(words) >= 2 and re.fullmatch(r"(`[^`]+`( \(default\))?,? ?)+", column):
                assert frozenset(words) in {c for c, _ in by_name[name]}, f"{doc.name}: {name} | {column}"
                checked += 1
    assert checked >= 10
