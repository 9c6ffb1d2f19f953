"""The segmenter's class head and semantic inference against hand-computed values (GKC §3, Fig. 2)."""

from __future__ import annotations

import math

import pytest
import torch

from ovlab.segmenter.classifier import TextClassifier
from ovlab.segmenter.inference import names_to_classes, semantic_inference


def test_logit_scale_starts_at_one_over_0_07_and_logits_are_tau_cosine():
    head = TextClassifier(hidden_dim=4, embed_dim=2, num_predictions=1)
    assert float(head.tau.detach()) == pytest.approx(1 / 0.07, rel=1e-6)
    with torch.no_grad():
        head.void_embedding.copy_(torch.tensor([[0.0, -3.0]]))
    e = torch.tensor([[[3.0, 4.0]]])  # |e| = 5 -> (0.6, 0.8)
    text = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    z = head.logits(e, text)
    tau = 1 / 0.07
    assert z.shape == (1, 1, 3)
    assert z[0, 0].tolist() == pytest.approx([0.6 * tau, 0.8 * tau, -0.8 * tau], rel=1e-5)


def test_void_embedding_init_scale():
    torch.manual_seed(0)
    head = TextClassifier(hidden_dim=4, embed_dim=1024, num_predictions=1)
    assert float(head.void_embedding.detach().std()) == pytest.approx(1024 ** -0.5, rel=0.1)


def test_names_to_classes_takes_the_max_over_a_class_names():
    logits = torch.tensor([[1.0, 5.0, 2.0, 0.5, -1.0]])  # names a0, a1, b0, c0 + void
    out = names_to_classes(logits, torch.tensor([0, 0, 1, 2]), 3)
    assert out.tolist() == [[5.0, 2.0, 0.5, -1.0]]
    with pytest.raises(ValueError, match="at least one name"):
        names_to_classes(logits, torch.tensor([0, 0, 1, 1]), 3)


def test_semantic_inference_by_hand():
    # 2 queries, 2 classes + void; 1x2 image.
    z = torch.tensor([[[0.0, 0.0, 0.0], [math.log(2.0), 0.0, 0.0]]])
    m = torch.tensor([[[[0.0, 100.0]], [[-100.0, 0.0]]]])
    seg = semantic_inference(z, m)
    # q0: p = (1/3, 1/3); q1: p = (2/4, 1/4); sigma(q0) = (0.5, 1), sigma(q1) = (0, 0.5)
    assert seg[0, :, 0, 0].tolist() == pytest.approx([1 / 6, 1 / 6], abs=1e-6)
    assert seg[0, :, 0, 1].tolist() == pytest.approx([1 / 3 + 0.25, 1 / 3 + 0.125], abs=1e-6)


def test_segmenter_forward_shapes_and_any_vocabulary(tiny_run):
    from ovlab.experiments.registry import from_checkpoint

    stage, result = tiny_run
    built = from_checkpoint(result.output / "model.pt")
    x = torch.rand(1, 3, 64, 96)
    preds = built.model(x, torch.nn.functional.normalize(torch.randn(5, built.embed_dim), dim=-1))
    assert len(preds) == stage.cfg.model.decoder_layers + 1
    assert preds[-1].masks.shape == (1, 8, 16, 24) and preds[-1].logits.shape == (1, 8, 6)
    scores = built.model.segment(x, torch.randn(7, built.embed_dim), torch.tensor([0, 0, 1, 2, 2, 2, 3]), 4)
    assert scores.shape == (1, 4, 64, 96)
    with pytest.raises(ValueError, match="multiple of 32"):
        built.model(torch.rand(1, 3, 50, 64))
