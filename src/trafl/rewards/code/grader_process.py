"""The trusted grader process: runs the tests with the real builtins, the program only behind proxies.

Started by :mod:`~trafl.rewards.code.isolated` as its own subprocess (so a buggy test can exhaust
only this process's time and memory limits, never the process that computes rewards). It reads
its configuration as JSON on stdin, then:

1. waits for the program's *hello* (the sandboxed :mod:`~trafl.rewards.code.program_server` has
   imported the candidate, or says why it could not);
2. runs the preamble, binds the program's entry points to proxies (:class:`EntryPoint`), imports
   the standard-library modules the tests use without importing them, runs the setup, then each
   test snippet in that one namespace; every other name resolves here, in this process, whatever
   the program defines;
3. reports ``ready`` and one ``test`` frame per snippet on its report descriptor.

A call through a proxy sends the arguments as tagged plain data (copies: the program cannot touch
the test's objects) and gets back plain data or a handle (:class:`Handle`) for an instance of a
class the tests construct, so comparisons always run here, on builtins. A call whose result is
not plain data, or any fault on the channel, raises :class:`ProgramFailed` and marks the snippet
failed even if the test catches it. An exception the program raised comes back as the builtin
exception of that name (``ValueError`` for ``pytest.raises(ValueError)``), or
:class:`ProgramError`.

A call used as a statement (``sort_in_place(arr)``) is a call for its effect: the arguments come
back after the call and are written into the test's own lists, dicts and sets. A call used inside
an expression (``assert f(arr) == sorted(arr)``) never changes the test's objects.
"""

from __future__ import annotations

import ast
import builtins
import importlib
import json
import sys
import traceback
from typing import TYPE_CHECKING, Any

from trafl.rewards.code.plain import to_wire
from trafl.rewards.code.wire import ProtocolError, read_reply, write_frame

if TYPE_CHECKING:
    from collections.abc import Iterator

EFFECT = "__trafl_effect__"


class ProgramFailed(BaseException):
    """A call to the program failed (channel fault, non-plain result, program gone). A
    ``BaseException`` so that ``except Exception`` in a test does not hide it; the snippet fails
    even if a bare ``except`` does."""


class ProgramError(Exception):
    """The program raised an exception that is not a builtin one (its own class)."""


class Channel:
    """The grader's end of the channel to one program: numbered requests, validated replies."""

    def __init__(self, write_fd: int, read_fd: int) -> None:
        self.write_fd, self.read_fd = write_fd, read_fd
        self.next_id = 1
        self.failures = 0  # calls that failed: a snippet with a new failure fails
        self.dead = ""  # why the channel is unusable, once it is
        self.handles: dict[int, Handle] = {}

    def handle(self, number: int) -> Handle:
        if number not in self.handles:
            self.handles[number] = Handle(self, number)
        return self.handles[number]

    def fail(self, why: str) -> ProgramFailed:
        self.failures += 1
        return ProgramFailed(why)

    def hello(self) -> str:
        """Empty when the program loaded, else why it did not."""
        try:
            reply = read_reply(self.read_fd, 0, self.handle)
        except ProtocolError as exc:
            self.dead = str(exc)
            return self.dead
        if not reply.ok:
            self.dead = f"the program did not load: {reply.error}: {reply.message}"
        return self.dead

    def request(self, message: dict) -> Any:
        if self.dead:
            raise self.fail(self.dead)
        message["id"] = self.next_id
        self.next_id += 1
        try:
            write_frame(self.write_fd, message)
            reply = read_reply(self.read_fd, message["id"], self.handle)
        except ProtocolError as exc:
            self.dead = f"channel: {exc}"
            raise self.fail(self.dead) from None
        if reply.ok:
            return reply
        if reply.error.startswith("_trafl"):
            raise self.fail(f"{reply.error}: {reply.message}")
        raise program_exception(reply.error, reply.message)

    def ref(self, value: Any) -> dict | None:
        if isinstance(value, Handle) and value._channel is self:
            return {"#": "h", "v": value._number}
        if isinstance(value, EntryPoint) and value._channel is self:
            return {"#": "n", "v": value._name}
        return None

    def call(self, target: dict, attr: str | None, args: tuple, kwargs: dict, back: bool = False) -> Any:
        try:
            wire_args = [to_wire(a, self.ref) for a in args]
            wire_kwargs = [[k, to_wire(v, self.ref)] for k, v in kwargs.items()]
        except (TypeError, RecursionError) as exc:
            raise self.fail(f"argument cannot cross to the program: {exc}") from None
        message = {"op": "call", "target": target, "attr": attr, "args": wire_args, "kwargs": wire_kwargs}
        if back:
            message["back"] = True
        reply = self.request(message)
        if back and reply.args is not None:
            write_back([*args, *kwargs.values()], reply.args)
        return reply.value

    def get(self, target: dict, attr: str) -> Any:
        value = self.request({"op": "get", "target": target, "attr": attr}).value
        if type(value) is not list or len(value) != 2 or value[0] not in ("callable", "value"):
            self.dead = "channel: malformed attribute reply"
            raise self.fail(self.dead)
        return Member(self, target, attr) if value[0] == "callable" else value[1]

    def set(self, handle: int, attr: str, value: Any) -> None:
        try:
            wire = to_wire(value, self.ref)
        except (TypeError, RecursionError) as exc:
            raise self.fail(f"attribute value cannot cross to the program: {exc}") from None
        self.request({"op": "set", "target": {"handle": handle}, "attr": attr, "value": wire})


def program_exception(name: str, message: str) -> Exception:
    """The exception to raise here for one the program raised: the builtin of that name, if any
    (not the iteration-ending ones)."""
    cls = getattr(builtins, name, None)
    # StopIteration would end the test's loop over results early (a map or zip driven by the
    # program's calls), as if every remaining check had passed: it becomes a ProgramError.
    if (
        isinstance(cls, type)
        and issubclass(cls, Exception)
        and not issubclass(cls, (StopIteration, StopAsyncIteration))
    ):
        try:
            return cls(message)
        except Exception:  # noqa: BLE001 - builtins whose constructor wants more arguments
            pass
    return ProgramError(f"{name}: {message}")


def write_back(originals: list, after: list) -> None:
    """Copy the arguments as the program left them into the test's own containers (same types only)."""
    for orig, new in zip(originals, after):
        if type(orig) is list and type(new) is list:
            orig[:] = new
        elif (type(orig) is dict and type(new) is dict) or (type(orig) is set and type(new) is set):
            orig.clear()
            orig.update(new)


class EntryPoint:
    """A name the program defines (a function or class), called by name in the sandbox."""

    __slots__ = ("_channel", "_name")

    def __init__(self, channel: Channel, name: str) -> None:
        self._channel, self._name = channel, name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._channel.call({"name": self._name}, None, args, kwargs)

    def __getattr__(self, attr: str) -> Any:  # static methods, class attributes
        if attr.startswith("__"):
            raise AttributeError(attr)
        return self._channel.get({"name": self._name}, attr)

    def __repr__(self) -> str:
        return f"<program entry point {self._name}>"


class Handle:
    """An object that lives in the sandbox (an instance of a class the tests construct)."""

    __slots__ = ("_channel", "_number")

    def __init__(self, channel: Channel, number: int) -> None:
        object.__setattr__(self, "_channel", channel)
        object.__setattr__(self, "_number", number)

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__"):
            raise AttributeError(attr)
        return self._channel.get({"handle": self._number}, attr)

    def __setattr__(self, attr: str, value: Any) -> None:
        self._channel.set(self._number, attr, value)

    def __repr__(self) -> str:
        return f"<program object #{self._number}>"


class Member:
    """A callable attribute of an entry point or handle (a method): calling it is one request."""

    __slots__ = ("_channel", "_target", "_attr")

    def __init__(self, channel: Channel, target: dict, attr: str) -> None:
        self._channel, self._target, self._attr = channel, target, attr

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._channel.call(self._target, self._attr, args, kwargs)

    def __repr__(self) -> str:
        return f"<program method {self._attr}>"


def effect(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """A call used as a statement: through a proxy, the arguments come back after the call."""
    if isinstance(fn, EntryPoint):
        return fn._channel.call({"name": fn._name}, None, args, kwargs, back=True)
    if isinstance(fn, Member):
        return fn._channel.call(fn._target, fn._attr, args, kwargs, back=True)
    return fn(*args, **kwargs)


class _Effects(ast.NodeTransformer):
    def visit_Expr(self, node: ast.Expr) -> ast.AST:
        self.generic_visit(node)
        call = node.value
        if isinstance(call, ast.Call):
            node.value = ast.Call(ast.Name(EFFECT, ast.Load()), [call.func, *call.args], call.keywords)
        return node


def compile_snippet(source: str, name: str):
    """The snippet compiled with its statement-level calls routed through :func:`effect`."""
    tree = _Effects().visit(ast.parse(source, name))
    return compile(ast.fix_missing_locations(tree), name, "exec")


def _trees(sources: list[str]) -> Iterator[ast.AST]:
    """The parse tree of each source that parses (one that does not contributes nothing)."""
    for source in sources:
        try:
            yield ast.parse(source)
        except (SyntaxError, ValueError):
            continue


def free_names(sources: list[str]) -> list[str]:
    """Names the sources read but never bind (anywhere, in any scope) and that are not builtins:
    what the tests need from outside themselves. Sorted; sources that do not parse contribute none."""
    loaded: set[str] = set()
    bound: set[str] = set()
    for tree in _trees(sources):
        for node in ast.walk(tree):
            if isinstance(node, ast.Name):
                (loaded if isinstance(node.ctx, ast.Load) else bound).add(node.id)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                bound.add(node.name)
            elif isinstance(node, ast.arg):
                bound.add(node.arg)
            elif isinstance(node, ast.alias):
                bound.add((node.asname or node.name).split(".")[0])
            elif isinstance(node, ast.ExceptHandler) and node.name:
                bound.add(node.name)
            elif isinstance(node, (ast.Global, ast.Nonlocal)):
                bound.update(node.names)
    return sorted(n for n in loaded - bound if not hasattr(builtins, n))


def called_names(sources: list[str]) -> set[str]:
    """Names called directly (``f(...)``) somewhere in the sources: functions, not modules."""
    return {
        n.func.id
        for tree in _trees(sources)
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
    }


def run(config: dict, report_fd: int) -> None:
    """Grade one program: see the module docstring. Every outcome goes out as a report frame."""
    channel = Channel(config["request_fd"], config["reply_fd"])
    why = channel.hello()
    if why:
        write_frame(report_fd, {"event": "load_error", "message": why[:2000]})
        return
    namespace: dict[str, Any] = {"__name__": "__trafl_tests__", "__builtins__": builtins, EFFECT: effect}
    try:
        exec(compile(config["preamble"], "<preamble>", "exec"), namespace)  # noqa: S102 - trusted test code
    except Exception:  # noqa: BLE001 - the program's preamble (typing imports): the tests may not need it
        pass
    tests: list[str] = config["tests"]
    sources = [config["setup"], *tests]
    declared = config.get("entry_points")
    stdlib = getattr(sys, "stdlib_module_names", frozenset())
    called = called_names(sources)
    for name in free_names(sources):
        if name in namespace:
            continue
        if declared is not None and name in declared:
            namespace[name] = EntryPoint(channel, name)
        elif name in stdlib and name not in called:
            try:  # a module the tests use without importing it (math.isclose in MBPP)
                namespace[name] = importlib.import_module(name)
            except ImportError:
                pass
        elif declared is None:
            namespace[name] = EntryPoint(channel, name)
    for name in declared or ():
        namespace[name] = EntryPoint(channel, name)
    before = channel.failures
    try:
        exec(compile_snippet(config["setup"], "<setup>"), namespace)  # noqa: S102 - trusted test code
    except BaseException:  # noqa: BLE001 - a failed setup fails every test
        write_frame(report_fd, {"event": "setup_error", "message": _why()})
        return
    if channel.failures != before:
        write_frame(report_fd, {"event": "setup_error", "message": "a call in the setup failed"})
        return
    write_frame(report_fd, {"event": "ready"})
    for i, source in enumerate(tests):
        before = channel.failures
        why = ""
        try:
            exec(compile_snippet(source, f"<test {i}>"), namespace)  # noqa: S102 - trusted test code
            ok = True
        except BaseException:  # noqa: BLE001 - any exception fails the snippet, SystemExit included
            ok, why = False, _why()
        if channel.failures != before:
            ok, why = False, why or "a call to the program failed (caught by the test)"
        write_frame(report_fd, {"event": "test", "i": i, "ok": ok, "why": why[:2000]})


def _why() -> str:
    kind, exc, _tb = sys.exc_info()
    name = kind.__name__ if kind else "error"
    return f"{name}: {exc}"[:2000] if str(exc) else name


def main() -> None:
    """Entry point of the grader subprocess: configuration on stdin, report on ``report_fd``."""
    config = json.loads(sys.stdin.buffer.read().decode("utf-8"))
    report_fd = config["report_fd"]
    try:
        run(config, report_fd)
    except ProtocolError:
        pass  # the reward process stopped listening
    except BaseException:  # noqa: BLE001 - report a grader bug instead of dying silently
        traceback.print_exc()
        raise


__all__ = ["Channel", "EntryPoint", "Handle", "Member", "ProgramError", "ProgramFailed", "free_names", "main", "run"]
