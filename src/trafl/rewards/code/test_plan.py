"""Splitting assert-style tests into calls computed inside the sandbox and checks done outside.

``assert f(2) == 4`` becomes the *hole* ``f(2)`` (its source is all the sandbox receives) and the
*check* ``__hole_0 == 4``, evaluated by :mod:`~trafl.rewards.code.trusted_eval` in the grader on
the decoded result. A test expression is walked from the top:

* comparisons, ``and``/``or``/``not`` are always split (their operands are holes or constants), so
  a program's object never decides a comparison;
* a constant subexpression (the expected value: literals, ``float('inf')``, arithmetic) stays in
  the grader;
* arithmetic, containers and the grader's trusted functions (``abs``, ``round``, ``set``,
  ``sorted``, ``math.isclose``, ...) are split when one operand is a constant or contains a
  comparison (``abs(f(x) - 3.14) < 1e-6``: hole ``f(x)``), otherwise computed inside as one hole
  (``set(f(x))``, so generators returned by the program are consumed in the sandbox);
* anything else (a call of a program function, a subscript, a name from the setup code) is a hole.

A hole that would contain a comparison is not allowed (that comparison would run inside). Test
snippets may also hold imports, docstrings, constant assignments (HumanEval's ``METADATA``) and a
HumanEval-style ``def check(candidate): <asserts>`` called as ``check(f)``. Any other statement
(loops, helper variables, helper functions) makes the whole test set use the hardened fallback
(:mod:`~trafl.rewards.code.fallback`); :func:`plan_tests` says why.
"""

from __future__ import annotations

import ast
import functools
from dataclasses import dataclass
from typing import Any

from trafl.rewards.code.trusted_eval import evaluate, is_constant, trusted_function

HOLE_PREFIX = "__trafl_hole_"
_SPLIT_ALWAYS = (ast.Compare, ast.BoolOp)
_SPLIT_IF_MIXED = (ast.BinOp, ast.UnaryOp, ast.List, ast.Tuple, ast.Set, ast.Dict, ast.IfExp)


@dataclass(frozen=True)
class Plan:
    """Holes (expression sources run in the sandbox, in order), each snippet's checks (expressions
    over ``__trafl_hole_<k>`` names and constants) and the tests' import statements."""

    holes: tuple[str, ...]
    checks: tuple[tuple[ast.expr, ...], ...]
    imports: tuple[str, ...]
    constants: tuple[tuple[str, Any], ...] = ()
    shadowed: frozenset[str] = frozenset()


class NotParsable(ValueError):
    """A test the parsed path cannot express; the message says which statement and why."""


def _contains_compare(node: ast.AST) -> bool:
    return any(
        isinstance(n, (ast.Compare, ast.BoolOp)) or isinstance(n, ast.UnaryOp) and isinstance(n.op, ast.Not)
        for n in ast.walk(node)
    )


class _Splitter:
    def __init__(self, constants: dict[str, Any], shadowed: frozenset[str]) -> None:
        self.constants = constants
        self.shadowed = shadowed
        self.holes: list[str] = []

    def _constant(self, node: ast.expr) -> bool:
        return is_constant(node, self.constants, self.shadowed)

    def _children(self, node: ast.expr) -> list[ast.expr]:
        if isinstance(node, ast.Call):
            return [*node.args, *(k.value for k in node.keywords)]
        return [c for c in ast.iter_child_nodes(node) if isinstance(c, ast.expr)]

    def _must_split(self, node: ast.expr) -> bool:
        if isinstance(node, _SPLIT_ALWAYS) or isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            return True
        splittable = isinstance(node, _SPLIT_IF_MIXED) or (
            isinstance(node, ast.Call)
            and trusted_function(node.func, self.shadowed) is not None
            and not any(isinstance(a, ast.Starred) for a in node.args)
            and all(k.arg for k in node.keywords)
        )
        if not splittable:
            return False
        return any(self._constant(c) or self._must_split(c) for c in self._children(node))

    def split(self, node: ast.expr) -> ast.expr:
        """``node`` with every hole replaced by a ``__trafl_hole_<k>`` name."""
        if self._constant(node):
            return node
        if self._must_split(node):
            if isinstance(node, ast.Call):
                return ast.Call(
                    node.func,
                    [self.split(a) for a in node.args],
                    [ast.keyword(k.arg, self.split(k.value)) for k in node.keywords],
                )
            return _MapChildren(self.split).visit(node)
        if _contains_compare(node):
            raise NotParsable(f"a comparison inside a computed expression: {ast.unparse(node)[:120]}")
        name = f"{HOLE_PREFIX}{len(self.holes)}"
        self.holes.append(ast.unparse(node))
        return ast.Name(name, ast.Load())


class _MapChildren(ast.NodeTransformer):
    """Applies ``fn`` to the direct expression children of the visited node only."""

    def __init__(self, fn) -> None:
        self.fn = fn
        self.root: ast.AST | None = None

    def visit(self, node: ast.AST) -> Any:
        if self.root is None:
            self.root = node
            return self.generic_visit(node)
        return self.fn(node) if isinstance(node, ast.expr) else self.generic_visit(node)


class _Rename(ast.NodeTransformer):
    def __init__(self, old: str, new: str) -> None:
        self.old, self.new = old, new

    def visit_Name(self, node: ast.Name) -> ast.Name:
        return ast.Name(self.new, node.ctx) if node.id == self.old else node


def _statements(body: list[ast.stmt], constants: dict[str, Any], imports: list[str], where: str) -> list[ast.expr]:
    """The assert expressions of a block of statements (HumanEval ``check`` functions inlined)."""
    asserts: list[ast.expr] = []
    functions: dict[str, ast.FunctionDef] = {}
    for stmt in body:
        if isinstance(stmt, ast.Assert):
            asserts.append(stmt.test)
        elif isinstance(stmt, (ast.Import, ast.ImportFrom)):
            imports.append(ast.unparse(stmt))
        elif isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
            continue  # docstring
        elif isinstance(stmt, ast.Pass):
            continue
        elif isinstance(stmt, ast.Expr) and (
            isinstance(stmt.value, ast.Name)
            and stmt.value.id == "print"
            or isinstance(stmt.value, ast.Call)
            and isinstance(stmt.value.func, ast.Name)
            and stmt.value.func.id == "print"
        ):
            continue  # debugging output of the test itself (a bare `print` in HumanEval/129): nothing to check
        elif (
            isinstance(stmt, ast.Assign)
            and all(isinstance(t, ast.Name) for t in stmt.targets)
            and is_constant(stmt.value, constants)
        ):
            value = evaluate(stmt.value, constants)
            constants.update({t.id: value for t in stmt.targets})
        elif (
            isinstance(stmt, ast.FunctionDef)
            and not stmt.decorator_list
            and len(stmt.args.args) == 1
            and not (stmt.args.vararg or stmt.args.kwarg or stmt.args.kwonlyargs or stmt.args.posonlyargs)
        ):
            functions[stmt.name] = stmt
        elif (
            isinstance(stmt, ast.Expr)
            and isinstance(stmt.value, ast.Call)
            and isinstance(stmt.value.func, ast.Name)
            and stmt.value.func.id in functions
            and len(stmt.value.args) == 1
            and not stmt.value.keywords
            and isinstance(stmt.value.args[0], ast.Name)
        ):
            fn = functions[stmt.value.func.id]
            renamed = [_Rename(fn.args.args[0].arg, stmt.value.args[0].id).visit(s) for s in fn.body]
            asserts.extend(_statements(renamed, dict(constants), imports, f"{where} in {fn.name}()"))
        else:
            raise NotParsable(
                f"{where}: line {getattr(stmt, 'lineno', '?')}: "
                f"{type(stmt).__name__} statement ({ast.unparse(stmt).splitlines()[0][:80]})"
            )
    return asserts


def program_names(program: str) -> frozenset[str]:
    """Names the program binds at its top level (functions, classes, assignments, imports); the
    grader does not treat them as its own trusted functions. Empty if the program does not parse."""
    try:
        tree = ast.parse(program)
    except (SyntaxError, ValueError):
        return frozenset()
    names: set[str] = set()
    for stmt in tree.body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(stmt.name)
        elif isinstance(stmt, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in stmt.names)
        else:
            names.update(n.id for n in ast.walk(stmt) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store))
    return frozenset(names)


@functools.lru_cache(maxsize=4096)
def plan_tests(snippets: tuple[str, ...], shadowed: frozenset[str] = frozenset()) -> Plan:
    """The parsed form of a test set; :class:`NotParsable` when any snippet needs the fallback.
    ``shadowed``: names the program defines (see :func:`program_names`)."""
    holes: list[str] = []
    checks: list[tuple[ast.expr, ...]] = []
    imports: list[str] = []
    constants: dict[str, Any] = {}
    for index, snippet in enumerate(snippets):
        try:
            tree = ast.parse(snippet)
        except SyntaxError as exc:
            raise NotParsable(f"test {index}: syntax error ({exc.msg})") from exc
        local = dict(constants)
        asserts = _statements(tree.body, local, imports, f"test {index}")
        if not asserts:
            raise NotParsable(f"test {index}: no assert statement")
        splitter = _Splitter(local, shadowed)
        splitter.holes = holes
        checks.append(tuple(ast.fix_missing_locations(ast.Expression(splitter.split(a))) for a in asserts))
        constants.update({k: v for k, v in local.items()})
    return Plan(tuple(holes), tuple(checks), tuple(dict.fromkeys(imports)), tuple(constants.items()), shadowed)


def run_checks(plan: Plan, results: list[tuple[bool, Any] | None]) -> list[bool]:
    """Each snippet's outcome: every check is truthy on the decoded results (``(ok, value)`` per
    hole, None when the sandbox never reported it)."""
    constants = dict(plan.constants)
    outcomes = []
    for snippet_checks in plan.checks:
        ok = True
        for check in snippet_checks:
            env = dict(constants)
            try:
                for node in ast.walk(check):
                    if isinstance(node, ast.Name) and node.id.startswith(HOLE_PREFIX):
                        result = results[int(node.id[len(HOLE_PREFIX) :])]
                        if result is None or not result[0]:
                            raise LookupError("no result")
                        env[node.id] = result[1]
                ok = bool(evaluate(check, env, plan.shadowed))
            except Exception:  # noqa: BLE001 - a failing comparison (TypeError, ...) fails the test
                ok = False
            if not ok:
                break
        outcomes.append(ok)
    return outcomes
