"""The paper-profile smoke run: every distinct code path of every paper grid cell, on simulated data.

``python -m ovlab.experiments.paper_smoke [--all] [--work DIR]`` (also ``ovlab paper-smoke``):

1. makes a work folder (a new temporary one unless ``--work``; never ``results/``) holding a copy of
   ``params.yaml``, ``dvc.yaml`` and ``profiles/`` switched to the ``paper-smoke`` profile
   (``profiles/paper-smoke.yaml``: the ``paper`` profile with only sizes and counts shrunk and tiny
   untrained CLIPs), the simulated datasets of :func:`ovlab.data.simulate.make_simulated` under
   ``datasets/``, and randomly initialised files at the paper's weight paths (Swin-B, torchvision
   ResNet-50/101, SuperPoint) so that the loading code runs too (:func:`simulate_weights`);
2. runs the stages the grids read, as the pipeline would: ``synonyms`` (WordNet) and
   ``synonym_score`` (GKC Eq. 1 over every segment of the simulated COCO train, all 133 classes),
   the ``tgkd`` baseline (the video rows start from it), SCAN's CS fine-tuning of every source;
3. runs, per grid section (``tgkd``, ``scan``, ``video``, ``physical``), one representative cell of
   every distinct configuration (:func:`plan`), or every cell with ``--all``, through the grid runner
   (:func:`ovlab.experiments.grid.run_cell`), after the shared models and cells they score.

A *configuration* (:func:`signature`) is what a cell changes in its section's resolved parameters:
the categorical values it sets (strings, booleans, ``null``: a switch such as ``gkc.kd.mode:
vanilla``, a weights file, a CLIP name), plus which weights it scores (its own, a shared model,
another cell's). Numeric values (``sim.layers``, ``contextual_shift.ratio``) are the same code path
at other numbers: they make no configuration of their own.

Every run writes ``<work>/smoke.json``: per cell its configuration, whether it ran, its finite
metrics or the error. THE DATA IS SIMULATED and the CLIPs untrained: the numbers check the code,
not the methods.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from ovlab.dvcfiles import copy_pipeline

REPO = Path(__file__).resolve().parents[2]
PROFILE = "paper-smoke"
GRID_SECTIONS = ("tgkd", "scan", "video", "physical")
_IGNORED = ("output", "grids")
"""Top-level keys of a section that never make a configuration (where a cell writes; its grid)."""


@dataclass
class Cell:
    """One grid cell of the plan.

    Attributes:
        section, table, cell: where it is (``table="models"``: a shared model).
        kind: which weights it scores (``own``, ``model``, ``cell``, ``converted``; grid runner).
        ref: the shared model or ``<table>/<cell>`` it scores (``kind != own``).
        signature: its configuration (:func:`signature`), as sorted strings.
        group: the representative cell of its configuration (``<section> <table>/<cell>``).
    """

    section: str
    table: str
    cell: str
    kind: str
    ref: str
    signature: tuple[str, ...]
    group: str = ""

    @property
    def name(self) -> str:
        return f"{self.section} {self.table}/{self.cell}"


@dataclass
class SmokeResult:
    """What :func:`run_smoke` did: ``cells`` (name → record), ``stages`` (name → record), ``work``."""

    work: Path
    cells: dict = field(default_factory=dict)
    stages: dict = field(default_factory=dict)

    @property
    def failed(self) -> list[str]:
        return [n for n, r in {**self.stages, **self.cells}.items() if r.get("error")]


def _leaves(d, prefix=""):
    if isinstance(d, dict) and d:
        for k, v in d.items():
            yield from _leaves(v, f"{prefix}{k}.")
    else:
        yield prefix[:-1], d


def signature(base: dict, resolved: dict, kind: str) -> tuple[str, ...]:
    """The configuration of a cell: ``resolved`` (its section, ``model_dump(mode="json")``) against
    ``base`` (the section without the cell), ``kind`` of the weights it scores.

    Returns:
        sorted strings: ``"key=value"`` for every categorical leaf (str, bool, ``None``) that differs,
        and ``"weights=<kind>"``. Numbers and lists (SIM layers and sigmas, the CS ratio) are values
        of a code path, not switches: they make no configuration of their own (``--all`` runs them).
    """
    b = dict(_leaves({k: v for k, v in base.items() if k not in _IGNORED}))
    out = {f"weights={kind}"}
    for key, value in _leaves({k: v for k, v in resolved.items() if k not in _IGNORED}):
        if key in b and b[key] == value:
            continue
        if value is None or isinstance(value, (str, bool)):
            out.add(f"{key}={json.dumps(value)}")
    return tuple(sorted(out))


def plan(params) -> list[Cell]:
    """Every cell of every grid section of ``params``, grouped by configuration.

    The first cell (grid order) of each configuration of a section is its representative
    (``cell.group == cell.name``).

    Raises:
        ParamsError / KeyError: a cell that does not validate.
    """
    from ovlab.experiments.grid import cell_stage

    cells: list[Cell] = []
    for section in GRID_SECTIONS:
        stage = params.stage(section)
        base = stage.cfg.model_dump(mode="json")
        groups: dict[tuple, str] = {}
        for table, cell in stage.cfg.grids.cells():
            kind, ref = stage.cfg.grid_model(table, cell)
            resolved = cell_stage(stage, table, cell).cfg.model_dump(mode="json")
            sig = signature(base, resolved, kind)
            c = Cell(section, table, cell, kind, ref, sig)
            c.group = groups.setdefault(sig, c.name)
            cells.append(c)
    return cells


def representatives(cells: list[Cell]) -> list[Cell]:
    """The representative cell of every configuration."""
    return [c for c in cells if c.group == c.name]


# ---- the work folder ------------------------------------------------------------------------------

def _save_random(path: Path, state: dict) -> None:
    """Save a state dict with its floating tensors in half precision (a smaller file; loading casts back)."""
    import io

    import torch

    from ovlab.atomic import write_bytes

    buf = io.BytesIO()
    torch.save({k: (v.half() if v.is_floating_point() else v) for k, v in state.items()}, buf)
    write_bytes(path, buf.getvalue())


def simulate_weights(params) -> list[Path]:
    """Write randomly initialised weight files at the paths the params name (nothing downloaded):
    the torchvision ResNets of ``tgkd`` cells with ``model.backbone.kind: imagenet``, the Swin of
    ``scan.model.backbone`` (timm names), the SuperPoint of ``physical.structure``. Returns the files."""
    import torch
    import torchvision

    from ovlab.experiments.grid import cell_stage

    written: list[Path] = []
    torch.manual_seed(0)
    tgkd = params.stage("tgkd")
    for table, cell in tgkd.cfg.grids.cells():
        if tgkd.cfg.grid_model(table, cell)[0] != "own":
            continue
        bb = cell_stage(tgkd, table, cell).cfg.model.backbone
        if bb.kind == "imagenet" and bb.weights and not tgkd.path(bb.weights).is_file():
            _save_random(tgkd.path(bb.weights), getattr(torchvision.models, f"resnet{bb.depth}")(weights=None).state_dict())
            written.append(tgkd.path(bb.weights))
    scan = params.stage("scan")
    bb = scan.cfg.model.backbone
    if bb.kind == "swin" and bb.weights and not scan.path(bb.weights).is_file():
        from ovlab.segmenter.swin import SwinBackbone

        _save_random(scan.path(bb.weights), SwinBackbone.from_variant(bb.swin).swin.state_dict())
        written.append(scan.path(bb.weights))
    phys = params.stage("physical")
    ckpt = phys.cfg.structure.superpoint_checkpoint
    if ckpt and not phys.path(ckpt).is_file():
        from ovlab.physical.superpoint import SuperPoint

        _save_random(phys.path(ckpt), SuperPoint(0.015, 4).state_dict())
        written.append(phys.path(ckpt))
    return written


def make_workdir(work: str | Path, *, repo: str | Path = REPO, seed: int = 0) -> Path:
    """Fill ``work`` (created) with the paper-smoke params, the simulated data and weight files.

    Returns:
        the ``params.yaml`` in it.

    Raises:
        ValueError: ``work`` is inside the repository's ``results/`` folder.
    """
    from ovlab.config import load_params
    from ovlab.data.simulate import make_simulated
    from ovlab.profiles import apply_profile

    work, repo = Path(work).resolve(), Path(repo).resolve()
    if work.is_relative_to(repo / "results"):
        raise ValueError(f"{work}: the smoke run never writes into results/")
    work.mkdir(parents=True, exist_ok=True)
    shutil.copy(repo / "params.yaml", work / "params.yaml")
    copy_pipeline(repo, work)
    shutil.copytree(repo / "profiles", work / "profiles", dirs_exist_ok=True)
    curation = repo / "ovlab" / "vocab" / "curation"  # the synonyms stage's hand-curated overrides (params-relative)
    shutil.copytree(curation, work / "ovlab" / "vocab" / "curation", dirs_exist_ok=True)
    apply_profile(PROFILE, work / "params.yaml")
    if not (work / "datasets" / "summary.json").is_file():
        make_simulated(work / "datasets", seed=seed)
    simulate_weights(load_params(work / "params.yaml"))
    return work / "params.yaml"


# ---- running ---------------------------------------------------------------------------------------

def _finite(metrics) -> list[str]:
    """Dotted keys of the non-finite numbers in a metrics record."""
    return [k for k, v in _leaves(metrics) if isinstance(v, float) and not math.isfinite(v)]


def _attempt(record: dict, fn, *args, **kwargs):
    t0 = time.perf_counter()
    try:
        out = fn(*args, **kwargs)
        record["ok"] = True
        return out
    except Exception as exc:  # noqa: BLE001 - a smoke run records every failure and goes on
        record["error"] = f"{type(exc).__name__}: {exc}"
        record["traceback"] = traceback.format_exc(limit=8)
        return None
    finally:
        record["seconds"] = round(time.perf_counter() - t0, 1)


def _stages(params, result: SmokeResult, sections: tuple[str, ...], progress: bool) -> None:
    from ovlab.experiments.registry import task_for
    from ovlab.engine.trainer import train

    if "tgkd" in sections:
        from ovlab.experiments.synonym_score import run_synonym_score
        from ovlab.experiments.synonyms import run_synonyms

        _attempt(result.stages.setdefault("synonyms", {}), run_synonyms, params.stage("synonyms"))
        rec = result.stages.setdefault("synonym_score", {})
        res = _attempt(rec, run_synonym_score, params.stage("synonym_score"), progress=progress)
        if res is not None:
            classes = {s["class"] for segs in res.scores.values() for s in segs.values()}
            rec["classes"] = len(classes)
            rec["segments"] = sum(len(s) for s in res.scores.values())
    if "tgkd" in sections or "video" in sections:
        stage = params.stage("tgkd")
        task = task_for("tgkd")
        rec = result.stages.setdefault("tgkd_baseline", {})
        res = _attempt(rec, lambda: train(task.resolve(stage), task=task, evaluate=True, progress=progress))
        if res is not None:
            rec["metrics"] = {k: res.metrics.get(k) for k in ("iterations", "final_loss")}
            rec["eval"] = res.metrics.get("eval")
            sub: dict = {}
            rec["train_classes"] = _attempt(sub, _train_classes, task.resolve(stage), task)
            if sub.get("error"):
                rec["error"] = f"counting the training classes: {sub['error']}"
    if "scan" in sections:
        from ovlab.scan.cs_finetune import run_cs_finetune

        stage = params.stage("scan")
        if stage.cfg.cs_finetune.enabled:
            for source in stage.cfg.cs_finetune.sources:
                _attempt(result.stages.setdefault(f"scan_cs_finetune@{source}", {}), run_cs_finetune, stage, source,
                         progress=progress)


def _train_classes(stage, task) -> int:
    """How many classes the section's training batches can show the model: the classes of the
    records its task reads (``read_training_records``) that its training vocabulary keeps
    (``Vocabulary.label_lut``), crowd segments aside."""
    from ovlab.clip.loading import load_clip_from_params
    from ovlab.data.categories import load_categories
    from ovlab.segmenter.task import categories_ref, read_training_records

    vocab = task.vocabulary(stage, load_clip_from_params(stage.cfg.clip, stage))
    lut = vocab.label_lut(len(load_categories(categories_ref(stage))))
    return len({int(lut[s.category_index]) for r in read_training_records(stage) for s in r.segments
                if not s.iscrowd and lut[s.category_index] >= 0})


def _prune(params, c: Cell, referenced: set[str]) -> None:
    """Remove what a finished cell leaves that nothing reads any more: the resumable training
    checkpoints (``train.checkpoint_dir``) and its ``model.pt`` unless another cell scores it
    (a Swin-B SCAN model with its optimiser state is about 1 GB)."""
    stage = params.stage(c.section)
    shutil.rmtree(stage.path(stage.cfg.train.checkpoint_dir), ignore_errors=True)
    if c.kind == "own" and c.name not in referenced:
        (stage.path(stage.cfg.grids.output) / c.table / c.cell / "model.pt").unlink(missing_ok=True)


def run_smoke(work: str | Path | None = None, *, every_cell: bool = False, sections: tuple[str, ...] = GRID_SECTIONS,
              progress: bool = False, seed: int = 0, keep: bool = False) -> SmokeResult:
    """Run the paper-smoke profile (module docstring) and write ``<work>/smoke.json``.

    Args:
        work: the work folder (``None``: a new temporary folder, kept, named in the result).
        every_cell: every cell of every grid, not only one per configuration.
        sections: the grid sections to run (the stages they read run too).
        progress: progress bars.
        keep: keep every checkpoint and ``model.pt`` (by default a cell's are removed once nothing
            reads them: :func:`_prune`).

    Returns:
        the :class:`SmokeResult` (failures are recorded, not raised).
    """
    import torch

    from ovlab.config import load_params
    from ovlab.experiments.grid import run_cell, train_model

    work = Path(work) if work is not None else Path(tempfile.mkdtemp(prefix="ovlab-paper-smoke-"))
    result = SmokeResult(work.resolve())
    params_file = make_workdir(work, seed=seed)
    params = load_params(params_file)
    threads = torch.get_num_threads()
    _stages(params, result, sections, progress)
    cells = [c for c in plan(params) if c.section in sections]
    todo = cells if every_cell else representatives(cells)
    by_name = {c.name: c for c in cells}
    done: set[str] = set()

    def run_one(c: Cell) -> None:
        if c.name in done:
            return
        done.add(c.name)
        stage = params.stage(c.section)
        if stage.cfg.grids.torch_threads is not None:
            torch.set_num_threads(stage.cfg.grids.torch_threads)
        if c.kind == "model":
            key = f"{c.section} models/{c.ref}"
            if key not in result.cells:
                _attempt(result.cells.setdefault(key, {"signature": ["shared model"]}), train_model, stage, c.ref,
                         progress=progress)
        elif c.kind == "cell":
            run_one(by_name[f"{c.section} {c.ref}"])  # the cell whose model this one scores
        rec = result.cells.setdefault(c.name, {"signature": list(c.signature), "group": c.group})
        metrics = _attempt(rec, run_cell, stage, c.table, c.cell, progress=progress)
        torch.set_num_threads(threads)
        if metrics is not None:
            rec["evals"] = metrics.get("evals")
            bad = _finite(metrics.get("evals") or {})
            if bad or not metrics.get("evals"):
                rec["error"] = f"non-finite or no metrics: {bad or 'no evaluations'}"

    referenced = {f"{c.section} {c.ref}" for c in cells if c.kind == "cell"}
    for c in todo:
        run_one(c)
        if not keep:
            _prune(params, c, referenced)
    from ovlab.atomic import write_json

    write_json(result.work / "smoke.json", {"every_cell": every_cell, "stages": result.stages, "cells": result.cells,
                                            "failed": result.failed}, indent=1)
    return result


def add_parser(subparsers) -> None:
    """Register ``ovlab paper-smoke``."""
    p = subparsers.add_parser("paper-smoke", help="run every distinct paper grid configuration on simulated data (CPU)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    _arguments(p)
    p.set_defaults(func=_main)


def _arguments(p) -> None:
    p.add_argument("--all", action="store_true", help="every cell, not one per configuration")
    p.add_argument("--work", default=None, help="work folder (default: a new temporary folder)")
    p.add_argument("--sections", nargs="+", default=list(GRID_SECTIONS), choices=GRID_SECTIONS)
    p.add_argument("--plan", action="store_true", help="print the configurations and their cells, run nothing")
    p.add_argument("--progress", action="store_true")
    p.add_argument("--keep", action="store_true", help="keep every checkpoint and model.pt (several GB with --all)")


def _main(args) -> int:
    if args.plan:
        from ovlab.config import load_params

        with tempfile.TemporaryDirectory() as tmp:
            shutil.copy(REPO / "params.yaml", Path(tmp) / "params.yaml")
            copy_pipeline(REPO, tmp)
            shutil.copytree(REPO / "profiles", Path(tmp) / "profiles")
            from ovlab.profiles import apply_profile

            apply_profile(PROFILE, Path(tmp) / "params.yaml")
            cells = plan(load_params(Path(tmp) / "params.yaml"))
        for c in cells:
            mark = "*" if c.group == c.name else " "
            print(f"{mark} {c.name:<42} {c.kind:<6} {' '.join(c.signature)}" + ("" if mark == "*" else f"  (as {c.group})"))
        print(f"{len(representatives(cells))} configurations, {len(cells)} cells")
        return 0
    res = run_smoke(args.work, every_cell=args.all, sections=tuple(args.sections), progress=args.progress,
                    keep=args.keep)
    for name, rec in {**res.stages, **res.cells}.items():
        print(f"{'FAIL' if rec.get('error') else 'ok  '} {name:<44} {rec.get('seconds', 0):>6.1f}s {rec.get('error', '')}")
    print(f"paper-smoke: {len(res.failed)} failure(s); wrote {res.work / 'smoke.json'}")
    return 1 if res.failed else 0


def main(argv: list[str] | None = None) -> int:
    """``python -m ovlab.experiments.paper_smoke``: the same as ``ovlab paper-smoke``."""
    p = argparse.ArgumentParser(prog="python -m ovlab.experiments.paper_smoke", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    _arguments(p)
    from ovlab.caveats import configure_output

    configure_output(False)
    return _main(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
