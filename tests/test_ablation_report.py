"""The ablation report reads only results/ and lays every table out with the paper's numbers, the delta
and provenance; the compare command finds exactly the values that moved."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


def _cell(folder: Path, evals: dict, **extra) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rec = {"profile": "embedded", "seed": 0, "synthetic": True, "clip": {"model": "ovlab-tiny-rn", "untrained": True},
           "evals": {ds: {"dataset": ds, "mIoU": v} for ds, v in evals.items()}, **extra}
    (folder / "metrics.json").write_text(json.dumps(rec))
    (folder / "params.yaml").write_text("base: {profile: embedded, seed: 0, device: cpu}\n"
                                        "tgkd: {data: {root: data/embedded/coco}}\n")


@pytest.fixture()
def results(tmp_path):
    r = tmp_path / "results"
    _cell(r / "gkc" / "table4" / "none", {"pascal_context_59": 40.0, "cityscapes_19": 27.0})
    _cell(r / "gkc" / "table4" / "td", {"coco_133": 5.5})
    _cell(r / "scan" / "table3" / "baseline", {"ade20k_150": 30.0})
    v = r / "video" / "table3" / "baseline"
    v.mkdir(parents=True)
    (v / "metrics.json").write_text(json.dumps({"profile": "embedded", "eval": {"protocol": "generalized",
                                                "seen_miou": 40.0, "unseen_miou": 3.0, "harmonic": 5.58}}))
    s = r / "sgiou"
    s.mkdir()
    (s / "metrics.json").write_text(json.dumps({"synthetic": True, "coco": {"pairs_present": 3, "gap": 1.5},
                                                "ade": {"skipped": "ADE-150 folder not found"}}))
    (s / "curve.csv").write_text("rate,coco_to_father_mIoU,coco_to_father_sgmiou\n0,100,100\n0.5,50,75\n")
    _cell(r / "physical" / "table3" / "lp_lsac", {"ade20k_150": 12.0})
    return r


def _layout(results: Path):
    from ovlab.report.ablation import Layout

    return Layout(root=results.parent)


def test_report_tables_deltas_and_provenance(results):
    from ovlab.report.ablation import build_report

    root = results.parent
    tables = build_report(_layout(results))
    by = {t.key: t for t in tables}
    expected = {f"gkc_{t}" for t in ("table4", "table5", "table6", "table7a", "table7b", "table8")} \
        | {f"scan_table{i}" for i in range(3, 9)} | {"video_table3", "sgiou", "physical_table3"}
    assert set(by) == expected                       # no cost.json here: no Tab. 2
    assert {k for k, t in by.items() if t.ran} == {"gkc_table4", "scan_table3", "video_table3", "sgiou",
                                                   "physical_table3"}
    g4 = by["gkc_table4"].long.set_index(["row", "metric"])
    assert g4.loc[("none", "Pascal Context"), "delta"] == pytest.approx(40.0 - 39.70)
    assert g4.loc[("none", "Cityscapes"), "delta"] == pytest.approx(27.0 - 27.61)
    assert g4.loc[("TD", "coco_133"), "ours"] == 5.5 and g4.loc[("TD", "Pascal Context"), "paper"] == 41.45
    assert by["gkc_table4"].frame["Δ Pascal Context"].iloc[0] == pytest.approx(0.30)
    s3 = by["scan_table3"].long.set_index(["row", "metric"])
    assert s3.loc[("Baseline", "ADE-150"), "delta"] == pytest.approx(30.0 - 31.5)
    v3 = by["video_table3"].long.set_index(["row", "metric"])
    assert v3.loc[("Baseline", "Harmonic"), "delta"] == pytest.approx(5.58 - 4.5)
    prov = by["gkc_table4"].provenance
    assert prov["profile"] == "embedded" and prov["seed"] == "0" and prov["cells"] == 2
    assert prov["CLIP"] == "ovlab-tiny-rn (untrained)" and prov["data"] == "data/embedded/coco (synthetic)"
    assert len(prov["params hash"]) == 12 and "final iteration" in prov["checkpoint selection"]
    assert by["sgiou"].notes == ["ade: ADE-150 folder not found"] and by["sgiou"].plot is not None

    page = (root / "reports" / "ablation.html").read_text()
    assert page.count("<section class='report-table'") == len(expected)
    assert page.index("class='caveat'") < page.index("<section")   # the embedded caveat first
    assert page.count("<img class='plot'") == sum(t.plot is not None for t in tables) >= 4
    md = (root / "reports" / "ablation.md").read_text()
    assert md.count("\n## ") == len(expected) and "| params hash |" in md
    assert all((root / "reports" / rel).is_file() for rel in
               [ln.split("](")[1].rstrip(")") for ln in md.splitlines() if ln.startswith("![")])
    data = json.loads((root / "results" / "report" / "report.json").read_text())
    assert set(data["tables"]) == expected


def test_compare_finds_the_moved_values(results, tmp_path, capsys):
    from ovlab.report.ablation import build_report
    from ovlab.report.compare import compare_tables, load_report, render

    build_report(_layout(results), json_out="run_a.json")
    _cell(results / "gkc" / "table4" / "td", {"coco_133": 7.0})
    build_report(_layout(results), json_out="run_b.json")
    a, b = load_report(tmp_path / "run_a.json"), load_report(tmp_path / "run_b.json")
    diff = compare_tables(a, b)
    moved = {k: df[df["changed"]] for k, df in diff.items() if df["changed"].any()}
    assert list(moved) == ["gkc_table4"]
    row = moved["gkc_table4"].iloc[0]
    assert (row["row"], row["metric"], row["A"], row["B"], row["B − A"]) == ("TD", "coco_133", 5.5, 7.0, 1.5)
    text = render(a, b)
    assert "1 of 9 values differ" in text
    with pytest.raises(ValueError, match="not an ovlab report"):
        (tmp_path / "bad.json").write_text("{}")
        load_report(tmp_path / "bad.json")


def test_report_cli_builds_from_params(tmp_path):
    from ovlab.experiments.cli import main

    (tmp_path / "params.yaml").write_text((Path(__file__).parents[1] / "params.yaml").read_text())
    assert main(["report", "build", "--params", str(tmp_path / "params.yaml")]) == 0
    assert (tmp_path / "reports" / "ablation.html").is_file()   # nothing ran: every table "not run"
    assert "Not run" in (tmp_path / "reports" / "ablation.html").read_text()
