"""The hardened fallback for assert tests the parsed path cannot express (loops, helper code).

The program still runs in the same process as the tests, so the fallback hardens that process
instead of keeping expected values out of it (see :mod:`~trafl.rewards.code.child_runtime`):

* the tests are not in the program's script: the grader writes them to the program's stdin only
  after the program's top level, the setup and the harness checks have finished (``ready``);
* every comparison in an ``assert`` is rewritten into ``__trafl_compare(op, a, b)`` and the
  assert's condition into ``__trafl_truth(x)``, which first copy both sides into exact builtins
  (:mod:`~trafl.rewards.code.plain` types; anything else fails), so a custom ``__eq__`` or
  ``__bool__`` is never called;
* the tests run with the builtins as they were before the program ran, and ``import math`` (and
  the other :data:`SNAPSHOT_MODULES`) binds a snapshot of the module taken before the program ran;
* results carry a per-run random nonce that the program never sees.

Limits: a test that loops over what the program returns (``for x in f(y): assert ...``) is still
driven by the program's iterator; deep monkeypatching of a module's internals (``re._compile``)
is not undone.
"""

from __future__ import annotations

import ast

SNAPSHOT_MODULES = (
    "math",
    "cmath",
    "re",
    "string",
    "itertools",
    "functools",
    "heapq",
    "collections",
    "random",
    "operator",
    "statistics",
    "bisect",
)
_OPS = {
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
    ast.In: "in",
    ast.NotIn: "not in",
    ast.Is: "is",
    ast.IsNot: "is not",
}


def _call(name: str, *args: ast.expr) -> ast.Call:
    return ast.Call(ast.Name(name, ast.Load()), list(args), [])


class _Compares(ast.NodeTransformer):
    """``a == b < c`` -> ``__trafl_compare('==', a, b) and __trafl_compare('<', b, c)`` (the middle
    operand evaluated twice only in chained comparisons, which tests rarely use)."""

    def visit_Compare(self, node: ast.Compare) -> ast.expr:
        self.generic_visit(node)
        operands = [node.left, *node.comparators]
        parts = [
            _call("__trafl_compare", ast.Constant(_OPS[type(op)]), operands[i], operands[i + 1])
            for i, op in enumerate(node.ops)
        ]
        return parts[0] if len(parts) == 1 else ast.BoolOp(ast.And(), parts)


class _Rewrite(ast.NodeTransformer):
    def visit_Assert(self, node: ast.Assert) -> ast.Assert:
        test = _Compares().visit(node.test)
        return ast.copy_location(ast.Assert(_call("__trafl_truth", test), node.msg), node)

    def visit_Import(self, node: ast.Import) -> ast.stmt | list[ast.stmt]:
        if not any(a.name in SNAPSHOT_MODULES for a in node.names):
            return node
        out: list[ast.stmt] = []
        for alias in node.names:
            if alias.name in SNAPSHOT_MODULES:
                target = alias.asname or alias.name
                out.append(
                    ast.Assign([ast.Name(target, ast.Store())], _call("__trafl_module", ast.Constant(alias.name)))
                )
            else:
                out.append(ast.Import([alias]))
        return out

    def visit_ImportFrom(self, node: ast.ImportFrom) -> ast.stmt | list[ast.stmt]:
        if node.level or node.module not in SNAPSHOT_MODULES or any(a.name == "*" for a in node.names):
            return node
        module = _call("__trafl_module", ast.Constant(node.module))
        return [
            ast.Assign([ast.Name(a.asname or a.name, ast.Store())], ast.Attribute(module, a.name, ast.Load()))
            for a in node.names
        ]


def rewrite_test(snippet: str) -> str:
    """The snippet with type-checked comparisons and snapshot imports (unchanged if it does not parse:
    it then fails in the sandbox with its syntax error, as before)."""
    try:
        tree = ast.parse(snippet)
    except SyntaxError:
        return snippet
    tree = _Rewrite().visit(tree)
    return ast.unparse(ast.fix_missing_locations(tree))


def snapshot_modules(snippets: tuple[str, ...]) -> list[str]:
    """The :data:`SNAPSHOT_MODULES` the snippets import (the sandbox snapshots only those)."""
    used: set[str] = set()
    for snippet in snippets:
        try:
            tree = ast.parse(snippet)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                used.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and not node.level:
                used.add(node.module or "")
    return sorted(used & set(SNAPSHOT_MODULES))
