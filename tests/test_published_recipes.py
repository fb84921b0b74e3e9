"""docs/published-recipes.md stays in step with configs/paper/published/: every trafl value the page
writes as `` `field: value` `` is the loaded config's value, and every field a published file sets is
on the page (so a config that changes without the page fails here)."""

import re
from pathlib import Path

import pytest
import yaml

from trafl.train.config import TrainConfig
from trafl.utils.config import load_config

REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "docs" / "published-recipes.md"
PUBLISHED = REPO / "configs" / "paper" / "published"
SCOPES = {"[GSM8K]": "gsm8k", "[MATH]": "math"}
VERDICTS = ("match", "neutral", "**deviation**")
#: `field: value`, `objective.field: value` or `task_options.key: value` inside one code span
ASSIGNMENT = re.compile(r"`((?:objective\.|task_options\.)?[a-z_][a-z0-9_]*): ([^`]+)`")


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def doc_sections() -> dict[str, list[dict[str, str]]]:
    """Each ``## `` section whose heading names published files -> its table rows (column -> cell),
    keyed by the file stems the heading names."""
    sections: dict[str, list[dict[str, str]]] = {}
    rows: list[dict[str, str]] | None = None
    header: list[str] | None = None
    for line in DOC.read_text().splitlines():
        if line.startswith("## "):
            files = re.findall(r"`([a-z0-9_]+)\.yaml`", line)
            rows, header = ([], None) if files else (None, None)
            for stem in files:
                sections[stem] = rows  # the files of one heading share its rows
        elif rows is not None and line.startswith("|"):
            cells = _cells(line)
            if header is None:
                header = cells
            elif not set("".join(cells)) <= set("-: "):
                assert len(cells) == len(header), (
                    f"row of {len(cells)} cells under a {len(header)}-column header: {line}"
                )
                rows.append(dict(zip(header, cells)))
    return sections


def assignments(row: dict[str, str]) -> list[tuple[str, str]]:
    return ASSIGNMENT.findall(row["trafl"])


def applies(row: dict[str, str], stem: str) -> bool:
    for tag, task in SCOPES.items():
        if row["setting"].startswith(tag):
            return stem.endswith("_" + task)
    return True


def config_value(cfg: TrainConfig, field: str):
    if field.startswith("objective."):
        name = field.split(".", 1)[1]
        assert hasattr(cfg.objective, name), f"{field}: the method {cfg.method} has no option {name!r}"
        return getattr(cfg.objective, name)
    if field.startswith("task_options."):
        key = field.split(".", 1)[1]
        assert key in cfg.task_options, f"{field}: not in the config's task_options {cfg.task_options}"
        return cfg.task_options[key]
    assert hasattr(cfg, field), f"{field}: not a TrainConfig field"
    return getattr(cfg, field)


def same(written, actual) -> bool:
    if isinstance(actual, float) and not isinstance(actual, bool) and isinstance(written, (int, float, str)):
        try:
            return float(written) == actual
        except ValueError:
            return False
    return written == actual


def yaml_fields(path: Path) -> set[str]:
    raw = yaml.safe_load(path.read_text())
    fields = {k for k in raw if k != "task_options"}
    return fields | {f"task_options.{k}" for k in raw.get("task_options") or {}}


FILES = sorted(PUBLISHED.glob("*.yaml"))


def test_every_published_file_has_a_section():
    assert len(FILES) == 10  # ESPO, d1, JustGRPO, wd1, SPG x GSM8K, MATH
    assert {p.stem for p in FILES} == set(doc_sections())


def test_every_row_has_a_verdict():
    for stem, rows in doc_sections().items():
        assert rows, stem
        for row in rows:
            assert row["verdict"].startswith(VERDICTS), f"{stem}, row {row['#']}: verdict {row['verdict']!r}"


def mismatches(path: Path) -> tuple[list[str], int]:
    """The page's values for ``path`` that differ from the loaded config, and how many were checked."""
    cfg = load_config(TrainConfig, path)
    wrong, checked = [], 0
    for row in doc_sections()[path.stem]:
        if not applies(row, path.stem):
            continue
        for field, text in assignments(row):
            actual = config_value(cfg, field)
            if not same(yaml.safe_load(text), actual):
                wrong.append(f"row {row['#']} ({row['setting']}) says {field}: {text}; {path.name} loads {actual!r}")
            checked += 1
    return wrong, checked


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_written_values_are_the_configs(path):
    wrong, checked = mismatches(path)
    assert not wrong, "docs/published-recipes.md disagrees with the config:\n" + "\n".join(wrong)
    assert checked > 30


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_every_set_field_is_documented(path):
    written = {f for row in doc_sections()[path.stem] if applies(row, path.stem) for f, _ in assignments(row)}
    missing = yaml_fields(path) - written
    assert not missing, f"{path.name} sets {sorted(missing)}, absent from docs/published-recipes.md"


def test_a_changed_value_is_caught(tmp_path):
    """A file whose value moves without the page is caught (here: ESPO's learning rate, JustGRPO's MATH set)."""
    for name, old, new, field in (
        ("espo_gsm8k.yaml", "learning_rate: 3.0e-06", "learning_rate: 1.0e-06", "learning_rate"),
        ("justgrpo_math.yaml", "source: prm800k", "source: lighteval", "task_options.source"),
    ):
        text = (PUBLISHED / name).read_text()
        assert old in text
        changed = tmp_path / name
        changed.write_text(text.replace(old, new))
        wrong, _ = mismatches(changed)
        assert len(wrong) == 1 and f"says {field}:" in wrong[0], wrong
