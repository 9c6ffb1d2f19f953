"""Run the SCAN ablation grids (SCAN Tables 3–8; :mod:`ovlab.config.scan_grids`).

- ``ovlab scan-grid --model sim`` trains a shared grid model (``scan.grids.models``) into
  ``<grids.output>/models/<name>/`` (``model.pt``, ``metrics.json``, ``dvclive/``);
- ``ovlab scan-grid --cell table7/l1_r30`` scores one cell: when the cell changes only test-time keys
  (CS, ensemble, inference mode, evaluation) it loads the shared model with the same training view
  and evaluates it with the cell's settings; otherwise it trains its own model in the cell folder
  first. It writes ``<grids.output>/<table>/<cell>/metrics.json``: ``cell`` (table, cell, overrides),
  ``model`` (which weights and how they were trained), ``evals`` (one summary per
  ``grids.eval_datasets`` benchmark, with the SCAN test-time settings) and ``eval`` (the first);
- ``--table table7`` runs every cell of a table in one process (same outputs, one import).

Each cell is one DVC stage (``dvc.yaml`` matrix stages ``scan_table3`` ... ``scan_table8``).
``python -m ovlab.experiments.scan_grid`` works as well.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from ovlab.atomic import write_json, write_text
from ovlab.config import ParamsError, StageParams, load_params
from ovlab.metrics.evaluate import table_csv
from ovlab.caveats import EMBEDDED_CAVEAT

from ovlab.engine.checkpoint import load as load_checkpoint
from ovlab.scan.task import ScanTask


class ModelNotTrainedError(FileNotFoundError):
    """A cell needs a shared grid model whose ``model.pt`` does not exist yet (the message says how to make it)."""


def cell_stage(stage: StageParams, table: str, cell: str) -> StageParams:
    """The ``scan`` stage of a grid cell (``table="models"``: a shared model).

    Raises:
        KeyError: unknown table or cell. ParamsError: the cell does not validate.
    """
    try:
        cfg = stage.cfg.grid_cell(table, cell)
    except ValueError as exc:
        raise ParamsError(f"{stage.source}: {exc}") from None
    return StageParams(stage.name, stage.base, cfg, stage.root, stage.source)


def model_dir(stage: StageParams, name: str) -> Path:
    """``<grids.output>/models/<name>`` of a shared model."""
    return stage.path(stage.cfg.grids.output) / "models" / name


def _device(stage) -> torch.device:
    d = stage.base.device
    if d == "auto":
        d = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(d)


def train_model(stage: StageParams, name: str, *, progress: bool = True):
    """Train the shared grid model ``name`` (no evaluation: the cells evaluate it).

    Returns:
        :class:`ovlab.engine.trainer.TrainResult`.

    Raises:
        KeyError: no such model in ``scan.grids.models``.
    """
    from ovlab.engine.trainer import train

    sub = cell_stage(stage, "models", name)
    return train(sub, task=ScanTask(), evaluate=False, progress=progress)


def run_cell(stage: StageParams, table: str, cell: str, *, progress: bool = True) -> dict:
    """Score one grid cell (training its own model first when it changes training) and write its metrics.

    Args:
        stage: the ``scan`` :class:`StageParams` (``params.stage("scan")``).
        table, cell: e.g. ``"table6"``, ``"noise"``.

    Returns:
        the metrics dict written to ``<grids.output>/<table>/<cell>/metrics.json``.

    Raises:
        KeyError: unknown table or cell. ParamsError: the cell does not validate.
        ModelNotTrainedError: the shared model it evaluates has not been trained.
        DatasetNotFoundError / WeightsNotFoundError: data or weights absent.
    """
    from ovlab.engine.trainer import _num, train

    sub = cell_stage(stage, table, cell)
    cfg, grids = sub.cfg, stage.cfg.grids
    out = sub.path(cfg.output)
    shared = stage.cfg.shared_model(cfg)
    task = ScanTask()
    if shared is not None:
        weights = model_dir(stage, shared) / "model.pt"
        if not weights.is_file():
            raise ModelNotTrainedError(f"{weights}: the shared SCAN model {shared!r} of cell {table}/{cell} is not "
                                       f"trained; run `ovlab scan-grid --model {shared}` (DVC stage scan_models)")
        info = weights.parent / "metrics.json"
        trained = json.loads(info.read_text()) if info.is_file() else {}
        origin = {"kind": "shared", "name": shared, "path": str(weights)}
    else:
        res = train(sub, task=task, evaluate=False, progress=progress)
        weights, trained = res.output / "model.pt", res.metrics
        origin = {"kind": "own", "name": f"{table}/{cell}", "path": str(weights)}
    origin["train"] = {k: trained.get(k) for k in ("iterations", "batch_size", "final_loss", "fingerprint")}
    device = _device(sub)
    built = task.build(sub)
    built.model.load_state_dict(load_checkpoint(weights)["model"])
    built.model.to(device).eval()
    cache = sub.path(sub.base.paths.cache)
    evals, first_rows = {}, None
    for ds in grids.eval_datasets:
        ev_cfg = cfg.model_copy(update={"eval": cfg.eval.model_copy(update={"dataset": ds})})
        ev = StageParams(sub.name, sub.base, ev_cfg, sub.root, sub.source)
        summary, per_class = task.evaluate(ev, built, device, progress, cache)
        evals[summary["dataset"]] = {k: _num(v) for k, v in summary.items()}
        if first_rows is None:
            first_rows = per_class
    metrics = {"stage": "scan", "profile": sub.base.profile, "seed": sub.base.seed,
               "cell": {"table": table, "cell": cell, "overrides": grids.overrides(table, cell)},
               "model": origin, "clip": built.clip.identity(), "evals": evals, "eval": next(iter(evals.values()))}
    if sub.base.profile == "embedded":
        metrics.update({"synthetic": True, "caveat": EMBEDDED_CAVEAT})
    if first_rows is not None:
        write_text(out / "per_class.csv", table_csv(first_rows))
    write_json(out / "metrics.json", metrics)
    return metrics


def add_parser(subparsers) -> None:
    """Register ``ovlab scan-grid``."""
    p = subparsers.add_parser("scan-grid", help="SCAN ablation grids: train a shared model or score cells "
                                                "(SCAN Tables 3-8)")
    _arguments(p)
    p.set_defaults(func=_main)


def _arguments(p) -> None:
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--model", help="train a shared model of scan.grids.models (e.g. sim, nosim)")
    what.add_argument("--cell", help="score one cell <table>/<cell> (e.g. table6/noise)")
    what.add_argument("--table", help="score every cell of a table in one process (e.g. table7)")
    what.add_argument("--list", action="store_true", help="print the models and cells and the model each cell uses")
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _main(args) -> int:
    from ovlab.clip.loading import WeightsNotFoundError
    from ovlab.data.errors import CorruptFileError, DatasetNotFoundError

    errors = (ParamsError, WeightsNotFoundError, DatasetNotFoundError, CorruptFileError, FileNotFoundError,
              ValueError, KeyError)
    progress = not args.quiet
    threads = torch.get_num_threads()
    try:
        stage = load_params(args.params).stage("scan")
        grids = stage.cfg.grids
        if grids.torch_threads is not None:
            torch.set_num_threads(grids.torch_threads)
        if args.list:
            for name in grids.models:
                print(f"model {name}")
            for table, cell in grids.cells():
                used = stage.cfg.shared_model(stage.cfg.grid_cell(table, cell))
                print(f"{table}/{cell}: {'model ' + used if used else 'trains its own model'}")
            return 0
        if args.model:
            res = train_model(stage, args.model, progress=progress)
            print(f"ovlab scan-grid: trained {args.model} ({res.iterations} iterations); wrote {res.output}")
            return 0
        if args.table:
            cells = [(args.table, c) for t, c in grids.cells() if t == args.table]
            if not cells:
                raise KeyError(f"scan.grids has no table {args.table!r} with cells")
        else:
            table, _, cell = args.cell.partition("/")
            cells = [(table, cell)]
        for table, cell in cells:
            m = run_cell(stage, table, cell, progress=progress)
            scores = ", ".join(f"{d} mIoU {e.get('mIoU')}" for d, e in m["evals"].items())
            print(f"ovlab scan-grid: {table}/{cell} ({m['model']['kind']} model {m['model']['name']}): {scores}")
    except errors as exc:
        print(f"ovlab scan-grid: error: {exc}", file=sys.stderr)
        return 1
    finally:
        torch.set_num_threads(threads)
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m ovlab.experiments.scan_grid``: the same as ``ovlab scan-grid``."""
    p = argparse.ArgumentParser(prog="python -m ovlab.experiments.scan_grid", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    _arguments(p)
    return _main(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
