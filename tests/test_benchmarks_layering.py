"""benchmarks/ needs nothing from tests/: a benchmark runs from a checkout without the suite's helpers
on its path (the toys both use live in :mod:`trafl.testing`). Tests may import benchmark code to test it."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def imported_modules(path: Path) -> set[str]:
    """Top-level names of every module ``path`` imports (absolute imports only)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


def test_benchmarks_import_nothing_from_tests():
    suite = {p.stem for p in (REPO / "tests").glob("*.py")} | {"tests"}
    found = {
        str(p.relative_to(REPO)): sorted(imported_modules(p) & suite)
        for p in sorted((REPO / "benchmarks").glob("*.py"))
    }
    assert not {k: v for k, v in found.items() if v}, "benchmarks import from tests/"
    on_path = [str(p.relative_to(REPO)) for p in (REPO / "benchmarks").glob("*.py") if '/ "tests"' in p.read_text()]
    assert not on_path, f"benchmarks put tests/ on a path: {on_path}"


def test_the_toy_task_is_found_by_its_package_name():
    from trafl.tasks import get_task
    from trafl.testing import DigitTask

    assert isinstance(get_task("trafl.testing:DigitTask"), DigitTask)
