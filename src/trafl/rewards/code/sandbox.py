"""Running one untrusted program: a subprocess behind resource limits and, where possible, bubblewrap.

Layers of defence, outermost first:

1. **Isolation** (``isolation="bwrap"``, chosen automatically when ``bwrap`` works): the program runs
   in fresh user, PID, network, IPC, UTS and cgroup namespaces. It sees a minimal filesystem
   (:func:`_bwrap_argv`: system directories and the interpreter's directories read-only, a private
   ``/tmp`` holding only its own writable directory); there is no network interface but a
   private loopback; when the sandbox is torn down, the kernel kills every process of the PID
   namespace, however it was spawned. Without bubblewrap (``isolation="rlimits"``) only the layers
   below remain and a warning says so once.
2. **Identity**: when the caller is root, each run gets its own unprivileged user id (from a large
   unused range), so the program cannot write files it does not own, cannot read root-only files,
   cannot signal or inspect other processes, and the process count limit is really enforced
   (Linux ignores ``RLIMIT_NPROC`` for root). Cleanup then kills *every* process of that user id.
3. **Resource limits** (``setrlimit`` in the child): CPU seconds, address space, file size (which
   also caps stdout and stderr: they are files), number of processes, open files, no core dumps,
   and a main-thread stack large enough for deep recursion.
4. **Wall clock**: after ``timeout`` seconds the program's session is killed with SIGKILL (no
   SIGTERM that it could catch), as are any processes left behind when it exits normally.

The program sees a minimal environment (no secrets of the caller), its own directory as working
directory, HOME and TMPDIR, and an empty stdin unless one is given.
"""

from __future__ import annotations

import json
import os
import random
import resource
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from trafl.errors import ConfigError

ISOLATIONS = ("auto", "bwrap", "rlimits")

# A run's private user id is drawn from this range; such ids belong to no account on a normal host.
_UID_RANGE = (1_500_000_000, 1_900_000_000)


@dataclass(frozen=True)
class Limits:
    """Resource limits of one run. ``cpu_seconds=None`` means ``ceil(timeout) + 1``."""

    memory_bytes: int = 4 << 30
    file_size_bytes: int = 16 << 20
    processes: int = 64
    open_files: int = 256
    cpu_seconds: int | None = None
    output_bytes: int = 1 << 20  # how much of stdout / stderr is kept in the result
    stack_bytes: int = 256 << 20  # the main thread's stack: deep recursion in honest programs


@dataclass
class Execution:
    """What happened to one run."""

    returncode: int | None  # negative: killed by that signal
    stdout: str
    stderr: str
    timed_out: bool
    elapsed: float
    isolation: str  # "bwrap" or "rlimits"
    extra: dict[str, str] = field(default_factory=dict)  # side files the caller asked to read back


# --------------------------------------------------------------------------------------------
# Environment probing (cached per process)
# --------------------------------------------------------------------------------------------

_PROBE_LOCK = threading.Lock()
_BWRAP_OK: dict[tuple[str | None, bool], bool] = {}
_WARNED = False


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def world_executable(path: str | os.PathLike) -> bool:
    """Whether a user with no privileges can execute ``path`` (every directory on the way must be
    searchable by others, the file executable by others)."""
    real = Path(os.path.realpath(path))
    try:
        if not real.stat().st_mode & stat.S_IXOTH:
            return False
        return all(parent.stat().st_mode & stat.S_IXOTH for parent in real.parents)
    except OSError:
        return False


def default_python(drop_privileges: bool) -> str:
    """The interpreter that runs programs: this one, unless a private user id could not execute
    it (e.g. a virtualenv under ``/root``), in which case the system ``python3``."""
    if not drop_privileges or world_executable(sys.executable):
        return sys.executable
    for candidate in ("/usr/bin/python3", "/usr/local/bin/python3", shutil.which("python3")):
        if candidate and world_executable(candidate):
            return candidate
    raise ConfigError(
        f"sandbox: {sys.executable} is not executable by an unprivileged user and no world-executable "
        "python3 was found; pass python=... or drop_privileges=False"
    )


def bwrap_path() -> str | None:
    return shutil.which("bwrap")


def bwrap_usable(drop_privileges: bool) -> bool:
    """Whether bubblewrap is installed and can create its namespaces here (probed once)."""
    path = bwrap_path()
    key = (path, drop_privileges)
    with _PROBE_LOCK:
        if key not in _BWRAP_OK:
            ok = False
            if path is not None:
                kwargs = _identity_kwargs(_fresh_uid()) if drop_privileges else {}
                try:
                    probe = subprocess.run(
                        [
                            path,
                            *_bwrap_namespace_args(),
                            "--ro-bind",
                            "/",
                            "/",
                            "--proc",
                            "/proc",
                            "--dev",
                            "/dev",
                            "/bin/sh",
                            "-c",
                            "exit 0",
                        ],
                        stdin=subprocess.DEVNULL,
                        capture_output=True,
                        timeout=20,
                        **kwargs,
                    )
                    ok = probe.returncode == 0
                except (OSError, subprocess.SubprocessError):
                    ok = False
            _BWRAP_OK[key] = ok
        return _BWRAP_OK[key]


def resolve_isolation(isolation: str, drop_privileges: bool) -> str:
    """``auto`` -> ``bwrap`` when usable, else ``rlimits`` with a one-time warning."""
    global _WARNED
    if isolation not in ISOLATIONS:
        raise ConfigError(f"sandbox isolation must be one of {', '.join(ISOLATIONS)}, got {isolation!r}")
    if isolation == "rlimits":
        return "rlimits"
    if bwrap_usable(drop_privileges):
        return "bwrap"
    if isolation == "bwrap":
        raise ConfigError(
            "sandbox isolation 'bwrap' requested but bubblewrap is not installed or cannot create namespaces "
            "(install it with `apt-get install bubblewrap`; see docs/sandbox.md)"
        )
    if not _WARNED:
        _WARNED = True
        warnings.warn(
            "bubblewrap (bwrap) is not available: untrusted code runs with resource limits only, WITHOUT "
            "network or filesystem isolation. Install it (`apt-get install bubblewrap`); see docs/sandbox.md.",
            RuntimeWarning,
            stacklevel=3,
        )
    return "rlimits"


# --------------------------------------------------------------------------------------------
# Building the child
# --------------------------------------------------------------------------------------------


def _fresh_uid() -> int:
    return random.SystemRandom().randrange(*_UID_RANGE)


def _identity_kwargs(uid: int | None) -> dict:
    if uid is None:
        return {}
    return {"user": uid, "group": uid, "extra_groups": []}


def _bwrap_namespace_args() -> list[str]:
    return ["--unshare-all", "--die-with-parent", "--new-session", "--hostname", "sandbox"]


_SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
_SYSTEM_FILES = ("/etc/ld.so.cache", "/etc/localtime")
_INTERPRETER_DIRS: dict[str, tuple[str, ...]] = {}


def interpreter_dirs(python: str) -> tuple[str, ...]:
    """The directories ``python -I`` needs: its prefixes and every directory on its ``sys.path``
    (probed once per interpreter). ``.pth`` files of editable installs are not followed."""
    with _PROBE_LOCK:
        if python not in _INTERPRETER_DIRS:
            code = (
                "import json, sys; print(json.dumps([sys.prefix, sys.exec_prefix, sys.base_prefix, "
                "sys.base_exec_prefix, *sys.path]))"
            )
            try:
                out = subprocess.run([python, "-I", "-c", code], capture_output=True, text=True, timeout=30, check=True)
                paths = json.loads(out.stdout)
            except (OSError, subprocess.SubprocessError, ValueError) as exc:
                raise ConfigError(f"sandbox: could not ask {python} for its sys.path ({exc})") from exc
            real = {os.path.realpath(p) for p in paths if p and os.path.isdir(p)}
            real.add(os.path.dirname(os.path.realpath(python)))
            # keep only the outermost directories, none that is the filesystem root
            kept = sorted(
                p for p in real if p != "/" and not any(p != q and p.startswith(q.rstrip("/") + "/") for q in real)
            )
            _INTERPRETER_DIRS[python] = tuple(kept)
        return _INTERPRETER_DIRS[python]


def _bwrap_argv(workdir: str, python: str) -> list[str]:
    """A minimal filesystem view: the system's programs and libraries and the interpreter's
    directories read-only, a private empty ``/tmp`` holding only the run's writable ``workdir``,
    fresh ``/dev`` and ``/proc``; no ``/home``, ``/root``, ``/etc`` (but the loader cache), no host
    temp files, no project directory. No network."""
    # the private /tmp first: binds below it (an interpreter under /tmp, the run's directory) stay visible
    argv = [bwrap_path() or "bwrap", *_bwrap_namespace_args(), "--tmpfs", "/tmp"]
    for path in _SYSTEM_DIRS:
        if os.path.islink(path):
            argv += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            argv += ["--ro-bind", path, path]
    for path in _SYSTEM_FILES:
        argv += ["--ro-bind-try", path, path]
    for path in interpreter_dirs(python):
        if not path.startswith("/usr/"):
            argv += ["--ro-bind", path, path]
    return argv + [
        "--dev",
        "/dev",
        "--proc",
        "/proc",
        "--tmpfs",
        "/dev/shm",
        "--bind",
        workdir,
        workdir,
        "--chdir",
        workdir,
        "--",
    ]


def _live_processes() -> list[tuple[int, int, int, int]]:
    """``(pid, uid, pgrp, session)`` of every process that is not a zombie."""
    out = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            uid = entry.stat().st_uid
            with open(f"/proc/{entry.name}/stat", "rb") as fh:
                fields = fh.read().rsplit(b")", 1)[1].split()  # after "(comm)": state ppid pgrp session
        except (OSError, IndexError):
            continue
        if fields[0] not in (b"Z", b"X"):
            out.append((int(entry.name), uid, int(fields[2]), int(fields[3])))
    return out


def _processes_of_uid(uid: int) -> int:
    return sum(1 for _pid, owner, _pg, _sid in _live_processes() if owner == uid)


def _limit_setter(limits: Limits, timeout: float, nproc: int):
    cpu = limits.cpu_seconds if limits.cpu_seconds is not None else int(timeout) + 2

    def apply() -> None:  # runs in the child between fork and exec: system calls only
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
        resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_size_bytes, limits.file_size_bytes))
        resource.setrlimit(resource.RLIMIT_NOFILE, (limits.open_files, limits.open_files))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        hard = resource.getrlimit(resource.RLIMIT_STACK)[1]
        stack = limits.stack_bytes if hard == resource.RLIM_INFINITY else min(limits.stack_bytes, hard)
        resource.setrlimit(resource.RLIMIT_STACK, (stack, hard))
        if nproc > 0:
            resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))

    return apply


def _minimal_env(workdir: str) -> dict[str, str]:
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": workdir,
        "TMPDIR": workdir,
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }


# --------------------------------------------------------------------------------------------
# Killing everything the program started
# --------------------------------------------------------------------------------------------


def _kill_uid(uid: int) -> None:
    """``kill(-1, SIGKILL)`` from a process running as ``uid`` kills every process of that user,
    however deeply it forked or detached. Repeated until the user has no live process left."""
    for _ in range(100):
        if _processes_of_uid(uid) == 0:
            return
        subprocess.run(["/bin/true"], preexec_fn=lambda: os.kill(-1, signal.SIGKILL), **_identity_kwargs(uid))


def _kill_session(sid: int) -> None:
    """SIGKILL the process group and every process of the session ``sid`` (the program's own
    ``setsid`` escapes this; the private uid or bubblewrap's PID namespace catch those)."""
    for _ in range(100):
        members = [pid for pid, _uid, pg, s in _live_processes() if (s == sid or pg == sid) and pid != os.getpid()]
        if not members:
            return
        for pid in members:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.005)


def _read_capped(path: Path, cap: int) -> str:
    try:
        with open(path, "rb") as fh:
            data = fh.read(cap + 1)
    except OSError:
        return ""
    text = data[:cap].decode("utf-8", errors="replace")
    return text + ("\n[output truncated]" if len(data) > cap else "")


# --------------------------------------------------------------------------------------------
# The entry points
# --------------------------------------------------------------------------------------------


@dataclass
class Running:
    """A program started by :func:`sandboxed`: its process, the isolation it got, and where its
    stdout and stderr go (files in a directory the program cannot see)."""

    proc: subprocess.Popen
    isolation: str
    start: float
    private: str
    limits: Limits

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the program to exit; whether it timed out."""
        try:
            self.proc.wait(timeout=max(timeout, 0.0))
            return False
        except subprocess.TimeoutExpired:
            return True

    def output(self, name: str) -> str:
        """What the program wrote to ``stdout`` or ``stderr`` (capped at ``limits.output_bytes``)."""
        return _read_capped(Path(self.private, name), self.limits.output_bytes)


@contextmanager
def sandboxed(
    source: str,
    *,
    stdin: str = "",
    timeout: float = 10.0,
    limits: Limits | None = None,
    isolation: str = "auto",
    drop_privileges: bool | None = None,
    python: str | None = None,
    pass_fds: Sequence[int] = (),
    env: dict[str, str] | None = None,
) -> Iterator[Running]:
    """Start the Python ``source`` as ``python main.py`` in a fresh sandbox; on leaving the block
    kill it and everything it started, and delete its files.

    ``pass_fds`` are descriptors the program inherits (the harness's channel); ``env`` adds
    variables to its minimal environment. ``timeout`` sets the CPU-time limit; the caller waits
    (:meth:`Running.wait`) as long as it likes, the process is killed when the block ends.
    """
    limits = limits or Limits()
    if timeout <= 0:
        raise ConfigError(f"sandbox timeout must be > 0 seconds, got {timeout}")
    drop = _is_root() if drop_privileges is None else drop_privileges
    if drop and not _is_root():
        raise ConfigError("sandbox drop_privileges=True needs root (it switches to a private user id)")
    mode = resolve_isolation(isolation, drop)
    interpreter = python or default_python(drop)
    uid = _fresh_uid() if drop else None

    workdir = tempfile.mkdtemp(prefix="trafl-sandbox-")
    private = tempfile.mkdtemp(prefix="trafl-sandbox-io-")  # outputs; never visible to a uid-dropped child
    proc: subprocess.Popen | None = None
    try:
        os.chmod(private, 0o700)
        Path(workdir, "main.py").write_text(source, encoding="utf-8")
        Path(private, "stdin").write_text(stdin, encoding="utf-8")
        if uid is not None:
            os.chown(workdir, uid, uid)
            os.chown(os.path.join(workdir, "main.py"), uid, uid)
        os.chmod(workdir, 0o700)

        nproc = limits.processes if uid is not None else limits.processes + _processes_of_uid(os.getuid())
        child_env = {**_minimal_env(workdir), **(env or {})}
        argv = [interpreter, "-I", "-B", os.path.join(workdir, "main.py")]
        if mode == "bwrap":
            argv = _bwrap_argv(workdir, interpreter) + argv
        with (
            open(os.path.join(private, "stdin"), "rb") as fin,
            open(os.path.join(private, "stdout"), "wb") as fout,
            open(os.path.join(private, "stderr"), "wb") as ferr,
        ):
            proc = subprocess.Popen(
                argv,
                stdin=fin,
                stdout=fout,
                stderr=ferr,
                cwd=workdir,
                env=child_env,
                start_new_session=True,
                close_fds=True,
                pass_fds=tuple(pass_fds),
                preexec_fn=_limit_setter(limits, timeout, nproc),
                **_identity_kwargs(uid),
            )
        yield Running(proc, mode, time.monotonic(), private, limits)
    finally:
        if proc is not None:
            # Everything goes: the session (and, with a private uid, every process of that uid).
            _kill_group(proc)
            _kill_session(proc.pid)
            if uid is not None:
                _kill_uid(uid)
        _remove_tree(workdir)
        _remove_tree(private)


def execute(
    source: str,
    *,
    stdin: str = "",
    timeout: float = 10.0,
    limits: Limits | None = None,
    isolation: str = "auto",
    drop_privileges: bool | None = None,
    python: str | None = None,
    side_channel: bool = False,
) -> Execution:
    """Run the Python ``source`` as ``python main.py`` in a fresh sandbox and return what happened.

    ``side_channel=True`` opens an extra write-only file descriptor for the program; its number is
    in the environment variable ``TRAFL_SIDE_FD`` and what was written to it comes back in
    ``extra["side"]`` (used only by the unguarded ``append`` baseline harness).
    """
    limits = limits or Limits()
    side_dir = tempfile.mkdtemp(prefix="trafl-sandbox-side-") if side_channel else None
    side_fd = -1
    try:
        if side_dir is not None:
            os.chmod(side_dir, 0o700)
            side_fd = os.open(os.path.join(side_dir, "side"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        env = {"TRAFL_SIDE_FD": str(side_fd)} if side_fd >= 0 else None
        with sandboxed(
            source,
            stdin=stdin,
            timeout=timeout,
            limits=limits,
            isolation=isolation,
            drop_privileges=drop_privileges,
            python=python,
            pass_fds=(side_fd,) if side_fd >= 0 else (),
            env=env,
        ) as run:
            timed_out = run.wait(timeout)
            elapsed = time.monotonic() - run.start
            if timed_out:  # stop it writing before its outputs are read
                _kill_group(run.proc)
            result = Execution(
                returncode=None if timed_out else run.proc.returncode,
                stdout=run.output("stdout"),
                stderr=run.output("stderr"),
                timed_out=timed_out,
                elapsed=elapsed,
                isolation=run.isolation,
            )
        if side_dir is not None:
            os.close(side_fd)
            side_fd = -1
            result.extra = {"side": _read_capped(Path(side_dir, "side"), limits.output_bytes)}
        return result
    finally:
        if side_fd >= 0:
            os.close(side_fd)
        if side_dir is not None:
            _remove_tree(side_dir)


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the program's process group and reap it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


def _remove_tree(path: str) -> None:
    """Delete a directory the program may have made unreadable (chmod 000) for its owner."""

    def make_writable(func, p, _exc):
        try:
            os.chmod(os.path.dirname(p), 0o700)
            os.chmod(p, 0o700)
            func(p)
        except OSError:
            pass

    shutil.rmtree(path, onerror=make_writable)


__all__: Sequence[str] = [
    "Execution",
    "Limits",
    "ISOLATIONS",
    "Running",
    "execute",
    "sandboxed",
    "bwrap_usable",
    "resolve_isolation",
]
