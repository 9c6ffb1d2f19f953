"""The physically guided paper's losses and targets against hand-computed values: the focal loss of L^p
(Eq. 1), EdgeGT, the soft labels w_ij and both readings of L^sac (Eq. 3), the segmentation loss and the
cosine schedule."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ovlab.physical import edge_gt, focal_loss, sac_loss, weighted_patch_targets


def test_focal_loss_on_a_3x3_map_by_hand():
    ln3 = math.log(3.0)
    logits = torch.tensor([[0.0, 0.0, 0.0], [0.0, ln3, 0.0], [0.0, 0.0, -ln3]])
    target = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    # (0,0): y=1, p=.5: .25·.5²·ln2; (1,1): y=1, p=.75: .25·.25²·ln(4/3); (2,2): y=0, p=.25: .75·.25²·ln(4/3);
    # six y=0 pixels at p=.5: .75·.5²·ln2 each.
    want = (0.0625 * math.log(2) + 0.25 * 0.0625 * math.log(4 / 3) + 0.75 * 0.0625 * math.log(4 / 3)
            + 6 * 0.1875 * math.log(2)) / 9
    assert float(focal_loss(logits, target)) == pytest.approx(want, rel=1e-6)
    # gamma 0, alpha .5: half the mean BCE
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, target)
    assert float(focal_loss(logits, target, alpha=0.5, gamma=0.0)) == pytest.approx(0.5 * float(bce), rel=1e-6)
    # a mask: the mean over the kept pixels only (the two positives)
    mask = target > 0
    want_m = (0.0625 * math.log(2) + 0.25 * 0.0625 * math.log(4 / 3)) / 2
    assert float(focal_loss(logits, target, mask=mask)) == pytest.approx(want_m, rel=1e-6)
    with pytest.raises(ValueError):
        focal_loss(logits, target[:2])


LABELS = np.array([[0, 0, 1, 1, 1],
                   [0, 0, 1, 1, 1],
                   [255, 255, 2, 2, 1],
                   [2, 2, 2, 2, 1]])


def test_edge_gt_on_a_hand_drawn_label_map_with_ignore_pixels():
    want = np.array([[0, 1, 1, 0, 0],
                     [0, 1, 1, 1, 0],
                     [0, 0, 1, 1, 1],
                     [0, 0, 0, 1, 1]], bool)
    got = edge_gt(LABELS)
    assert got.dtype == bool and (got == want).all()
    # the tensor path gives the same
    assert (edge_gt(torch.from_numpy(LABELS)).numpy() == want).all()
    # dilation by 1 px: the 3×3 max of the edges, never on ignore pixels
    dil = edge_gt(LABELS, dilation=1)
    assert not dil[2, 0] and not dil[2, 1]            # ignore pixels next to edges stay off
    assert dil[0, 0] and dil[3, 2] and dil[0, 4]      # reached from (0,1), (2,2)/(3,3), (1,3)
    assert not dil[3, 0]                              # 2 px from the nearest edge (2, 2)
    assert dil.sum() == 17                            # the 18 valid pixels but (3, 0) lie within 1 px of an edge
    with pytest.raises(ValueError):
        edge_gt(LABELS[None])


def test_weighted_patch_targets_on_2x2_patches_with_a_mixed_and_an_unlabelled_patch():
    labels = torch.tensor([[[0, 0, 1, 1],
                            [0, 1, 1, 1],
                            [255, 255, 2, 255],
                            [255, 255, 2, 0]]])
    w = weighted_patch_targets(labels, patch_size=2, num_classes=3)
    want = torch.tensor([[[0.75, 0.25, 0.0],      # patch 0: three 0s and one 1
                          [0.0, 1.0, 0.0],        # patch 1: all 1
                          [0.0, 0.0, 0.0],        # patch 2: no labelled pixel
                          [1 / 3, 0.0, 2 / 3]]])  # patch 3: over its 3 labelled pixels
    assert w.shape == (1, 4, 3)
    assert torch.allclose(w, want, atol=1e-6)
    with pytest.raises(ValueError):
        weighted_patch_targets(labels, 3, 3)      # 4 is not a multiple of 3
    with pytest.raises(ValueError):
        weighted_patch_targets(labels, 2, 2)      # label 2 outside 0..1


def test_both_sac_readings_on_a_tiny_case():
    ln3 = math.log(3.0)
    logits = torch.tensor([[ln3, 0.0], [ln3, 0.0], [5.0, -5.0]])     # softmax rows 0, 1: (.75, .25)
    targets = torch.tensor([[1.0, 0.0], [0.5, 0.5], [0.0, 0.0]])      # row 2 unlabelled: skipped
    soft = (math.log(4 / 3) + (0.5 * math.log(4 / 3) + 0.5 * math.log(4))) / 2
    mil = (math.log(4 / 3) + -math.log(0.5 * 0.75 + 0.5 * 0.25)) / 2
    assert float(sac_loss(logits, targets, "soft_ce")) == pytest.approx(soft, rel=1e-6)
    assert float(sac_loss(logits, targets, "mil")) == pytest.approx(mil, rel=1e-6)
    assert soft != pytest.approx(mil)
    # the printed Eq. 3 is maximised: its value Σ_i Σ_j w_ij p_ij rises as the loss falls
    zero = sac_loss(torch.zeros(2, 2, requires_grad=True), torch.zeros(2, 2))
    assert float(zero.detach()) == 0.0
    zero.backward()
    with pytest.raises(ValueError):
        sac_loss(logits, targets, "sum")


def test_segmentation_loss_is_catseg_bce_on_one_hot_targets():
    from ovlab.physical.criterion import segmentation_loss

    logits = torch.zeros(1, 2, 1, 2)                    # p = .5 everywhere
    labels = torch.tensor([[[1, 255]]])
    # 4 entries, each BCE ln2 (the ignore pixel's targets are all zero, as CAT-Seg)
    assert float(segmentation_loss(logits, labels, "bce")) == pytest.approx(math.log(2), rel=1e-6)
    assert float(segmentation_loss(logits, labels, "ce")) == pytest.approx(math.log(2), rel=1e-6)
    logits[0, 1, 0, 0] = math.log(3)                    # σ = .75 for the true class of pixel 0
    want = (math.log(4 / 3) + 3 * math.log(2)) / 4
    assert float(segmentation_loss(logits, labels, "bce")) == pytest.approx(want, rel=1e-6)


def test_cosine_schedule_is_catseg_warmup_cosine_without_warmup():
    from ovlab.config.train import ScheduleParams
    from ovlab.engine.optim import lr_factor

    s = ScheduleParams(kind="cosine", steps=[])
    assert lr_factor(0, s, 100) == pytest.approx(1.0)
    assert lr_factor(50, s, 100) == pytest.approx(0.5)
    assert lr_factor(75, s, 100) == pytest.approx(0.5 * (1 + math.cos(0.75 * math.pi)))


def test_render_points_disc_and_gaussian():
    from ovlab.physical.pseudo_gt import render_points

    disc = render_points(np.array([[2.0, 1.0]]), (4, 5), radius=1.0)
    want = np.zeros((4, 5), np.float32)
    want[1, 1:4] = 1
    want[0, 2] = want[2, 2] = 1
    assert (disc == want).all()
    g = render_points(np.array([[2.0, 1.0]]), (4, 5), radius=1.0, mode="gaussian")
    assert g[1, 2] == pytest.approx(1.0) and g[1, 3] == pytest.approx(math.exp(-0.5))
