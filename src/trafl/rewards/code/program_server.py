"""The server that runs *inside* the sandbox: it imports the candidate program and answers calls.

Not imported by the grader: :mod:`~trafl.rewards.code.isolated` reads this file's text and
appends one call ``serve(config)``; the result is the script the sandbox runs (stdlib only, as the
sandbox sees no project files). Nothing here is trusted: the program shares this process and may
change anything in it. That is fine by construction, because the grader trusts nothing it receives
(:mod:`~trafl.rewards.code.wire` validates every frame) and no test code, expected value or grader
object is ever in this process: only the arguments of calls, as copies.

What it does:

1. runs the preamble and the program as the module ``solution`` (a fresh namespace; ``__name__``
   is not ``"__main__"``, so a ``__main__`` block does not run), then sends the *hello* frame
   (``id`` 0: ok, or the exception that stopped the program);
2. answers request frames until the grader closes the channel. Requests (``op``):

   - ``call``: call ``target`` (an entry point by name, or a handle), or its attribute ``attr``,
     with the decoded arguments; reply with the result as plain data, or a handle when the result
     is an instance of a class the tests reached by name; ``back: true`` adds the arguments as they
     are after the call (for tests that check in-place mutation);
   - ``get``: an attribute of a target: ``["callable", null]`` or ``["value", <value>]``;
   - ``set``: set an attribute of a handle.

   An exception in the program is replied as ``{"ok": false, "error": <class name>, ...}``; a
   result that is not plain data as the error ``_trafl_not_plain``.
"""


def serve(config):  # noqa: C901 - one self-contained scope: the script must not import the project
    import collections
    import json
    import math
    import os
    import struct
    import sys
    import types

    read_fd, write_fd = config["read_fd"], config["write_fd"]
    header = struct.Struct(">I")

    def send(message):
        body = json.dumps(message, ensure_ascii=True, allow_nan=False).encode("ascii")
        data = header.pack(len(body)) + body
        while data:
            data = data[os.write(write_fd, data) :]

    def read_exact(n):
        out = b""
        while len(out) < n:
            chunk = os.read(read_fd, n - len(out))
            if not chunk:
                return None
            out += chunk
        return out

    def receive():
        head = read_exact(header.size)
        if head is None:
            return None
        body = read_exact(header.unpack(head)[0])
        return None if body is None else json.loads(body.decode("utf-8"))

    handles = {}  # handle number -> object
    numbers = {}  # id(object) -> handle number
    entry_classes = set()
    module = types.ModuleType("solution")
    module.__file__ = os.path.abspath("solution.py")
    sys.modules["solution"] = module

    class NotPlain(Exception):
        pass

    dict_like = (dict, collections.Counter, collections.OrderedDict, collections.defaultdict)

    def encode(v, depth=0):
        if depth > 150:
            raise NotPlain("nested too deeply")
        t = type(v)
        if v is None or t is bool or t is str:
            return v
        if t is int:
            return v if -(2**63) <= v < 2**63 else {"#": "i", "v": hex(v)}
        if t is float:
            if math.isfinite(v):
                return v
            return {"#": "f", "v": "nan" if v != v else ("inf" if v > 0 else "-inf")}
        if t is bytes:
            return {"#": "b", "v": v.hex()}
        if t is complex:
            return {"#": "c", "v": [encode(v.real, depth + 1), encode(v.imag, depth + 1)]}
        if t is list:
            return [encode(x, depth + 1) for x in v]
        if t is tuple:
            return {"#": "t", "v": [encode(x, depth + 1) for x in v]}
        if t is set:
            return {"#": "s", "v": [encode(x, depth + 1) for x in v]}
        if t is frozenset:
            return {"#": "fs", "v": [encode(x, depth + 1) for x in v]}
        if t in dict_like:
            return {"#": "d", "v": [[encode(k, depth + 1), encode(x, depth + 1)] for k, x in dict.items(v)]}
        if t is type and v in builtin_types.values() and builtin_types.get(v.__name__) is v:
            return {"#": "y", "v": v.__name__}
        if t in entry_classes:
            if id(v) not in numbers:
                numbers[id(v)] = len(handles)
                handles[len(handles)] = v
            return {"#": "h", "v": numbers[id(v)]}
        raise NotPlain(t.__name__)

    builtin_types = {
        t.__name__: t for t in (bool, int, float, complex, str, bytes, list, tuple, dict, set, frozenset, type(None))
    }
    floats = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}

    def untag(obj):
        tag, v = obj["#"], obj["v"]
        if tag == "t":
            return tuple(v)
        if tag == "s":
            return set(v)
        if tag == "fs":
            return frozenset(v)
        if tag == "d":
            return {k: x for k, x in v}
        if tag == "f":
            return floats[v]
        if tag == "i":
            return int(v, 16)
        if tag == "b":
            return bytes.fromhex(v)
        if tag == "c":
            return complex(v[0], v[1])
        if tag == "h":
            return handles[v]
        if tag == "n":
            return resolve_name(v)
        if tag == "y":
            return builtin_types[v]
        raise ValueError(tag)

    def decode(data):  # tags nest inside lists and dicts: rebuild bottom-up
        if type(data) is list:
            return [decode(x) for x in data]
        if type(data) is dict:
            inner = data["v"]
            if data["#"] in ("t", "s", "fs", "c"):
                inner = [decode(x) for x in inner]
            elif data["#"] == "d":
                inner = [(decode(k), decode(x)) for k, x in inner]
            return untag({"#": data["#"], "v": inner})
        return data

    def resolve_name(name):
        value = getattr(module, name)
        if isinstance(value, type):
            entry_classes.add(value)
        return value

    def target_of(request):
        ref = request["target"]
        obj = resolve_name(ref["name"]) if "name" in ref else handles[ref["handle"]]
        attr = request.get("attr")
        return obj if attr is None else getattr(obj, attr)

    def failure(rid, exc):
        try:
            text = str(exc)[:2000]
        except BaseException:  # noqa: BLE001 - a program's exception whose __str__ raises
            text = ""
        return {"id": rid, "ok": False, "error": type(exc).__name__, "message": text}

    def answer(request):
        rid, op = request["id"], request["op"]
        try:
            if op == "call":
                fn = target_of(request)
                args = decode(request["args"])
                kwargs = {k: decode(v) for k, v in request["kwargs"]}
                result = fn(*args, **kwargs)
                reply = {"id": rid, "ok": True, "value": encode(result)}
                if request.get("back"):
                    reply["args"] = [encode(a) for a in [*args, *kwargs.values()]]
                return reply
            if op == "get":
                value = target_of(request)
                if callable(value):
                    return {"id": rid, "ok": True, "value": ["callable", None]}
                return {"id": rid, "ok": True, "value": ["value", encode(value)]}
            if op == "set":
                setattr(handles[request["target"]["handle"]], request["attr"], decode(request["value"]))
                return {"id": rid, "ok": True, "value": None}
            return {"id": rid, "ok": False, "error": "_trafl_bad_request", "message": op}
        except NotPlain as exc:
            return {"id": rid, "ok": False, "error": "_trafl_not_plain", "message": str(exc)}
        except (RecursionError, MemoryError) as exc:
            return failure(rid, exc)
        except BaseException as exc:  # noqa: BLE001 - the program's exception, reported by name
            return failure(rid, exc)

    def main():
        try:
            namespace = module.__dict__
            exec(compile(config["preamble"], "preamble.py", "exec"), namespace)
            exec(compile(config["program"], "solution.py", "exec"), namespace)
        except BaseException as exc:  # noqa: BLE001 - the program did not load: say why, then stop
            send(failure(0, exc))
            return
        send({"id": 0, "ok": True, "value": None})
        while True:
            request = receive()
            if request is None:
                return
            reply = answer(request)
            try:
                send(reply)
            except (TypeError, ValueError, RecursionError):
                send({"id": reply["id"], "ok": False, "error": "_trafl_not_plain", "message": "unencodable"})

    # the main thread (signal handlers work); deep recursion in honest programs uses the large
    # stack the sandbox's RLIMIT_STACK allows
    sys.setrecursionlimit(20000)
    main()
    sys.stdout.flush()
    os._exit(0)
