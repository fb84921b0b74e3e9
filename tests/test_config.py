"""The typed config loader: YAML + overrides, type checks, constraints, clear errors."""

import argparse
from dataclasses import dataclass
from typing import Literal

import pytest

from trafl.errors import ConfigError
from trafl.utils.config import (
    add_config_arguments,
    format_help,
    load_config,
    option,
    overrides_from_args,
    parse_overrides,
)


@dataclass
class Cfg:
    lr: float = option(1e-3, "learning rate", min=0.0)
    steps: int = option(10, "steps", min=1)
    method: Literal["trafl", "espo"] = option("trafl", "objective")
    mode: Literal["a", "b"] = option("a", "a literal")
    temps: list[float] = option([0.3, 0.6], "temperatures")
    path: str | None = option(None, "optional path")
    flag: bool = option(False, "a flag")

    def validate(self):
        if self.steps > 1000 and self.lr > 1:
            raise ConfigError("config field 'lr': too large for many steps")


def test_defaults_yaml_and_overrides(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("lr: 0.01\nsteps: 5\ntemps: [0.1, 0.9]\n")
    cfg = load_config(Cfg, f, ["--steps", "7", "method=espo", "--flag", "--temps=0.5,0.7"])
    assert cfg.lr == 0.01 and cfg.steps == 7 and cfg.method == "espo" and cfg.flag is True
    assert cfg.temps == [0.5, 0.7] and cfg.path is None
    assert load_config(Cfg).temps == [0.3, 0.6]
    # mutable defaults are not shared
    a, b = load_config(Cfg), load_config(Cfg)
    a.temps.append(1.0)
    assert b.temps == [0.3, 0.6]


@pytest.mark.parametrize(
    "yaml_text, message",
    [
        ("lrr: 0.1\n", "unknown config key 'lrr'.*did you mean 'lr'"),
        ("steps: many\n", "'steps': expected an integer"),
        ("steps: 2.5\n", "'steps': expected an integer"),
        ("steps: 0\n", "'steps': must be >= 1"),
        ("method: ppo\n", "'method': expected one of 'trafl', 'espo'"),
        ("mode: c\n", "'mode': expected one of 'a', 'b'"),
        ("flag: maybe\n", "'flag': expected true or false"),
        ("temps: [0.1, x]\n", r"'temps\[1\]': expected a number"),
        ("- just a list\n", "expected a mapping"),
        ("lr: [unclosed\n", "not valid YAML"),
        ("steps: 2000\nlr: 5\n", "'lr': too large"),
    ],
)
def test_bad_config_errors_name_the_field(tmp_path, yaml_text, message):
    f = tmp_path / "c.yaml"
    f.write_text(yaml_text)
    with pytest.raises(ConfigError, match=message):
        load_config(Cfg, f)


def test_missing_file_and_bad_override():
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(Cfg, "/nonexistent/x.yaml")
    with pytest.raises(ConfigError, match="unknown config key 'nope'.*command-line"):
        load_config(Cfg, None, ["--nope", "1"])
    with pytest.raises(ConfigError, match="cannot parse override"):
        parse_overrides(["stray"])


def test_argparse_integration_and_help():
    parser = argparse.ArgumentParser()
    add_config_arguments(parser, Cfg)
    args = parser.parse_args(["--lr", "0.5", "--flag"])
    assert overrides_from_args(args) == {"lr": "0.5", "flag": "true"}
    cfg = load_config(Cfg, None, overrides_from_args(args))
    assert cfg.lr == 0.5 and cfg.flag
    table = format_help(Cfg)
    assert "| `lr` | float | `0.001` | learning rate |" in table


def test_every_field_needs_help():
    with pytest.raises(ValueError):
        option(1)


def test_repeatable_list_flags_take_each_value_whole():
    @dataclass
    class Prompts:
        prompt: list[str] = option([], "prompts", repeat=True)
        temps: list[float] = option([0.5], "temperatures")

    parser = argparse.ArgumentParser()
    add_config_arguments(parser, Prompts)
    args = parser.parse_args(["--prompt", "a, b", "--prompt", "c", "--temps", "0.1,0.2"])
    cfg = load_config(Prompts, None, overrides_from_args(args))
    assert cfg.prompt == ["a, b", "c"] and cfg.temps == [0.1, 0.2]
    assert load_config(Prompts, None, overrides_from_args(parser.parse_args([]))).prompt == []


def test_sampler_settings_one_check_names_the_callers_fields():
    from trafl.sampling.settings import SamplerSettings, check_sampler

    with pytest.raises(
        ConfigError, match="steps=6 must be a multiple of the number of blocks gen_length/block_length=4"
    ):
        load_config(SamplerSettings, None, {"gen_length": 16, "block_length": 4, "steps": 6})
    with pytest.raises(ConfigError, match="diffusion_steps=32 must be <= max_completion_length=16"):
        check_sampler(
            SamplerSettings(gen_length=16, steps=32, block_length=16),
            {"gen_length": "max_completion_length", "steps": "diffusion_steps"},
        )
    with pytest.raises(ConfigError, match="'threshold': must be <= 1.0"):
        load_config(SamplerSettings, None, {"threshold": 1.5})
    s = load_config(SamplerSettings, None, {"gen_length": 16, "block_length": 4})
    assert s.resolved_steps == 16 and not s.approximate  # steps default: one token per step
    assert load_config(SamplerSettings, None, {"cache": "prefix"}).approximate
    assert not load_config(SamplerSettings, None, {"threshold": 1.0}).approximate  # nothing exceeds 1
    left_to_right = dict(gen_length=8, steps=8, block_length=1, cache="dual", threshold=0.5)
    assert not load_config(SamplerSettings, None, left_to_right).approximate  # one step per block: exact
    assert load_config(SamplerSettings, None, {"threshold": 0.9}).describe() == {
        "steps": 128,
        "block_length": 32,
        "remasking": "low_confidence",
        "threshold": 0.9,
    }
