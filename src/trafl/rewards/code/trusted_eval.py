"""A restricted evaluator for test expressions in the trusted grader (never ``eval``).

It evaluates the parts of a test that stay outside the sandbox: expected values (literals,
negative numbers, simple arithmetic, ``float('inf')``, ``set([...])``, ``math.pi``) and the
comparison around the program's results, which arrive as decoded plain data and are bound to
names. Only the node types and the functions in :data:`FUNCTIONS` / :data:`MATH_FUNCTIONS` are
allowed; anything else raises :class:`Unsupported`. Operations whose cost a program's result could
blow up (``**``, ``<<``, repetition ``*``) are bounded.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable, Mapping
from typing import Any


class Unsupported(ValueError):
    """The expression uses something the trusted evaluator does not allow."""


FUNCTIONS: dict[str, Callable] = {
    "abs": abs,
    "round": round,
    "len": len,
    "set": set,
    "frozenset": frozenset,
    "sorted": sorted,
    "list": list,
    "tuple": tuple,
    "dict": dict,
    "min": min,
    "max": max,
    "sum": sum,
    "bool": bool,
    "int": int,
    "float": float,
    "str": str,
    "all": all,
    "any": any,
    "complex": complex,
}
MATH_FUNCTIONS: dict[str, Callable] = {
    "isclose": math.isclose,
    "fabs": math.fabs,
    "sqrt": math.sqrt,
    "floor": math.floor,
    "ceil": math.ceil,
}
MATH_CONSTANTS = {"pi": math.pi, "e": math.e, "inf": math.inf, "nan": math.nan, "tau": math.tau}
NAMES = {"True": True, "False": False, "None": None}

_BINOPS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
    ast.LShift: operator.lshift,
    ast.RShift: operator.rshift,
    ast.BitOr: operator.or_,
    ast.BitAnd: operator.and_,
    ast.BitXor: operator.xor,
}
_UNARY = {ast.USub: operator.neg, ast.UAdd: operator.pos, ast.Not: operator.not_, ast.Invert: operator.invert}
_COMPARE = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.Is: operator.is_,
    ast.IsNot: operator.is_not,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
}
MAX_SIZE = 10**7  # longest sequence / widest int a bounded operation may build


def trusted_function(func: ast.expr, shadowed: frozenset[str] = frozenset()) -> Callable | None:
    """The grader's own function a call node names (``abs``, ``math.isclose``), else None; names in
    ``shadowed`` (defined by the program, e.g. an MBPP solution called ``sum``) are not trusted."""
    if isinstance(func, ast.Name) and func.id in FUNCTIONS and func.id not in shadowed:
        return FUNCTIONS[func.id]
    if (
        isinstance(func, ast.Attribute)
        and isinstance(func.value, ast.Name)
        and func.value.id == "math"
        and "math" not in shadowed
    ):
        return MATH_FUNCTIONS.get(func.attr)
    return None


def _bounded_binop(op: type, a: Any, b: Any) -> Any:
    if (
        op is ast.Pow
        and isinstance(a, int)
        and isinstance(b, int)
        and abs(b) > 1
        and abs(b) * max(1, abs(a).bit_length()) > MAX_SIZE
    ):
        raise Unsupported("power too large to evaluate in the grader")
    if op is ast.LShift and isinstance(b, int) and b > MAX_SIZE:
        raise Unsupported("shift too large to evaluate in the grader")
    if op is ast.Mult:
        for seq, n in ((a, b), (b, a)):
            if isinstance(seq, (str, bytes, list, tuple)) and isinstance(n, int) and len(seq) * n > MAX_SIZE:
                raise Unsupported("repetition too large to evaluate in the grader")
    return _BINOPS[op](a, b)


def evaluate(node: ast.AST, env: Mapping[str, Any] | None = None, shadowed: frozenset[str] = frozenset()) -> Any:
    """The value of ``node`` with names bound by ``env``; :class:`Unsupported` for disallowed syntax."""
    env = env or {}
    ev = lambda n: evaluate(n, env, shadowed)  # noqa: E731
    if isinstance(node, ast.Expression):
        return ev(node.body)
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        if node.id in env:
            return env[node.id]
        if node.id in NAMES:
            return NAMES[node.id]
        raise Unsupported(f"name {node.id!r}")
    if (
        isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "math"
        and node.attr in MATH_CONSTANTS
    ):
        return MATH_CONSTANTS[node.attr]
    if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
        if any(isinstance(e, ast.Starred) for e in node.elts):
            raise Unsupported("starred element")
        items = [ev(e) for e in node.elts]
        return {ast.List: list, ast.Tuple: tuple, ast.Set: set}[type(node)](items)
    if isinstance(node, ast.Dict):
        if any(k is None for k in node.keys):
            raise Unsupported("dict unpacking")
        return {ev(k): ev(v) for k, v in zip(node.keys, node.values)}
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](ev(node.operand))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        return _bounded_binop(type(node.op), ev(node.left), ev(node.right))
    if isinstance(node, ast.BoolOp):
        value = None
        for operand in node.values:
            value = ev(operand)
            if isinstance(node.op, ast.And) and not value or isinstance(node.op, ast.Or) and value:
                return value
        return value
    if isinstance(node, ast.Compare):
        left = ev(node.left)
        for op, right_node in zip(node.ops, node.comparators):
            right = ev(right_node)
            if not _COMPARE[type(op)](left, right):
                return False
            left = right
        return True
    if isinstance(node, ast.IfExp):
        return ev(node.body) if ev(node.test) else ev(node.orelse)
    if isinstance(node, ast.Call):
        func = trusted_function(node.func, shadowed)
        if (
            func is None
            or any(isinstance(a, ast.Starred) for a in node.args)
            or any(k.arg is None for k in node.keywords)
        ):
            raise Unsupported(f"call of {ast.unparse(node.func)!r}")
        return func(*[ev(a) for a in node.args], **{k.arg: ev(k.value) for k in node.keywords})
    raise Unsupported(f"{type(node).__name__} expression")


def is_constant(node: ast.AST, env: Mapping[str, Any] | None = None, shadowed: frozenset[str] = frozenset()) -> bool:
    """Whether ``node`` evaluates in the grader with no program result (an expected value)."""
    try:
        evaluate(node, env, shadowed)
    except Exception:  # noqa: BLE001 - any failure means "not a constant the grader can compute"
        return False
    return True
