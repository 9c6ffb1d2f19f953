"""Matcher, point-sampled mask losses and the void-weighted CE against hand-computed values (L_M, L_CE of GKC Eq. 4)."""

from __future__ import annotations

import math

import pytest
import torch

from ovlab.config.segmenter import LossParams
from ovlab.segmenter.class_loss import class_loss, query_targets
from ovlab.config.presets import LOSS_PRESETS
from ovlab.segmenter.criterion import SetCriterion
from ovlab.segmenter.mask_loss import point_mask_losses
from ovlab.segmenter.matcher import HungarianMatcher
from ovlab.segmenter.model import Prediction


def _halves():
    left = torch.zeros(8, 8)
    left[:, :4] = 1
    return left, 1 - left


def test_matcher_finds_the_swapped_assignment():
    left, right = _halves()
    masks = torch.stack([left, right])  # targets: 0 = left, 1 = right
    logits = torch.stack([(right * 2 - 1) * 20, (left * 2 - 1) * 20])  # query 0 predicts right, 1 left
    cls = torch.zeros(2, 3)
    qi, ti = HungarianMatcher(num_points=500)(cls[None], logits[None], [torch.tensor([0, 1])], [masks])[0]
    assert dict(zip(qi.tolist(), ti.tolist())) == {0: 1, 1: 0}


def test_matcher_cost_by_hand():
    # One query with mask logit 0 everywhere, one all-ones target: BCE = ln 2, dice = 1 - (P + 1)/(P/2 + P + 1).
    # Points between the 4x4 pixel centres, so bilinear sampling never reaches the zero padding.
    pts = 0.125 + 0.75 * torch.rand(100, 2)
    m = HungarianMatcher(cost_class=2.0, cost_mask=5.0, cost_dice=5.0, num_points=100)
    cls = torch.tensor([[0.0, math.log(3.0), 0.0]])  # softmax = (1/5, 3/5, 1/5)
    cost = m.cost_matrix(cls, torch.zeros(1, 4, 4), torch.tensor([1]), torch.ones(1, 4, 4), points=pts)
    dice = 1 - (2 * 50 + 1) / (50 + 100 + 1)
    assert float(cost[0, 0]) == pytest.approx(5 * math.log(2) + 5 * dice - 2 * 0.6, rel=1e-5)


def test_matcher_with_no_target_returns_empty():
    out = HungarianMatcher(num_points=10)(torch.zeros(1, 3, 2), torch.zeros(1, 3, 4, 4), [torch.zeros(0, dtype=torch.long)],
                                          [torch.zeros(0, 4, 4)])
    assert out[0][0].numel() == 0 and out[0][1].numel() == 0


def test_point_losses_by_hand():
    zero = point_mask_losses(torch.zeros(1, 4, 4), torch.ones(1, 8, 8), 1.0, num_points=64, importance_ratio=0.0)
    assert float(zero["loss_mask"]) == pytest.approx(math.log(2), rel=1e-5)
    # empty target: labels 0 at every point, σ(0) = 1/2 -> dice = 1 - 1 / (64/2 + 0 + 1)
    empty = point_mask_losses(torch.zeros(1, 4, 4), torch.zeros(1, 8, 8), 1.0, num_points=64, importance_ratio=0.0)
    assert float(empty["loss_dice"]) == pytest.approx(1 - 1 / 33, rel=1e-6)
    left, _ = _halves()
    perfect = point_mask_losses(((left * 2 - 1) * 30)[None], left[None], 1.0, num_points=256, importance_ratio=0.0)
    inverted = point_mask_losses(((1 - left * 2) * 30)[None], left[None], 1.0, num_points=256, importance_ratio=0.0)
    # only points within half a pixel of the edge (bilinear blending) keep the perfect mask from 0
    assert float(perfect["loss_dice"]) < 0.1 and float(inverted["loss_dice"]) > 0.9
    assert float(perfect["loss_mask"]) < 0.1 * float(inverted["loss_mask"])
    # normalised by num_masks: two identical pairs over num_masks 2 = one pair over 1
    two = point_mask_losses(torch.zeros(2, 4, 4), torch.ones(2, 8, 8), 2.0, num_points=64, importance_ratio=0.0)
    assert float(two["loss_mask"]) == pytest.approx(math.log(2), rel=1e-5)


def test_class_loss_weights_void_by_hand():
    logits = torch.tensor([[[2.0, 0.0, 0.0], [0.0, 0.0, 1.0]]])  # 2 queries, 2 classes + void
    targets = torch.tensor([[0, 2]])  # query 0 -> class 0, query 1 -> void
    ce0 = -math.log(math.exp(2) / (math.exp(2) + 2))
    ce1 = -math.log(math.e / (math.e + 2))
    assert float(class_loss(logits, targets, 0.1)) == pytest.approx((ce0 + 0.1 * ce1) / 1.1, rel=1e-6)
    assert float(class_loss(logits, torch.tensor([[-100, -100]]))) == 0.0


def test_query_targets_and_region_dropout():
    matches = [(torch.tensor([2, 0]), torch.tensor([0, 1]))]
    t = query_targets(4, 5, matches, [torch.tensor([3, 1])])
    assert t.tolist() == [[1, 5, 3, 5]]
    g = torch.Generator().manual_seed(0)
    dropped = query_targets(4, 5, [(torch.arange(4), torch.arange(4))], [torch.tensor([0, 1, 2, 3])],
                            region_dropout=0.5, generator=g)
    assert set(dropped[0].tolist()) <= {0, 1, 2, 3, -100}


def test_criterion_deep_supervision_terms_and_total():
    torch.manual_seed(0)
    left, right = _halves()
    preds = [Prediction(torch.zeros(1, 3, 4), torch.zeros(1, 3, 2), torch.randn(1, 3, 4, 4), torch.randn(1, 3, 3))
             for _ in range(3)]
    out = SetCriterion(LossParams(num_points=64))(preds, [torch.tensor([0, 1])], [torch.stack([left, right])])
    assert set(out.terms) == {f"{k}{s}" for k in ("loss_mask", "loss_dice", "loss_ce") for s in ("", "_0", "_1")}
    expected = sum({"loss_mask": 5, "loss_dice": 5, "loss_ce": 2}[k.rstrip("_01")] * float(v) for k, v in out.terms.items())
    assert float(out.total()) == pytest.approx(expected, rel=1e-6)
    assert out.num_masks == 2.0 and len(out.matches) == 3
    single = SetCriterion(LossParams(num_points=64, deep_supervision=False))(preds, [torch.tensor([0, 1])],
                                                                             [torch.stack([left, right])])
    assert set(single.terms) == {"loss_mask", "loss_dice", "loss_ce"}


def test_presets_differ_only_in_region_dropout():
    diff = {k for k in LOSS_PRESETS["paper"] if LOSS_PRESETS["paper"][k] != LOSS_PRESETS["code"][k]}
    assert diff == {"region_dropout"}
    assert LossParams().model_dump(include=set(LOSS_PRESETS["paper"])) == LOSS_PRESETS["paper"]


def test_loss_preset_is_a_table_that_explicit_fields_override():
    """``loss.preset`` is not a label: ``code`` trains with the official code's 50 % region dropout."""
    from ovlab.config.tgkd import TgkdParams

    assert LossParams(preset="code").region_dropout == 0.5 and LossParams(preset="paper").region_dropout == 0.0
    assert LossParams(preset="code", region_dropout=0.2).region_dropout == 0.2      # an explicit field wins
    assert LossParams(preset="custom").region_dropout == 0.0
    sec = TgkdParams.model_validate({"loss": {"preset": "code"}})
    assert sec.loss.region_dropout == 0.5 and sec.loss.num_points == 1024            # the section's own default kept
    assert TgkdParams.model_validate(sec.model_dump(mode="json")).loss == sec.loss   # a dump round-trips
