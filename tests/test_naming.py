"""Product code is never named like a test: pytest collects ``Test*`` classes and ``test_*``
functions from a test module's namespace, so a product class imported into a test (as the code
grader's result once was) would be taken for a test, and a ``test_*`` module under src/ reads as one."""

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"


def test_no_product_module_class_or_function_is_named_like_a_test():
    offences = [str(p.relative_to(SRC)) for p in SRC.rglob("test_*.py")]
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
                offences.append(f"{path.relative_to(SRC)}:{node.lineno} class {node.name}")
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test_"):
                offences.append(f"{path.relative_to(SRC)}:{node.lineno} def {node.name}")
    assert offences == []
