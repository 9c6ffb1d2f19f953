"""Run one GKC ablation-grid cell (GKC Tables 4–7; :mod:`ovlab.config.grids`).

A cell trains the ``tgkd`` section with the cell's overrides (:meth:`ovlab.config.Params.cell`),
then scores the model on every ``gkc_grids.eval_datasets`` benchmark. It writes, under
``<gkc_grids.output>/<table>/<cell>/``: ``model.pt``, ``metrics.json`` (``evals``: one summary per
benchmark; ``eval``: the first; ``cell``: table, cell and the overrides) and ``per_class.csv`` (first
benchmark), and DVCLive's ``dvclive/``.
"""

from __future__ import annotations

import torch

from ovlab.atomic import write_json, write_text
from ovlab.metrics.evaluate import table_csv

from ovlab.experiments.registry import task_for
from ovlab.engine.trainer import TrainResult, _num
from ovlab.experiments.registry import train_stage


def run_cell(params, table: str, cell: str, *, evaluate: bool = True, progress: bool = True) -> TrainResult:
    """Train and score one cell.

    Args:
        params: the loaded :class:`ovlab.config.Params`.
        table, cell: e.g. ``"table4"``, ``"td_tgkd"``.

    Raises:
        KeyError: unknown table or cell.
        ParamsError: the cell is not a valid ``tgkd`` section.
        DatasetNotFoundError / WeightsNotFoundError: data or weights absent.
    """
    stage = params.cell(table, cell)
    grids = params.gkc_grids
    result = train_stage(stage, evaluate=False, progress=progress)
    metrics = dict(result.metrics)
    metrics["cell"] = {"table": table, "cell": cell, "overrides": grids.cell_overrides(table, cell)}
    if evaluate:
        task = task_for(stage.name)
        from ovlab.experiments.registry import from_checkpoint

        device = "cuda" if stage.base.device != "cpu" and torch.cuda.is_available() else "cpu"
        built = from_checkpoint(result.output / "model.pt", device=device, root=stage.root)
        built.model.to(device)
        evals = {}
        for i, ds in enumerate(grids.eval_datasets):
            eval_cfg = stage.cfg.eval.model_copy(update={"dataset": ds, "max_images": grids.eval_max_images})
            sub = type(stage)(stage.name, stage.base, stage.cfg.model_copy(update={"eval": eval_cfg}), stage.root,
                              stage.source)
            summary, per_class = task.evaluate(sub, built, torch.device(device), progress, stage.path(stage.base.paths.cache))
            evals[summary["dataset"]] = {k: _num(v) for k, v in summary.items()}
            if i == 0 and per_class is not None:
                write_text(result.output / "per_class.csv", table_csv(per_class))
        metrics["evals"] = evals
        metrics["eval"] = next(iter(evals.values()))
    write_json(result.output / "metrics.json", metrics)
    return TrainResult(result.output, result.iterations, metrics, result.run_dir)


def run_two_stage_cell(params, cell: str, *, progress: bool = True) -> dict:
    """Score a Table 8 cell: a trained grid cell's segmenter through the two-stage baseline (GKC Tab. 8).

    Writes ``<gkc_grids.output>/table8/<cell>/metrics.json`` (``evals`` per benchmark, ``eval`` the
    first, ``two_stage`` the settings, ``model`` the source cell) and ``per_class.csv``.

    Raises:
        KeyError: unknown cell or source cell.
        FileNotFoundError: the source cell has not been trained (run its stage first).
    """
    from ovlab.experiments.registry import from_checkpoint
    from ovlab.gkc.two_stage_eval import crop_clip_from_params, evaluate_two_stage

    grids = params.gkc_grids
    table, source, two = grids.two_stage_cell(cell)
    stage = params.cell(table, source)
    device = "cuda" if stage.base.device != "cpu" and torch.cuda.is_available() else "cpu"
    model_pt = stage.path(stage.cfg.output) / "model.pt"
    built = from_checkpoint(model_pt, device=device, root=stage.root)
    built.model.to(device)
    crop_clip = crop_clip_from_params(two, stage, built.clip)
    out = stage.path(grids.output) / "table8" / cell
    cache = stage.path(stage.base.paths.cache)
    evals = {}
    for i, ds in enumerate(grids.eval_datasets):
        eval_cfg = stage.cfg.eval.model_copy(update={"dataset": ds, "max_images": grids.eval_max_images})
        rep = evaluate_two_stage(None if two.proposals == "oracle" else built.model, built.clip, eval_cfg, two,
                                 crop_clip=crop_clip, device=device,
                                 root=stage.path(eval_cfg.root) if eval_cfg.root else None, cache_dir=cache,
                                 progress=progress)
        evals[rep.dataset] = {"dataset": rep.dataset, "num_images": rep.num_images,
                              **{k: _num(v) for k, v in rep.summary.items()}}
        if i == 0:
            write_text(out / "per_class.csv", table_csv(rep.per_class))
    metrics = {"cell": {"table": "table8", "cell": cell}, "model": f"{table}/{source}", "profile": stage.base.profile,
               "two_stage": two.model_dump(mode="json"), "evals": evals, "eval": next(iter(evals.values())),
               "clip": built.clip.identity()}
    write_json(out / "metrics.json", metrics)
    return metrics


def run_cost(params, *, progress: bool = True) -> dict:
    """GKC Tab. 2: FLOPs, parameters and throughput of the single-stage model vs the two-stage baseline.

    Writes ``<gkc_grids.output>/cost.json`` (:func:`ovlab.gkc.cost.measure_cost`'s dict).
    """
    from ovlab.gkc.cost import format_cost, measure_cost

    c = params.gkc_grids.cost
    result = measure_cost(c.config, c.device, c.size, c.proposals, c.repeats)
    write_json(params.path(params.gkc_grids.output) / "cost.json", result)
    if progress:
        print(format_cost(result))
    return result
