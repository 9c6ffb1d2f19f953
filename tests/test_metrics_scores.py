"""Confusion engine, IoU and SG-IoU against hand-computed matrices (SCAN Eq. 6)."""

import numpy as np
import pytest
import torch

from ovlab.metrics import (
    ConfusionMatrix,
    confusion_matrix,
    from_detectron2,
    generalized_split,
    harmonic_mean,
    iou,
    restrict_labels,
    sg_iou,
    split_vocab,
    summarize,
)


def test_rows_are_ground_truth_and_ignore_is_skipped():
    gt = np.array([[0, 0, 1], [2, 255, 1]], dtype=np.uint8)
    pred = np.array([[0, 1, 1], [1, 2, 0]], dtype=np.uint8)
    c = confusion_matrix(gt, pred, 3)
    expected = np.array([[1, 1, 0], [1, 1, 0], [0, 1, 0]])
    np.testing.assert_array_equal(c, expected)
    assert c.dtype == np.int64


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.uint16, np.int32, np.int64])
def test_any_integer_dtype_and_65535(dtype):
    gt = np.array([0, 1, 2, 3, 65535 if np.iinfo(dtype).max >= 65535 else 255], dtype=dtype)
    pred = np.array([0, 1, 1, 3, 0], dtype=dtype)
    c = confusion_matrix(gt, pred, 4)
    assert c.sum() == 4 and c[2, 1] == 1


def test_streaming_equals_one_shot_and_torch_input():
    rng = np.random.default_rng(0)
    gts = [rng.integers(0, 6, (7, 9)) for _ in range(4)]
    preds = [rng.integers(0, 5, (7, 9)) for _ in range(4)]
    cm = ConfusionMatrix(5)
    for g, p in zip(gts, preds):
        g = g.copy()
        g[g == 5] = 255
        cm.update(torch.from_numpy(g), p)
    allg = np.concatenate([g.ravel() for g in gts])
    allp = np.concatenate([p.ravel() for p in preds])
    keep = allg < 5
    ref = np.zeros((5, 5), np.int64)
    np.add.at(ref, (allg[keep], allp[keep]), 1)
    np.testing.assert_array_equal(cm.numpy(), ref)


def test_errors_name_the_problem():
    cm = ConfusionMatrix(3)
    with pytest.raises(ValueError, match=r"x\.png: prediction shape"):
        cm.update(np.zeros((2, 2), np.uint8), np.zeros((2, 3), np.uint8), name="x.png")
    with pytest.raises(ValueError, match=r"prediction values \[7\]"):
        cm.update(np.zeros((2, 2), np.uint8), np.full((2, 2), 7, np.uint8))
    with pytest.raises(ValueError, match=r"ground-truth values \[9\]"):
        cm.update(np.full((2, 2), 9, np.uint8), np.zeros((2, 2), np.uint8))
    with pytest.raises(TypeError):
        cm.update(np.zeros(3, np.float32), np.zeros(3, np.float32))
    with pytest.raises(ValueError, match="collide"):
        ConfusionMatrix(300, ignore_labels=(255,))


def test_iou_and_detectron2_summary_by_hand():
    # rows = GT. class 2 is predicted but absent from GT; class 3 absent from both.
    c = np.array([[3, 1, 0, 0], [0, 2, 2, 0], [0, 0, 0, 0], [0, 0, 0, 0]])
    per = iou(c)
    np.testing.assert_allclose(per[:3], [3 / 4, 2 / 5, 0.0])
    assert np.isnan(per[3])
    s = summarize(c)
    assert s["mIoU"] == pytest.approx(100 * (3 / 4 + 2 / 5 + 0) / 3)
    assert s["pACC"] == pytest.approx(100 * 5 / 8)
    assert s["mACC"] == pytest.approx(100 * (3 / 4 + 2 / 4) / 2)
    assert s["fwIoU"] == pytest.approx(100 * (3 / 4 * 4 / 8 + 2 / 5 * 4 / 8))


def test_from_detectron2_transposes_and_drops_ignore():
    d2 = np.array([[5, 1, 9], [2, 7, 9], [9, 9, 9]])  # rows = pred, last = ignore
    np.testing.assert_array_equal(from_detectron2(d2), [[5, 2], [1, 7]])


def _scan_reference(conf_pred_rows, fathers):
    """Literal transcription of SCAN ``SGIoU_SemSegEvaluator``'s per-father rule in SCAN's orientation (rows = pred)."""
    C = conf_pred_rows.astype(float)
    K = C.shape[0]
    P, G, TP = C.sum(1), C.sum(0), np.diag(C)
    out = np.full(K, np.nan)
    for q in range(K):
        tpp = TP[q]
        for f in fathers.get(q, []):
            beta = (C[f, q] + C[f, f]) / P[f] if P[f] > 0 else 1.0
            tpp += beta * C[f, q]
        u = P[q] + G[q] - TP[q]
        if u > 0:
            out[q] = tpp / u
    return out


def test_sg_iou_code_mode_hand_computed():
    # classes: 0 house, 1 building, 2 water, 3 sea, 4 hovel. rows = GT, cols = pred
    c = np.array(
        [
            [4, 2, 0, 0, 0],  # house: 2 px predicted building
            [0, 6, 0, 0, 0],  # building
            [0, 0, 5, 0, 0],  # water
            [0, 0, 3, 2, 0],  # sea: 3 px predicted water
            [0, 1, 0, 0, 0],  # hovel: only predicted as building, never as itself
        ]
    )
    fathers = {0: [1], 3: [2], 4: [0, 1]}  # hovel has two fathers, one (house) never wrong
    got = sg_iou(c, fathers, mode="code")
    # house: P_building = 2+6+1 = 9, beta = (2 + 6)/9; TP' = 4 + 2*8/9; union = 4+6-4 = 6
    assert got[0] == pytest.approx((4 + 2 * 8 / 9) / 6)
    # sea: P_water = 8, beta = (3 + 5)/8 = 1; TP' = 2 + 3; union = 5 + 2 - 2 = 5 -> 1
    assert got[3] == pytest.approx(1.0)
    # hovel: father house gets C[4,0] = 0; building: beta = (1 + 6)/9; TP' = 0 + 7/9; union = 1
    assert got[4] == pytest.approx(7 / 9)
    np.testing.assert_allclose(got[[1, 2]], iou(c)[[1, 2]])
    np.testing.assert_allclose(got, _scan_reference(c.T, fathers))


def test_sg_iou_pooled_mode_differs_with_several_fathers():
    # q = 0 with fathers {1, 2}; rows = GT
    c = np.array(
        [
            [2, 2, 2],
            [0, 4, 2],  # GT 1 predicted 2 twice: pooled counts it as "GT in Q"
            [0, 0, 2],
        ]
    )
    code = sg_iou(c, {0: [1, 2]}, mode="code")[0]
    pooled = sg_iou(c, {0: [1, 2]}, mode="pooled")[0]
    # code: P1 = 6, b1 = (2+4)/6 = 1; P2 = 6, b2 = (2+2)/6 = 2/3 -> TP' = 2 + 2 + 4/3
    assert code == pytest.approx((2 + 2 + 4 / 3) / 6)
    # pooled: PQ = 12, PQGq = 4, PQGQ = 4 + 2 + 0 + 2 = 8, beta = 1 -> TP' = 6
    assert pooled == pytest.approx(6 / 6)
    # one father: both modes coincide
    assert sg_iou(c, {0: [1]}, mode="pooled")[0] == pytest.approx(sg_iou(c, {0: [1]})[0])


def test_sg_iou_nan_rules_and_never_predicted_father():
    c = np.array([[3, 0, 0], [0, 0, 0], [0, 0, 0]])
    got = sg_iou(c, {0: [1], 2: [0]})
    assert got[0] == 1.0  # father never predicted: beta = 1 but C[q,f] = 0
    assert np.isnan(got[1]) and np.isnan(got[2])
    # class absent from GT but predicted: 0, and SG summary mean counts it
    c2 = np.array([[3, 1], [0, 0]])
    g2 = sg_iou(c2, {0: [1]})
    assert g2[1] == 0.0
    # P_1 = 1, beta = (1 + 0)/1 = 1, TP' = 4, union = 4
    assert g2[0] == 1.0
    s = summarize(c2, {0: [1]})
    assert s["mIoU"] == pytest.approx(50.0) and s["pACC"] == pytest.approx(100.0)
    with pytest.raises(ValueError, match="mode"):
        sg_iou(c2, {}, mode="nope")
    with pytest.raises(ValueError, match="outside"):
        sg_iou(c2, {0: [5]})


def test_sg_iou_bounded_and_at_least_iou_random():
    rng = np.random.default_rng(1)
    for _ in range(20):
        c = rng.integers(0, 20, (8, 8))
        fathers = {q: list(rng.choice([f for f in range(8) if f != q], size=2, replace=False)) for q in range(0, 8, 2)}
        for mode in ("code", "pooled"):
            s = sg_iou(c, fathers, mode)
            assert np.all(s <= 1 + 1e-12) and np.all(s >= iou(c) - 1e-12)


def test_seen_unseen_harmonic():
    c = np.diag([4, 4, 4, 4])
    c[2, 3] = 4  # GT 2 half wrong -> IoU(2) = 4/8, IoU(3) = 4/8
    s = generalized_split(c, [2, 3])
    assert s.seen == pytest.approx(100.0) and s.unseen == pytest.approx(50.0)
    assert s.harmonic == pytest.approx(2 * 100 * 50 / 150)
    v = split_vocab(np.diag([1, 1]), np.array([[1, 1], [0, 1]]))
    assert v.seen == 100 and v.unseen == pytest.approx(50.0) and v.protocol == "split-vocab"
    assert harmonic_mean(0.0, 0.0) == 0.0 and np.isnan(harmonic_mean(float("nan"), 3.0))
    # GKC Tab. 3 row +KD+TD: 45.8 / 8.5 -> 14.4
    assert harmonic_mean(45.8, 8.5) == pytest.approx(14.3, abs=0.1)
    lab = np.array([[0, 1, 2, 255]])
    np.testing.assert_array_equal(restrict_labels(lab, [2, 0], 3), [[1, 255, 0, 255]])
