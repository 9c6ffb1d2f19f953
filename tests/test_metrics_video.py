"""Video seen/unseen/harmonic mIoU under both protocols (GKC §4.4, Tab. 3), against
confusion matrices and IoUs computed by hand."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ovlab.metrics.video import VideoSplitMetrics


def test_generalized_by_hand():
    # K = 4, unseen = {2, 3}; clip 1 (T = 2, frames 1x4), clip 2 with its 2nd frame not counted
    m = VideoSplitMetrics("generalized", [2, 3], num_classes=4, names=["a", "b", "c", "d"])
    gt1 = np.array([[[0, 0, 1, 2]], [[1, 3, 255, 2]]])
    pr1 = np.array([[[0, 1, 1, 2]], [[1, 2, 0, 3]]])
    m.update(gt1, pr1)
    gt2 = np.array([[[3, 3, 0, 0]], [[0, 0, 0, 0]]])
    pr2 = np.array([[[3, 3, 0, 0]], [[1, 1, 1, 1]]])  # the uncounted frame would hurt class 0
    m.update(gt2, pr2, valid=[True, False])
    # C[gt, pred]: 00=1+2, 01=1, 11=2, 22=1, 32=1, 23=1, 33=2
    expect = np.array([[3, 1, 0, 0], [0, 2, 0, 0], [0, 0, 1, 1], [0, 0, 1, 2]])
    np.testing.assert_array_equal(m.confusion("all"), expect)
    # IoU = TP / (G + P - TP): 3/4, 2/3, 1/3, 2/4
    r = m.compute()
    assert r["protocol"] == "generalized"
    assert r["seen_miou"] == pytest.approx(100 * 17 / 24)  # (3/4 + 2/3) / 2
    assert r["unseen_miou"] == pytest.approx(100 * 5 / 12)  # (1/3 + 1/2) / 2
    assert r["harmonic"] == pytest.approx(100 * 4080 / 7776)  # 2 (17/24)(5/12) / (27/24) = 52.469...
    assert r["harmonic"] == pytest.approx(52.469, abs=1e-3)
    assert [c["iou"] for c in r["per_class"]] == pytest.approx([75.0, 200 / 3, 100 / 3, 50.0])
    assert [c["split"] for c in r["per_class"]] == ["seen", "seen", "unseen", "unseen"]
    assert r["frames"] == {"all": 3} and r["clips"] == {"all": 2}
    assert r["eval_splits"] == {"all": "val"}


def test_generalized_first_clip_only():
    m = VideoSplitMetrics("generalized", np.array([False, False, True, True]))
    m.update(np.array([[[0, 0, 1, 2]], [[1, 3, 255, 2]]]), np.array([[[0, 1, 1, 2]], [[1, 2, 0, 3]]]))
    s = m.scores()  # IoU 1/2, 2/3, 1/3, 0 -> S = 7/12, U = 1/6, H = 7/27
    assert (s.seen, s.unseen, s.harmonic) == pytest.approx((100 * 7 / 12, 100 / 6, 100 * 7 / 27))


def test_split_vocab_by_hand(tmp_path):
    # full K = 4 with unseen {1, 3}: seen part = classes [0, 2] (index 0, 1), unseen part = [1, 3]
    m = VideoSplitMetrics("split-vocab", [1, 3], num_classes=4, names=["a", "b", "c", "d"])
    assert m.part_indices("seen") == [0, 2] and m.part_indices("unseen") == [1, 3]
    m.update(np.array([[0, 0, 1, 1]]), np.array([[0, 1, 1, 1]]), part="seen")  # C = [[1,1],[0,2]]
    m.update(torch.tensor([[[0, 1, 255]]]), torch.tensor([[[1, 1, 0]]]), part="unseen")  # C = [[0,1],[0,1]]
    np.testing.assert_array_equal(m.confusion("seen"), [[1, 1], [0, 2]])
    np.testing.assert_array_equal(m.confusion("unseen"), [[0, 1], [0, 1]])
    out = m.write(tmp_path / "video" / "metrics.json", model="x", protocol="ignored")
    assert out["seen_miou"] == pytest.approx(100 * 7 / 12)  # (1/2 + 2/3) / 2
    assert out["unseen_miou"] == pytest.approx(25.0)  # (0 + 1/2) / 2
    assert out["harmonic"] == pytest.approx(35.0)  # 2 (7/12)(1/4) / (10/12)
    assert [c["iou"] for c in out["per_class"]] == pytest.approx([50.0, 0.0, 200 / 3, 50.0])
    disk = json.loads((tmp_path / "video" / "metrics.json").read_text())
    assert disk["protocol"] == "split-vocab" and disk["model"] == "x"
    assert disk["eval_splits"] == {"seen": "val_base", "unseen": "val_novel"}
    assert disk["frames"] == {"seen": 1, "unseen": 1} and disk["num_classes"] == {"seen": 2, "unseen": 2}


def test_missing_part_is_null_and_errors():
    m = VideoSplitMetrics("split-vocab", [1], num_classes=3)
    m.update(np.array([[0, 1]]), np.array([[0, 1]]), part="seen")
    r = m.compute()
    assert r["seen_miou"] == 100.0 and r["unseen_miou"] is None and r["harmonic"] is None
    with pytest.raises(ValueError, match="parts"):
        m.update(np.array([[0]]), np.array([[0]]))  # split-vocab needs a part
    with pytest.raises(ValueError, match="not class indices"):
        m.update(np.array([[0]]), np.array([[2]]), part="seen")  # the seen run has 2 classes
    with pytest.raises(ValueError, match="valid"):
        m.update(np.zeros((2, 1, 1), int), np.zeros((2, 1, 1), int), part="seen", valid=[True])
    with pytest.raises(ValueError, match="parts"):
        VideoSplitMetrics("generalized", [1], num_classes=3).update(np.array([[0]]), np.array([[0]]), part="seen")
    with pytest.raises(ValueError, match="protocol"):
        VideoSplitMetrics("generalised", [1], num_classes=3)
    with pytest.raises(ValueError, match="num_classes"):
        VideoSplitMetrics("generalized", [1])


def test_vipseg_setting_and_embedded_clips(embedded_root):
    from ovlab.data.vipseg import NOVEL_IDS
    from ovlab.data.vipseg_splits import VipsegClips, load_split

    g = VideoSplitMetrics.for_vipseg("generalized")
    sv = VideoSplitMetrics.for_vipseg("split-vocab")
    assert g.parts["all"].num_classes == 124 and g.names[76] == "box"
    assert sv.parts["seen"].num_classes == 112 and sv.parts["unseen"].num_classes == 12
    assert sv.part_indices("unseen") == list(NOVEL_IDS)
    root = embedded_root / "vipseg"
    # perfect predictions from the GT clips: 100 / 100 / 100, every frame counted once
    for part, split, m in (("all", "val", g), ("seen", "val_base", sv), ("unseen", "val_novel", sv)):
        for c in VipsegClips.windows(load_split(root, split), 3, tail="pad"):
            m.update(c.semantic, np.where(c.semantic == 255, 0, c.semantic), part=part, valid=c.valid)
    for m in (g, sv):
        r = m.compute()
        assert (r["seen_miou"], r["unseen_miou"], r["harmonic"]) == (100.0, 100.0, 100.0)
    assert g.compute()["frames"] == {"all": 16} and g.compute()["clips"] == {"all": 6}
    assert sv.compute()["frames"] == {"seen": 16, "unseen": 16}
    # predicting the seen top band everywhere in the generalized run: unseen IoU drops to 0
    bad = VideoSplitMetrics.for_vipseg("generalized")
    for c in VipsegClips.windows(load_split(root, "val"), None):
        bad.update(c.semantic, np.full_like(c.semantic, 15), valid=c.valid)
    r = bad.compute()
    assert r["unseen_miou"] == 0.0 and r["harmonic"] == 0.0 and 0 < r["seen_miou"] < 100
