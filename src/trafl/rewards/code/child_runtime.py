"""The harness that runs *inside* the sandbox (stdlib only; its source is embedded in each script).

Not imported by the grader: :mod:`~trafl.rewards.code.harness` reads this file's text and appends
one call ``__trafl_harness(config)``. Everything the harness needs (``type``, ``os.write``, ...)
is captured in local variables before the program runs, so a program that patches builtins or
modules cannot change how results are encoded or sent. The harness state lives in this function's
frame, never in the program's globals.

Modes (``config["mode"]``):

* ``"parsed"``: run preamble, program, setup and the tests' imports; write ``ready``; evaluate each
  hole expression and write ``<k> ok <plain-data JSON>`` or ``<k> err``. Expected values are not
  in this process at all.
* ``"fallback"``: as above up to ``ready`` (after refusing if the program left threads, child
  processes or a tracer behind), then read ``{"nonce", "tests"}`` from stdin, which the grader
  only writes after ``ready``; run each (rewritten) test snippet with pristine builtins and write
  ``<i> <0|1> <nonce>``. An audit hook blocks frame, gc and memory introspection, ctypes,
  ``/proc`` reads and process creation while the tests run.
"""


def __trafl_harness(cfg):  # noqa: C901 - one closed scope on purpose (see the module docstring)
    import builtins
    import collections
    import json
    import math
    import os
    import sys
    import types

    _type, _hex, _len, _bool = type, hex, len, bool
    _NoneType = type(None)
    _int, _float, _complex, _str = int, float, complex, str
    _list, _tuple, _set, _frozenset, _dict = list, tuple, set, frozenset, dict
    _dict_items = dict.items
    _Counter, _OrderedDict, _defaultdict = collections.Counter, collections.OrderedDict, collections.defaultdict
    _open, _SimpleNamespace, _vars, _import = open, types.SimpleNamespace, vars, __import__
    _compile, _exec, _eval = compile, exec, eval
    _write, _read, _listdir, _getpid, _getuid, _exit = os.write, os.read, os.listdir, os.getpid, os.getuid, os._exit
    _dumps = json.JSONEncoder(ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode
    _loads = json.JSONDecoder().decode
    _isfinite = math.isfinite
    _gettrace, _getprofile, _audit, _addaudithook = sys.gettrace, sys.getprofile, sys.audit, sys.addaudithook
    _pristine_builtins = _dict(builtins.__dict__)
    _inf = float("inf")
    _stderr_write = sys.stderr.write
    fd = int(os.environ.pop("TRAFL_SIDE_FD"))

    def send(text):
        data = text.encode("utf-8", "replace")
        while data:
            data = data[_write(fd, data) :]

    def canon(v, depth=0):
        """A fresh copy of ``v`` made of exact builtins only; TypeError for anything else."""
        if depth > 200:
            raise ValueError("result nested too deeply")
        t = _type(v)
        if t is _bool or t is _int or t is _str or t is bytes or t is _NoneType or t is _float or t is _complex:
            return v
        if t is _list:
            return [canon(x, depth + 1) for x in v]
        if t is _tuple:
            return _tuple([canon(x, depth + 1) for x in v])
        if t is _set or t is _frozenset:
            return t([canon(x, depth + 1) for x in v])
        if t is _dict or t is _Counter or t is _OrderedDict or t is _defaultdict:
            return {canon(k, depth + 1): canon(x, depth + 1) for k, x in _dict_items(v)}
        raise TypeError("not plain data")

    def tag(v):
        t = _type(v)
        if t is _int:
            return v if -(2**63) <= v < 2**63 else {"#": "i", "v": _hex(v)}
        if t is _float:
            if _isfinite(v):
                return v
            return {"#": "f", "v": "nan" if v != v else ("inf" if v == _inf else "-inf")}
        if t is bytes:
            return {"#": "b", "v": v.hex()}
        if t is _complex:
            return {"#": "c", "v": [tag(v.real), tag(v.imag)]}
        if t is _list:
            return [tag(x) for x in v]
        if t is _tuple:
            return {"#": "t", "v": [tag(x) for x in v]}
        if t is _set:
            return {"#": "s", "v": [tag(x) for x in v]}
        if t is _frozenset:
            return {"#": "fs", "v": [tag(x) for x in v]}
        if t is _dict:
            return {"#": "d", "v": [[tag(k), tag(x)] for k, x in _dict_items(v)]}
        return v  # None, bool, str

    def others_alive(me, uid):
        """Whether a process of this uid other than this one and its ancestors is alive."""
        ancestors, pid = _set(), me
        while pid > 1:
            ancestors.add(pid)
            try:
                with _open("/proc/%d/stat" % pid, "rb") as fh:
                    pid = _int(fh.read().rsplit(b")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                break
        for name in _listdir("/proc"):
            if not name.isdigit() or _int(name) in ancestors or _int(name) == 1:
                continue
            try:
                with _open("/proc/%s/status" % name, "rb") as fh:
                    status = fh.read()
            except OSError:
                continue
            fields = _dict(line.split(b":", 1) for line in status.splitlines() if b":" in line)
            state = fields.get(b"State", b"").split()
            if state and state[0] in (b"Z", b"X"):
                continue
            uids = fields.get(b"Uid", b"").split()
            if uids and _int(uids[0]) == uid:
                return True
        return False

    def install_guard():
        """An audit hook (cannot be removed) with a one-way latch set by the event ``trafl.tests``."""
        always = {
            "gc.get_objects",
            "gc.get_referrers",
            "gc.get_referents",
            "sys.settrace",
            "sys.setprofile",
            "sys._current_frames",
        }
        during_tests = always | {
            "sys._getframe",
            "object.__getattr__",
            "os.fork",
            "os.forkpty",
            "os.system",
            "os.posix_spawn",
            "os.exec",
            "os.spawn",
            "subprocess.Popen",
            "pty.spawn",
        }
        latch = []

        def guard(event, args):
            if event == "trafl.tests":
                latch.append(1)
            elif event in (during_tests if latch else always) or event.startswith("ctypes."):
                raise ValueError("blocked in the trafl sandbox: " + event)
            elif event == "import" and args and args[0] in ("ctypes", "_ctypes"):
                raise ImportError("blocked in the trafl sandbox: ctypes")
            elif (
                event == "open"
                and args
                and _type(args[0]) is _str
                and args[0].startswith("/proc")
                and (latch or args[0].endswith("/mem"))
            ):
                raise PermissionError("blocked in the trafl sandbox: " + args[0])

        _addaudithook(guard)

    if cfg["mode"] == "fallback":
        install_guard()
        snapshots = {name: _SimpleNamespace(**_vars(_import(name))) for name in cfg["snapshot"]}

    g = {"__name__": "__main__", "__builtins__": builtins}
    for name, src in (
        ("<preamble>", cfg["preamble"]),
        (cfg["path"], cfg["program"]),
        ("<setup>", cfg["setup"]),
        ("<test imports>", cfg["imports"]),
    ):
        if src:
            _exec(_compile(src, name, "exec"), g)

    if cfg["mode"] == "parsed":
        send("ready\n")
        for k, src in enumerate(cfg["holes"]):
            try:
                line = "%d ok %s\n" % (k, _dumps(tag(canon(_eval(_compile(src, "<call %d>" % k, "eval"), g)))))
            except BaseException:  # noqa: BLE001 - any failure of the program is a failed call
                line = "%d err\n" % k
            send(line)
        return

    # ---- fallback: refuse if anything could read the tests when they arrive ----
    if _len(_listdir("/proc/self/task")) != 1 or _gettrace() is not None or _getprofile() is not None:
        send("refused\n")
        _exit(3)
    if cfg["strict_procs"] and others_alive(_getpid(), _getuid()):
        send("refused\n")
        _exit(3)
    send("ready\n")
    chunks = []
    while True:
        chunk = _read(0, 1 << 16)
        if not chunk:
            break
        chunks.append(chunk)
    payload = _loads(b"".join(chunks).decode("utf-8", "replace"))
    nonce, tests = payload["nonce"], payload["tests"]
    _audit("trafl.tests")  # one-way: the guard now blocks introspection and new processes

    def truth(v):
        return _bool(canon(v))

    def compare(op, a, b):
        a, b = canon(a), canon(b)
        if op == "==":
            return a == b
        if op == "!=":
            return a != b
        if op == "<":
            return a < b
        if op == "<=":
            return a <= b
        if op == ">":
            return a > b
        if op == ">=":
            return a >= b
        if op == "in":
            return a in b
        if op == "not in":
            return a not in b
        if op == "is":
            return a is b
        return a is not b

    ns = _dict(g)
    ns["__builtins__"] = _pristine_builtins
    ns["__trafl_truth"], ns["__trafl_compare"] = truth, compare
    ns["__trafl_module"] = snapshots.__getitem__
    for i, src in enumerate(tests):
        try:
            _exec(_compile(src, "<test %d>" % i, "exec"), ns)
            ok = 1
        except BaseException as exc:  # noqa: BLE001
            ok = 0
            _stderr_write("test %d failed: %s\n" % (i, _type(exc).__name__))
        send("%d %d %s\n" % (i, ok, nonce))
