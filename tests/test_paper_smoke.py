"""The paper-smoke profile: the paper profile's code paths on simulated real-layout data (issue 14, deliverable 6).

The fast tests check the profile (only sizes, counts, CLIPs and roots differ from ``paper``) and the
grouping of the paper grids' cells into configurations; ``test_paper_smoke_run`` runs one cell of
every configuration (``ovlab.experiments.paper_smoke``) on the simulated datasets.
"""

from __future__ import annotations

import math
import shutil

import numpy as np
import pytest

from ovlab.config import load_params
from ovlab.dvcfiles import copy_pipeline
from ovlab.experiments.paper_smoke import _leaves, plan, representatives, run_smoke, signature
from ovlab.profiles import apply_profile


def _params(repo_root, tmp_path, profile: str):
    d = tmp_path / profile
    d.mkdir()
    shutil.copy(repo_root / "params.yaml", d / "params.yaml")
    copy_pipeline(repo_root, d)
    shutil.copytree(repo_root / "profiles", d / "profiles")
    apply_profile(profile, d / "params.yaml")
    return load_params(d / "params.yaml")


def _dump(params) -> dict:
    return {name: getattr(params, name).model_dump(mode="json") for name in type(params).model_fields}


def test_signature_by_hand():
    base = {"gkc": {"kd": {"mode": "none"}, "w": 1.0}, "sim": {"layers": [1, 2]}, "output": "a", "grids": {"x": 1}}
    cell = {"gkc": {"kd": {"mode": "vanilla"}, "w": 1.0}, "sim": {"layers": [2, 3]}, "output": "b", "grids": {"x": 2}}
    assert signature(base, cell, "own") == ('gkc.kd.mode="vanilla"', "weights=own")  # numbers are no switch
    assert signature(base, base, "model") == ("weights=model",)


def test_paper_smoke_changes_no_switch_of_the_paper_profile(repo_root, tmp_path):
    """Every categorical value (a switch: string, boolean, null) of the resolved paper parameters is the
    paper-smoke one, except the CLIPs (no weights offline), the device and the evaluation roots."""
    paper = dict(_leaves(_dump(_params(repo_root, tmp_path, "paper"))))
    smoke = dict(_leaves(_dump(_params(repo_root, tmp_path, "paper-smoke"))))
    assert paper.keys() == smoke.keys()
    def count(v, w) -> bool:  # null (= all) -> a number: a count shrunk (eval images, CS iterations)
        return v is None and type(w) is int

    switched = {k for k, v in paper.items()
                if (v is None or isinstance(v, (str, bool))) and smoke[k] != v and not count(v, smoke[k])}
    assert switched == {
        "base.profile", "base.device",
        "synonym_score.clip.model", "synonym_score.clip.pretrained",
        "tgkd.clip.model", "tgkd.clip.pretrained", "tgkd.cost.clip", "tgkd.grids.tables.table7b.clip_r101.clip.model",
        "scan.clip.model", "scan.clip.pretrained", "scan.model.backbone.swin", "physical.clip.model", "physical.clip.pretrained",
        "tgkd.eval.root", "scan.eval.root", "physical.eval.root",
    }
    assert smoke["tgkd.data.vocabulary"] == "all" and smoke["scan.model.backbone.kind"] == "swin"
    assert smoke["tgkd.train.iterations"] == 2 and paper["tgkd.train.iterations"] == 50000


def test_grouping_covers_every_cell_of_every_paper_grid(repo_root, tmp_path):
    paper = _params(repo_root, tmp_path, "paper")
    cells = plan(_params(repo_root, tmp_path, "paper-smoke"))
    names = {c.name for c in cells}
    for section in ("tgkd", "scan", "video", "physical"):
        for table, cell in getattr(paper, section).grids.cells():
            assert f"{section} {table}/{cell}" in names
    reps = {c.name for c in representatives(cells)}
    assert all(c.group in reps for c in cells)
    group = {c.name: c.group for c in cells}
    assert group["tgkd table5/none"] == "tgkd table4/none"            # the same resolved section
    assert group["tgkd table6/spatial_prior"] == "tgkd table4/tgkd"   # teacher spatial, student prior: the defaults
    assert group["scan table7/l1_3_5_7_9_r20"] == group["scan table7/l11_13_15_17_19_r30"] == "scan table3/both"  # ratio, layers
    assert group["scan table5/l15_18_21_k7_5_3"] == "scan table5/l15_18_21_k7_5_3"  # trains its own: not the shared sim
    assert group["scan table6/none"] == "scan table6/none" and group["scan table6/noise"] == "scan table6/noise"
    assert group["tgkd table7b/imagenet_r101"] == "tgkd table7b/imagenet_r101"
    assert len(reps) < len(cells)


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    from ovlab.data.simulate import make_simulated

    root = tmp_path_factory.mktemp("simulated")
    return root, make_simulated(root, seed=0)


def test_simulated_benchmarks_are_read_by_the_real_loaders_in_the_prepared_layouts(simulated):
    from PIL import Image

    from ovlab.data.benchmarks.registry import benchmark_names, get_benchmark

    root, summary = simulated
    assert summary["coco"]["train"]["classes_present"] == 133
    for name in benchmark_names():
        b = get_benchmark(name)
        recs = b.records(root)
        assert len(recs) == 2 and all(r.image is not None for r in recs), name
        assert recs[0].layout.decoder == "identity", (name, recs[0].layout.name)  # a prepared layout, made by `ovlab data prepare`
        for r in recs:
            gt = b.load_gt(r)
            classes = set(np.unique(gt).tolist()) - {b.ignore_label}
            assert len(classes) >= 3 and max(classes) < len(b.categories()), (name, classes)
    tif = get_benchmark("ade20k_847").records(root)[0].gt
    assert tif.suffix == ".tif" and Image.open(tif).mode.startswith("I;16")  # Mask2Former's uint16 maps
    assert get_benchmark("pascal_context_459").records(root)[0].gt.suffix == ".tif"


def test_coco_training_vocabulary_all_keeps_133_classes_and_seen_115(simulated, repo_root, tmp_path):
    """Issue 14 defect 1: under ``tgkd.data.vocabulary: seen`` the 18 novel COCO classes are dropped."""
    from ovlab.experiments.paper_smoke import _train_classes
    from ovlab.experiments.registry import task_for

    root, _ = simulated
    params = _params(repo_root, tmp_path, "paper-smoke")
    stage = params.stage("tgkd")
    stage = type(stage)(stage.name, stage.base, stage.cfg.model_copy(update={"data": stage.cfg.data.model_copy(
        update={"root": str(root / "coco")})}), stage.root, stage.source)
    assert stage.cfg.data.vocabulary == "all"
    assert _train_classes(stage, task_for("tgkd")) == 133
    seen = stage.cfg.model_copy(update={"data": stage.cfg.data.model_copy(update={"vocabulary": "seen"})})
    assert _train_classes(type(stage)(stage.name, stage.base, seen, stage.root, stage.source), task_for("tgkd")) == 115


def _finite(x) -> bool:
    return not isinstance(x, float) or math.isfinite(x)


def test_paper_smoke_run(tmp_path):
    """One cell of every configuration of every paper grid, and the stages they read, on the
    simulated datasets: nothing fails, every evaluation is finite, GKC trains on all 133 COCO
    classes (issue 14 defect 1), Random TD starts on the real synonym_score table (defect 2)."""
    res = run_smoke(tmp_path / "work")
    assert res.failed == [], {n: ({**res.stages, **res.cells}[n].get("error")) for n in res.failed}
    assert res.stages["synonym_score"]["classes"] == 133
    assert res.stages["tgkd_baseline"]["train_classes"] == 133
    for name in ("tgkd table4/td", "tgkd table7a/group_avg"):
        assert res.cells[name]["ok"]
    cells = plan(load_params(res.work / "params.yaml"))
    for c in representatives(cells):
        rec = res.cells[c.name]
        evals = rec["evals"]
        assert evals, c.name
        for summary in evals.values():
            assert all(_finite(v) for v in summary.values()), (c.name, summary)
            if "num_images" in summary:
                assert summary["num_images"] >= 1
    pc = res.cells["tgkd table4/none"]["evals"]
    assert set(pc) == {"pascal_context_59", "cityscapes_19"}
    assert set(res.cells["scan table3/both"]["evals"]) == {"ade20k_150", "ade20k_847", "pascal_context_59"}
    assert np.isfinite(res.stages["tgkd_baseline"]["metrics"]["final_loss"])
