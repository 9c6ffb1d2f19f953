"""SCAN ablation grids (SCAN Tables 3–8): cell validation, which model a cell scores, the DVC matrix
stages, the paper profile, an end-to-end tiny grid and the notebook's tables."""

from __future__ import annotations

import json
import shutil
import warnings

import numpy as np
import pytest
import torch
import yaml

from .conftest import REPO, pipeline_stages
from ovlab.config import ParamsError, StageParams, load_params, parse_params
from ovlab.config.base import BaseParams
from ovlab.config.scan import ScanStageParams
from ovlab.config.grid import drop_keys, expand_dotted
from ovlab.report.scan_tables import PAPER, long_frame, paper_table, scan_table, setting_text, table_plot

SHARED = {
    ("table3", "baseline"): "nosim", ("table3", "sim"): "sim", ("table3", "cs"): "nosim", ("table3", "both"): "sim",
    ("table4", "none"): "nosim", ("table4", "cls_hw_lfe"): "sim", ("table5", "l12_18_24_k9_7_3"): "sim",
    ("table8", "baseline_mask"): "nosim", ("table8", "baseline_clip"): "nosim", ("table8", "baseline_both"): "nosim",
}
OWN = {("table4", c) for c in ("cls", "hw", "cls_hw", "hw_lfe")} | {
    ("table5", c) for c in ("l15_18_21_k7_5_3", "l15_18_21_k9_7_3", "l12_18_24_k7_5_3", "l12_18_24_k11_9_7")}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _expected(table, cell):
    if (table, cell) in OWN:
        return None
    return SHARED.get((table, cell), "sim")          # Tables 6 and 7 and SCAN's Tab. 8 rows: the sim model


TABLES = ("table3", "table4", "table5", "table6", "table7", "table8")


def _check_models(cfg: ScanStageParams):
    for table, cell in cfg.grids.cells():
        kind, name = cfg.grid_model(table, cell)
        assert (name if kind == "model" else None) == _expected(table, cell), (table, cell)


# -------------------------------------------------------------------------------------- the params
def test_params_yaml_cells_and_the_model_each_scores(repo_root):
    cfg = load_params(repo_root / "params.yaml").scan
    assert set(cfg.grids.models) == {"sim", "nosim"}
    assert {t: len(cfg.grids.tables[t]) for t in TABLES} == {"table3": 4, "table4": 6, "table5": 5, "table6": 5,
                                                                "table7": 9, "table8": 6}
    _check_models(cfg)
    cell = cfg.grid_section("table7", "l1_3_5_7_9_r40")
    assert cell.contextual_shift.ratio == 0.4 and cell.output == "results/scan/table7/l1_3_5_7_9_r40"
    assert cell.grids.cells() == [] and cell.eval.max_images == cfg.grids.eval_max_images
    assert cfg.grid_section("table4", "hw").sim.lfe == "none" and not cfg.grid_section("table4", "hw").sim.use_cls


def test_paper_profile_cells_validate_and_keep_their_models(repo_root, tmp_path):
    from ovlab.profiles import apply_profile

    shutil.copy(repo_root / "params.yaml", tmp_path / "params.yaml")
    shutil.copytree(repo_root / "profiles", tmp_path / "profiles")
    apply_profile("paper", tmp_path / "params.yaml")
    cfg = load_params(tmp_path / "params.yaml").scan
    assert cfg.sim.layers == [12, 18, 24] and cfg.optim.lr == pytest.approx(6e-5)
    assert cfg.schedule.kind == "poly" and cfg.schedule.warmup_factor == pytest.approx(1e-6)
    assert cfg.grid_section("table5", "l15_18_21_k7_5_3").sim.layers == [15, 18, 21]
    t7 = cfg.grid_section("table7", "l11_13_15_17_19_r30").contextual_shift
    assert t7.layers == [11, 13, 15, 17, 19] and t7.preset is None and t7.ratio_for("ade20k_150") == 0.3
    assert cfg.grids.eval_datasets == ["ade20k_150", "ade20k_847", "pascal_context_59"]
    _check_models(cfg)


def _with_cell(repo_root, table, cell, value):
    data = yaml.safe_load((repo_root / "params.yaml").read_text())
    data["scan"]["grids"].setdefault(table, {})[cell] = value
    return data


def test_an_unknown_or_wrong_key_in_a_cell_is_a_params_error_naming_it(repo_root):
    with pytest.raises(ParamsError, match=r"scan\.grids\.table3\.sim\.sim\.enabld: unknown key"):
        parse_params(_with_cell(repo_root, "table3", "sim", {"sim.enabld": False}), source="params.yaml")
    with pytest.raises(ParamsError, match=r"scan\.grids\.table6\.x\.contextual_shift\.source"):
        parse_params(_with_cell(repo_root, "table6", "x", {"contextual_shift": {"source": "zeros"}}))
    with pytest.raises(ParamsError, match=r"scan\.grids\.models\.m\.train\.iterations"):
        parse_params(_with_cell(repo_root, "models", "m", {"train.iterations": "many"}))
    data = yaml.safe_load((repo_root / "params.yaml").read_text())
    data["scan"]["grids"]["eval_max_image"] = 1                       # a misspelt setting is not a table
    with pytest.raises(ParamsError, match=r"scan\.grids\.tables\.eval_max_image"):
        parse_params(data)
    with pytest.raises(ParamsError, match="grids: a cell cannot change the grids"):
        parse_params(_with_cell(repo_root, "table3", "g", {"grids.eval_max_images": 1}))
    with pytest.raises(KeyError, match="no cell 'nope'"):
        load_params(repo_root / "params.yaml").scan.grid_section("table3", "nope")


def test_dotted_and_nested_overrides_are_the_same():
    assert expand_dotted({"scan.sim.enabled": False, "scan": {"sim.lfe": "none"}, "eval": {"max_images": 2}}) == \
        {"scan": {"sim": {"enabled": False, "lfe": "none"}}, "eval": {"max_images": 2}}
    doc = {"scan": {"sim": {"a": 1}, "inference": "mask"}, "eval": {}, "train": {"iterations": 3}}
    assert drop_keys(doc, ("scan.inference", "eval", "missing.key")) == \
        {"scan": {"sim": {"a": 1}}, "train": {"iterations": 3}}
    assert doc["scan"]["inference"] == "mask"                                 # the input is not modified
    cfg = ScanStageParams(grids={"models": {"a": {}}, "table6": {
        "d": {"contextual_shift.source": "noise"}, "n": {"contextual_shift": {"source": "noise"}}}})
    d, n = (cfg.grid_section("table6", c).model_dump(exclude={"output"}) for c in ("d", "n"))
    assert d == n


def test_dvc_has_one_matrix_stage_per_table(repo_root):
    stages = pipeline_stages(repo_root)
    assert stages["scan_models"]["matrix"] == {"model": "${scan.grids.models}"}
    assert stages["scan_models"]["cmd"] == "python -m ovlab.stage ovlab.experiments.grid scan --model ${item.model}"
    for t in TABLES:
        s = stages[f"scan_{t}"]
        assert s["matrix"] == {"cell": f"${{scan.grids.{t}}}"}
        assert s["cmd"] == f"python -m ovlab.stage ovlab.experiments.grid scan {t}/${{item.cell}}"
        assert f"scan.grids.{t}.${{item.cell}}" in s["params"]
        assert "${scan.grids.output}/models/sim/model.pt" in s["deps"]
        assert list(s["metrics"][0]) == [f"${{scan.grids.output}}/{t}/${{item.cell}}/metrics.json"]
    nb = stages["scan"]
    assert nb["cmd"] == "python -m ovlab.run notebooks/03_scan_ablations.ipynb --section scan"
    assert [list(o)[0] for o in nb["outs"]] == ["results/scan/params.yaml", "reports/03_scan_ablations.ipynb",
                                                "reports/03_scan_ablations.html"]


def test_scan_grid_list_command(repo_root, capsys):
    from ovlab.experiments.grid import main

    torch.set_num_threads(2)
    try:
        assert main(["scan", "--list", "--params", str(repo_root / "params.yaml")]) == 0
        assert torch.get_num_threads() == 2                                 # scan.grids.torch_threads does not leak
    finally:
        torch.set_num_threads(1)
    out = capsys.readouterr().out
    assert "table6/noise: model sim" in out and "table4/cls: trains its own model" in out
    assert main(["scan", "table3/nope", "--params", str(repo_root / "params.yaml")]) == 1
    assert "no cell 'nope'" in capsys.readouterr().err


# ---------------------------------------------------------------------------------- end to end, tiny
@pytest.fixture(scope="module")
def tiny_grid(embedded_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("scan_grid")
    cfg = ScanStageParams.model_validate({
        "clip": {"model": "ovlab-tiny-vit", "pretrained": None},
        "model": {"backbone": {"kind": "tiny"}, "hidden_dim": 32, "mask_dim": 32, "num_queries": 4, "decoder_layers": 1,
                  "heads": 4, "ffn_dim": 32, "encoder_ffn_dim": 32, "templates": "none"},
        "loss": {"num_points": 64}, "data": {"root": str(embedded_root / "coco")}, "augment": {"crop_size": 64},
        "train": {"iterations": 2, "batch_size": 1, "checkpoint_every": 2, "log_every": 1,
                  "checkpoint_dir": str(out / "checkpoints")},
        "eval": {"root": str(embedded_root), "templates": "none"},
        "sim": {"cross_attention_layers": 1, "encoder_layers": 1, "encoder_ff": 32},
        "cs_finetune": {"enabled": False},   # the pretrained CLIP classifies the crops (CS fine-tuning: test_scan_cs_finetune.py)
        "grids": {"output": str(out / "results"), "eval_max_images": 1,
                  "models": {"sim": {}, "nosim": {"sim.enabled": False}},
                  "table4": {"cls": {"sim.use_spatial": False, "contextual_shift.enabled": False}},
                  "table6": {"noise": {"contextual_shift.source": "noise"}},
                  "table8": {"baseline_mask": {"sim.enabled": False, "inference": "mask"}}}})
    return StageParams("scan", BaseParams(), cfg, REPO, "<test>"), out


def test_tiny_grid_end_to_end(tiny_grid):
    from ovlab.experiments.grid import ModelNotTrainedError, run_cell, train_model

    stage, out = tiny_grid
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ModelNotTrainedError, match="--model sim"):
            run_cell(stage, "table6", "noise", progress=False)
        for name in ("sim", "nosim"):
            res = train_model(stage, name, progress=False)
            assert (res.output / "model.pt").is_file() and res.output == out / "results" / "models" / name
        noise = run_cell(stage, "table6", "noise", progress=False)
        own = run_cell(stage, "table4", "cls", progress=False)
        base = run_cell(stage, "table8", "baseline_mask", progress=False)
    assert noise["model"]["kind"] == "shared" and noise["model"]["name"] == "sim"
    assert noise["model"]["train"]["iterations"] == 2
    assert noise["eval"]["scan"]["cs_source"] == "noise" and noise["eval"]["num_images"] == 1
    assert noise["cell"] == {"table": "table6", "cell": "noise",
                             "overrides": {"contextual_shift": {"source": "noise"}}}
    assert own["model"]["kind"] == "own" and (out / "results" / "table4" / "cls" / "model.pt").is_file()
    assert not own["eval"]["scan"]["cs_enabled"]
    assert base["model"]["name"] == "nosim" and base["eval"]["scan"]["inference"] == "mask"
    written = json.loads((out / "results" / "table6" / "noise" / "metrics.json").read_text())
    assert written["evals"]["coco_133"]["mIoU"] == noise["evals"]["coco_133"]["mIoU"]
    assert written["clip"]["untrained"] and written["synthetic"]
    df = scan_table("table6", out / "results", cells=["none", "noise"])
    assert np.isnan(df.loc["none", "ours coco_133"]) and df.loc["noise", "ours coco_133"] == noise["eval"]["mIoU"]
    assert df.loc["noise", "ours: model"] == "shared sim" and df.loc["noise", "paper ADE-847"] == 13.0


# ----------------------------------------------------------------------------------------- tables
def test_paper_tables_match_the_grid_cells_and_the_paper(repo_root):
    cfg = load_params(repo_root / "params.yaml").scan
    for t in TABLES:
        assert list(PAPER[t].rows) == list(cfg.grids.tables[t]), t
    t3 = paper_table("table3")
    assert t3.loc["both"].tolist() == ["+ Both", 33.5, 14.0, 59.3]
    assert paper_table("table4").loc["cls"].tolist()[:3] == ["✓", "", ""]
    assert paper_table("table8").loc["scan_clip", "paper PC-59"] == 49.9
    assert paper_table("table7").loc["l1_3_5_7_9_r20", "paper ADE-847"] == 13.8
    with pytest.raises(KeyError, match="table3"):
        paper_table("table2")


def _fake_cell(root, table, cell, miou, overrides):
    d = root / table / cell
    d.mkdir(parents=True)
    (d / "metrics.json").write_text(json.dumps({
        "cell": {"table": table, "cell": cell, "overrides": overrides}, "model": {"kind": "shared", "name": "sim"},
        "clip": {"untrained": True}, "synthetic": True,
        "evals": {"coco_133": {"mIoU": miou, "unseen_mIoU": 1.0}, "ade20k_150": {"mIoU": None}}}))


def test_scan_table_puts_ours_beside_the_paper(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from ovlab.report.scan_tables import untrained_or_synthetic

    _fake_cell(tmp_path, "table5", "l12_18_24_k9_7_3", 4.5, {"sim": {"layers": [1, 2, 3]}})
    _fake_cell(tmp_path, "table5", "extra", 1.0, {})
    df = scan_table("table5", tmp_path)
    assert list(df.index) == list(PAPER["table5"].rows) + ["extra"]
    assert list(df.columns) == ["Layers", "Kernel", "paper ADE-150", "paper ADE-847", "paper PC-59",
                                "ours coco_133", "ours ade20k_150", "ours: model", "ours: setting"]
    assert df.loc["l12_18_24_k9_7_3", "ours coco_133"] == 4.5
    assert np.isnan(df.loc["l12_18_24_k9_7_3", "ours ade20k_150"])
    assert np.isnan(df.loc["l15_18_21_k7_5_3", "ours coco_133"])
    assert df.loc["l12_18_24_k9_7_3", "ours: setting"] == "sim.layers=1, 2, 3"
    assert df.loc["extra", "ours: setting"] == "(the scan section)"
    assert scan_table("table5", tmp_path, metric="unseen_mIoU").loc["extra", "ours coco_133"] == 1.0
    long = long_frame(df, "table5")
    assert set(long["source"]) == {"paper", "ours"} and len(long) == 6 * 5
    assert table_plot(df, "table5") is not None
    assert untrained_or_synthetic(tmp_path) == (True, True)
    assert setting_text({"scan": {"contextual_shift": {"layers": [0, 1], "ratio": 0.3}}}) == \
        "contextual_shift.layers=0, 1; contextual_shift.ratio=0.3"
