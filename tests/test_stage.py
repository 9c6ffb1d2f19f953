"""``python -m ovlab.stage``: a stage command served by a warm interpreter behaves as ``python -m``.

Each test runs small probe modules through the launcher with its own runtime folder, so its servers
are its own (stopped at the end of the test); the usage log proves a command was served
(a silent fall-back to the cold path would pass the behaviour checks without testing the server).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.conftest import REPO

PROBE = """
import json, os, sys
import torch
torch.manual_seed(0)
x = torch.randn(96, 96)
print(json.dumps({"argv": sys.argv[1:], "cwd": os.getcwd(), "probe": os.environ.get("PROBE"),
                  "ppid": os.getppid(), "umask": oct(os.umask(0o022)), "threads": torch.get_num_threads(),
                  "value": float((x @ x).sum()), "main": __name__, "path0": sys.path[0]}))
sys.stdout.flush()
code = sys.argv[1] if len(sys.argv) > 1 else "0"
if code == "sleep":
    open(sys.argv[2], "w").write(str(os.getpid()))
    import time
    time.sleep(120)
sys.exit(int(code) if code.isdigit() else code)
"""


@pytest.fixture
def probe(tmp_path):
    """(cwd with probe_mod.py, env for the launcher: own runtime folder, 60 s idle, usage log)."""
    (tmp_path / "probe_mod.py").write_text(PROBE)
    runtime = Path(tempfile.mkdtemp(prefix="ovst", dir="/tmp"))  # short: Unix socket paths are <= 107 bytes
    env = dict(os.environ, XDG_RUNTIME_DIR=str(runtime), OVLAB_WARM_IDLE="60", PROBE="p1",
               OVLAB_STAGE_USAGE=str(tmp_path / "usage.jsonl"),
               PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    env.pop("OVLAB_WARM", None)
    yield tmp_path, env
    for pid in _servers(runtime):  # stop this test's servers (they would exit after 60 s idle anyway)
        os.kill(pid, signal.SIGTERM)
    shutil.rmtree(runtime, ignore_errors=True)


def _run(cwd, env, *args, **kw):
    return subprocess.run([sys.executable, "-m", "ovlab.stage", "probe_mod", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120, **kw)


def _usage(cwd: Path) -> list[dict]:
    f = cwd / "usage.jsonl"
    return [json.loads(x) for x in f.read_text().splitlines()] if f.exists() else []


def test_a_served_command_is_what_python_m_would_run(probe):
    cwd, env = probe
    warm = _run(cwd, env, "3", "x y")
    assert warm.returncode == 3, warm.stderr
    served = json.loads(warm.stdout)
    assert _usage(cwd) and _usage(cwd)[-1]["warm"] is True  # it went through a server
    cold = _run(cwd, dict(env, OVLAB_WARM="0"), "3", "x y")
    assert cold.returncode == 3, cold.stderr
    fresh = json.loads(cold.stdout)
    assert len(_usage(cwd)) == 1  # the cold run logged nothing
    for key in ("argv", "cwd", "probe", "umask", "threads", "value", "main", "path0"):
        assert served[key] == fresh[key], key
    assert served["argv"] == ["3", "x y"] and served["main"] == "__main__" and served["probe"] == "p1"
    assert served["ppid"] != os.getpid()  # forked by the server, not by this process


def test_the_environment_umask_and_exit_message_come_from_the_command(probe):
    cwd, env = probe
    out = subprocess.run(["sh", "-c", f"umask 077; exec {sys.executable} -m ovlab.stage probe_mod stop-here"],
                         cwd=cwd, env=dict(env, PROBE="p2"), capture_output=True, text=True, timeout=120)
    assert out.returncode == 1 and out.stderr.strip().endswith("stop-here")  # sys.exit("text"): printed, 1
    got = json.loads(out.stdout)
    assert got["probe"] == "p2" and got["umask"] == "0o77"
    assert _usage(cwd)[-1]["warm"] is True


def test_one_server_serves_identical_commands_and_a_changed_one_gets_its_own(probe):
    cwd, env = probe
    first = json.loads(_run(cwd, env, "0").stdout)
    second = json.loads(_run(cwd, env, "0").stdout)
    assert first["ppid"] == second["ppid"]  # the same server forked both
    other = json.loads(_run(cwd, dict(env, OMP_NUM_THREADS="1"), "0").stdout)
    assert other["ppid"] != first["ppid"] and other["threads"] == 1  # read by torch at import: own server
    per_run = json.loads(_run(cwd, dict(env, DVC_STAGE="x", PWD="/elsewhere"), "0").stdout)
    assert per_run["ppid"] == first["ppid"]  # DVC's per-stage variables do not matter at import
    assert [u["warm"] for u in _usage(cwd)] == [True] * 4


def test_the_key_follows_the_code(tmp_path, monkeypatch):
    import ovlab.stage as stage

    (tmp_path / "mod.py").write_text("x = 1\n")
    monkeypatch.setattr(stage, "_package_dir", lambda: str(tmp_path))
    env = {"A": "1"}
    key = stage.server_key(env)
    assert stage.server_key(dict(env, DVC_ROOT="/r", SHLVL="3")) == key
    assert stage.server_key(dict(env, A="2")) != key
    (tmp_path / "mod.py").write_text("x = 22\n")
    assert stage.server_key(env) != key


def test_killing_the_command_kills_what_it_runs(probe):
    cwd, env = probe
    pidfile = cwd / "child.pid"
    proc = subprocess.Popen([sys.executable, "-m", "ovlab.stage", "probe_mod", "sleep", str(pidfile)], cwd=cwd,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 90
    while not pidfile.exists() or not pidfile.read_text():
        assert time.time() < deadline and proc.poll() is None, proc.stderr.read() if proc.poll() else "timeout"
        time.sleep(0.05)
    child = int(pidfile.read_text())
    assert child != proc.pid
    proc.kill()  # kill -9 of the stage command
    proc.wait()
    deadline = time.time() + 10
    while _alive(child):
        assert time.time() < deadline, f"child {child} still running after its command was killed"
        time.sleep(0.05)


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 128 + signal.SIGTERM), (signal.SIGINT, 128 + signal.SIGINT)])
def test_signals_reach_what_the_command_runs(probe, sig, code):
    cwd, env = probe
    pidfile = cwd / f"child{sig}.pid"
    proc = subprocess.Popen([sys.executable, "-m", "ovlab.stage", "probe_mod", "sleep", str(pidfile)], cwd=cwd,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 90
    while not pidfile.exists() or not pidfile.read_text():
        assert time.time() < deadline and proc.poll() is None
        time.sleep(0.05)
    proc.send_signal(sig)
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == code, err
    if sig == signal.SIGINT:
        assert "KeyboardInterrupt" in err  # the child got it as Python's Ctrl-C
    assert not _alive(int(pidfile.read_text()))


def test_without_a_server_it_runs_in_its_own_process(probe):
    cwd, env = probe
    out = _run(cwd, dict(env, OVLAB_WARM="0"), "0")
    assert json.loads(out.stdout)["ppid"] == os.getpid()  # this test's process started it
    assert not list(Path(env["XDG_RUNTIME_DIR"]).glob("ovlab-*/stage-*.sock"))
    assert not _servers(Path(env["XDG_RUNTIME_DIR"]))


def _servers(runtime: Path) -> list[int]:
    """The pids of the stage servers whose socket lives under ``runtime``."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"--serve" in argv and any(a.startswith(str(runtime).encode()) for a in argv):
            found.append(int(proc.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")
