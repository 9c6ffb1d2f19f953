"""The streaming, multi-process file scorer (ovlab.metrics.stream) against hand counts and the
detectron2 ``SemSegEvaluator`` accumulation, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from ovlab.metrics.benchmark import detectron2_path
from ovlab.metrics.stream import PairError, accumulate, label_lut, stream_confusion


def test_accumulate_hand_counts_rows_are_ground_truth():
    K = 3
    gt = np.array([[0, 0, 1], [2, 65535, 1]], np.uint16)
    pred = np.array([[0, 1, 1], [0, 2, 2]], np.uint16)
    conf = np.zeros((K, K), np.int64)
    accumulate(conf, gt, pred, label_lut(K, [65535]))
    # (gt, pred): (0,0) (0,1) (1,1) (2,0) [ignored] (1,2)
    want = np.array([[1, 1, 0], [0, 1, 1], [1, 0, 0]])
    assert (conf == want).all()


def test_prediction_out_of_range_is_an_error_only_where_scored():
    K = 3
    conf = np.zeros((K, K), np.int64)
    lut = label_lut(K, [255])
    accumulate(conf, np.array([[255, 1]]), np.array([[7, 1]]), lut)  # 7 under an ignore pixel: fine
    assert conf.sum() == 1 and conf[1, 1] == 1
    with pytest.raises(PairError, match=r"x.png: prediction values \[7\]"):
        accumulate(conf, np.array([[0, 1]]), np.array([[7, 1]]), lut, name="x.png")


def test_unknown_ground_truth_value_and_size_mismatch_name_the_file():
    conf = np.zeros((3, 3), np.int64)
    lut = label_lut(3, [255])
    with pytest.raises(PairError, match=r"g: ground-truth values \[4\]"):
        accumulate(conf, np.array([[4, 0]]), np.array([[0, 0]]), lut, name="g")
    with pytest.raises(PairError, match="differs from ground truth"):
        accumulate(conf, np.zeros((2, 2), int), np.zeros((2, 3), int), lut, name="p")


def _pairs(tmp_path, n=9, K=847, seed=0):
    rng = np.random.default_rng(seed)
    gts, preds = [], []
    for i in range(n):
        h, w = (24, 40) if i % 2 else (40, 24)
        g = rng.integers(0, K, (h, w)).astype(np.uint16)
        g[rng.random((h, w)) < 0.2] = 65535
        p = rng.integers(0, K, (h, w)).astype(np.uint16)
        gf, pf = tmp_path / f"g{i}.tif", tmp_path / f"p{i}.png"
        Image.fromarray(g).save(gf)
        Image.fromarray(p).save(pf)
        gts.append(gf)
        preds.append(pf)
    return gts, preds


def _load_tif(path):
    return np.array(Image.open(path))


def test_workers_and_chunks_give_the_detectron2_matrix_bit_for_bit(tmp_path):
    gts, preds = _pairs(tmp_path)
    ref = detectron2_path(gts, preds, 847)
    items = list(zip(gts, preds))
    one = stream_confusion(items, _load_tif, 847, [65535], workers=1, progress=False)
    two = stream_confusion(items, _load_tif, 847, [65535], workers=2, chunk=2, progress=False)
    assert np.array_equal(one, ref) and np.array_equal(two, ref)
    assert ref.sum() == sum(int((_load_tif(g) != 65535).sum()) for g in gts)


def test_a_bad_pair_in_a_worker_surfaces_with_its_file(tmp_path):
    gts, preds = _pairs(tmp_path, n=4, K=5)
    Image.fromarray(np.full((40, 24), 9, np.uint16)).save(preds[2])  # class 9 of K=5
    with pytest.raises(PairError, match="p2.png: prediction values"):
        stream_confusion(list(zip(gts, preds)), _load_tif, 5, [65535], workers=2, chunk=1, progress=False)
