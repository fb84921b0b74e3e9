"""Documentation stays in step with the code: every config field is documented, every command
in the README exists."""

import dataclasses
import re
from pathlib import Path

from trafl.cli import SUBCOMMANDS
from trafl.sft.config import SFTConfig
from trafl.train.config import TrainConfig

REPO = Path(__file__).resolve().parent.parent


def _documented_fields(doc: str) -> set[str]:
    return set(re.findall(r"^\| `([a-z_0-9]+)` \|", (REPO / "docs" / doc).read_text(), flags=re.M))


def test_every_train_field_is_documented():
    fields = {f.name for f in dataclasses.fields(TrainConfig) if not f.metadata.get("flatten")}
    assert fields <= _documented_fields("training.md")


def test_every_sft_field_is_documented():
    assert {f.name for f in dataclasses.fields(SFTConfig)} <= _documented_fields("sft.md")


def test_readme_commands_exist():
    readme = (REPO / "README.md").read_text()
    used = set(re.findall(r"^\s*trafl ([a-z]+)", readme, flags=re.M))
    assert used and used <= set(SUBCOMMANDS)
    assert 'pip install "torch==2.13.0" -e ".[dev]"' in readme
    assert "python -m pytest -q" in readme
    ci = (REPO / ".ci" / "run").read_text()
    assert 'pip install "torch==2.13.0" -e ".[dev]"' in ci and "python -m pytest -q" in ci
    lint = "ruff check . && ruff format --check . && mypy"
    assert lint in readme and lint in ci
