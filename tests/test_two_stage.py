"""Two-stage baseline (GKC Tab. 8): top-k, ensemble, oracle and model proposals with stubs, tiny smoke runs."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
import pytest
import torch
from pydantic import ValidationError
from torch import nn

from ovlab.clip.crops import CLIP_MEAN, CLIP_STD
from ovlab.clip.text import TextBank
from ovlab.config.train import EvalParams
from ovlab.config.two_stage import TwoStageParams
from ovlab.gkc.two_stage_eval import evaluate_two_stage, oracle_masks, predict_two_stage
from ovlab.segmenter.vocabulary import Vocabulary
from ovlab.segmenter.model import Prediction
from ovlab.gkc.two_stage import TwoStageSegmenter, combine_probabilities, select_top_k

from .conftest import tiny_tgkd_stage

SCALE = math.log(4.0)  # softmax([SCALE, 0, 0]) = [2/3, 1/6, 1/6]


@dataclass
class FakeClip:
    """A CLIP stand-in: a crop whose mean red exceeds its mean blue embeds as e0, else as e2."""

    image_size: tuple = (16, 16)
    mean: tuple = CLIP_MEAN
    std: tuple = CLIP_STD
    device: torch.device = torch.device("cpu")
    logit_scale: float = SCALE
    encoded: list = field(default_factory=list)

    def encode_image(self, crops):
        self.encoded.append(crops.shape[0])
        red = crops[:, 0].mean((1, 2)) > crops[:, 2].mean((1, 2))
        return torch.eye(4)[torch.where(red, 0, 2)]


def fake_vocab() -> Vocabulary:
    """3 classes, 4 names: class 2 has two names ('blue thing' = e3, 'azure' = e2): max over names."""
    names = ["red thing", "green thing", "blue thing", "azure"]
    emb = torch.eye(4)[[0, 1, 3, 2]]
    classes = ["red", "green", "blue"]
    return Vocabulary(classes, TextBank(classes, names, torch.tensor([0, 1, 2, 2]), emb, ["{}"]), [0, 1, 2])


def two_region_image(h=32, w=64):
    """Left half red, right half blue; GT left = 0, right = 2, one ignore row."""
    img = np.zeros((h, w, 3), np.uint8)
    img[:, : w // 2, 0] = 255
    img[:, w // 2:, 2] = 255
    gt = np.zeros((h, w), np.int64)
    gt[:, w // 2:] = 2
    gt[0] = 255
    return img, gt


class FakeSegmenter(nn.Module):
    """Q = 3 proposals at 1/4 resolution: left half, right half, and a full-image junk mask with p_void ≈ 1.

    In-model name logits (M = 4 names + void): q0 = log[.5, .3, .1, .1 | .1] (over K after max:
    log[.5, .3, .1 | .1]); q1 = log[.1, .6, .2, .0 | .1] (wrongly 'green'); q2 = void.
    """

    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, images, text):
        self.calls += 1
        b, _, h, w = images.shape
        m = torch.full((b, 3, h // 4, w // 4), -10.0)
        m[:, 0, :, : w // 8] = 10.0
        m[:, 1, :, w // 8:] = 10.0
        m[:, 2] = 10.0
        eps = 1e-12
        rows = torch.tensor([[.5, .3, .1, .1, .1], [.1, .6, .2, eps, .1], [eps, eps, eps, eps, 1.0]])
        logits = rows.log()[None].expand(b, 3, 5)
        return [Prediction(torch.zeros(b, 3, 4), torch.zeros(b, 3, 4), m, logits)]


# ---------------------------------------------------------------- parameters

def test_params_defaults_and_strictness():
    p = TwoStageParams()
    assert (p.proposals, p.top_k, p.mask_threshold, p.fill, p.expand, p.ensemble, p.clip_weight) == \
        ("model", None, 0.5, "mean", 1.0, "geometric", 0.8)
    with pytest.raises(ValidationError, match="ensemble"):
        TwoStageParams(proposals="oracle")
    with pytest.raises(ValidationError):
        TwoStageParams(lambda_=0.5)
    with pytest.raises(ValidationError):
        TwoStageParams(top_k=0)
    with pytest.raises(ValidationError):
        TwoStageParams(clip_weight=1.5)


# ---------------------------------------------------------------- top-k

def test_select_top_k_by_objectness():
    # void logits 0, -3, 2, -3 with zero class logits: 1 - p_void ranks q1 = q3 > q0 > q2
    z = torch.zeros(2, 4, 3)
    z[0, :, -1] = torch.tensor([0.0, -3.0, 2.0, -3.0])
    z[1, :, -1] = torch.tensor([-5.0, 1.0, 0.0, 3.0])  # q0 > q2 > q1 > q3
    masks = torch.arange(2 * 4, dtype=torch.float32).view(2, 4, 1, 1).expand(2, 4, 2, 2)
    logits, m, idx = select_top_k(z, masks, 2)
    assert idx.tolist() == [[1, 3], [0, 2]]  # kept in query order
    assert torch.equal(logits, z[[[0], [1]], idx]) and m[1, :, 0, 0].tolist() == [4.0, 6.0]
    assert select_top_k(z, masks, 1)[2].tolist() == [[1], [0]]  # tie q1 = q3: lower index
    assert select_top_k(z, masks, 3)[2].tolist() == [[0, 1, 3], [0, 1, 2]]
    full = select_top_k(z, masks, None)
    assert full[0] is z and full[2].tolist() == [[0, 1, 2, 3]] * 2
    assert select_top_k(z, masks, 9)[2].shape == (2, 4)
    with pytest.raises(ValueError):
        select_top_k(z, masks, 0)


# ---------------------------------------------------------------- ensemble

def test_geometric_ensemble_hand_computed():
    in_logits = torch.tensor([[.5, .3, .1, .1], [.2, .2, .2, .4]]).log()[None]  # (1, 2, K+1), void last
    clip_logits = torch.tensor([[2 / 3, 1 / 6, 1 / 6], [.9, .05, .05]]).log()[None]
    valid = torch.tensor([[True, False]])
    p, keep = combine_probabilities(in_logits, clip_logits, valid, "geometric", 0.5)
    assert keep is None
    expect = torch.tensor([[math.sqrt(.5 * 2 / 3), math.sqrt(.3 / 6), math.sqrt(.1 / 6)],
                           [math.sqrt(.2), math.sqrt(.2), math.sqrt(.2)]])  # no crop: p_clip = 1
    torch.testing.assert_close(p[0], expect)
    p0, _ = combine_probabilities(in_logits, clip_logits, valid, "geometric", 0.0)
    torch.testing.assert_close(p0[0], torch.tensor([[.5, .3, .1], [.2, .2, .2]]))
    pc, keep = combine_probabilities(None, clip_logits, valid, "none", 0.0)
    torch.testing.assert_close(pc[0, 0], torch.tensor([2 / 3, 1 / 6, 1 / 6]))
    assert keep.tolist() == [[True, False]]
    with pytest.raises(ValueError, match="in-model"):
        combine_probabilities(None, clip_logits, valid, "geometric", 0.5)


# ---------------------------------------------------------------- oracle proposals

def test_oracle_two_regions_fake_clip_gives_ground_truth():
    img, gt = two_region_image()
    masks, classes = oracle_masks(gt, 255)
    assert classes.tolist() == [0, 2] and masks.shape == (2, 32, 64)
    clip = FakeClip()
    two = TwoStageSegmenter(None, clip, TwoStageParams(proposals="oracle", ensemble="none"))
    pred = predict_two_stage(two, img, None, fake_vocab(), gt=gt)
    valid = gt != 255
    assert np.array_equal(pred[valid], gt[valid])
    out = two.segment_oracle(img, masks, fake_vocab(), classes)
    torch.testing.assert_close(out.probs[0], torch.tensor([[2 / 3, 1 / 6, 1 / 6], [1 / 6, 1 / 6, 2 / 3]]))
    assert clip.encoded == [2, 2] and out.index.tolist() == [[0, 2]]  # one CLIP batch per call
    with pytest.raises(ValueError, match="ground truth"):
        predict_two_stage(two, img, None, fake_vocab())


# ---------------------------------------------------------------- model proposals (stub segmenter)

def test_model_proposals_top_k_clip_only_gives_ground_truth():
    img, gt = two_region_image()
    clip = FakeClip()
    seg = FakeSegmenter()
    two = TwoStageSegmenter(seg, clip, TwoStageParams(top_k=2, ensemble="none"))
    pred = predict_two_stage(two, img, fake_vocab(), fake_vocab(), resize="none")
    valid = gt != 255
    assert np.array_equal(pred[valid], gt[valid])
    assert clip.encoded == [2]  # the junk (void) query is never cropped
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255
    out = two.segment(x, fake_vocab(), fake_vocab())
    assert out.index.tolist() == [[0, 1]] and out.valid.all()
    assert out.scores.shape == (1, 3, 32, 64)


def test_model_proposals_geometric_hand_computed():
    img, _ = two_region_image()
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255
    two = TwoStageSegmenter(FakeSegmenter(), FakeClip(), TwoStageParams(top_k=2, clip_weight=0.5))
    out = two.segment(x, fake_vocab(), fake_vocab())
    # q0: p_in = [.5, .3, .1], p_clip = [2/3, 1/6, 1/6]; q1: p_in = [.1, .6, .2], p_clip = [1/6, 1/6, 2/3]
    expect = torch.tensor([[math.sqrt(.5 * 2 / 3), math.sqrt(.3 / 6), math.sqrt(.1 / 6)],
                           [math.sqrt(.1 / 6), math.sqrt(.6 / 6), math.sqrt(.2 * 2 / 3)]])
    torch.testing.assert_close(out.probs[0], expect)
    labels = out.scores[0].argmax(0)
    # left: red wins (0.577); right: green 0.316 vs blue 0.365 → blue: the ensemble fixes q1's in-model error
    assert (labels[:, :32] == 0).all() and (labels[:, 32:] == 2).all()
    two_in = TwoStageSegmenter(FakeSegmenter(), FakeClip(), TwoStageParams(top_k=2, clip_weight=0.0))
    assert (two_in.segment(x, fake_vocab(), fake_vocab()).scores[0].argmax(0)[:, 32:] == 1).all()


def test_empty_masks_get_no_crop():
    img, _ = two_region_image()
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255
    clip = FakeClip()
    two = TwoStageSegmenter(FakeSegmenter(), clip, TwoStageParams(mask_threshold=0.99999, ensemble="none"))
    out = two.segment(x, fake_vocab(), fake_vocab())
    assert not out.valid.any() and clip.encoded == [] and float(out.scores.abs().sum()) == 0.0
    assert torch.equal(out.clip_probs, torch.ones(1, 3, 3))


# ---------------------------------------------------------------- real tiny CLIP + tiny segmenter

@pytest.fixture(scope="module")
def tiny_built(embedded_root, tmp_path_factory):
    from ovlab.segmenter.build import build

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        built = build(tiny_tgkd_stage(embedded_root, tmp_path_factory.mktemp("two_stage")))
    built.model.eval()
    return built


def test_lambda_zero_all_queries_equals_segmenter(tiny_built):
    from ovlab.segmenter.vocabulary import build_vocabulary

    torch.manual_seed(0)
    x = torch.rand(1, 3, 64, 96)
    vocab = build_vocabulary(tiny_built.clip, ["cat", "dog, puppy", "sky"])
    two = TwoStageSegmenter(tiny_built.model, tiny_built.clip, TwoStageParams(clip_weight=0.0, templates="none"))
    got = two.segment(x, vocab, vocab).scores
    want = tiny_built.model.segment(x, vocab.text, vocab.class_index, len(vocab))
    torch.testing.assert_close(got, want)


def test_evaluate_two_stage_smoke_on_embedded(tiny_built, embedded_root):
    from ovlab.segmenter.evaluate import evaluate_model

    params = EvalParams(dataset="coco_133", root=str(embedded_root), short_side=64, max_images=2)
    clip, model = tiny_built.clip, tiny_built.model
    rep = evaluate_two_stage(model, clip, params, TwoStageParams(top_k=4, templates="photo"), progress=False)
    assert rep.num_images == 2 and rep.confusion.shape == (133, 133) and rep.confusion.sum() > 0
    ref = evaluate_model(model, clip, params, progress=False)
    assert set(rep.summary) == set(ref.summary) and len(rep.per_class) == len(ref.per_class)
    # λ = 0 with every query is the segmenter itself: same confusion as evaluate_model
    same = evaluate_two_stage(model, clip, params, TwoStageParams(clip_weight=0.0, templates="none"), progress=False)
    assert np.array_equal(same.confusion, ref.confusion)
    oracle_params = TwoStageParams(proposals="oracle", ensemble="none", templates="photo")
    oracle = evaluate_two_stage(None, clip, params, oracle_params, progress=False)
    assert oracle.num_images == 2 and oracle.confusion.sum() == ref.confusion.sum()
    with pytest.raises(ValueError, match="segmenter"):
        evaluate_two_stage(None, clip, params, TwoStageParams(), progress=False)
