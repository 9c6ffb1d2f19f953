"""``ovlab cluster submit``: every cell of a table (any DVC stage) as a SLURM job through submitit.

Each job runs ``dvc --wait-for-lock repro --single-item <stage>`` in the repository, so its results
land in the stage's ``dvc.lock`` exactly as a local ``dvc repro`` would put them: DVC releases the repository
lock while a stage's command runs and takes it again to record the outputs, so the jobs of one
table run side by side and each writes its own entry. ``--single-item`` runs only that stage:
submit the stages a table depends on first (``tgkd_baseline`` before the GKC tables; DVC refuses
a stage whose dependencies are missing, naming them) or chain them with ``--after JOBID``.

A job asks for ``train.gpus`` GPUs of the cell's resolved section (one task per node); with
``train.gpus > 1`` the stage's own command (``ovlab train`` / ``ovlab grid``) re-launches itself
under ``torchrun`` inside the job, so the DVC command is the same on one GPU and on eight. Cells
that only score a shared model and the notebook stages ask for one GPU (none with
``base.device: cpu``).

Targets: a stage name (``tgkd_baseline``, ``gkc_table4@td``), a matrix stage (``gkc_table4``: all
its cells) or ``<section>/<table>`` (``tgkd/table4``, ``scan/models``). Stage names come from
``dvc stage list --all`` (bare names; a job addresses a stage of a ``pipelines/<table>/dvc.yaml`` by its
file, :mod:`ovlab.dvcfiles`), the GPUs from the params through :mod:`ovlab.config`.

For sweeps on one machine DVC's own queue is enough: ``dvc exp run --queue -S 'tgkd.optim.lr=1e-4'``
then ``dvc queue start`` (docs/real_data.md; one worker by default, and more workers run
experiments in parallel on the same GPUs).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

STAGE_PREFIX = {"tgkd": "gkc", "scan": "scan", "video": "video"}
"""params section → the prefix of its grid stages in dvc.yaml (``gkc_table4@<cell>``) where they differ
(other sections' stages are named after the section: ``physical_table1@<cell>``)."""
PREFIX_SECTION = {v: k for k, v in STAGE_PREFIX.items()}


class ClusterError(RuntimeError):
    """Unknown targets, DVC failing to list stages, or a job's stage failing (its output tail quoted)."""


def list_stages(repo: str | Path) -> list[str]:
    """Every stage name of the repository's pipeline files (the root ``dvc.yaml`` and
    ``pipelines/*/dvc.yaml``; matrix cells expanded), bare (``gkc_table4@td``), via ``dvc stage list --all``.

    Raises:
        ClusterError: dvc failed (its message quoted).
    """
    from ovlab.dvcfiles import stage_name

    res = subprocess.run([sys.executable, "-m", "dvc", "stage", "list", "--all", "--name-only"], cwd=repo,
                         capture_output=True, text=True)
    if res.returncode != 0:
        raise ClusterError(f"dvc stage list failed in {repo}: {res.stderr.strip() or res.stdout.strip()}")
    return [stage_name(ln.strip()) for ln in res.stdout.splitlines() if ln.strip()]


def expand_targets(targets: list[str], stages: list[str]) -> list[str]:
    """Stage names for ``targets`` (see the module docstring), in ``dvc.yaml`` order, each once.

    Raises:
        ClusterError: a target matches no stage (lists the matrix stages).
    """
    out: list[str] = []
    for t in targets:
        if "/" in t and "@" not in t:
            sec, table = t.split("/", 1)
            t = f"{STAGE_PREFIX.get(sec, sec)}_{table}"
        hits = [s for s in stages if s == t or s.startswith(t + "@")]
        if not hits:
            tables = sorted({s.split("@")[0] for s in stages if "@" in s})
            raise ClusterError(f"{t}: no such stage in the pipeline files (matrix stages: {', '.join(tables)})")
        out += [h for h in hits if h not in out]
    return out


def stage_gpus(params, stage: str) -> int:
    """GPUs one job of ``stage`` asks for: ``train.gpus`` of the section it trains, 1 for the others
    (0 when ``base.device`` is ``cpu``)."""
    default = 0 if params.base.device == "cpu" else 1
    name, _, cell = stage.partition("@")
    prefix, _, table = name.partition("_")
    if name == "tgkd_baseline":
        return params.tgkd.train.gpus if default else 0
    section = PREFIX_SECTION.get(prefix, prefix)
    if not cell or not table or section not in type(params).model_fields or not hasattr(params.section(section), "grids"):
        return default
    cfg = params.section(section)
    try:
        sub = cfg.grid_section(table, cell)
    except (KeyError, ValueError):
        return default
    trains = table == "models" or cfg.grid_model(table, cell)[0] == "own"
    return (sub.train.gpus if trains else 1) if default else 0


@dataclass(frozen=True)
class JobSpec:
    """One job: its stage and the resources it asks for."""

    stage: str
    gpus: int


def slurm_parameters(spec: JobSpec, *, partition: str | None = None, timeout_min: int = 24 * 60,
                     cpus_per_gpu: int = 8, mem_gb: int | None = None, after: str | None = None,
                     extra: dict | None = None) -> dict:
    """The submitit ``update_parameters`` of one job (``slurm_*`` keys are ignored by the local executor)."""
    p = {"name": f"ovlab:{spec.stage}", "nodes": 1, "tasks_per_node": 1, "gpus_per_node": spec.gpus,
         "cpus_per_task": max(1, cpus_per_gpu * max(1, spec.gpus)), "timeout_min": timeout_min}
    if partition:
        p["slurm_partition"] = partition
    if mem_gb:
        p["mem_gb"] = mem_gb
    if after:
        p["slurm_additional_parameters"] = {"dependency": f"afterok:{after}"}
    if extra:
        p.update(extra)
    return p


def run_stage(repo: str, stage: str) -> dict:
    """The body of one job: ``dvc --wait-for-lock repro --single-item <address>`` in ``repo``, the
    stage's DVC address (:func:`ovlab.dvcfiles.address`: ``pipelines/<table>/dvc.yaml:<stage>`` outside
    the root file).

    Returns:
        ``{"stage", "seconds", "output"}`` (the last 2000 characters of DVC's output).

    Raises:
        ClusterError: the stage failed (its output tail quoted).
    """
    from ovlab.dvcfiles import address

    t0 = time.time()
    res = subprocess.run([sys.executable, "-m", "dvc", "--wait-for-lock", "repro", "--single-item", address(stage, repo)],
                         cwd=repo, capture_output=True, text=True, env=dict(os.environ))
    out = (res.stdout + res.stderr)[-2000:]
    if res.returncode != 0:
        raise ClusterError(f"stage {stage} failed in {repo} (exit {res.returncode}):\n{out}")
    return {"stage": stage, "seconds": round(time.time() - t0, 1), "output": out}


def make_executor(kind: str, folder: str | Path):
    """A submitit executor: ``slurm``, ``local`` (processes on this machine) or ``auto`` (SLURM when
    ``sbatch`` exists, else local)."""
    import submitit

    if kind == "local":
        return submitit.LocalExecutor(folder=str(folder))
    if kind == "slurm":
        return submitit.AutoExecutor(folder=str(folder), cluster="slurm")
    if kind == "auto":
        return submitit.AutoExecutor(folder=str(folder))
    raise ValueError(f"executor must be slurm, local or auto, got {kind!r}")


def submit(repo: str | Path, specs: list[JobSpec], *, executor: str = "auto", folder: str | Path | None = None,
           **slurm) -> list:
    """Submit one job per :class:`JobSpec`; returns the submitit jobs (``job.result()`` waits).

    Args:
        repo: the repository (the jobs run there; on a cluster, a shared filesystem).
        executor: see :func:`make_executor`.
        folder: submitit's log folder (default ``<repo>/results/cluster/logs``, git-ignored).
        **slurm: :func:`slurm_parameters` options.
    """
    repo = Path(repo).resolve()
    ex = make_executor(executor, folder or repo / "results" / "cluster" / "logs")
    jobs = []
    for spec in specs:
        params = slurm_parameters(spec, **slurm)
        if getattr(ex, "cluster", "local") != "slurm":
            params = {k: v for k, v in params.items() if not k.startswith("slurm_") and k not in ("mem_gb",)}
        ex.update_parameters(**params)
        jobs.append(ex.submit(run_stage, str(repo), spec.stage))
    return jobs


def plan(repo: str | Path, targets: list[str], params_file: str = "params.yaml") -> list[JobSpec]:
    """The jobs for ``targets`` in ``repo`` with the GPUs each asks for.

    Raises:
        ClusterError: a target matches no stage. ParamsError: bad params.
    """
    from ovlab.config import load_params

    repo = Path(repo)
    params = load_params(repo / params_file)
    return [JobSpec(s, stage_gpus(params, s)) for s in expand_targets(targets, list_stages(repo))]


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("cluster", help="run the cells of a table (any DVC stages) as SLURM jobs through submitit",
                              description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cluster_command", metavar="ACTION")
    sub.required = True
    s = sub.add_parser("submit", help="one job per stage: dvc repro --single-item <stage> (results land in dvc.lock)")
    s.add_argument("targets", nargs="+", help="stage, matrix stage (gkc_table4) or <section>/<table> (tgkd/table4)")
    s.add_argument("--repo", default=".", help="the repository (default: here)")
    s.add_argument("--params", default="params.yaml")
    s.add_argument("--executor", choices=["auto", "slurm", "local"], default="auto")
    s.add_argument("--partition", default=None)
    s.add_argument("--time", type=int, default=24 * 60, help="minutes per job (default 1440)")
    s.add_argument("--cpus-per-gpu", type=int, default=8)
    s.add_argument("--mem-gb", type=int, default=None)
    s.add_argument("--after", default=None, help="SLURM job id these jobs wait for (afterok)")
    s.add_argument("--folder", default=None, help="submitit log folder (default results/cluster/logs)")
    s.add_argument("--dry-run", action="store_true", help="print the jobs, submit nothing")
    s.add_argument("--wait", action="store_true", help="wait for the jobs and report each")
    s.set_defaults(func=_main)


def _main(args) -> int:
    from ovlab.config import ParamsError

    try:
        specs = plan(args.repo, args.targets, args.params)
    except (ClusterError, ParamsError) as exc:
        print(f"ovlab cluster: error: {exc}", file=sys.stderr)
        return 2
    for s in specs:
        print(f"{s.stage}\t{s.gpus} GPU(s)")
    if args.dry_run:
        return 0
    jobs = submit(args.repo, specs, executor=args.executor, folder=args.folder, partition=args.partition,
                  timeout_min=args.time, cpus_per_gpu=args.cpus_per_gpu, mem_gb=args.mem_gb, after=args.after)
    for s, j in zip(specs, jobs):
        print(f"submitted {s.stage}: job {j.job_id}")
    if not args.wait:
        return 0
    failed = 0
    for s, j in zip(specs, jobs):
        try:
            r = j.result()
            print(f"done {s.stage} in {r['seconds']} s")
        except Exception as exc:  # submitit re-raises the job's exception wrapped
            failed += 1
            print(f"failed {s.stage}: {exc}", file=sys.stderr)
    return 1 if failed else 0
