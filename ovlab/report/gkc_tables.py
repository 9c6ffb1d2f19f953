"""GKC's ablation tables laid out like the paper, with the paper's numbers beside ours (GKC Tab. 2, 4–8).

The paper's numbers (mIoU %, CLIP-R50, trained on COCO-Panoptic seen classes, evaluated on Pascal
Context-59 and Cityscapes) are data here; ours come from the grid cells' ``metrics.json``
(:mod:`ovlab.experiments.grid`).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ovlab.config.record import read_record

CHECK = "✓"

#: table → rows of (cell, row labels, paper PC-59 mIoU, paper Cityscapes mIoU).
PAPER: dict[str, dict] = {
    "table4": {"title": "Tab. 4 — TD × TGKD", "labels": ["TD", "TGKD"], "rows": [
        ("none", ["", ""], 39.70, 27.61),
        ("td", [CHECK, ""], 41.45, 32.16),
        ("tgkd", ["", CHECK], 41.23, 32.62),
        ("td_tgkd", [CHECK, CHECK], 41.91, 34.35)]},
    "table5": {"title": "Tab. 5 — distillation strategy", "labels": ["Distillation"], "rows": [
        ("none", ["×"], 39.70, 27.61),
        ("vanilla", ["Vanilla"], 40.14, 32.49),
        ("vision_guided", ["Vision-guided"], 39.67, 32.33),
        ("text_guided", ["Text-guided"], 41.23, 32.62)]},
    "table6": {"title": "Tab. 6 — teacher and student embeddings", "labels": ["Teacher", "Student"], "rows": [
        ("global_post", ["global token", "post"], 40.71, 30.43),
        ("global_prior", ["global token", "prior"], 40.31, 31.13),
        ("spatial_post", ["spatial token", "post"], 41.29, 30.12),
        ("spatial_prior", ["spatial token", "prior"], 41.23, 32.62)]},
    "table7a": {"title": "Tab. 7a — text-diversification method", "labels": ["TD method"], "rows": [
        ("random", ["Random"], 41.45, 32.16),
        ("group_avg", ["GroupAvg"], 41.80, 31.42),
        ("group_max", ["GroupMax"], 41.17, 32.73)]},
    "table7b": {"title": "Tab. 7b — visual backbone", "labels": ["Backbone"], "rows": [
        ("imagenet_r50", ["ImageNet-R50"], 45.6, 32.9),
        ("clip_r50", ["CLIP-R50"], 41.9, 34.3),
        ("imagenet_r101", ["ImageNet-R101"], 45.2, 34.8),
        ("clip_r101", ["CLIP-R101"], 44.2, 37.6)]},
    "table8": {"title": "Tab. 8 — TD applied to the two-stage Simbaseline", "labels": ["Model", "TD"], "rows": [
        ("simbaseline", ["Simbaseline", ""], 40.1, 30.0),
        ("simbaseline_td", ["Simbaseline", CHECK], 42.6, 34.7)]},
}

_PAPER_DATASETS = ("Pascal Context", "Cityscapes")


def read_cell(folder: str | Path) -> dict | None:
    """A cell's record: ``metrics.json`` merged with its ``info.json`` (``None`` when the cell has not run)."""
    return read_record(Path(folder) / "metrics.json")


def _ours(metrics: dict | None) -> dict[str, float | None]:
    if metrics is None:
        return {}
    evals = metrics.get("evals") or ({metrics["eval"]["dataset"]: metrics["eval"]} if "eval" in metrics else {})
    return {f"ours: {ds} mIoU": ev.get("mIoU") for ds, ev in evals.items()}


def grid_table(output: str | Path, table: str) -> pd.DataFrame:
    """One GKC table: the paper's row labels, our mIoU per evaluated benchmark, the paper's numbers.

    Args:
        output: the grids' output folder (``tgkd.grids.output``); cells live in ``<output>/<table>/<cell>``.
        table: ``table4`` … ``table8``.

    Returns:
        one row per paper row (cells that have not run show NaN), columns: the row labels, ``ours:
        <benchmark> mIoU`` … (percent), ``paper: Pascal Context``, ``paper: Cityscapes``, ``cell``.

    Raises:
        KeyError: unknown table.
    """
    spec = PAPER[table]
    rows = []
    for cell, labels, pc, cs in spec["rows"]:
        row = dict(zip(spec["labels"], labels))
        row.update(_ours(read_cell(Path(output) / table / cell)))
        row.update({f"paper: {_PAPER_DATASETS[0]}": pc, f"paper: {_PAPER_DATASETS[1]}": cs, "cell": cell})
        rows.append(row)
    df = pd.DataFrame(rows)
    ours = [c for c in df.columns if c.startswith("ours:")]
    front = spec["labels"] + ours
    return df[front + [c for c in df.columns if c not in front]]


def cost_table(measured: dict) -> pd.DataFrame:
    """Our inference-cost measurement (``ovlab cost`` JSON, :func:`ovlab.gkc.cost.measure_cost`)
    beside GKC Tab. 2 (ResNet-101, one V100; FPS there, images/s on our device here).

    Returns:
        rows ``ours (<backbone CLIP>): …`` then ``paper: …``; columns model, GFLOPs, params_M, images_per_s.
    """
    tag = f"ours ({measured['clip']})" if measured.get("clip") else "ours"
    ours = pd.DataFrame(measured["models"]).assign(model=lambda d: f"{tag}: " + d["model"])
    paper = pd.DataFrame([{"model": f"paper: {k}", **v} for k, v in measured["paper_table2"].items()])
    return pd.concat([ours, paper], ignore_index=True)[["model", "GFLOPs", "params_M", "images_per_s"]]
