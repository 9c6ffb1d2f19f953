"""The ablation report: every table the kit reproduces in one HTML page and one Markdown file, the
paper's numbers beside ours with the delta, seaborn plots and each table's provenance.

``python -m ovlab.report.ablation`` (``ovlab report build``; DVC stage ``report``) reads only
``results/`` (the cells' ``metrics.json`` + ``info.json`` records and resolved ``params.yaml``
files, never an executed notebook) and writes:

- ``reports/ablation.html``: one page; the embedded caveat at the top when any table ran on the
  embedded profile; per table: the paper's layout with ``ours`` / ``paper`` / ``Δ`` columns, a plot
  and its provenance;
- ``reports/ablation.md``: the same tables as Markdown (for diffs and reviews);
- ``results/report/report.json``: every table in long form (row, metric, ours, paper, Δ) with its
  provenance, what :mod:`ovlab.report.compare` compares between two runs.

The tables: GKC Tab. 2 (cost), Tab. 4, 5, 6, 7a, 7b, 8 (``ovlab.report.gkc_tables``); SCAN Tab. 3–8
(``ovlab.report.scan_tables``); GKC's video Tab. 3 (``ovlab.report.video_tables``); the SG-IoU
analysis (SCAN Eq. 6, notebook 04); the physically-guided paper's cells when ``results/physical/``
exists. A table with no result on disk is listed as "not run" rather than dropped.

Provenance per table: profile, params hash (SHA-256 of the cells' resolved ``params.yaml``), git
revision of the report run, seed, hardware, the CLIP and whether it was untrained, the data root
and whether it was synthetic, and the checkpoint-selection rule (the engine keeps the final
iteration's weights; no validation-based selection).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import html
import io
import json
import math
import platform
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import yaml

from ovlab.caveats import EMBEDDED_CAVEAT
from ovlab.config.record import read_record

#: Our benchmark name → the paper's column it can be compared with.
GKC_BENCHMARKS = {"pascal_context_59": "Pascal Context", "cityscapes_19": "Cityscapes"}
GKC_TABLES = ("table4", "table5", "table6", "table7a", "table7b", "table8")
SCAN_TABLES = ("table3", "table4", "table5", "table6", "table7", "table8")
CHECKPOINT_RULE = "final iteration's weights (model.pt); no validation-based selection"


@dataclass
class Layout:
    """Where the results lie (defaults: the kit's ``params.yaml`` paths)."""

    root: Path = Path(".")
    baseline: str = "results/tgkd/baseline"
    gkc: str = "results/gkc"
    scan: str = "results/scan"
    video: str = "results/video"
    sgiou: str = "results/sgiou/metrics.json"
    sgiou_curve: str = "results/sgiou/curve.csv"
    physical: str = "results/physical"

    def path(self, rel: str) -> Path:
        p = Path(rel)
        return p if p.is_absolute() else self.root / p

    @classmethod
    def from_params(cls, params_file: str | Path = "params.yaml") -> "Layout":
        """The folders named in a params file (``tgkd.output``, ``*.grids.output``, ``sgiou.metrics``).

        Raises:
            ParamsError: invalid params file.
        """
        from ovlab.config import load_params

        p = load_params(params_file)
        physical = getattr(getattr(getattr(p, "physical", None), "grids", None), "output", cls.physical)
        return cls(root=p.root, baseline=p.tgkd.output, gkc=p.tgkd.grids.output, scan=p.scan.grids.output,
                   video=p.video.grids.output, sgiou=p.sgiou.metrics, sgiou_curve=p.sgiou.curve, physical=physical)


@dataclass
class ReportTable:
    """One table of the report.

    Attributes:
        key: stable id (``gkc_table4``); paper: ``GKC`` / ``SCAN`` / ``SG-IoU`` / ``Phys.``.
        frame: the table as shown (paper layout, ours / paper / Δ columns).
        long: ``row, metric, ours, paper, delta`` (percent; NaN where absent).
        provenance: see the module docstring. notes: caveats of this table.
        plot: PNG bytes or ``None``.
    """

    key: str
    paper: str
    title: str
    frame: pd.DataFrame
    long: pd.DataFrame
    provenance: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    plot: bytes | None = None

    @property
    def ran(self) -> bool:
        return bool(self.long["ours"].notna().any()) if len(self.long) else False


# ------------------------------------------------------------------------------------ provenance
def git_revision(root: Path) -> str:
    """``<commit>`` (``+dirty`` when the work tree differs) of the checkout, or ``unknown``."""
    try:
        rev = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=root, capture_output=True, text=True,
                             timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=20).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (rev + ("+dirty" if dirty else "")) if rev else "unknown"


def hardware() -> str:
    """This machine: CPU, core count, and the GPU when torch sees one."""
    import os

    text = f"{platform.machine()} {platform.processor() or platform.system()}, {os.cpu_count()} cores"
    try:
        import torch

        if torch.cuda.is_available():
            text += f", {torch.cuda.get_device_name(0)}"
    except Exception:  # pragma: no cover - torch is a dependency; be safe in a report
        pass
    return text


def _read_yaml(path: Path) -> dict:
    try:
        return yaml.safe_load(path.read_text()) or {} if path.is_file() else {}
    except yaml.YAMLError:
        return {}


def provenance(folders: list[Path], *, revision: str, machine: str, records: list[dict] | None = None,
               params_files: list[Path] | None = None) -> dict:
    """The provenance of a table made of the cells in ``folders`` (each with ``metrics.json`` and
    ``params.yaml``; or ``records`` and ``params_files`` given directly); every field reads
    defensively (a missing key shows as ``?``)."""
    recs = records if records is not None else [read_record(f) or {} for f in folders]
    files = params_files if params_files is not None else [f / "params.yaml" for f in folders]
    params = [_read_yaml(p) for p in files]
    digest = hashlib.sha256()
    for p in sorted(files):
        digest.update(p.read_bytes() if p.is_file() else b"")

    def values(get) -> str:
        vals = []
        for r, p in zip(recs, params + [{}] * (len(recs) - len(params))):
            try:
                v = get(r, p)
            except (KeyError, TypeError, AttributeError):
                v = None
            if v is not None and str(v) not in vals:
                vals.append(str(v))
        return ", ".join(vals) or "?"

    def section(p: dict) -> dict:
        return next((v for k, v in p.items() if k != "base" and isinstance(v, dict)), {})

    def clip_of(r: dict) -> dict:
        c = r.get("clip")
        return c if isinstance(c, dict) else {"model": c} if c else {}

    clip = values(lambda r, p: clip_of(r).get("model") or section(p).get("clip", {}).get("model"))
    flags = [clip_of(r).get("untrained") for r in recs if "untrained" in clip_of(r)]
    if not flags:  # no record says: the resolved params do (``clip.pretrained: null`` = untrained)
        flags = [section(p)["clip"]["pretrained"] is None for p in params
                 if isinstance(section(p).get("clip"), dict) and "pretrained" in section(p)["clip"]]
    untrained = True if any(flags) else (False if flags else None)
    synth = [r.get("synthetic") for r in recs if "synthetic" in r]
    profiles = values(lambda r, p: r.get("profile") or r.get("config") or (p.get("base") or {}).get("profile"))
    synthetic = True if any(synth) else (False if synth or profiles == "paper" else
                                         True if profiles == "embedded" else None)

    def word(flag, yes: str, no: str) -> str:
        return "?" if flag is None else yes if flag else no

    return {
        "cells": len(folders),
        "profile": profiles,
        "params hash": digest.hexdigest()[:12] if any(p.is_file() for p in files) else "?",
        "git revision": revision,
        "seed": values(lambda r, p: r.get("seed") if r.get("seed") is not None else (p.get("base") or {}).get("seed")),
        "hardware": f"{values(lambda r, p: (p.get('base') or {}).get('device'))} on {machine}",
        "CLIP": f"{clip} ({word(untrained, 'untrained', 'pretrained')})",
        "data": f"{values(lambda r, p: section(p).get('data', {}).get('root') or section(p).get('data_root'))} "
                f"({word(synthetic, 'synthetic', 'real')})",
        "checkpoint selection": CHECKPOINT_RULE,
        "untrained CLIP": untrained,
        "synthetic data": synthetic,
    }


# ------------------------------------------------------------------------------------ long form
def _num(v):
    try:
        f = float(v)
    except (TypeError, ValueError):
        return math.nan
    return f


def long_form(rows: list[tuple[str, str, float, float]]) -> pd.DataFrame:
    """``(row, metric, ours, paper)`` tuples → the long frame with ``delta = ours − paper``."""
    df = pd.DataFrame(rows, columns=["row", "metric", "ours", "paper"])
    df["ours"], df["paper"] = df["ours"].map(_num), df["paper"].map(_num)
    df["delta"] = df["ours"] - df["paper"]
    return df


def row_label(names, values, cell: str) -> str:
    """A paper row's label: its label values joined, a check mark replaced by its column's name
    (``TD ✓ / TGKD ✓`` → ``TD + TGKD``); the cell name when every label is empty."""
    parts = [n if v == "✓" else v for n, v in zip(names, values) if v]
    return " + ".join(parts) or cell


def wide_frame(long: pd.DataFrame) -> pd.DataFrame:
    """The long form laid out wide: one row per row label, ``ours <metric>`` / ``paper <metric>`` /
    ``Δ <metric>`` columns (a column only where it has a value)."""
    if long.empty:
        return pd.DataFrame()
    rows = list(dict.fromkeys(long["row"]))
    out = pd.DataFrame(index=pd.Index(rows, name="row"))
    for metric in dict.fromkeys(long["metric"]):
        part = long[long["metric"] == metric].drop_duplicates("row").set_index("row")
        for col in ("ours", "paper", "delta"):
            values = part[col].reindex(rows)
            if values.notna().any():
                out[f"{'Δ' if col == 'delta' else col} {metric}"] = values
    return out.reset_index()


def _cell_folders(root: Path, table: str) -> list[Path]:
    base = root / table
    return sorted(p for p in base.iterdir() if (p / "metrics.json").is_file()) if base.is_dir() else []


def _plot(long: pd.DataFrame, title: str) -> bytes | None:
    """Seaborn bars of ours and the paper's numbers per row and metric (PNG), ``None`` when empty."""
    data = long.melt(id_vars=["row", "metric"], value_vars=["ours", "paper"], var_name="source").dropna(subset=["value"])
    if data.empty:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    data["series"] = data["source"] + ": " + data["metric"]
    rows = data["row"].nunique()
    fig, ax = plt.subplots(figsize=(8, 0.35 * rows * max(1, data["series"].nunique() / 2) + 1.4))
    sns.barplot(data=data, y="row", x="value", hue="series", ax=ax, orient="h")
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("mIoU (%)")
    ax.set_ylabel("")
    ax.legend(fontsize=7, loc="lower right", framealpha=0.85)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    return buf.getvalue()


def _with_deltas(frame: pd.DataFrame, pairs: list[tuple[str, str, str]]) -> pd.DataFrame:
    """Add ``Δ <name>`` = ours column − paper column for each ``(name, ours column, paper column)``."""
    out = frame.copy()
    for name, ours, paper in pairs:
        if ours in out.columns and paper in out.columns:
            out[f"Δ {name}"] = pd.to_numeric(out[ours], errors="coerce") - pd.to_numeric(out[paper], errors="coerce")
    return out


# ------------------------------------------------------------------------------------ the tables
def gkc_tables(layout: Layout, revision: str, machine: str) -> list[ReportTable]:
    """GKC Tab. 2 (cost) and Tab. 4–8."""
    from ovlab.report.gkc_tables import PAPER, cost_table, grid_table

    out = []
    root = layout.path(layout.gkc)
    cost = root / "cost.json"
    if cost.is_file():
        measured = read_record(cost) or json.loads(cost.read_text())
        try:
            frame = cost_table(measured)
        except (KeyError, TypeError, ValueError):
            frame = pd.DataFrame()
        rows = []
        for m in measured.get("models", []):
            rows += [(f"ours: {m.get('model')}", k, m.get(k), None) for k in ("GFLOPs", "params_M", "images_per_s")]
        for name, v in (measured.get("paper_table2") or {}).items():
            rows += [(f"paper: {name}", k, None, v.get(k)) for k in ("GFLOPs", "params_M", "images_per_s")]
        ratios = {k: measured.get(k) for k in ("flops_ratio", "flops_target", "speed_ratio", "speed_target")}
        rows += [("ratio", k, v, None) for k, v in ratios.items()]
        prov = provenance([], revision=revision, machine=machine, records=[measured],
                          params_files=[root / "cost.params.yaml"])
        prov["hardware"] = f"{measured.get('device', '?')}, {measured.get('threads', '?')} threads on {machine}"
        prov["checkpoint selection"] = "none (untrained model: cost only)"
        out.append(ReportTable("gkc_table2", "GKC", "GKC Tab. 2 — inference cost, single-stage vs two-stage", frame,
                               long_form(rows), prov,
                               [f"FLOPs ratio {ratios['flops_ratio']} (target ≤ {ratios['flops_target']}), "
                                f"speed ratio {ratios['speed_ratio']} (target ≥ {ratios['speed_target']})"]))
    for table in GKC_TABLES:
        folders = _cell_folders(root, table)
        frame = grid_table(root, table)
        pairs = [(p, f"ours: {ours} mIoU", f"paper: {p}") for ours, p in GKC_BENCHMARKS.items()]
        frame = _with_deltas(frame, pairs)
        spec = PAPER[table]
        rows = []
        for cell, labels, pc, cs in spec["rows"]:
            rec = read_record(root / table / cell) or {}
            evals = rec.get("evals") or ({rec["eval"].get("dataset", "?"): rec["eval"]} if "eval" in rec else {})
            label = row_label(spec["labels"], labels, cell)
            for ds, ev in evals.items():
                rows.append((label, GKC_BENCHMARKS.get(ds, ds), (ev or {}).get("mIoU"),
                             {"Pascal Context": pc, "Cityscapes": cs}.get(GKC_BENCHMARKS.get(ds, ""))))
            for name, v in (("Pascal Context", pc), ("Cityscapes", cs)):
                if name not in {GKC_BENCHMARKS.get(ds) for ds in evals}:
                    rows.append((label, name, None, v))
        long = long_form(rows)
        out.append(ReportTable(f"gkc_{table}", "GKC", f"GKC {spec['title']}", frame, long,
                               provenance(folders, revision=revision, machine=machine)))
    return out


def scan_tables(layout: Layout, revision: str, machine: str) -> list[ReportTable]:
    """SCAN Tab. 3–8."""
    from ovlab.report.scan_tables import PAPER, PAPER_BENCHMARKS, PAPER_DATASETS, scan_table

    out = []
    root = layout.path(layout.scan)
    for table in SCAN_TABLES:
        t = PAPER[table]
        frame = scan_table(table, root)
        pairs = [(p, f"ours {ours}", f"paper {p}") for ours, p in PAPER_BENCHMARKS.items()]
        frame = _with_deltas(frame, pairs)
        rows = []
        for cell, (labels, scores) in t.rows.items():
            rec = read_record(root / table / cell) or {}
            label = row_label(t.labels, labels, cell)
            evals = rec.get("evals") or {}
            for ds, ev in evals.items():
                col = PAPER_BENCHMARKS.get(ds, ds)
                paper = dict(zip(PAPER_DATASETS, scores)).get(col)
                rows.append((label, col, (ev or {}).get("mIoU"), paper))
            for col, v in zip(PAPER_DATASETS, scores):
                if col not in {PAPER_BENCHMARKS.get(ds) for ds in evals}:
                    rows.append((label, col, None, v))
        out.append(ReportTable(f"scan_{table}", "SCAN", f"SCAN {t.title}", frame, long_form(rows),
                               provenance(_cell_folders(root, table), revision=revision, machine=machine),
                               [t.note] if t.note else []))
    return out


def video_table(layout: Layout, revision: str, machine: str) -> list[ReportTable]:
    """GKC Tab. 3 (open-vocabulary video segmentation on VIPSeg)."""
    from ovlab.report.video_tables import CAVEATS, COLUMNS, PAPER_TABLE3, table3

    root = layout.path(layout.video) / "table3"
    frame = table3(root)
    flat = frame.copy()
    flat.columns = [" ".join(c) for c in frame.columns]
    flat = _with_deltas(flat, [(c, f"ours {c}", f"paper {c}") for c in COLUMNS])
    rows = []
    for _row, (label, *paper) in PAPER_TABLE3.items():
        for c, p in zip(COLUMNS, paper):
            rows.append((label, c, frame.loc[label, ("ours", c)], p))
    return [ReportTable("video_table3", "GKC", "GKC Tab. 3 — open-vocabulary video segmentation (VIPSeg)", flat,
                        long_form(rows), provenance(_cell_folders(root.parent, "table3"), revision=revision,
                                                    machine=machine), list(CAVEATS))]


def sgiou_table(layout: Layout, revision: str, machine: str) -> list[ReportTable]:
    """The SG-IoU analysis (SCAN Eq. 6 vs mIoU under controlled corruptions; notebook 04): our study, no
    paper numbers."""
    path = layout.path(layout.sgiou)
    rec = read_record(path) or {}
    rows = []
    for part, summary in rec.items():
        if isinstance(summary, dict) and "skipped" not in summary:
            for k, v in summary.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    rows.append((part, k, v, None))
    long = long_form(rows)
    frame = wide_frame(long)
    notes = [f"{k}: {v['skipped']}" for k, v in rec.items() if isinstance(v, dict) and "skipped" in v]
    plot = None
    curve = layout.path(layout.sgiou_curve)
    if curve.is_file():
        plot = _curve_plot(pd.read_csv(curve))
    folder = path.parent
    prov = provenance([folder] if path.is_file() else [], revision=revision, machine=machine,
                      records=[rec] if rec else [])
    prov["checkpoint selection"] = "none (corruptions of the ground truth, no model)"
    prov["CLIP"] = "none (no model)"
    t = ReportTable("sgiou", "SG-IoU", "SG-IoU analysis (SCAN Eq. 6) — SG-mIoU vs mIoU under controlled confusions",
                    frame, long, prov, notes, plot)
    return [t]


def _curve_plot(curve: pd.DataFrame) -> bytes | None:
    if "rate" not in curve.columns or len(curve.columns) < 2:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    data = curve.melt(id_vars=["rate"], var_name="series").dropna(subset=["value"])
    data = data[pd.to_numeric(data["value"], errors="coerce").notna()]
    fig, ax = plt.subplots(figsize=(8, 3.5))
    sns.lineplot(data=data, x="rate", y="value", hue="series", ax=ax, marker="o")
    ax.set_xlabel("confusion rate")
    ax.set_ylabel("percent")
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    return buf.getvalue()


def physical_tables(layout: Layout, revision: str, machine: str) -> list[ReportTable]:
    """The physically-guided paper's cells: every ``metrics.json`` under ``results/physical/``, one table
    per folder level below it (read defensively: any ``evals`` / ``eval`` mIoU it holds)."""
    root = layout.path(layout.physical)
    if not root.is_dir():
        return []
    groups: dict[str, list[Path]] = {}
    for m in sorted(root.rglob("metrics.json")):
        rel = m.parent.relative_to(root)
        if "dvclive" in rel.parts:  # DVCLive's own summary of a training run, not a cell
            continue
        groups.setdefault(rel.parts[0] if len(rel.parts) > 1 else ".", []).append(m.parent)
    from ovlab.report import physical_tables as phys

    columns = getattr(phys, "BENCHMARKS", {})                   # our benchmark -> the paper's column
    paper_rows = {"table3": getattr(phys, "PAPER_TABLE3", {})}  # cell -> (label, numbers or None)
    out = []
    for group, folders in groups.items():
        rows = []
        for f in folders:
            try:
                rec = read_record(f) or {}
            except ValueError:
                rec = {}
            evals = rec.get("evals") if isinstance(rec.get("evals"), dict) else {}
            if not evals and isinstance(rec.get("eval"), dict):
                evals = {rec["eval"].get("dataset", "eval"): rec["eval"]}
            label, numbers = f.relative_to(root).as_posix(), None
            known = paper_rows.get(group, {}).get(f.name)
            if isinstance(known, tuple) and len(known) == 2:
                label, numbers = f"{known[0]} ({f.name})", known[1]
            paper = dict(zip(columns.values(), numbers)) if numbers else {}
            for ds, ev in evals.items():
                if isinstance(ev, dict):
                    col = columns.get(ds, str(ds))
                    rows.append((label, col, ev.get("mIoU"), paper.get(col)))
            for col, v in paper.items():
                if col not in {columns.get(ds, ds) for ds in evals}:
                    rows.append((label, col, None, v))
            if not evals:
                rows.append((label, "mIoU", rec.get("mIoU"), None))
        long = long_form(rows)
        frame = wide_frame(long)
        out.append(ReportTable(f"physical_{group}".replace("/", "_").rstrip("_."), "Phys.",
                               f"Physically-guided OVS — {group}", frame, long,
                               provenance(folders, revision=revision, machine=machine),
                               list(getattr(phys, "CAVEATS", ())) or
                               ["Notebook 06 has the paper's full layout of these tables."]))
    return out


def gather(layout: Layout) -> list[ReportTable]:
    """Every table of the report, in reading order, each with its plot."""
    revision, machine = git_revision(layout.root), hardware()
    tables = [*gkc_tables(layout, revision, machine), *video_table(layout, revision, machine),
              *scan_tables(layout, revision, machine), *sgiou_table(layout, revision, machine),
              *physical_tables(layout, revision, machine)]
    for t in tables:
        if t.plot is None and t.key != "gkc_table2" and t.ran:
            t.plot = _plot(t.long, t.title)
    return tables


# ------------------------------------------------------------------------------------ rendering
def _caveats(tables: list[ReportTable]) -> list[str]:
    embedded = any("embedded" in str(t.provenance.get("profile", "")) for t in tables if t.ran)
    out = []
    if embedded:
        out.append(EMBEDDED_CAVEAT)
    if any(t.provenance.get("untrained CLIP") for t in tables if t.ran):
        out.append("Some tables were made with an untrained CLIP (random weights): their numbers check the "
                   "pipeline only.")
    if any(t.provenance.get("synthetic data") for t in tables if t.ran):
        out.append("Some tables were made on synthetic data (ovlab.data.procedural): not comparable with the papers.")
    return out


_PROV_KEYS = ("profile", "params hash", "git revision", "seed", "hardware", "CLIP", "data", "checkpoint selection",
              "cells")


def _frame_html(df: pd.DataFrame) -> str:
    if df is None or df.empty:
        return "<p><i>empty</i></p>"
    return df.to_html(classes="ovlab-table", na_rep="—", float_format=lambda v: f"{v:.2f}", border=0)


def render_html(tables: list[ReportTable], *, title: str = "ovlab ablation report") -> str:
    """The single HTML page (images inline as PNG data URIs)."""
    css = ("body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}"
           "table.ovlab-table{border-collapse:collapse;font-size:13px;margin:.5em 0}"
           ".ovlab-table th,.ovlab-table td{border-bottom:1px solid #ddd;padding:2px 8px;text-align:right}"
           ".caveat{background:#fff3cd;border:1px solid #e0c060;padding:.6em 1em}"
           ".prov{font-size:12px;color:#333}.notrun{color:#888}")
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             f"<style>{css}</style></head><body><h1>{html.escape(title)}</h1>"]
    for c in _caveats(tables):
        parts.append(f"<div class='caveat'>⚠️ {html.escape(c)}</div>")
    parts.append("<h2>Contents</h2><ul>" + "".join(
        f"<li><a href='#{t.key}'>{html.escape(t.title)}</a>{'' if t.ran else ' <span class=notrun>(not run)</span>'}</li>"
        for t in tables) + "</ul>")
    for t in tables:
        parts.append(f"<section class='report-table' id='{t.key}' data-ran='{str(t.ran).lower()}'>"
                     f"<h2>{html.escape(t.title)}</h2>")
        if not t.ran:
            parts.append("<p class='notrun'>Not run: no result under results/ yet (run its DVC stages).</p>")
        parts.append(_frame_html(t.frame))
        if t.plot is not None:
            data = base64.b64encode(t.plot).decode()
            parts.append(f"<img class='plot' alt='{html.escape(t.title)}' src='data:image/png;base64,{data}'>")
        for n in t.notes:
            parts.append(f"<p class='note'>{html.escape(n)}</p>")
        parts.append("<table class='prov'>" + "".join(
            f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(t.provenance.get(k, '?')))}</td></tr>"
            for k in _PROV_KEYS) + "</table></section>")
    parts.append("</body></html>")
    return "\n".join(parts)


def render_markdown(tables: list[ReportTable], *, title: str = "ovlab ablation report",
                    plots: dict[str, str] | None = None) -> str:
    """The Markdown version (tables as pipe tables, plots linked from ``plots``: key → relative path)."""
    lines = [f"# {title}", ""]
    for c in _caveats(tables):
        lines += [f"> ⚠️ {c}", ""]
    for t in tables:
        lines += [f"## {t.title}", ""]
        if not t.ran:
            lines += ["_Not run: no result under results/ yet._", ""]
        if t.frame is not None and not t.frame.empty:
            shown = t.frame.round(2).astype(object).where(t.frame.notna(), "—")
            lines += [shown.to_markdown(), ""]
        if plots and t.key in plots:
            lines += [f"![{t.title}]({plots[t.key]})", ""]
        lines += [f"- {n}" for n in t.notes]
        lines += ["", "| provenance | |", "|---|---|"]
        lines += [f"| {k} | {str(t.provenance.get(k, '?')).replace('|', '/')} |" for k in _PROV_KEYS]
        lines.append("")
    return "\n".join(lines)


def report_json(tables: list[ReportTable]) -> dict:
    """The machine-read report: per table its long rows and provenance (NaN as ``null``)."""
    def clean(v):
        return None if isinstance(v, float) and math.isnan(v) else v

    return {"tables": {t.key: {"title": t.title, "paper": t.paper, "ran": t.ran,
                               "rows": [{k: clean(v) for k, v in r.items()} for r in t.long.to_dict("records")],
                               "provenance": t.provenance} for t in tables}}


def build_report(layout: Layout, *, html_out: str | Path = "reports/ablation.html",
                 md_out: str | Path = "reports/ablation.md",
                 json_out: str | Path = "results/report/report.json") -> list[ReportTable]:
    """Gather every table and write the HTML page, the Markdown file (+ its plots beside it) and the JSON,
    each atomically. Relative output paths resolve against ``layout.root``.

    Returns:
        the tables.
    """
    from ovlab.atomic import write_bytes, write_json, write_text

    tables = gather(layout)
    html_path, md_path, json_path = (layout.path(str(p)) for p in (html_out, md_out, json_out))
    plots = {}
    for t in tables:
        if t.plot is not None:
            rel = f"{md_path.stem}_plots/{t.key}.png"
            write_bytes(md_path.parent / rel, t.plot)
            plots[t.key] = rel
    write_text(html_path, render_html(tables))
    write_text(md_path, render_markdown(tables, plots=plots))
    write_json(json_path, report_json(tables))
    return tables


# ------------------------------------------------------------------------------------ command line
def add_parser(subparsers) -> None:
    """Register ``ovlab report`` (``build`` | ``compare``)."""
    p = subparsers.add_parser("report", help="the ablation report: build it, or compare two runs' reports",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="report_command", metavar="ACTION")
    sub.required = True
    b = sub.add_parser("build", help="gather every table under results/ into reports/ablation.{html,md}")
    _build_arguments(b)
    b.set_defaults(func=_build_main)
    c = sub.add_parser("compare", help="compare two runs' reports table by table")
    c.add_argument("a", help="report.json, or a results folder (its report/report.json), of run A")
    c.add_argument("b", help="the same for run B")
    c.add_argument("--out", default=None, help="write the comparison as Markdown here (default: print it)")
    c.add_argument("--tolerance", type=float, default=0.0, help="differences at or below this are 'same'")
    c.set_defaults(func=_compare_main)


def _build_arguments(p) -> None:
    p.add_argument("--params", default="params.yaml", help="params file naming the results folders")
    p.add_argument("--html", default="reports/ablation.html")
    p.add_argument("--md", default="reports/ablation.md")
    p.add_argument("--json", default="results/report/report.json")


def _build_main(args) -> int:
    from ovlab.config import ParamsError

    try:
        layout = Layout.from_params(args.params)
        tables = build_report(layout, html_out=args.html, md_out=args.md, json_out=args.json)
    except (ParamsError, ValueError, OSError) as exc:
        print(f"ovlab report: error: {exc}", file=sys.stderr)
        return 1
    ran = sum(t.ran for t in tables)
    print(f"ovlab report: {ran} of {len(tables)} tables have results; wrote {args.html}, {args.md}, {args.json}")
    return 0


def _compare_main(args) -> int:
    from ovlab.report.compare import compare_main

    return compare_main(args)


def main(argv: list[str] | None = None) -> int:
    """``python -m ovlab.report.ablation [--params ...]``: build the report (the DVC stage's command)."""
    p = argparse.ArgumentParser(prog="python -m ovlab.report.ablation", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    _build_arguments(p)
    return _build_main(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
