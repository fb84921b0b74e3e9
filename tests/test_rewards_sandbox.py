"""The code sandbox against adversarial programs, with bubblewrap and with the rlimits fallback.

Every program must end with a failed result within timeout + 2 s; afterwards a canary file outside
the sandbox is unchanged and no process the programs started is still alive.
"""

from __future__ import annotations

import os
import socket
import sys
import time
import warnings

import pytest

from trafl.errors import ConfigError
from trafl.rewards.code import AssertTests, Limits, execute, run_tests
from trafl.rewards.code import sandbox as sb

TIMEOUT = 2.0
MARK = "TRAFL-STRAY-MARK-7d1f"
SECRET = "s3cr3t-token-value-91"

MODES = ["rlimits"] + (["bwrap"] if sb.bwrap_usable(sb._is_root()) else [])
if "bwrap" not in MODES:
    MODES.append(pytest.param("bwrap", marks=pytest.mark.skip(reason="bubblewrap not installed/usable")))


def adversaries(canary: str, port: int) -> dict[str, str]:
    outside = os.path.join(os.path.dirname(canary), "planted.txt")
    return {
        "infinite_loop": "while True:\n    pass\n",
        "fork_bomb": "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n",
        "allocate_50gb": "x = bytearray(50 * 10**9)\nx[-1] = 1\n",
        "write_outside": f"open({canary!r}, 'w').write('pwned')\n",
        "delete_outside": f"import os\nos.remove({canary!r})\n",
        "plant_outside": f"open({outside!r}, 'w').write('planted')\n",
        "network": f"import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=1)\ns.sendall(b'hello')\n",
        "env_secret": "import os\nprint(os.environ['TRAFL_TEST_SECRET'])\n",
        "parent_environ": f"import os\nprint(open('/proc/{os.getpid()}/environ', 'rb').read())\n",
        "print_1gb": "import sys\nchunk = 'x' * (1 << 20)\nfor _ in range(1024):\n    sys.stdout.write(chunk)\n",
        "exit_before_tests": "import os\nos._exit(0)\n",
        "ignore_sigterm": "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nwhile True:\n    time.sleep(0.01)\n",
        "background_process": (
            "import subprocess, sys, time\n"
            f"subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)', '{MARK}'], start_new_session=True)\n"
            "if __import__('os').fork() == 0:\n"
            "    __import__('os').setsid()\n"
            f"    __import__('os').execv('/bin/sleep', ['/bin/sleep', '121', '{MARK}'])\n"
            "time.sleep(60)\n"
        ),
    }


def stray_processes() -> list[str]:
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            cmd = open(f"/proc/{entry.name}/cmdline", "rb").read().decode(errors="replace")
            state = open(f"/proc/{entry.name}/stat", "rb").read().rsplit(b")", 1)[1].split()[0]
        except OSError:
            continue
        if MARK in cmd and state not in (b"Z", b"X"):
            found.append(f"{entry.name}: {cmd}")
    return found


@pytest.fixture
def listener():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(5)
    srv.settimeout(0.1)
    yield srv
    srv.close()


@pytest.mark.parametrize("mode", MODES)
def test_adversarial_programs_fail_fast_and_harm_nothing(mode, tmp_path, listener, monkeypatch):
    if mode == "rlimits" and not sb._is_root():
        pytest.skip("the rlimits fallback is only safe against fork bombs with a private uid (needs root)")
    monkeypatch.setenv("TRAFL_TEST_SECRET", SECRET)
    os.chmod(tmp_path, 0o755)
    canary = tmp_path / "canary.txt"
    canary.write_text("original")
    os.chmod(canary, 0o644)
    programs = adversaries(str(canary), listener.getsockname()[1])
    for name, program in programs.items():
        if name == "network" and mode == "rlimits":
            continue  # the fallback does not isolate the network (documented); bwrap does
        start = time.monotonic()
        result = run_tests(program, AssertTests(["assert True"]), timeout=TIMEOUT, isolation=mode)
        took = time.monotonic() - start
        assert not result.ok, f"{name}: {result}"
        assert result.status in ("fail", "timeout", "error"), name
        assert took <= TIMEOUT + 2.0, f"{name} took {took:.2f}s"
        assert result.isolation == mode
        assert SECRET not in result.detail
    # network: nothing reached the listener
    if mode == "bwrap":
        with pytest.raises(socket.timeout):
            listener.accept()
    assert canary.read_text() == "original"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["canary.txt"]
    time.sleep(0.2)
    assert stray_processes() == []


@pytest.mark.parametrize("mode", MODES)
def test_secrets_and_output_cap(mode, monkeypatch):
    monkeypatch.setenv("TRAFL_TEST_SECRET", SECRET)
    run = execute("import os\nprint(sorted(os.environ))\nprint(open('/proc/self/environ').read())", isolation=mode)
    assert run.returncode == 0
    assert SECRET not in run.stdout and "TRAFL_TEST_SECRET" not in run.stdout
    limits = Limits(output_bytes=1000, file_size_bytes=1 << 20)
    run = execute("import sys\nfor _ in range(100): sys.stdout.write('y' * 100000)", isolation=mode, limits=limits)
    assert run.returncode != 0  # the file-size limit stopped it
    assert run.stdout.startswith("y" * 1000) and run.stdout.endswith("[output truncated]")


@pytest.mark.parametrize("mode", MODES)
def test_private_directory_and_cleanup(mode):
    run = execute(
        "import os\nopen('out.txt', 'w').write('ok')\nprint(os.getcwd())\nprint(open('out.txt').read())", isolation=mode
    )
    assert run.returncode == 0, run.stderr
    workdir, content = run.stdout.split()
    assert content == "ok" and os.path.basename(workdir).startswith("trafl-sandbox-")
    assert not os.path.exists(workdir)


def test_fallback_warns_and_forced_bwrap_errors(monkeypatch):
    monkeypatch.setattr(sb, "bwrap_usable", lambda drop: False)
    monkeypatch.setattr(sb, "_WARNED", False)
    with pytest.warns(RuntimeWarning, match="bubblewrap"):
        assert sb.resolve_isolation("auto", False) == "rlimits"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert sb.resolve_isolation("auto", False) == "rlimits"  # warned once only
        assert sb.resolve_isolation("rlimits", False) == "rlimits"
    with pytest.raises(ConfigError, match="apt-get install bubblewrap"):
        sb.resolve_isolation("bwrap", False)
    with pytest.raises(ConfigError, match="isolation"):
        sb.resolve_isolation("docker", False)


def test_bad_timeout_is_a_config_error():
    with pytest.raises(ConfigError, match="timeout"):
        execute("pass", timeout=0)


def test_world_executable_checks_every_parent(tmp_path):
    private = tmp_path / "private"
    private.mkdir()
    exe = private / "tool"
    exe.write_text("#!/bin/sh\n")
    os.chmod(exe, 0o755)
    os.chmod(private, 0o700)
    assert not sb.world_executable(exe)
    os.chmod(private, 0o755)
    os.chmod(tmp_path, 0o755)
    assert sb.world_executable(exe) == all(p.stat().st_mode & 0o001 for p in exe.resolve().parents)
    assert sb.world_executable("/bin/sh")
    assert sys.executable  # the interpreter choice falls back to a world-executable python3
    assert sb.world_executable(sb.default_python(True))


@pytest.mark.skipif("bwrap" not in MODES, reason="bubblewrap not installed/usable")
def test_minimal_filesystem_view_under_bwrap(tmp_path):
    """Under bubblewrap the program sees no host paths and a /tmp holding only its own directory."""
    host_tmp = tmp_path / "host-secret.txt"
    host_tmp.write_text("secret")
    os.chmod(tmp_path, 0o755)
    os.chmod(host_tmp, 0o644)
    probe = (
        "import os, sys\n"
        f"paths = ['/home', '/root', '/etc/passwd', '/work', {str(host_tmp)!r}, {os.path.dirname(os.path.abspath(__file__))!r}]\n"
        "def f(x): return sorted(p for p in paths if os.path.exists(p)) + sorted(os.listdir('/tmp')) + [len(os.listdir('/'))]\n"
    )
    result = run_tests(probe, AssertTests(["assert f(0) == 1"]), isolation="bwrap")
    run = sb.execute(probe + "print(f(0))\nimport math\nprint(math.sqrt(4))\n", isolation="bwrap")
    seen = eval(run.stdout.splitlines()[0])  # noqa: S307 - our own probe's printed list
    assert seen[:-2] == [], seen  # none of the host paths exist; /tmp holds only the run's directory
    assert len(seen) == 2 and seen[0].startswith("trafl-sandbox-") and run.stdout.splitlines()[1] == "2.0"
    assert result.status == "fail"
