"""The import picture of DESIGN.md section 7, checked on the source: every package of ``trafl``
imports only packages on a lower floor (no upward import, hence no cycle between packages).
Imports inside functions count too; only ``python -m`` entry points (``__main__.py`` and
``if __name__ == "__main__":`` blocks, which call the command line) are exempt."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src" / "trafl"

#: Floors, bottom up. Models know nothing of RL; objectives know nothing of datasets; the trainers
#: wire them; the study runs trainers and the evaluator; the command line dispatches to all.
#: ``testing`` holds the toy task and tiny model builders the tests and benchmarks share.
FLOORS: list[tuple[str, ...]] = [
    ("errors",),
    ("utils",),
    ("models", "rewards"),
    ("sampling", "likelihood", "tasks"),
    ("objectives", "eval", "testing"),
    ("train",),
    ("sft", "plan"),
    ("study",),
    ("demo", "cli"),
]
FLOOR = {package: level for level, packages in enumerate(FLOORS) for package in packages}


def _package(path: Path) -> str:
    rel = path.relative_to(SRC)
    return rel.parts[0].removesuffix(".py") if rel.parts[0] != "__init__.py" else "trafl"


def _is_main_block(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return (
        isinstance(node, ast.If)
        and isinstance(test, ast.Compare)
        and isinstance(test.left, ast.Name)
        and test.left.id == "__name__"
    )


def _imported_packages(path: Path) -> set[str]:
    """The ``trafl`` packages ``path`` imports, wherever the import statement is."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if _is_main_block(node):
            return
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.ImportFrom) and node.level:
            raise AssertionError(f"{path}: relative import; the house uses absolute imports")
        for name in names:
            parts = name.split(".")
            if parts[0] == "trafl" and len(parts) > 1:
                found.add(parts[1])
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(), filename=str(path)))
    return found


SOURCES = sorted(p for p in SRC.rglob("*.py") if "assets" not in p.parts and p.name != "__main__.py")


def test_every_package_has_a_floor():
    packages = {_package(p) for p in SOURCES} - {"trafl"}
    assert packages <= set(FLOOR), f"packages without a floor in FLOORS: {sorted(packages - set(FLOOR))}"


def test_no_upward_import():
    upward = []
    for path in SOURCES:
        me = _package(path)
        if me not in FLOOR:  # the package's own __init__; a package without a floor fails the test above
            continue
        for dep in sorted(_imported_packages(path)):
            if dep != me and dep in FLOOR and FLOOR[dep] >= FLOOR[me]:
                upward.append(
                    f"{path.relative_to(SRC.parent)} ({me}, floor {FLOOR[me]}) imports {dep} (floor {FLOOR[dep]})"
                )
    assert not upward, "upward imports (move the shared code down, or the import up):\n" + "\n".join(upward)


def test_the_check_sees_an_upward_import(tmp_path):
    """The checker itself: an import inside a function is found, a __main__ block is exempt."""
    probe = tmp_path / "probe.py"
    probe.write_text(
        "import trafl.utils.io\n"
        "def f():\n    from trafl.train.trainer import run_train\n"
        "if __name__ == '__main__':\n    from trafl.cli import main\n"
    )
    assert _imported_packages(probe) == {"utils", "train"}
