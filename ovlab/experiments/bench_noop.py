"""``ovlab bench noop``: how long DVC takes to find nothing to do, beside DVC's own floor for as many stages.

What it does:

1. checks that the checkout is up to date (``dvc status --quiet`` exits 0; otherwise it stops, since a
   ``dvc repro`` there would run stages), then times ``dvc repro`` and ``dvc status`` ``--repeats``
   times each (median, minimum and maximum seconds; a ``dvc repro`` that runs a stage is an error);
2. reads the pipeline's shape from its ``dvc.lock`` files (:func:`ovlab.dvcfiles.locked_stages`): stages,
   outputs, dependencies, directory entries DVC walks (a directory dependency is walked once per stage
   that lists it), and params keys DVC looks up (each one a walk of the whole parsed ``params.yaml``,
   which DVC parses again for every stage that lists params);
3. builds a synthetic DVC project in a temporary folder with the same number of stages and outputs per
   stage, one file dependency each and no params, runs it once and times its no-op ``dvc repro`` and
   ``dvc status`` the same way: the floor of this DVC version on this machine for that many stages,
   which no layout of the real pipeline can go under without fewer stages;
4. writes a JSON and prints the figures.

The target is a no-op ``dvc repro`` ≤ 3 s on an idle machine. The figures are wall seconds on the
machine that runs this; they move with its load (the load average is recorded).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_DVC = [sys.executable, "-m", "dvc"]


def timed(argv: list[str], cwd: Path, repeats: int, forbid: str | None = None) -> dict:
    """Wall seconds of ``repeats`` runs of ``argv`` in ``cwd``: ``{"median_s", "min_s", "max_s", "runs_s"}``.

    Raises:
        RuntimeError: a run exits non-zero, or its output contains ``forbid`` (e.g. DVC's
            ``Running stage``: the run was not a no-op); the output's last lines are in the message.
    """
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = subprocess.run(argv, cwd=cwd, capture_output=True, text=True)
        runs.append(time.perf_counter() - t0)
        text = out.stdout + out.stderr
        if out.returncode != 0 or (forbid and forbid in text):
            tail = "\n".join(text.strip().splitlines()[-10:])
            why = f"exited {out.returncode}" if out.returncode != 0 else f"printed {forbid!r} (not a no-op)"
            raise RuntimeError(f"{' '.join(argv[2:] if argv[:2] == _DVC[:2] else argv)} in {cwd} {why}:\n{tail}")
    return {"median_s": round(statistics.median(runs), 2), "min_s": round(min(runs), 2),
            "max_s": round(max(runs), 2), "runs_s": [round(r, 2) for r in runs]}


def pipeline_shape(root: Path) -> dict:
    """Counts from the ``dvc.lock`` files of the project at ``root`` (see the module docstring, step 2)."""
    from ovlab.dvcfiles import lock_files, locked_stages

    stages = locked_stages(root)
    shape = {"lock_files": len(lock_files(root)), "stages": len(stages), "outs": 0, "out_dirs": 0, "deps": 0,
             "dep_dirs": 0, "dir_entries_walked": 0, "stages_with_params": 0, "params_keys_looked_up": 0}
    for entry in stages.values():
        for kind in ("outs", "deps"):
            for item in entry.get(kind) or []:
                shape[kind] += 1
                if str(item.get("md5", "")).endswith(".dir"):
                    shape["out_dirs" if kind == "outs" else "dep_dirs"] += 1
                    shape["dir_entries_walked"] += int(item.get("nfiles") or 0)
        keys = sum(len(v or {}) for v in (entry.get("params") or {}).values())
        shape["stages_with_params"] += bool(keys)
        shape["params_keys_looked_up"] += keys
    return shape


def floor_project(dst: Path, n_stages: int, outs_per_stage: int) -> None:
    """A DVC project at ``dst`` (git + DVC initialised) with ``n_stages`` trivial stages, each with one
    file dependency, ``outs_per_stage`` small file outputs and no params, reproduced once.

    Raises:
        subprocess.CalledProcessError: git, ``dvc init`` or the first ``dvc repro`` failed.
    """
    import yaml

    dst.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "init", "-q"], cwd=dst, check=True)
    subprocess.run(_DVC + ["init", "-q"], cwd=dst, check=True)
    subprocess.run(_DVC + ["config", "core.analytics", "false"], cwd=dst, check=True)
    (dst / "input.txt").write_text("input\n")
    stages = {}
    for i in range(n_stages):
        outs = [f"out/s{i}/o{j}.txt" for j in range(outs_per_stage)]
        writes = " && ".join(f"echo {i}.{j} > {o}" for j, o in enumerate(outs))
        stages[f"s{i}"] = {"cmd": f"mkdir -p out/s{i} && {writes}", "deps": ["input.txt"], "outs": outs}
    (dst / "dvc.yaml").write_text(yaml.safe_dump({"stages": stages}, sort_keys=False))
    subprocess.run(_DVC + ["repro", "-q"], cwd=dst, check=True, capture_output=True)


def bench_noop(argv: list[str]) -> int:
    """``ovlab bench noop [--src DIR] [--repeats N] [--out FILE] [--no-floor]``: see the module docstring."""
    p = argparse.ArgumentParser(prog="ovlab bench noop", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--src", type=Path, default=Path("."), help="the checkout, up to date (default: .)")
    p.add_argument("--repeats", type=int, default=5, help="timed runs of each command (default 5)")
    p.add_argument("--out", type=Path, default=Path("results/bench/noop.json"), help="the JSON written")
    p.add_argument("--no-floor", action="store_true", help="skip the synthetic project (step 3)")
    args = p.parse_args(argv)
    if args.repeats < 1:
        p.error("--repeats must be ≥ 1")
    from ovlab.atomic import write_json

    src = args.src.resolve()
    status = subprocess.run(_DVC + ["status", "--quiet"], cwd=src, capture_output=True, text=True)
    if status.returncode != 0:
        print(f"ovlab bench noop: error: {src} is not up to date (dvc status reports changes); run dvc repro "
              "first, a no-op is what this measures", file=sys.stderr)
        return 1
    try:
        result = {"pipeline": pipeline_shape(src),
                  "repro": timed(_DVC + ["repro"], src, args.repeats, forbid="Running stage"),
                  "status": timed(_DVC + ["status"], src, args.repeats)}
        shape = result["pipeline"]
        if not args.no_floor and shape["stages"]:
            per_stage = max(1, round(shape["outs"] / shape["stages"]))
            work = Path(tempfile.mkdtemp(prefix="ovlab-bench-noop-"))
            try:
                floor_project(work, shape["stages"], per_stage)
                result["floor"] = {"stages": shape["stages"], "outs_per_stage": per_stage,
                                   "repro": timed(_DVC + ["repro"], work, args.repeats, forbid="Running stage"),
                                   "status": timed(_DVC + ["status"], work, args.repeats)}
            finally:
                shutil.rmtree(work, ignore_errors=True)
    except (RuntimeError, subprocess.CalledProcessError) as exc:
        print(f"ovlab bench noop: error: {exc}", file=sys.stderr)
        return 1
    import dvc

    result.update(dvc_version=dvc.__version__, cpus=os.cpu_count(),
                  load_average_at_end=[round(x, 2) for x in os.getloadavg()],
                  date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))
    write_json(args.out, result)
    s = result["pipeline"]
    print(f"pipeline: {s['stages']} stages in {s['lock_files']} lock files, {s['outs']} outputs, {s['deps']} "
          f"dependencies ({s['dir_entries_walked']} directory entries walked), {s['params_keys_looked_up']} params "
          f"keys looked up by {s['stages_with_params']} stages")
    for what in ("repro", "status"):
        r = result[what]
        line = f"no-op dvc {what:<6} median {r['median_s']:.2f} s (min {r['min_s']:.2f}, max {r['max_s']:.2f})"
        if "floor" in result:
            f = result["floor"][what]
            line += f"; DVC's floor for {result['floor']['stages']} stages: {f['median_s']:.2f} s"
        print(line)
    print(f"DVC {result['dvc_version']}, {result['cpus']} CPUs -> {args.out} (target: no-op dvc repro ≤ 3 s)")
    return 0
