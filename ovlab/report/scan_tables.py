"""SCAN ablation tables (SCAN Tables 3–8) for notebook 03: the paper's numbers beside ours.

:data:`PAPER` holds the paper's rows as data (mIoU, %, ViT-L, on ADE-150 / ADE-847 / PC-59; SCAN
CVPR 2024 §4.5), keyed by the grid cell names of ``scan.grids`` in ``params.yaml``.
:func:`scan_table` lays a table out like the paper's (the row labels, the paper's three columns)
and adds our columns read from ``<grids.output>/<table>/<cell>/metrics.json`` (one per evaluated
benchmark), the model each cell used and the setting it ran with.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ovlab.config.record import read_record

PAPER_DATASETS = ("ADE-150", "ADE-847", "PC-59")
#: Our benchmark names of the paper's columns.
PAPER_BENCHMARKS = {"ade20k_150": "ADE-150", "ade20k_847": "ADE-847", "pascal_context_59": "PC-59"}


@dataclass(frozen=True)
class PaperTable:
    """One of SCAN's ablation tables.

    Attributes:
        title: the paper's caption (shortened).
        labels: the row-label columns (e.g. ``("Layers", "Kernel")``).
        rows: cell name → (label values, (ADE-150, ADE-847, PC-59) mIoU).
        note: what the embedded grid changes relative to the paper.
    """

    title: str
    labels: tuple[str, ...]
    rows: dict[str, tuple[tuple[str, ...], tuple[float, float, float]]] = field(default_factory=dict)
    note: str = ""


_Y = "✓"
PAPER: dict[str, PaperTable] = {
    "table3": PaperTable("Tab. 3: ablation of the proposed modules", ("Method",), {
        "baseline": (("Baseline",), (31.5, 11.4, 57.1)),
        "sim": (("+ SIM",), (32.9, 13.3, 58.6)),
        "cs": (("+ CS",), (32.8, 12.6, 58.3)),
        "both": (("+ Both",), (33.5, 14.0, 59.3)),
    }),
    "table4": PaperTable("Tab. 4: structure of SIM (without CS)", ("F_CLS^final", "F_HW", "LFE"), {
        "none": (("", "", ""), (31.5, 11.4, 57.1)),
        "cls": ((_Y, "", ""), (32.5, 12.7, 57.5)),
        "hw": (("", _Y, ""), (32.0, 11.9, 57.5)),
        "cls_hw": ((_Y, _Y, ""), (32.6, 13.0, 58.1)),
        "hw_lfe": (("", _Y, _Y), (32.4, 12.2, 57.7)),
        "cls_hw_lfe": ((_Y, _Y, _Y), (32.9, 13.3, 58.6)),
    }),
    "table5": PaperTable("Tab. 5: selected CLIP layers and frequency kernels of SIM", ("Layers", "Kernel"), {
        "l15_18_21_k7_5_3": (("15, 18, 21", "7, 5, 3"), (32.5, 12.9, 58.3)),
        "l15_18_21_k9_7_3": (("15, 18, 21", "9, 7, 3"), (32.4, 13.0, 58.5)),
        "l12_18_24_k7_5_3": (("12, 18, 24", "7, 5, 3"), (33.3, 13.6, 58.9)),
        "l12_18_24_k9_7_3": (("12, 18, 24", "9, 7, 3"), (33.5, 14.0, 59.3)),
        "l12_18_24_k11_9_7": (("12, 18, 24", "11, 9, 7"), (33.0, 13.4, 58.4)),
    }, note="The embedded CLIP (ovlab-tiny-vit) has 3 blocks and an 8×8 grid: its layers stand in for "
            "ViT-L's (1, 2, 3 for 12, 18, 24; 0, 1, 2 for 15, 18, 21) and its σ are the paper's halved."),
    "table6": PaperTable("Tab. 6: sources of the substitute tokens", ("Method",), {
        "none": (("None",), (32.7, 13.3, 58.6)),
        "noise": (("Random noise",), (32.3, 13.0, 57.8)),
        "original": (("Original background",), (32.3, 13.1, 58.0)),
        "learnable": (("Learnable prompt",), (33.1, 13.2, 58.8)),
        "cls": (("SCAN (Ours)",), (33.5, 14.0, 59.3)),
    }, note="The learnable prompt is trained in SCAN's CLIP fine-tuning; the kit applies CS at test time "
            "only, so here the prompt keeps its seeded initialisation."),
    "table7": PaperTable("Tab. 7: replacement layers and ratios of the contextual-shifted CLIP", ("Layers", "Ratios"), {
        "wo_cs": (("W/o Contextual Shift", "-"), (32.9, 13.3, 58.6)),
        "l1_3_5_7_9_r10": (("1, 3, 5, 7, 9", "10%"), (33.5, 13.6, 59.4)),
        "l1_3_5_7_9_r20": (("1, 3, 5, 7, 9", "20%"), (33.1, 13.8, 59.5)),
        "l1_3_5_7_9_r30": (("1, 3, 5, 7, 9", "30%"), (33.5, 14.0, 59.3)),
        "l1_3_5_7_9_r40": (("1, 3, 5, 7, 9", "40%"), (32.9, 13.6, 59.3)),
        "l1_3_5_7_r30": (("1, 3, 5, 7", "30%"), (32.8, 13.6, 59.0)),
        "l1_2_3_4_5_r30": (("1, 2, 3, 4, 5", "30%"), (32.2, 13.2, 58.9)),
        "l11_13_15_17_19_r30": (("11, 13, 15, 17, 19", "30%"), (32.2, 12.0, 59.1)),
        "l1_to_15_r30": (("1, 3, 5, 7, 9, 11, 13, 15", "30%"), (32.2, 12.0, 59.0)),
    }, note="The embedded CLIP has 3 blocks: the layer sets are analogues (see the 'ours: setting' column)."),
    "table8": PaperTable("Tab. 8: in-vocabulary (mask) and domain-biased (CLIP) embeddings", ("Model", "Embedding"), {
        "baseline_mask": (("(a) Baseline", "Only Mask Embedding"), (24.8, 9.3, 56.7)),
        "baseline_clip": (("(a) Baseline", "Only CLIP Embedding"), (27.7, 10.0, 48.2)),
        "baseline_both": (("(a) Baseline", "Both"), (31.5, 11.4, 57.1)),
        "scan_mask": (("(b) SCAN", "Only Mask Embedding"), (26.3, 11.1, 57.9)),
        "scan_clip": (("(b) SCAN", "Only CLIP Embedding"), (28.9, 10.4, 49.9)),
        "scan_both": (("(b) SCAN", "Both"), (33.5, 14.0, 59.3)),
    }),
}


def paper_table(table: str) -> pd.DataFrame:
    """The paper's table: index = cell, the label columns, then ``paper <dataset>`` columns.

    Raises:
        KeyError: unknown table (lists the known ones).
    """
    if table not in PAPER:
        raise KeyError(f"unknown SCAN table {table!r}; known: {', '.join(PAPER)}")
    t = PAPER[table]
    rows = []
    for cell, (labels, scores) in t.rows.items():
        rows.append({"cell": cell, **dict(zip(t.labels, labels)),
                     **{f"paper {d}": v for d, v in zip(PAPER_DATASETS, scores)}})
    return pd.DataFrame(rows).set_index("cell")


def read_cell(root: str | Path, table: str, cell: str) -> dict | None:
    """``<root>/<table>/<cell>/metrics.json`` merged with its ``info.json`` (:func:`ovlab.config.record.read_record`),
    or ``None`` when the cell has not run."""
    return read_record(Path(root) / table / cell / "metrics.json")


def setting_text(overrides: dict, prefix: str = "") -> str:
    """A short ``key=value`` rendering of a cell's nested overrides (``scan.`` dropped)."""
    parts = []
    for k, v in overrides.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            inner = setting_text(v, f"{key}.")
            if inner:
                parts.append(inner)
        else:
            shown = ", ".join(str(x) for x in v) if isinstance(v, list) else v
            parts.append(f"{key.removeprefix('scan.')}={shown}")
    return "; ".join(parts)


def scan_table(table: str, root: str | Path, *, cells: list[str] | None = None, metric: str = "mIoU") -> pd.DataFrame:
    """Our results beside the paper's, laid out like the paper's table.

    Args:
        table: ``table3`` .. ``table8``.
        root: ``scan.grids.output`` (resolved).
        cells: the cells in order (default: the paper's rows, then any other cell found on disk).
        metric: the summary key shown for our benchmarks (``mIoU``, ``unseen_mIoU``...).

    Returns:
        index = cell; the label columns; ``paper ADE-150`` / ``ADE-847`` / ``PC-59``; one
        ``ours <benchmark>`` column per benchmark the cells were scored on; ``ours: model``
        (``shared sim`` / ``own``...) and ``ours: setting`` (the cell's overrides). Cells that have
        not run have NaN scores.
    """
    paper = paper_table(table)
    found = sorted(p.name for p in (Path(root) / table).glob("*") if (p / "metrics.json").is_file())
    order = list(cells) if cells is not None else list(paper.index) + [c for c in found if c not in paper.index]
    df = paper.reindex(order)
    datasets: list[str] = []
    values: dict[str, dict[str, float]] = {}
    models, settings = {}, {}
    for cell in order:
        m = read_cell(root, table, cell)
        if m is None:
            continue
        for ds, ev in m.get("evals", {}).items():
            if ds not in datasets:
                datasets.append(ds)
            v = ev.get(metric)
            values.setdefault(ds, {})[cell] = np.nan if v is None else float(v)
        model = m.get("model", {})
        models[cell] = f"{model.get('kind', '?')} {model.get('name', '')}".strip()
        settings[cell] = setting_text(m.get("cell", {}).get("overrides", {})) or "(the scan section)"
    for ds in datasets:
        df[f"ours {ds}"] = [values.get(ds, {}).get(c, np.nan) for c in order]
    df["ours: model"] = [models.get(c, "") for c in order]
    df["ours: setting"] = [settings.get(c, "") for c in order]
    return df


def long_frame(df: pd.DataFrame, table: str) -> pd.DataFrame:
    """A :func:`scan_table` frame in long form for plotting: ``row, source, dataset, value``
    (``source`` = paper / ours; ``row`` = the joined label columns)."""
    labels = PAPER[table].labels
    row = df[list(labels)].fillna("").astype(str).agg(" | ".join, axis=1) if labels else df.index.to_series()
    row = [r if r.strip(" |") else c for r, c in zip(row, df.index)]
    out = []
    for col in df.columns:
        if col.startswith("paper ") or (col.startswith("ours ") and not col.startswith("ours:")):
            source, ds = col.split(" ", 1)
            for r, v in zip(row, df[col]):
                out.append({"row": r, "source": source, "dataset": ds, "value": v})
    return pd.DataFrame(out)


def table_plot(df: pd.DataFrame, table: str, axes=None):
    """Seaborn bar plots of a table: the paper's mIoU (left) and ours (right), one bar per row and benchmark."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    data = long_frame(df, table)
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(13, 0.45 * max(4, len(df)) + 1.2), sharey=True)
    for ax, source in zip(axes, ("paper", "ours")):
        part = data[data["source"] == source]
        if part["value"].notna().any():
            sns.barplot(data=part, y="row", x="value", hue="dataset", ax=ax, orient="h")
            ax.legend(title=None, fontsize=7, loc="lower right", framealpha=0.85)
        else:
            ax.text(0.5, 0.5, "no results yet", ha="center", va="center", transform=ax.transAxes)
        ax.set_title(f"{'SCAN paper (ViT-L)' if source == 'paper' else 'ours'}: {PAPER[table].title}", fontsize=9)
        ax.set_xlabel("mIoU (%)")
        ax.set_ylabel("")
    plt.tight_layout()
    return axes


def untrained_or_synthetic(root: str | Path) -> tuple[bool, bool]:
    """(any cell used an untrained CLIP, any cell ran on synthetic data), over every cell under ``root``."""
    untrained = synthetic = False
    for path in Path(root).glob("table*/*/metrics.json"):
        m = read_record(path) or {}
        untrained |= bool(m.get("clip", {}).get("untrained"))
        synthetic |= bool(m.get("synthetic"))
    return untrained, synthetic
