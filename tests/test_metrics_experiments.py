"""SG-IoU vs mIoU experiments (ovlab.experiments.sgiou) on hand-computed cases (SCAN Eq. 6)."""

import json

import numpy as np
import pytest
from PIL import Image

from ovlab.metrics import load_association_map
from ovlab.experiments.sgiou import (
    association_swaps,
    confusion_curve,
    confusion_of,
    load_label_maps,
    per_class_deltas,
    random_confusions,
    run_sgiou_stage,
    score,
    swap_predictions,
)
from tests.conftest import REPO

K = 133
WALL_STONE, WALL_OTHER, PERSON = 110, 131, 0  # coco_panoptic_133: wall-stone -> wall-other-merged


@pytest.fixture(scope="module")
def coco_map():
    return load_association_map("coco_panoptic_133")


def _gt():
    return [np.array([[WALL_STONE, WALL_STONE, WALL_OTHER, WALL_OTHER], [PERSON] * 4, [255] * 4])]


def test_coco133_map_is_valid_and_has_the_curated_edges(coco_map):
    assert coco_map.num_classes == 133
    fathers = coco_map.index_fathers()
    assert fathers[WALL_STONE] == [WALL_OTHER]
    names = coco_map.categories.names
    assert names[WALL_STONE] == "wall-stone" and names[WALL_OTHER] == "wall-other-merged"
    assert {(names[q], names[f]) for q, f in coco_map.pairs()} >= {("house", "building-other-merged"),
                                                                   ("apple", "fruit"), ("sea", "water-other")}
    assert ("toaster", "person") not in {(names[q], names[f]) for q, f in coco_map.pairs()}


def test_coco133_map_is_what_the_builder_makes(coco_map, wordnet):
    from ovlab.metrics.association_build import build_association_map, load_overrides

    assert build_association_map("coco_panoptic_133", wordnet, load_overrides()).pairs() == coco_map.pairs()


def test_child_as_father_swap_hand_computed(coco_map):
    gts = _gt()
    preds = swap_predictions(gts, {WALL_STONE: WALL_OTHER}, K)
    np.testing.assert_array_equal(preds[0][0], [WALL_OTHER] * 4)
    np.testing.assert_array_equal(preds[0][2], [0] * 4)  # ignore pixels predicted 0, never counted
    conf = confusion_of(gts, preds, K)
    assert conf[WALL_STONE, WALL_OTHER] == 2 and conf[WALL_OTHER, WALL_OTHER] == 2 and conf[PERSON, PERSON] == 4
    assert conf.sum() == 8
    s = score(conf, coco_map.index_fathers())
    # IoU: wall-stone 0/2, wall-other 2/(2+4-2), person 1 -> mIoU 50
    # SG: beta = (C[q,f] + C[f,f]) / P_f = (2+2)/4 = 1 -> TP' = 2 -> SG-IoU(wall-stone) = 1
    assert s["mIoU"] == pytest.approx(50.0)
    assert s["SG-mIoU"] == pytest.approx(250 / 3)
    assert s["pACC"] == pytest.approx(75.0) and s["SG-pACC"] == pytest.approx(100.0)


def test_association_swaps_table_with_control(coco_map):
    df = association_swaps(_gt(), coco_map)
    assert list(df.child) == ["wall-stone", "(all)"]
    row = df.iloc[0]
    assert row.father == "wall-other-merged" and row.relation == "parent" and row.child_pixels == 2
    assert row.mIoU == pytest.approx(50.0) and row["SG-mIoU"] == pytest.approx(250 / 3)
    assert row.IoU_child == 0.0 and row["SG-IoU_child"] == pytest.approx(100.0)
    # control: the only present class that is neither the child nor a relative is person;
    # IoU person 4/6, wall-stone 0, wall-other 1 -> 55.56 for both metrics
    assert row.control == "person"
    assert row.control_mIoU == pytest.approx(100 * (4 / 6 + 1) / 3)
    assert row["control_SG-mIoU"] == pytest.approx(row.control_mIoU)
    assert df.iloc[1]["SG-mIoU"] == pytest.approx(250 / 3)


def test_partial_swap_is_seeded():
    gts = [np.full((50, 50), 3)]
    a = swap_predictions(gts, {3: 4}, 10, fraction=0.25, seed=1)[0]
    b = swap_predictions(gts, {3: 4}, 10, fraction=0.25, seed=1)[0]
    np.testing.assert_array_equal(a, b)
    assert set(np.unique(a)) == {3, 4}
    assert abs((a == 4).mean() - 0.25) < 0.05


def test_random_confusions_kinds():
    fathers = {0: [1]}
    gts = [np.array([[0, 0, 1, 2, 255]])]
    np.testing.assert_array_equal(random_confusions(gts, 3, 0.0, "uniform", seed=0)[0], [[0, 0, 1, 2, 0]])
    np.testing.assert_array_equal(random_confusions(gts, 3, 1.0, "to_father", fathers, seed=0)[0], [[1, 1, 1, 2, 0]])
    u = random_confusions(gts, 3, 1.0, "uniform", seed=0)[0]
    assert np.all(u[0, :4] != gts[0][0, :4]) and np.all((u >= 0) & (u < 3))
    m = random_confusions(gts, 3, 1.0, "mixed", fathers, seed=0)[0]
    assert list(m[0, :2]) == [1, 1] and np.all(m[0, 2:4] != gts[0][0, 2:4])
    with pytest.raises(ValueError, match="needs a non-empty association map"):
        random_confusions(gts, 3, 0.5, "to_father")
    with pytest.raises(ValueError, match="unknown corruption kind"):
        random_confusions(gts, 3, 0.5, "nope")


def test_random_confusion_rate_and_determinism():
    g = [np.random.default_rng(0).integers(0, 20, (200, 200))]
    a = random_confusions(g, 20, 0.3, "uniform", seed=5)[0]
    np.testing.assert_array_equal(a, random_confusions(g, 20, 0.3, "uniform", seed=5)[0])
    assert not np.array_equal(a, random_confusions(g, 20, 0.3, "uniform", seed=6)[0])
    assert abs((a != g[0]).mean() - 0.3) < 0.01


def test_confusion_curve_end_points_hand_computed():
    gts = [np.array([[0, 0, 1, 1]])]
    df = confusion_curve(gts, {0: [1]}, 3, [0.0, 1.0], ["to_father", "uniform"], seed=0)
    tf = df[df.kind == "to_father"].set_index("rate")
    assert tf.loc[0.0, "mIoU"] == 100.0 and tf.loc[0.0, "SG-mIoU"] == 100.0
    # rate 1: [1,1,1,1] -> IoU 0 and 0.5 -> 25; SG-IoU 1 and 0.5 -> 75
    assert tf.loc[1.0, "mIoU"] == pytest.approx(25.0) and tf.loc[1.0, "SG-mIoU"] == pytest.approx(75.0)
    assert tf.loc[1.0, "gap"] == pytest.approx(50.0)
    assert df[df.kind == "uniform"].set_index("rate").loc[0.0, "mIoU"] == 100.0
    again = confusion_curve(gts, {0: [1]}, 3, [0.0, 1.0], ["to_father", "uniform"], seed=0)
    assert df.equals(again)


def test_per_class_deltas_hand_computed(coco_map):
    gts = _gt()
    conf = confusion_of(gts, swap_predictions(gts, {WALL_STONE: WALL_OTHER}, K), K)
    df = per_class_deltas(conf, coco_map)
    assert len(df) == 3
    top = df.iloc[0]
    assert top["name"] == "wall-stone" and top.fathers == "wall-other-merged"
    assert top.IoU == 0.0 and top["SG-IoU"] == pytest.approx(100.0) and top.delta == pytest.approx(100.0)
    assert (df.delta.iloc[1:] == 0).all()
    assert df.set_index("name").loc["wall-other-merged", "IoU"] == pytest.approx(50.0)


def test_pooled_equals_code_with_one_father(coco_map):
    gts = _gt()
    conf = confusion_of(gts, random_confusions(gts, K, 0.5, "mixed", coco_map.index_fathers(), seed=3), K)
    assert score(conf, coco_map.index_fathers(), "pooled") == pytest.approx(score(conf, coco_map.index_fathers(), "code"))


def test_stage_runs_skips_absent_ade_and_scores_predictions(tmp_path, embedded_root):
    from ovlab.config import stage_params

    coco = embedded_root / "coco"  # generated here: a fresh clone has not pulled data/ (DVC)
    stems, gts = load_label_maps("coco_133", coco)
    pred = tmp_path / "pred"
    pred.mkdir()
    for s, g in zip(stems, gts):
        Image.fromarray(np.where(g == 255, 0, g).astype(np.uint8)).save(pred / f"{s}.png")
    out = tmp_path / "out"
    section = {"data_root": str(coco), "ade_root": str(tmp_path / "no_ade"), "max_images": 3, "rates": [0.0, 1.0],
               "predictions": str(pred), "predictions_gt_root": str(coco),
               **{k: str(out / f"{k}.{ext}") for k, ext in (("metrics", "json"), ("curve", "csv"),
                                                           ("swaps", "csv"), ("per_class", "csv"))}}
    res = run_sgiou_stage(stage_params("sgiou", {}, section, REPO))
    assert [p.name for p in res.parts] == ["coco"] and "not found" in res.skipped["ade"]
    from ovlab.config.record import read_record

    m = read_record(out / "metrics.json")  # metrics.json + info.json (the caveat)
    assert m["synthetic"] is True and "caveat" in m and "skipped" in m["ade"]
    assert m["coco"]["num_images"] == 3 and m["coco"]["control_mean_gap"] == 0.0
    assert m["predictions"]["mIoU"] == 100.0 and m["predictions"]["sg_iou"]["mIoU"] == 100.0
    header = (out / "curve.csv").read_text().splitlines()[0]
    assert header == "rate,coco_uniform_miou,coco_uniform_sgmiou,coco_to_father_miou,coco_to_father_sgmiou"
    assert (out / "swaps.csv").is_file() and "predictions" in (out / "per_class.csv").read_text()
