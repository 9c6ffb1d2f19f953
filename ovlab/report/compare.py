"""Compare two runs' ablation reports table by table (``ovlab report compare A B``).

A and B are the ``report.json`` files :mod:`ovlab.report.ablation` writes (or the results folders
holding ``report/report.json``), e.g. from two ``dvc exp`` experiments (``dvc exp apply`` + ``dvc
repro report``, copying ``results/report/report.json`` aside) or two git revisions. For each table
present in either: its provenance fields that differ (profile, params hash, revision, CLIP, ...)
and, per (row, metric), ours in A, ours in B and B − A; rows whose value moved by more than the
tolerance are marked.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pandas as pd


def load_report(path: str | Path) -> dict:
    """A ``report.json`` (or a folder holding ``report.json`` or ``report/report.json``).

    Raises:
        FileNotFoundError: nothing there. ValueError: not a report (the message names the file).
    """
    p = Path(path)
    if p.is_dir():
        p = next((c for c in (p / "report.json", p / "report" / "report.json") if c.is_file()), p / "report.json")
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no report.json (build it with `ovlab report build`)")
    try:
        data = json.loads(p.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{p}: not valid JSON: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("tables"), dict):
        raise ValueError(f"{p}: not an ovlab report (no 'tables' mapping)")
    return data


def compare_tables(a: dict, b: dict, tolerance: float = 0.0) -> dict[str, pd.DataFrame]:
    """Per table key: ``row, metric, A, B, B − A, changed`` over the union of both reports' rows
    (NaN where a side lacks the value)."""
    out = {}
    for key in list(dict.fromkeys([*a["tables"], *b["tables"]])):
        def frame(rep):
            rows = rep["tables"].get(key, {}).get("rows", [])
            df = pd.DataFrame(rows, columns=["row", "metric", "ours", "paper", "delta"])
            return df[["row", "metric", "ours"]].drop_duplicates(["row", "metric"])

        fa, fb = frame(a), frame(b)
        m = fa.merge(fb, on=["row", "metric"], how="outer", suffixes=(" A", " B"))
        m = m.rename(columns={"ours A": "A", "ours B": "B"})
        m["A"], m["B"] = pd.to_numeric(m["A"], errors="coerce"), pd.to_numeric(m["B"], errors="coerce")
        m["B − A"] = m["B"] - m["A"]

        def changed(r):
            if math.isnan(r["A"]) and math.isnan(r["B"]):
                return False
            if math.isnan(r["A"]) or math.isnan(r["B"]):
                return True
            return abs(r["B − A"]) > tolerance

        m["changed"] = m.apply(changed, axis=1) if len(m) else []
        out[key] = m
    return out


def provenance_diff(a: dict, b: dict, key: str) -> dict[str, tuple]:
    """Provenance fields of table ``key`` that differ: field → (A, B)."""
    pa = a["tables"].get(key, {}).get("provenance", {})
    pb = b["tables"].get(key, {}).get("provenance", {})
    return {k: (pa.get(k), pb.get(k)) for k in dict.fromkeys([*pa, *pb]) if pa.get(k) != pb.get(k)}


def render(a: dict, b: dict, names: tuple[str, str] = ("A", "B"), tolerance: float = 0.0) -> str:
    """The comparison as Markdown: per table a summary line, the provenance that differs and the moved rows."""
    lines = [f"# Report comparison: A = {names[0]}, B = {names[1]}", ""]
    for key, df in compare_tables(a, b, tolerance).items():
        title = (b["tables"].get(key) or a["tables"].get(key) or {}).get("title", key)
        moved = df[df["changed"]] if len(df) else df
        lines += [f"## {title}", "", f"{len(moved)} of {len(df)} values differ (tolerance {tolerance})."]
        prov = provenance_diff(a, b, key)
        if prov:
            lines += ["", "| provenance | A | B |", "|---|---|---|"]
            lines += [f"| {k} | {va} | {vb} |" for k, (va, vb) in prov.items()]
        if len(moved):
            lines += ["", moved.drop(columns=["changed"]).to_markdown(index=False, floatfmt=".2f")]
        lines.append("")
    return "\n".join(lines)


def compare_main(args) -> int:
    """``ovlab report compare A B [--out FILE] [--tolerance T]``; exit 0 (1 on a bad input)."""
    try:
        a, b = load_report(args.a), load_report(args.b)
    except (FileNotFoundError, ValueError) as exc:
        print(f"ovlab report compare: error: {exc}", file=sys.stderr)
        return 1
    text = render(a, b, (str(args.a), str(args.b)), args.tolerance)
    if args.out:
        from ovlab.atomic import write_text

        write_text(args.out, text)
        print(f"ovlab report compare: wrote {args.out}")
    else:
        print(text)
    return 0
