"""The SCAN segmenter (SCAN §3, Fig. 2): SIM in the embedding path, the CS-CLIP mask classifier, the
inference modes of SCAN Tab. 8, the test-time settings it takes as numbers (``ScanInference``), the
engine task, checkpoints and ``ovlab predict`` on a real image."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from .conftest import REPO
from ovlab.config import StageParams
from ovlab.config.base import BaseParams
from ovlab.config.scan import ScanInference, ScanStageParams
from ovlab.config.schema import Section
from ovlab.segmenter.inference import names_to_classes, semantic_inference, upsample_masks
from ovlab.scan.model import ScanSegmenter, build_scan_segmenter
from ovlab.segmenter.model import Prediction, build_segmenter

TINY_MODEL = {"backbone": {"kind": "tiny"}, "hidden_dim": 32, "mask_dim": 32, "num_queries": 4, "decoder_layers": 1,
              "encoder_layers": 1, "heads": 4, "ffn_dim": 32, "encoder_ffn_dim": 32, "logit_scale_init": 100.0,
              "learn_logit_scale": False}
TINY_SIM = {"cross_attention_layers": 1, "encoder_layers": 1, "encoder_ff": 32, "heads": 4}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def clip():
    from ovlab.clip import load_clip

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_clip("ovlab-tiny-vit", pretrained=None)


def _cfg(head: str = "scan", **scan) -> ScanStageParams:
    """``head="gkc"`` where a test compares with the plain segmenter (``build_segmenter``, GKC's head)."""
    sim = {**TINY_SIM, **scan.pop("sim", {})}
    return ScanStageParams.model_validate({"model": {**TINY_MODEL, "head": head}, "sim": sim, **scan})


def _build(clip, cfg, seed=0) -> ScanSegmenter:
    torch.manual_seed(seed)
    return build_scan_segmenter(cfg, 64, clip, inference=cfg.inference_for(None)).eval()


# ---------------------------------------------------------------------------------- SIM in the path
def test_without_sim_the_embeddings_are_the_segmenters(clip):
    cfg = _cfg("gkc", sim={"enabled": False})
    torch.manual_seed(0)
    seg = build_segmenter(cfg.model, 64, clip).eval()
    scan = _build(clip, cfg)
    assert scan.sim is None
    x, text = torch.rand(2, 3, 64, 64), torch.randn(5, 64)
    with torch.no_grad():
        a, b = seg(x, text), scan(x, text)
    assert len(a) == len(b) == 2
    for p, q in zip(a, b):
        for name in ("embedding", "logits", "masks"):
            assert torch.equal(getattr(p, name), getattr(q, name)), name


def test_sim_with_gamma_zero_and_no_other_path_is_the_identity(clip):
    cfg = _cfg("gkc", sim={"use_spatial": False, "gamma_init": 0.0, "encoder_layers": 0})
    torch.manual_seed(0)
    seg = build_segmenter(cfg.model, 64, clip).eval()
    scan = _build(clip, cfg)
    assert scan.sim is not None and scan.sim.gamma.item() == 0.0
    x, text = torch.rand(1, 3, 64, 64), torch.randn(3, 64)
    with torch.no_grad():
        assert torch.equal(seg(x, text)[-1].embedding, scan(x, text)[-1].embedding)


def test_sim_calibrates_every_prediction_and_gamma_starts_at_point_one(clip):
    scan = _build(clip, _cfg())
    assert scan.sim.gamma.item() == pytest.approx(0.1)
    x, text = torch.rand(2, 3, 64, 96), torch.randn(4, 64)
    torch.manual_seed(1)
    preds = scan.train()(x, text)
    assert len(preds) == 2 and all(p.logits.shape == (2, 4, 5) for p in preds)
    sum(p.logits.float().square().mean() for p in preds).backward()
    assert scan.sim.gamma.grad is not None and scan.sim.lfe[0].conv1.weight.grad is not None
    assert all(p.grad is None for p in scan.clip_visual.parameters())             # CLIP frozen, outside the tree
    final = scan.eval()(x, text, final_only=True)
    assert len(final) == 1 and final[0].embedding.shape == (2, 4, 64)


def test_frozen_clip_is_outside_state_dict_but_moves_with_the_model(clip):
    scan = _build(clip, _cfg())
    keys = list(scan.state_dict())
    assert any(k.startswith("sim.") for k in keys) and any(k.startswith("backbone.") for k in keys)
    assert not any("visual" in k or "mask_clip" in k for k in keys)
    assert not any(p is q for p in scan.parameters() for q in clip.model.visual.parameters())
    scan.to(torch.float64)
    assert scan.clip_visual.conv1.weight.dtype == torch.float64
    scan.to(torch.float32)
    assert scan.clip_visual.conv1.weight.dtype == torch.float32


# ---------------------------------------------------------------------------------- inference modes
def test_mask_only_is_the_in_model_semantic_inference(clip):
    scan = _build(clip, _cfg(inference="mask"))
    x, text = torch.rand(1, 3, 64, 64), torch.randn(6, 64)
    index = torch.tensor([0, 1, 1, 2, 3, 3])                                   # 4 classes, some with 2 names
    with torch.no_grad():
        final = scan(x, text, final_only=True)[-1]
        ref = semantic_inference(names_to_classes(final.logits, index, 4), upsample_masks(final.masks, (64, 64)))
        got = scan.segment(x, text, index, 4)
    assert torch.allclose(got, ref, atol=1e-6)


def test_mask_only_without_sim_equals_the_segmenter(clip):
    cfg = _cfg("gkc", sim={"enabled": False}, inference="mask")
    torch.manual_seed(0)
    seg = build_segmenter(cfg.model, 64, clip).eval()
    scan = _build(clip, cfg)
    x, text = torch.rand(1, 3, 64, 64), torch.randn(3, 64)
    index = torch.arange(3)
    assert torch.equal(scan.segment(x, text, index, 3, (32, 32)), seg.segment(x, text, index, 3, (32, 32)))


class _StubClip:
    """A mask-classifying CLIP whose crop embedding is the text embedding of the crop's colour class:
    red crops → ``text[0]``, green crops → ``text[1]`` (the fill is the CLIP mean, neither)."""

    source, layers, ratio, seed = "cls", [1], 0.3, 0

    def __init__(self, text, visual):
        self.text, self.visual, self.calls = text, visual, []

    def __call__(self, crops, regions, *, natural=None, unmasked=None, normalize=False):
        self.calls.append((crops.shape, regions.shape, natural.shape))
        red = crops[:, 0].mean(dim=(1, 2)) > crops[:, 1].mean(dim=(1, 2))
        return F.normalize(torch.where(red[:, None], self.text[0], self.text[1]), dim=-1)

    def _apply(self, fn):
        return self


def _two_region_scene(scan, text):
    """Image: left half red, right half green. Proposals: 0 = left half, 1 = right half, 2 = empty;
    in-model logits deliberately wrong (proposal 0 → class 1, proposal 1 → class 0)."""
    img = torch.zeros(1, 3, 64, 64)
    img[0, 0, :, :32] = 1.0
    img[0, 1, :, 32:] = 1.0
    masks = torch.full((1, 3, 16, 16), -20.0)
    masks[0, 0, :, :8] = 20.0
    masks[0, 1, :, 8:] = 20.0
    logits = torch.tensor([[[0.0, 5.0, -5.0], [5.0, 0.0, -5.0], [0.0, 0.0, 5.0]]])
    pred = Prediction(torch.zeros(1, 3, 32), torch.zeros(1, 3, 64), masks, logits)
    scan.forward = lambda images, t=None, final_only=False: [pred]
    return img


def test_clip_only_with_a_stub_clip_gives_the_ground_truth(clip):
    text = F.normalize(torch.randn(2, 64), dim=-1)
    scan = _build(clip, _cfg(inference="clip"))
    scan._frozen["mask_clip"] = stub = _StubClip(text, scan.mask_clip.visual)
    img = _two_region_scene(scan, text)
    labels = scan.segment(img, text, torch.arange(2), 2)[0].argmax(0)
    gt = torch.zeros(64, 64, dtype=torch.long)
    gt[:, 32:] = 1
    assert torch.equal(labels, gt)
    assert len(stub.calls) == 1 and stub.calls[0][0][0] == 2                 # 2 crops: the empty mask is dropped
    logits, valid = scan.clip_logits(img, scan.forward(img)[-1].masks, text, torch.arange(2), 2)
    assert valid.tolist() == [[True, True, False]]
    assert logits[0, 0, 0].item() == pytest.approx(100.0, abs=1e-3)          # τ·cos(text0, text0)
    assert torch.equal(logits[0, 2], torch.zeros(2))
    # mask-only follows the (wrong) in-model logits; a CLIP-heavy ensemble follows CLIP
    scan.set_inference(dataclasses.replace(scan.settings, mode="mask"))
    assert torch.equal(scan.segment(img, text, torch.arange(2), 2)[0].argmax(0), 1 - gt)
    scan.set_inference(dataclasses.replace(scan.settings, mode="both", mask_threshold=0.4, clip_weight=0.9))
    assert torch.equal(scan.segment(img, text, torch.arange(2), 2)[0].argmax(0), gt)


def test_both_is_the_geometric_ensemble_by_hand(clip):
    text = F.normalize(torch.randn(2, 64), dim=-1)
    scan = _build(clip, _cfg(inference="both"))
    scan._frozen["mask_clip"] = _StubClip(text, scan.mask_clip.visual)
    img = _two_region_scene(scan, text)
    final = scan.forward(img)[-1]
    probs, keep = scan.class_probabilities(img, final, text, torch.arange(2), 2)
    assert keep is None
    p_in = final.logits.softmax(-1)[..., :2]
    c = torch.tensor(100.0 * float(text[0] @ text[1]))
    p_clip0 = torch.softmax(torch.stack([torch.tensor(100.0), c]), 0)       # proposal 0: red → class 0
    lam = scan.settings.clip_weight
    assert torch.allclose(probs[0, 0], p_in[0, 0] ** (1 - lam) * p_clip0 ** lam, atol=1e-5)
    assert torch.allclose(probs[0, 2], p_in[0, 2] ** (1 - lam), atol=1e-6)    # empty mask: p_clip ≡ 1


def test_real_cs_clip_runs_on_the_crops(clip):
    scan = _build(clip, _cfg(inference="clip", contextual_shift={"source": "cls", "layers": [1], "ratio": 0.5}))
    x, text = torch.rand(1, 3, 64, 64), torch.randn(3, 64)
    a = scan.segment(x, text, torch.arange(3), 3)
    assert a.shape == (1, 3, 64, 64) and torch.isfinite(a).all()
    assert torch.equal(a, scan.segment(x, text, torch.arange(3), 3))          # seeded draws
    for source in ("noise", "original", "learnable", "none"):
        other = _build(clip, _cfg(inference="clip", contextual_shift={"source": source, "layers": [1], "ratio": 0.5}))
        assert torch.isfinite(other.segment(x, text, torch.arange(3), 3)).all()


def test_inference_settings_resolve_the_presets_per_benchmark():
    cfg = _cfg(contextual_shift={"preset": "vit-l", "layers": [1], "ratio": 0.3}, ensemble={"preset": "vit-l"})
    a847 = cfg.inference_for("a-847")                                      # alias → canonical name
    assert a847 == ScanInference(benchmark="ade20k_847", mode="both", mask_threshold=0.3, clip_weight=0.75,
                                 renormalize=True, clip_logit_scale=100.0, cs_source="cls", cs_layers=(1,),
                                 cs_ratio=0.15, cs_seed=0)
    a150 = cfg.inference_for("ade20k_150")
    assert (a150.mask_threshold, a150.clip_weight, a150.renormalize, a150.cs_ratio) == (0.55, 0.75, False, 0.05)
    coco = cfg.inference_for("coco_133")                                   # not in SCAN's list: own values
    assert (coco.mask_threshold, coco.clip_weight, coco.cs_ratio) == (0.4, 0.7, 0.3)
    assert cfg.inference_for(None) == dataclasses.replace(coco, benchmark=None)
    off = _cfg(contextual_shift={"enabled": False, "preset": "vit-l"}).inference_for("ade20k_847")
    assert (off.cs_source, off.cs_layers, off.cs_ratio) == ("none", (), 0.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        a847.cs_ratio = 0.5


def test_the_model_takes_numbers_per_benchmark(clip):
    cfg = _cfg(contextual_shift={"preset": "vit-l", "layers": [1], "ratio": 0.3}, ensemble={"preset": "vit-l"})
    scan = _build(clip, cfg)
    assert not any(isinstance(v, Section) for v in vars(scan).values())        # no config object inside
    assert scan.benchmark is None and scan.mask_clip.ratio == 0.3
    scan.set_inference(cfg.inference_for("a-847"))
    assert scan.benchmark == "ade20k_847" and scan.settings.renormalize and scan.mask_clip.ratio == 0.15
    scan.set_inference(cfg.inference_for("ade20k_150"))
    assert (scan.settings.mask_threshold, scan.settings.clip_weight) == (0.55, 0.75) and scan.mask_clip.ratio == 0.05
    with pytest.raises(ValueError, match="fixed when the model is built"):
        scan.set_inference(dataclasses.replace(scan.settings, cs_layers=(0, 1)))
    with pytest.raises(ValueError, match="fixed when the model is built"):
        scan.set_inference(dataclasses.replace(scan.settings, cs_source="noise"))
    with pytest.raises(TypeError, match="ScanInference"):
        scan.set_inference(cfg)
    assert scan.benchmark == "ade20k_150"                                        # a refused setting changes nothing


def test_builder_errors(clip):
    from ovlab.clip import load_clip

    with pytest.raises(ValueError, match="outside"):
        _build(clip, _cfg(sim={"layers": [1, 2, 7]}))
    with pytest.raises(ValueError, match="contextual shift layers"):
        _build(clip, _cfg(contextual_shift={"layers": [9]}))
    with pytest.raises(ValueError, match="inference"):
        dataclasses.replace(_cfg().inference_for(None), mode="oracle")
    with pytest.raises(ValueError, match="clip_weight"):
        dataclasses.replace(_cfg().inference_for(None), clip_weight=1.5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rn = load_clip("ovlab-tiny-rn", pretrained=None)
    with pytest.raises(TypeError, match="VisionTransformer"):
        build_scan_segmenter(_cfg(), 64, rn, inference=_cfg().inference_for(None))


# ------------------------------------------------------------------------------- engine, checkpoint
@pytest.fixture(scope="module")
def scan_run(embedded_root, tmp_path_factory):
    """A SCAN model trained for 3 iterations through the engine's ScanTask, evaluated on one image."""
    from ovlab.scan.task import ScanTask
    from ovlab.engine.trainer import train

    out = tmp_path_factory.mktemp("scan_run")
    cfg = ScanStageParams.model_validate({
        "clip": {"model": "ovlab-tiny-vit", "pretrained": None}, "model": {**TINY_MODEL, "templates": "none"},
        "loss": {"num_points": 64}, "data": {"root": str(embedded_root / "coco")}, "augment": {"crop_size": 64},
        "train": {"iterations": 3, "batch_size": 1, "checkpoint_every": 3, "log_every": 1,
                  "checkpoint_dir": str(out / "checkpoints")},
        "eval": {"root": str(embedded_root), "max_images": 1, "templates": "none"},
        "output": str(out / "run"), "sim": TINY_SIM})
    stage = StageParams("scan", BaseParams(), cfg, REPO, "<test>")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return stage, train(stage, task=ScanTask(), progress=False)


def test_scan_task_trains_evaluates_and_round_trips(scan_run):
    from ovlab.experiments.registry import from_checkpoint
    from ovlab.engine.checkpoint import load

    stage, res = scan_run
    ev = res.metrics["eval"]
    assert ev["dataset"] == "coco_133" and ev["num_images"] == 1 and "mIoU" in ev
    assert ev["scan"] == {"inference": "both", "sim": True, "cs_source": "cls", "cs_layers": [1], "cs_ratio": 0.3,
                          "cs_enabled": True, "mask_threshold": 0.4, "clip_weight": 0.7, "renormalize": False,
                          "name_encoding": "whole", "padding": "grey"}
    state = load(res.output / "model.pt")
    assert state["stage"] == "scan" and not any("visual" in k for k in state["model"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        built = from_checkpoint(res.output / "model.pt", root=REPO)
    assert isinstance(built.model, ScanSegmenter) and built.model.benchmark == "coco_133"
    for k, v in built.model.state_dict().items():
        assert torch.equal(v, state["model"][k]), k
    x, text = torch.rand(1, 3, 64, 64), torch.randn(3, 64)
    assert torch.isfinite(built.model.segment(x, text, torch.arange(3), 3)).all()


def test_predict_with_scan_on_a_real_image(scan_run, shared_data, tmp_path):
    from ovlab.experiments.cli import main

    _, res = scan_run
    image = shared_data / "samples" / "coco_panoptic" / "images" / "000000039769.png"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rc = main(["predict", "--checkpoint", str(res.output / "model.pt"), "--image", str(image),
                   "--classes", "cat,remote control,sofa|couch,blanket", "--out-dir", str(tmp_path),
                   "--short-side", "96"])
    assert rc == 0
    from PIL import Image

    labels = np.asarray(Image.open(tmp_path / "000000039769_labels.png"))
    assert labels.shape == (480, 640) and labels.max() < 4
    assert (tmp_path / "000000039769_overlay.png").is_file()
