"""``ovlab bench pipeline``: the embedded pipeline from clean, in a temporary copy, timed per stage.

What it does:

1. copies the checkout's files (tracked and untracked-but-not-ignored, as ``git ls-files`` lists them)
   into a temporary folder, links ``../shared`` beside it when the checkout has one (the stages that
   read the real samples then run as they do here), and pulls the embedded dataset (``data.dvc``);
2. runs one ``dvc repro`` there with a ``python`` shim first on ``PATH``: every ``python`` a stage
   command starts is timed (wall seconds) and its peak resident memory read from ``wait4``'s rusage
   (the command and every descendant it waited for, e.g. a notebook's kernel);
3. attributes each command to the stage DVC was running when it started (DVC's ``Running stage``
   lines), and measures each stage's *start-up*: the seconds to import the module its command runs
   (``python -m <module>``), in a fresh interpreter after the run (warm file cache);
4. writes a JSON with the total wall time, the per-stage wall / command / start-up seconds and peak
   RSS, and prints a table sorted by wall time.

The total is the figure the README quotes (issue target: ≤ 10 min on 2 idle cores, install excluded).
Nothing in the checkout is touched; ``--keep`` leaves the copy for inspection.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ovlab.dvcfiles import stage_name

_SHIM = r'''#!{python}
import json, os, sys, time
t0 = time.time()
pid = os.fork()
if pid == 0:
    os.execv({python!r}, [{python!r}] + sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
with open({log!r}, "a") as fh:
    fh.write(json.dumps({{"argv": sys.argv[1:], "start": t0, "wall": time.time() - t0,
                         "maxrss_kb": usage.ru_maxrss}}) + "\n")
sys.exit(os.waitstatus_to_exitcode(status))
'''

_RUNNING = re.compile(r"Running stage '([^']+)'")


def copy_checkout(src: Path, dst: Path) -> None:
    """Copy the files git lists for ``src`` (tracked + untracked, not ignored) into ``dst``.

    Raises:
        subprocess.CalledProcessError: ``src`` is not a git checkout.
    """
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=src, check=True,
                            capture_output=True).stdout.decode().split("\0")
    for rel in filter(None, listed):
        source = src / rel
        if not source.is_file():
            continue  # deleted in the work tree
        target = dst / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
    subprocess.run(["git", "init", "-q"], cwd=dst, check=True)  # DVC wants a repository root
    subprocess.run(["git", "add", "-A"], cwd=dst, check=True)
    subprocess.run(["git", "-c", "user.name=bench", "-c", "user.email=bench@localhost", "commit", "-qm",
                    "bench copy"], cwd=dst, check=True)


def _entry_module(argv: list[str]) -> str | None:
    if "-m" in argv:
        i = argv.index("-m")
        return argv[i + 1] if i + 1 < len(argv) else None
    return None


def import_seconds(python: str, module: str, cwd: Path, repeats: int = 3) -> float:
    """Median seconds to import ``module`` in a fresh interpreter (``python -c 'import …'``)."""
    code = "import time; t = time.perf_counter(); import importlib; importlib.import_module(%r); " \
           "print(time.perf_counter() - t)" % module
    times = []
    for _ in range(repeats):
        out = subprocess.run([python, "-c", code], cwd=cwd, capture_output=True, text=True)
        if out.returncode != 0:
            return float("nan")
        times.append(float(out.stdout.strip().splitlines()[-1]))
    return sorted(times)[len(times) // 2]


def run_pipeline(src: Path, work: Path) -> dict:
    """Run ``dvc repro`` from clean in a copy of ``src`` under ``work``; the per-stage figures.

    Raises:
        RuntimeError: ``dvc repro`` failed (its last output lines in the message).
    """
    repo = work / "main"
    repo.mkdir(parents=True)
    copy_checkout(src, repo)
    shared = src.parent / "shared"
    if shared.exists():
        (work / "shared").symlink_to(shared.resolve())
    bindir = work / "bin"
    bindir.mkdir()
    log = work / "commands.jsonl"
    for name in ("python", "python3"):
        shim = bindir / name
        shim.write_text(_SHIM.format(python=sys.executable, log=str(log)))
        shim.chmod(0o755)
    env = dict(os.environ, PATH=f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}", OVLAB_STAGE_USAGE=str(log))
    dvc = [sys.executable, "-m", "dvc"]
    subprocess.run(dvc + ["pull", "-q", "data.dvc"], cwd=repo, env=env, check=True)

    marks: list[tuple[float, str]] = []
    tail: list[str] = []
    t0 = time.time()
    proc = subprocess.Popen(dvc + ["repro"], cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, bufsize=1)
    assert proc.stdout is not None
    for line in proc.stdout:
        tail = (tail + [line.rstrip()])[-30:]
        found = _RUNNING.search(line)
        if found:  # DVC names a sub-pipeline's stage by its file: pipelines/<table>/dvc.yaml:<stage>
            marks.append((time.time(), stage_name(found.group(1))))
    rc = proc.wait()
    total = time.time() - t0
    if rc != 0:
        raise RuntimeError("dvc repro failed in the copy:\n" + "\n".join(tail))

    commands = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    commands.sort(key=lambda c: c["start"])
    top: list[dict] = []  # drop commands nested in another (a notebook's kernel inside `ovlab.run`)
    for cmd in commands:
        if top and cmd["start"] + cmd["wall"] <= top[-1]["start"] + top[-1]["wall"] + 1e-3:
            top[-1]["maxrss_kb"] = max(top[-1]["maxrss_kb"], cmd["maxrss_kb"])
            if "startup_s" in cmd:  # a stage served by a warm interpreter (ovlab.stage) measured it
                top[-1]["startup_s"] = cmd["startup_s"]
                top[-1]["argv"] = cmd["argv"]
            continue
        top.append(cmd)
    commands = top
    stages: dict[str, dict] = {}
    ends = [t for t, _ in marks[1:]] + [t0 + total]
    for (start, name), end in zip(marks, ends):
        stages[name] = {"wall_s": round(end - start, 2), "command_s": 0.0, "peak_rss_mb": 0.0, "modules": []}
    for cmd in commands:
        owner = None
        for start, name in marks:
            if start <= cmd["start"]:
                owner = name
        if owner is None:
            continue  # the dvc pull before the run
        entry = stages[owner]
        entry["command_s"] = round(entry["command_s"] + cmd["wall"], 2)
        if "startup_s" in cmd:
            entry["measured_startup_s"] = round(entry.get("measured_startup_s", 0.0) + cmd["startup_s"], 2)
        entry["peak_rss_mb"] = max(entry["peak_rss_mb"], round(cmd["maxrss_kb"] / 1024, 1))
        module = _entry_module(cmd["argv"])
        if module and module not in entry["modules"]:
            entry["modules"].append(module)
    startup: dict[str, float] = {}
    for entry in stages.values():
        for module in entry["modules"]:
            if module not in startup:
                startup[module] = round(import_seconds(sys.executable, module, repo), 2)
        entry["startup_s"] = round(sum(startup[m] for m in entry["modules"]), 2)
        if "measured_startup_s" in entry:  # served warm: the start-up it actually paid
            entry["cold_startup_s"] = entry["startup_s"]
            entry["startup_s"] = entry.pop("measured_startup_s")
    return {"total_s": round(total, 1), "stages": stages, "startup_by_module_s": startup,
            "n_stages": len(stages), "cpus": os.cpu_count(),
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()]}


def bench_pipeline(argv: list[str]) -> int:
    """``ovlab bench pipeline [--src DIR] [--out FILE] [--keep]``: see the module docstring."""
    p = argparse.ArgumentParser(prog="ovlab bench pipeline", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--src", type=Path, default=Path("."), help="the checkout to copy (default: .)")
    p.add_argument("--out", type=Path, default=Path("results/bench/pipeline.json"), help="the JSON written")
    p.add_argument("--keep", action="store_true", help="keep the temporary copy (its path is printed)")
    args = p.parse_args(argv)
    from ovlab.atomic import write_json

    work = Path(tempfile.mkdtemp(prefix="ovlab-bench-pipeline-"))
    try:
        result = run_pipeline(args.src.resolve(), work)
    except (RuntimeError, subprocess.CalledProcessError) as exc:
        print(f"ovlab bench pipeline: error: {exc}", file=sys.stderr)
        return 1
    finally:
        if args.keep:
            print(f"copy kept at {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    result["date"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    write_json(args.out, result)
    rows = sorted(result["stages"].items(), key=lambda kv: -kv[1]["wall_s"])
    print(f"{'stage':<40} {'wall s':>8} {'cmd s':>8} {'start-up s':>10} {'peak MB':>8}")
    for name, s in rows:
        print(f"{name:<40} {s['wall_s']:>8.1f} {s['command_s']:>8.1f} {s['startup_s']:>10.2f} {s['peak_rss_mb']:>8.0f}")
    print(f"total {result['total_s']:.0f} s ({result['total_s'] / 60:.1f} min) over {result['n_stages']} stages "
          f"on {result['cpus']} CPUs -> {args.out}")
    return 0
