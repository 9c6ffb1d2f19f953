"""Stage commands in a warm interpreter: ``python -m ovlab.stage <module> [args ...]``.

Every Python stage of ``dvc.yaml`` runs ``python -m ovlab.stage <module> …``, which does what
``python -m <module> …`` does, without paying the start-up of torch, open_clip and transformers again
for each of the pipeline's ~80 stages (about 9 s per stage on 2 cores, most of an embedded run).

How: the first stage command starts a *stage server* in the background: an interpreter that has
imported the heavy modules (:data:`PRELOAD`) and nothing else (no torch op has run, no thread is
started). Each stage command connects to it over a Unix socket and hands over its argv, working
folder, environment, umask and its stdin/stdout/stderr file descriptors; the server forks a child
that takes them over and runs ``<module>`` as ``__main__`` (:func:`runpy.run_module`), as a fresh
``python -m`` would. The command waits for the child and exits with its exit status (killed by a
signal: 128 + the signal number), so DVC sees what it always saw:

- output goes to the command's own stdout/stderr (DVC's log, a terminal, a pipe);
- Ctrl-C / SIGTERM / SIGHUP sent to the command are forwarded to the child; if the command itself is
  killed (``kill -9``), the server kills the child at once, so no stage goes on running unseen;
- the child starts from the state a fresh interpreter has after those imports: ``random`` and
  numpy's global generator are re-seeded from the OS, torch's generator is at its import-time seed,
  torch's thread pool is created on first use (never in the server), warnings and logging are as
  configured by the imports. Outputs are bit for bit those of a cold run (the pipeline test compares
  every metric and model file with the committed ``dvc.lock``).

A server serves only commands it is identical for: its socket's name is a hash of the interpreter,
its flags, the environment (less the per-run ``DVC_*``/``PWD``-like variables), the resource limits,
the ``ovlab`` package it imports and every ``ovlab`` source file's size and modification time, and
the ``sys.path`` folders' modification times (a ``pip install`` changes them). Edit any of those and
the next command starts a new server; the old one exits after :data:`IDLE_SECONDS` without work.

``OVLAB_WARM=0`` runs the module in the command's own process (the cold path, exactly ``python -m``);
so does any platform without ``fork`` or Unix sockets, and any failure before the child starts.
``OVLAB_WARM_IDLE`` sets the idle seconds. ``OVLAB_STAGE_USAGE=<file>`` appends one JSON line per
served command (start-up seconds, child wall seconds and peak RSS; read by ``ovlab bench pipeline``).

Not a paper component: the start-up cost issue (#19) of the pipeline; no reference implementation.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sys
import time

IDLE_SECONDS = 600.0
"""A server with no running child and no new command for this long exits (``OVLAB_WARM_IDLE``).

Ten minutes: notebook kernels have a server of their own (the kernel spec's flags and environment
differ from a stage's), and in a ``dvc repro`` each notebook runs only after its table's cells, minutes
after the previous notebook; at 60 s every notebook after the first paid a cold start (~9.5 s)."""

PRELOAD = (
    "torch",
    "open_clip",
    "transformers",
    "ovlab.experiments.grid",
    "ovlab.experiments.train_cli",
    "ovlab.experiments.scan_cs",
    "ovlab.experiments.registry",
    "ovlab.gkc.task",
    "ovlab.scan.task",
    "ovlab.video.task",
    "ovlab.physical.task",
    "ovlab.report.ablation",
)
"""What a stage server imports before it serves (a missing or failing one is skipped: the child then
imports it itself and reports its error as a cold run would)."""

EXTRA_PRELOAD = {"ipykernel_launcher": ("ipykernel.kernelapp",)}
"""Imported too by a server that a command for this module started (a notebook's kernel: ``ovlab.run``)."""

# Per-run variables: they differ between two stages of one `dvc repro` and never matter at import
# (JPY_*: the pid and session of the notebook runner that starts a kernel).
_VOLATILE_ENV = ("PWD", "OLDPWD", "SHLVL", "_", "OVLAB_STAGE_USAGE", "JPY_PARENT_PID", "JPY_SESSION_NAME")
_VOLATILE_PREFIX = ("DVC_",)
_FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)
_T0 = time.time()


class StageServerError(RuntimeError):
    """The stage server accepted a command and then failed (the command's child was killed)."""


# ---------------------------------------------------------------------------------------------- key
def _package_dir() -> str:
    import ovlab

    return os.path.dirname(os.path.abspath(ovlab.__file__))


def server_key(env: dict[str, str] | None = None) -> str:
    """The hex digest naming the server that may serve this interpreter (see the module docstring).

    Args:
        env: the environment to key on (default ``os.environ``).
    """
    import resource

    env = dict(os.environ if env is None else env)
    h = hashlib.sha256()

    def put(*parts: object) -> None:
        for part in parts:
            h.update(repr(part).encode())
            h.update(b"\0")

    put(sys.executable, sys.version, tuple(sys.flags), sys.warnoptions, sorted(sys._xoptions.items()))
    put(sorted((k, v) for k, v in env.items()
               if k not in _VOLATILE_ENV and not k.startswith(_VOLATILE_PREFIX)))
    put([resource.getrlimit(getattr(resource, r)) for r in dir(resource) if r.startswith("RLIMIT_")])
    put(os.getuid(), os.getgid())
    pkg = _package_dir()
    put(pkg)
    for root, dirs, files in os.walk(pkg):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            if name.endswith(".py"):
                st = os.stat(os.path.join(root, name))
                put(os.path.relpath(os.path.join(root, name), pkg), st.st_size, st.st_mtime_ns)
    for entry in sys.path[1:]:  # [0] is the command's folder; a pip install touches the others
        try:
            put(entry, os.stat(entry or ".").st_mtime_ns)
        except OSError:
            put(entry, None)
    return h.hexdigest()


def socket_path(key: str) -> str:
    """``<runtime dir>/ovlab-<uid>/stage-<key[:20]>.sock`` (the folder is private to the user)."""
    base = os.environ.get("XDG_RUNTIME_DIR") or "/tmp"
    folder = os.path.join(base, f"ovlab-{os.getuid()}")
    os.makedirs(folder, mode=0o700, exist_ok=True)
    st = os.stat(folder)
    if st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise PermissionError(f"{folder} is not private to this user")
    return os.path.join(folder, f"stage-{key[:20]}.sock")


# ---------------------------------------------------------------------------------------- messages
def _send(sock, obj: dict, fds: tuple[int, ...] = ()) -> None:
    import socket

    data = json.dumps(obj).encode()
    frame = len(data).to_bytes(8, "big") + data
    if fds:
        sent = socket.send_fds(sock, [frame], list(fds))
        frame = frame[sent:]
    if frame:
        sock.sendall(frame)


def _recv(sock, nfds: int = 0) -> tuple[dict | None, list[int]]:
    """One framed message (``None`` at end of stream) and the descriptors that came with it."""
    import socket

    fds: list[int] = []
    buf = b""
    while len(buf) < 8 or len(buf) < 8 + int.from_bytes(buf[:8], "big"):
        if nfds and not fds:
            chunk, fds, _flags, _addr = socket.recv_fds(sock, 1 << 16, nfds)
        else:
            chunk = sock.recv(1 << 16)
        if not chunk:
            for fd in fds:
                os.close(fd)
            return None, []
        buf += chunk
    n = int.from_bytes(buf[:8], "big")
    return json.loads(buf[8:8 + n]), fds


# ------------------------------------------------------------------------------------------ client
def _cold(module: str, args: list[str]) -> None:
    """Run ``module`` as ``__main__`` in this process (``python -m module args``)."""
    import runpy

    sys.argv = [module, *args]
    sys.path[0] = os.getcwd()
    runpy.run_module(module, run_name="__main__", alter_sys=True)


def _connect(path: str, key: str, module: str):
    """A socket connected to the server for ``key``, starting one if none answers (``None``: cannot)."""
    import fcntl
    import socket
    import subprocess

    def attempt():
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(path)
            return s
        except OSError:
            s.close()
            return None

    sock = attempt()
    if sock is not None:
        return sock
    with open(path + ".lock", "a") as lock:  # one command starts the server; the others wait for it
        fcntl.flock(lock, fcntl.LOCK_EX)
        sock = attempt()
        if sock is not None:
            return sock
        try:
            os.unlink(path)  # a server killed without cleaning up
        except FileNotFoundError:
            pass
        subprocess.Popen([sys.executable, "-m", "ovlab.stage", "--serve", path, key, module],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True, close_fds=True)
        deadline = time.time() + 30.0  # the server binds before it imports anything heavy
        while time.time() < deadline:
            sock = attempt()
            if sock is not None:
                return sock
            time.sleep(0.02)
    return None


def _exit_code(status: int) -> int:
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.waitstatus_to_exitcode(status)


def _served(module: str, args: list[str]) -> int | None:
    """Run through a stage server; the exit code, or ``None`` when no server could take the command."""
    try:
        key = server_key()
        path = socket_path(key)
        sock = _connect(path, key, module)
    except OSError:
        return None
    if sock is None:
        return None
    umask = os.umask(0)
    os.umask(umask)
    request = {"module": module, "args": args, "cwd": os.getcwd(), "env": dict(os.environ), "umask": umask}
    try:
        _send(sock, request, (0, 1, 2))
        started, _ = _recv(sock)
    except OSError:
        started = None
    if not started or "pid" not in started:
        sock.close()
        return None  # nothing ran: the caller runs the module itself
    child = started["pid"]
    t_start = time.time()

    def forward(signum, _frame):
        try:
            os.kill(child, signum)
        except ProcessLookupError:
            pass

    for sig in _FORWARDED:
        signal.signal(sig, forward)
    import select

    parent = os.getppid()
    while True:
        # A cold kernel exits when the process that started it dies (ipykernel's parent poller); a
        # served one's parent is the server, so this command does that watching for it.
        ready, _, _ = select.select([sock], [], [], 1.0)
        if not ready:
            if module == "ipykernel_launcher" and os.getppid() != parent:
                forward(signal.SIGTERM, None)
            continue
        done, _ = _recv(sock)
        break
    sock.close()
    if done is None or "status" not in done:
        try:
            os.kill(child, signal.SIGKILL)
        except ProcessLookupError:
            pass
        raise StageServerError(f"the stage server stopped while running {module} (it was killed); "
                               "run again, or with OVLAB_WARM=0 to run without it")
    usage = os.environ.get("OVLAB_STAGE_USAGE")
    if usage:
        line = {"argv": ["-m", module, *args], "start": t_start, "wall": time.time() - t_start,
                "maxrss_kb": done.get("maxrss_kb", 0), "startup_s": round(t_start - _T0, 3), "warm": True}
        with open(usage, "a") as fh:
            fh.write(json.dumps(line) + "\n")
    return _exit_code(done["status"])


# ------------------------------------------------------------------------------------------ server
def _reopen_stdio() -> None:
    """New ``sys.std*`` objects over descriptors 0-2, buffered as a fresh interpreter would."""
    for fd, name, mode in ((0, "stdin", "r"), (1, "stdout", "w"), (2, "stderr", "w")):
        old = getattr(sys, name)
        try:
            new = open(fd, mode, encoding=getattr(old, "encoding", None), errors=getattr(old, "errors", None),
                       closefd=False, newline="\n" if mode == "w" else None)
        except OSError:
            continue
        if mode == "w":
            new.reconfigure(line_buffering=fd == 2 or os.isatty(fd),
                            write_through=getattr(old, "write_through", False))
        setattr(sys, name, new)
        setattr(sys, f"__{name}__", new)


def _child(request: dict, fds: list[int]) -> None:
    """In the forked child: become the command (descriptors, folder, environment), run its module."""
    for sig in _FORWARDED + (signal.SIGCHLD,):
        signal.signal(sig, signal.default_int_handler if sig == signal.SIGINT else signal.SIG_DFL)
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        if fd > 2:
            os.close(fd)
    _reopen_stdio()
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    time.tzset()
    os.umask(request["umask"])
    import random

    random.seed()
    if "numpy" in sys.modules:
        sys.modules["numpy"].random.seed()
    sys.modules.pop(request["module"], None)  # it runs afresh as __main__ (no runpy warning)
    try:
        _cold(request["module"], request["args"])
        code = 0
    except SystemExit as exc:
        code = _system_exit_code(exc)
    except KeyboardInterrupt:
        sys.excepthook(*sys.exc_info())
        code = -signal.SIGINT  # as the interpreter does: die by the signal
    except BaseException:  # noqa: BLE001 - reported as an uncaught exception is
        sys.excepthook(*sys.exc_info())
        code = 1
    _finish(code)


def _system_exit_code(exc: SystemExit) -> int:
    """The exit status the interpreter gives an uncaught ``SystemExit`` (a message is printed, status 1)."""
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code & 0xFF
    print(exc.code, file=sys.stderr)
    return 1


def _finish(code: int) -> None:
    """End the child as the interpreter ends: join non-daemon threads, run ``atexit``, flush; then exit.

    The module teardown is skipped (``os._exit``): in a forked child it would write to every page the
    server's imports share with it (copy on write), ~2 s per stage for no effect on outputs.
    """
    import atexit
    import threading

    shutdown = getattr(threading, "_shutdown", None)
    if shutdown is not None:
        shutdown()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    if code < 0:
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    os._exit(code)


def serve(path: str, key: str, module: str = "") -> None:
    """The stage server's loop (``python -m ovlab.stage --serve PATH KEY``; started by :func:`_connect`).

    Binds ``path`` first (commands waiting on it then connect), imports :data:`PRELOAD` (and
    :data:`EXTRA_PRELOAD` of ``module``, the first command's), then forks one
    child per command until :data:`IDLE_SECONDS` pass without work. Single-threaded: a fork from a
    process with other threads is unsafe, so it refuses to serve if an import started one.
    """
    import importlib
    import select
    import socket
    import threading
    import warnings

    me = os.getpid()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(path)
    except OSError:
        return  # another server took the name first
    listener.listen(64)
    inode = os.stat(path).st_ino
    idle = float(os.environ.get("OVLAB_WARM_IDLE", IDLE_SECONDS))
    with warnings.catch_warnings():
        # Import-time warnings are not shown (a cold run would print them once); leaving the block
        # restores the filters and invalidates every warning registry, so a child's warnings are as usual.
        warnings.simplefilter("ignore")
        for name in PRELOAD + EXTRA_PRELOAD.get(module, ()):
            try:
                importlib.import_module(name)
            except Exception:  # noqa: BLE001 - the child re-raises it where it matters
                pass
    import gc

    gc.freeze()  # the imported objects: a child's collections then leave their pages shared
    for name in PRELOAD:  # a warning registry filled in the server would hide a child's "once" warnings
        mod = sys.modules.get(name)
        if mod is not None and hasattr(mod, "__warningregistry__"):
            mod.__warningregistry__.clear()
    safe = threading.active_count() == 1
    clients: dict[int, tuple[socket.socket, int]] = {}  # fd -> (socket, child pid)
    by_pid: dict[int, socket.socket] = {}
    last = time.time()
    try:
        while True:
            ready, _, _ = select.select([listener] + [s for s, _ in clients.values()], [], [], 0.05)
            for s in ready:
                if s is listener:
                    conn, _ = listener.accept()
                    if not safe:
                        conn.close()  # the command falls back to running itself
                        continue
                    try:
                        request, fds = _recv(conn, 3)
                    except (OSError, ValueError):
                        conn.close()
                        continue
                    if request is None or len(fds) != 3:
                        for fd in fds:
                            os.close(fd)
                        conn.close()
                        continue
                    pid = os.fork()
                    if pid == 0:
                        listener.close()
                        for other, _ in clients.values():
                            other.close()
                        conn.close()
                        _child(request, fds)  # never returns (os._exit)
                    for fd in fds:
                        os.close(fd)
                    try:
                        _send(conn, {"pid": pid})
                    except OSError:
                        os.kill(pid, signal.SIGKILL)
                    clients[conn.fileno()] = (conn, pid)
                    by_pid[pid] = conn
                    last = time.time()
                else:  # a command's socket is readable only when the command went away
                    conn, pid = clients[s.fileno()]
                    try:
                        gone = not conn.recv(1, socket.MSG_PEEK)
                    except OSError:
                        gone = True
                    if gone:
                        try:
                            os.kill(pid, signal.SIGKILL)
                        except ProcessLookupError:
                            pass
                        del clients[conn.fileno()]
            while by_pid:
                try:
                    pid, status, usage = os.wait4(-1, os.WNOHANG)
                except ChildProcessError:
                    break
                if pid == 0:
                    break
                conn = by_pid.pop(pid, None)
                if conn is None:
                    continue
                clients.pop(conn.fileno(), None)
                try:
                    _send(conn, {"status": status, "maxrss_kb": usage.ru_maxrss})
                except OSError:
                    pass
                conn.close()
                last = time.time()
            if not by_pid and time.time() - last > idle:
                break
    finally:
        if os.getpid() == me:
            listener.close()
            try:
                if os.stat(path).st_ino == inode:
                    os.unlink(path)
            except FileNotFoundError:
                pass


def main(argv: list[str] | None = None) -> None:
    """``python -m ovlab.stage MODULE [ARGS ...]`` (see the module docstring).

    Raises:
        SystemExit: with the module's exit status; 2 without a module.
        StageServerError: the server stopped while the command's child was running.
    """
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--serve"] and len(argv) in (3, 4):
        serve(*argv[1:])
        return
    if not argv or argv[0].startswith("-"):
        print("usage: python -m ovlab.stage MODULE [ARGS ...]", file=sys.stderr)
        raise SystemExit(2)
    module, args = argv[0], argv[1:]
    warm = os.environ.get("OVLAB_WARM", "1") != "0" and hasattr(os, "fork") and hasattr(os, "register_at_fork")
    if warm:
        code = _served(module, args)
        if code is not None:
            sys.stdout.flush()
            raise SystemExit(code)
    _cold(module, args)


if __name__ == "__main__":
    main()
