"""SCAN score ensemble and semantic inference (yongliu20/SCAN ``scan/ovseg_model.py``
``semantic_inference``) on hand-computed probabilities."""

from __future__ import annotations

import math

import pytest
import torch
from pydantic import ValidationError

from ovlab.config.scan import EnsembleParams
from ovlab.config.presets import DEFAULT_SETTING, ENSEMBLE_PRESETS, EnsembleSetting, ensemble_preset
from ovlab.segmenter.ensemble import (binarize_masks,
                                   clip_probabilities, ensemble_probabilities,
                                   semantic_inference)

LN2, LN3 = math.log(2.0), math.log(3.0)
# query 0: softmax([ln 2, 0, 0]) = [0.5, 0.25 | void 0.25]; query 1: softmax([0, 0, ln 2]) = [0.25, 0.25 | void 0.5]
IN_LOGITS = torch.tensor([[[LN2, 0.0, 0.0], [0.0, 0.0, LN2]]])
CLIP = torch.tensor([[[0.5, 0.5], [0.9, 0.1]]])


def test_geometric_ensemble_hand_values():
    p = ensemble_probabilities(IN_LOGITS, CLIP, 0.5)
    # √(0.5·0.5), √(0.25·0.5); √(0.25·0.9), √(0.25·0.1)
    expected = torch.tensor([[[0.5, 0.3535534], [0.4743416, 0.1581139]]])
    assert torch.allclose(p, expected, atol=1e-6)


def test_lambda_extremes_and_other_weight():
    assert torch.allclose(ensemble_probabilities(IN_LOGITS, CLIP, 0.0), torch.tensor([[[0.5, 0.25], [0.25, 0.25]]]))
    assert torch.allclose(ensemble_probabilities(IN_LOGITS, CLIP, 1.0), CLIP)
    # λ = 0.75, query 0 class 1: 0.25^0.25 · 0.5^0.75 = 0.7071068 · 0.5946036 = 0.4204482
    assert ensemble_probabilities(IN_LOGITS, CLIP, 0.75)[0, 0, 1].item() == pytest.approx(0.4204482, abs=1e-6)


def test_invalid_masks_take_p_clip_as_one():
    valid = torch.tensor([[False, True]])
    p = ensemble_probabilities(IN_LOGITS, CLIP, 0.5, valid=valid)
    # query 0: p_in^0.5 = [√0.5, √0.25]
    assert torch.allclose(p[0, 0], torch.tensor([0.7071068, 0.5]), atol=1e-6)
    assert torch.allclose(p[0, 1], torch.tensor([0.4743416, 0.1581139]), atol=1e-6)


def test_renormalisation_with_void_hand_values():
    p = ensemble_probabilities(IN_LOGITS, CLIP, 0.5, renormalize=True)
    # query 0: p = [0.5, 0.3535534], Σ = 0.8535534 → [0.5857864, 0.4142136] × (1 − 0.25)
    # query 1: p = [0.4743416, 0.1581139] → [0.75, 0.25] × (1 − 0.5)
    expected = torch.tensor([[[0.4393398, 0.3106602], [0.375, 0.125]]])
    assert torch.allclose(p, expected, atol=1e-6)
    # SCAN computes softmax(log([q, void] + 1e-8))[:K]; the closed form is the same
    q = torch.tensor([[[0.4393398, 0.3106602, 0.25], [0.375, 0.125, 0.5]]], dtype=torch.float64)
    assert torch.allclose(torch.softmax(torch.log(q + 1e-8), -1)[..., :2].float(), p, atol=1e-6)


def test_clip_probabilities_drop_void_before_softmax():
    logits = torch.tensor([[[0.0, LN3, 50.0], [1.0, 1.0, 1.0]]])
    p = clip_probabilities(logits, valid=torch.tensor([[True, False]]), has_void=True)
    assert torch.allclose(p, torch.tensor([[[0.25, 0.75], [1.0, 1.0]]]))
    assert torch.allclose(clip_probabilities(logits[..., :2])[0, 1], torch.tensor([0.5, 0.5]))


def test_binarize_masks():
    logits = torch.tensor([[[[0.0, 1.0]], [[-1.0, -2.0]]]])      # (1, 2, 1, 2)
    masks, valid = binarize_masks(logits, 0.5)                   # σ(0) = 0.5 is not > 0.5
    assert masks.tolist() == [[[[False, True]], [[False, False]]]] and valid.tolist() == [[True, False]]
    assert binarize_masks(logits, 0.2)[1].tolist() == [[True, True]]   # σ(−1) = 0.269 > 0.2


def test_semantic_inference_hand_values():
    probs = torch.tensor([[[0.5, 0.2], [0.1, 0.6]]])
    masks = torch.tensor([[[[0.0, LN3]], [[LN3, -LN3]]]])         # σ: q0 [0.5, 0.75], q1 [0.75, 0.25]
    seg = semantic_inference(probs, masks)
    # pixel A: c0 = 0.5·0.5 + 0.1·0.75, c1 = 0.2·0.5 + 0.6·0.75; pixel B: c0 = 0.5·0.75 + 0.1·0.25, c1 = 0.2·0.75 + 0.6·0.25
    assert torch.allclose(seg, torch.tensor([[[[0.325, 0.4]], [[0.55, 0.3]]]]))
    assert seg.argmax(1).tolist() == [[[1, 0]]]
    kept = semantic_inference(probs, masks, keep=torch.tensor([[True, False]]))
    assert torch.allclose(kept, torch.tensor([[[[0.25, 0.375]], [[0.1, 0.15]]]]))


def test_shape_and_weight_errors():
    with pytest.raises(ValueError, match="K\\+1"):
        ensemble_probabilities(IN_LOGITS[..., :2], CLIP, 0.5)
    with pytest.raises(ValueError, match="λ"):
        ensemble_probabilities(IN_LOGITS, CLIP, 1.5)
    with pytest.raises(ValueError, match="mask_logits"):
        semantic_inference(CLIP, torch.zeros(1, 3, 2, 2))


def test_presets_are_the_yaml_values():
    assert ensemble_preset("ade20k_847") == EnsembleSetting(0.3, 0.75, True)
    assert ensemble_preset("ade20k_150") == EnsembleSetting(0.55, 0.75, False)
    assert ensemble_preset("pascal_context_459", "vit-b") == EnsembleSetting(0.25, 0.7, True)
    assert ensemble_preset("pascal_context_59", "vit-b") == EnsembleSetting(0.25, 0.35, False)
    assert ensemble_preset("pascal_voc_20") == EnsembleSetting(0.2, 0.65, False)
    assert ensemble_preset("coco_133") == DEFAULT_SETTING == EnsembleSetting(0.4, 0.7, False)
    renorm = {d for c in ENSEMBLE_PRESETS.values() for d, s in c.items() if s.renormalize}
    assert renorm == {"ade20k_847", "pascal_context_459"}
    with pytest.raises(ValueError, match="clip"):
        ensemble_preset("ade20k_150", "rn50")


def test_ensemble_params_section():
    p = EnsembleParams()
    assert p.setting("ade20k_847") == EnsembleSetting(0.4, 0.7, False)      # no preset: own values
    vitl = EnsembleParams(preset="vit-l", clip_weight=0.6)
    assert vitl.setting("ade20k_847") == EnsembleSetting(0.3, 0.75, True)
    assert vitl.setting("coco_133") == EnsembleSetting(0.4, 0.6, False)
    with pytest.raises(ValidationError):
        EnsembleParams(clip_weight=2.0)
    with pytest.raises(ValidationError):
        EnsembleParams(preset="rn50")
