"""The one grid runner: every paper table's cells (GKC Tables 3–8, SCAN Tables 3–8) and shared models.

``python -m ovlab grid <section> <table>/<cell>`` (or ``python -m ovlab.experiments.grid``, as the DVC
stages call it) scores one cell of ``<section>.grids`` (:mod:`ovlab.config.grid`):

- a cell that evaluates a shared model (``grids.models``) or another cell's model loads those weights
  and scores them with the cell's test-time settings;
- any other cell trains its own model in ``<grids.output>/<table>/<cell>/`` (``model.pt``,
  ``dvclive/``) with the section's task, then scores it;

``--model <name>`` trains a shared model into ``<grids.output>/models/<name>/``; ``--table`` runs every
cell of a table in one process; ``--list`` prints which weights each cell scores.

A cell writes its record (``cell``: table, cell, overrides; ``model``: which weights and how
they were trained; ``evals``: one summary per ``grids.eval_datasets`` benchmark; ``eval``: the
first — plus the training record when the cell trained) as ``metrics.json`` (the numbers, which DVC
compares) and ``info.json`` (text and provenance; :mod:`ovlab.config.record`), ``per_class.csv``
(first benchmark) and ``params.yaml``: the cell's fully resolved section and ``base``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

from ovlab.atomic import write_text
from ovlab.caveats import EMBEDDED_CAVEAT
from ovlab.config import ParamsError, StageParams, load_params
from ovlab.config.overrides import add_override_argument, override_argv
from ovlab.config.record import read_record, write_record
from ovlab.config.resolved import write_resolved
from ovlab.engine.checkpoint import load as load_checkpoint
from ovlab.engine.trainer import TrainResult, _num, train
from ovlab.experiments.registry import check_evaluation, task_for
from ovlab.metrics.evaluate import table_csv

GRID_SECTIONS = ("tgkd", "scan", "video", "physical")


class ModelNotTrainedError(FileNotFoundError):
    """A cell needs a model whose ``model.pt`` does not exist yet (the message says how to make it)."""


def cell_stage(stage: StageParams, table: str, cell: str) -> StageParams:
    """The stage of one grid cell (``table="models"``: a shared model) of ``stage``'s section.

    Raises:
        KeyError: unknown table or cell. ParamsError: the cell does not validate.
    """
    try:
        cfg = stage.cfg.grid_section(table, cell)
    except ValueError as exc:
        raise ParamsError(f"{stage.source}: {exc}") from None
    return StageParams(stage.name, stage.base, cfg, stage.root, stage.source)


def _device(stage) -> torch.device:
    d = stage.base.device
    if d == "auto":
        d = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(d)


def train_model(stage: StageParams, name: str, *, progress: bool = True) -> TrainResult:
    """Train the shared grid model ``name`` of ``stage``'s section (no evaluation: the cells evaluate it).

    Raises:
        KeyError: no such model.
    """
    sub = cell_stage(stage, "models", name)
    task = task_for(stage.name)
    sub = task.resolve(sub)
    check_evaluation(sub, stage.cfg.grids.eval_datasets)  # what its cells are scored on, before training
    write_resolved(sub.path(sub.cfg.output) / "params.yaml", sub)
    return train(sub, task=task, evaluate=False, progress=progress)


def _weights(stage: StageParams, kind: str, name: str, table: str, cell: str) -> Path:
    grids = stage.cfg.grids
    if kind == "model":
        path, how = stage.path(grids.output) / "models" / name / "model.pt", f"--model {name}"
    else:
        path, how = stage.path(grids.output) / name / "model.pt", name
    if not path.is_file():
        raise ModelNotTrainedError(f"{path}: the model {name!r} that cell {table}/{cell} evaluates is not trained; "
                                   f"run `ovlab grid {stage.name} {how}` (its DVC stage) first")
    return path


def _converted_weights(stage: StageParams, path: str, table: str, cell: str) -> Path:
    p = stage.path(path)
    if not p.is_file():
        raise ModelNotTrainedError(
            f"{p}: the converted checkpoint that cell {table}/{cell} evaluates is absent; put the released "
            f"SCAN.pth (and its CS fine-tuned CLIP) under weights/scan/ and run `ovlab convert scan --checkpoint "
            f"weights/scan/SCAN.pth [--clip weights/scan/clip.pt] --out {path}`, or name the .pth itself")
    return p


def run_cell(stage: StageParams, table: str, cell: str, *, progress: bool = True) -> dict:
    """Score one grid cell (training its own model first when it has one) and write its outputs.

    Args:
        stage: the section's :class:`StageParams` (``params.stage("scan")``...).
        table, cell: e.g. ``"table6"``, ``"noise"``.

    Returns:
        the metrics dict written to ``<grids.output>/<table>/<cell>/metrics.json``.

    Raises:
        KeyError: unknown table or cell. ParamsError: the cell does not validate.
        ModelNotTrainedError: the model it evaluates has not been trained.
        DatasetNotFoundError / WeightsNotFoundError: data or weights absent.
    """
    task = task_for(stage.name)
    sub = task.resolve(cell_stage(stage, table, cell))
    cfg, grids = sub.cfg, stage.cfg.grids
    out = sub.path(cfg.output)
    kind, name = stage.cfg.grid_model(table, cell)
    if kind == "own":
        check_evaluation(sub, grids.eval_datasets)  # a typo in an eval key fails now, not after training
    write_resolved(out / "params.yaml", sub)
    metrics: dict = {}
    if kind == "own":
        # Without grid benchmarks the trainer scores the section's own ``eval`` (the video rows).
        res = train(sub, task=task, evaluate=grids.eval_datasets is None, progress=progress)
        weights, trained = res.output / "model.pt", res.metrics
        metrics.update(res.metrics)
    elif kind == "converted":  # a converted official checkpoint (``model: converted:<path>``): nothing trained
        weights, trained = _converted_weights(stage, name, table, cell), {}
        metrics.update({"stage": stage.name, "profile": sub.base.profile, "seed": sub.base.seed})
    else:
        weights = _weights(stage, kind, name, table, cell)
        trained = read_record(weights.parent) or {}
        metrics.update({"stage": stage.name, "profile": sub.base.profile, "seed": sub.base.seed})
    origin = {"kind": "shared" if kind == "model" else kind, "name": name, "path": str(weights),
              "train": {k: trained.get(k) for k in ("iterations", "batch_size", "final_loss", "fingerprint")}}
    metrics["cell"] = {"table": table, "cell": cell, "overrides": grids.overrides(table, cell)}
    metrics["model"] = origin
    if grids.eval_datasets is None and kind == "own":
        evals = {metrics["eval"]["dataset"]: metrics["eval"]} if "eval" in metrics else {}
    else:
        evals = _evaluate(task, sub, weights, grids.eval_datasets, metrics, progress, out)
    metrics["evals"] = evals
    if evals:
        metrics["eval"] = next(iter(evals.values()))
    if sub.base.profile == "embedded":
        metrics.update({"synthetic": True, "caveat": EMBEDDED_CAVEAT})
    write_record(out / "metrics.json", metrics)
    return metrics


def _evaluate(task, sub: StageParams, weights: Path, datasets, metrics: dict, progress: bool, out: Path) -> dict:
    """Score ``weights`` with ``task.evaluate`` on every benchmark of ``datasets`` (``eval.dataset`` set
    per benchmark), or once with the section's own ``eval`` when ``datasets`` is ``None`` (a video
    section's ``eval`` names no benchmark). Writes the first benchmark's ``per_class.csv``; returns
    ``{dataset: summary}``."""
    device = _device(sub)
    if metrics.get("model", {}).get("kind") == "converted":   # an official checkpoint carries its architecture
        built = task.build_converted(sub, weights)
    else:
        built = task.build(sub)
        built.model.load_state_dict(load_checkpoint(weights)["model"])
    built.model.to(device).eval()
    metrics["clip"] = built.clip.identity()
    cache = sub.path(sub.base.paths.cache)
    evals, first_rows = {}, None
    def on(ds: str) -> StageParams:
        cfg = sub.cfg.model_copy(update={"eval": sub.cfg.eval.model_copy(update={"dataset": ds})})
        return StageParams(sub.name, sub.base, cfg, sub.root, sub.source)

    stages = [sub] if datasets is None else [on(ds) for ds in datasets]
    for ev in stages:
        summary, per_class = task.evaluate(ev, built, device, progress, cache)
        evals[summary["dataset"]] = {k: _num(v) for k, v in summary.items()}
        if first_rows is None:
            first_rows = per_class
    if first_rows is not None:
        write_text(out / "per_class.csv", table_csv(first_rows))
    return evals


def add_parser(subparsers) -> None:
    """Register ``ovlab grid``."""
    p = subparsers.add_parser("grid", help="ablation grids of any paper table: score a cell or train a shared model")
    _arguments(p)
    p.set_defaults(func=_main)


def _arguments(p) -> None:
    p.add_argument("section", choices=GRID_SECTIONS, help="the params section whose grids to run")
    p.add_argument("cell", nargs="?", help="one cell <table>/<cell> (e.g. table6/noise)")
    p.add_argument("--model", help="train a shared model of <section>.grids.models")
    p.add_argument("--table", help="score every cell of a table in one process")
    p.add_argument("--list", action="store_true", help="print the models and cells and the weights each cell scores")
    p.add_argument("--params", default="params.yaml")
    add_override_argument(p)
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _main(args) -> int:
    from ovlab.clip.loading import WeightsNotFoundError
    from ovlab.data.errors import CorruptFileError, DatasetNotFoundError
    from ovlab.engine.distributed import relaunch_with_torchrun, under_torchrun

    errors = (ParamsError, WeightsNotFoundError, DatasetNotFoundError, CorruptFileError, FileNotFoundError,
              ValueError, KeyError, OSError, FloatingPointError)  # + unwritable outputs, a diverging run
    progress = not args.quiet
    threads = torch.get_num_threads()
    chosen = sum(bool(x) for x in (args.cell, args.model, args.table, args.list))
    if chosen != 1:
        print("ovlab grid: give exactly one of <table>/<cell>, --model, --table or --list", file=sys.stderr)
        return 2
    try:
        stage = load_params(args.params, args.overrides).stage(args.section)
        grids = stage.cfg.grids
        if grids.torch_threads is not None:
            torch.set_num_threads(grids.torch_threads)
        if args.list:
            for name in grids.models:
                print(f"model {name}")
            for table, cell in grids.cells():
                kind, name = stage.cfg.grid_model(table, cell)
                print(f"{table}/{cell}: " + ("trains its own model" if kind == "own" else f"{kind} {name}"))
            return 0
        gpus = stage.cfg.train.gpus
        if gpus > 1 and not under_torchrun():  # DDP: re-launch this command under torchrun (never returns)
            again = [args.section] + ([args.cell] if args.cell else []) + (["--model", args.model] if args.model else []) \
                + (["--table", args.table] if args.table else []) + ["--params", args.params] \
                + override_argv(args.overrides) + (["--quiet"] if args.quiet else [])
            relaunch_with_torchrun(gpus, again, module="ovlab.experiments.grid")
        if args.model:
            res = train_model(stage, args.model, progress=progress)
            print(f"ovlab grid: trained {args.section} model {args.model} ({res.iterations} iterations); "
                  f"wrote {res.output}")
            return 0
        if args.table:
            cells = [(args.table, c) for t, c in grids.cells() if t == args.table]
            if not cells:
                raise KeyError(f"{args.section}.grids has no table {args.table!r} with cells")
        else:
            table, _, cell = args.cell.partition("/")
            cells = [(table, cell)]
        for table, cell in cells:
            m = run_cell(stage, table, cell, progress=progress)
            scores = ", ".join(f"{d} mIoU {e.get('mIoU', e.get('harmonic'))}" for d, e in m["evals"].items())
            print(f"ovlab grid: {args.section} {table}/{cell} ({m['model']['kind']} model {m['model']['name']}): "
                  f"{scores}")
    except errors as exc:
        if os.environ.get("RANK", "0") == "0":  # one error, not one per rank
            print(f"ovlab grid: error: {exc.args[0] if isinstance(exc, KeyError) and exc.args else exc}", file=sys.stderr)
        return 1
    finally:
        torch.set_num_threads(threads)
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m ovlab.experiments.grid``: the same as ``ovlab grid``."""
    p = argparse.ArgumentParser(prog="python -m ovlab.experiments.grid", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    _arguments(p)
    from ovlab.caveats import configure_output

    argv = list(sys.argv[1:] if argv is None else argv)
    configure_output("--verbose" in argv)  # quiet by default, as `ovlab` (ovlab.caveats)
    return _main(p.parse_args([a for a in argv if a != "--verbose"]))


if __name__ == "__main__":
    sys.exit(main())
