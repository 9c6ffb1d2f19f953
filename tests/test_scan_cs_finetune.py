"""SCAN's CLIP fine-tuning with Contextual Shift (issue 14, defect 9 / deliverable 3): the crop pairs,
the loss and optimiser rules, a few iterations on the tiny CLIP (the shift applied, the learnable
prompts trained, exact resume) and the grid cells that load the fine-tuned CLIP."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from ovlab.config import StageParams
from ovlab.config.base import BaseParams
from ovlab.config.scan import ScanStageParams
from ovlab.config.scan_cs import finetuned_mask_clip
from ovlab.scan import cs_finetune as csf
from ovlab.scan.crop_pairs import crop_pairs, load_crop_batch

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ---------------------------------------------------------------------------------- pieces, by hand
def test_infonce_by_hand():
    eye = torch.eye(2)
    # logits = I: CE of each row = log(e + 1) - 1 = log(1 + e^-1); both directions equal
    assert csf.infonce_loss(eye, eye, torch.tensor(1.0)).item() == pytest.approx(math.log(1 + math.exp(-1)))
    # scale 2, text swapped: every diagonal logit is 0 and every off-diagonal 2 -> log(1 + e^2) - 0
    swapped = eye.flip(0)
    assert csf.infonce_loss(eye, swapped, torch.tensor(2.0)).item() == pytest.approx(math.log(1 + math.exp(2)))


def test_decay_groups_follow_open_clip_exclusions():
    w = torch.nn.Parameter(torch.ones(2, 2))
    b = torch.nn.Parameter(torch.ones(2))
    ln = torch.nn.Parameter(torch.ones(2, 2))
    frozen = torch.nn.Parameter(torch.ones(2, 2), requires_grad=False)
    scale = torch.nn.Parameter(torch.ones(()))
    groups = csf.decay_groups([("visual.proj", w), ("visual.conv.bias", b), ("visual.ln_post.weight", ln),
                               ("visual.frozen", frozen), ("logit_scale", scale)], 0.2)
    assert [(g["weight_decay"], len(g["params"])) for g in groups] == [(0.2, 1), (0.0, 3)]
    assert groups[0]["params"][0] is w


def test_pair_order_is_a_stream_of_seeded_epoch_permutations():
    p0 = torch.randperm(3, generator=torch.Generator().manual_seed(7)).tolist()
    p1 = torch.randperm(3, generator=torch.Generator().manual_seed(8)).tolist()
    assert csf.pair_order(3, 2, 0, 7) == p0[:2]
    assert csf.pair_order(3, 2, 1, 7) == [p0[2], p1[0]]          # the second batch crosses into epoch 1


def test_crop_pairs_and_batch_on_real_coco(coco_samples):
    from ovlab.data.categories import load_categories

    names = load_categories("coco_panoptic_133").names
    pairs = crop_pairs(coco_samples, names, min_area=5000)
    big = [(r, s) for r, rec in enumerate(coco_samples) for s, seg in enumerate(rec.segments)
           if seg.area >= 5000 and not seg.iscrowd]
    assert [(p.record, p.segment) for p in pairs] == big and len(big) > 2
    assert pairs[0].name == names[coco_samples[pairs[0].record].segments[pairs[0].segment].category_index]
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.2, 0.2)
    batch = load_crop_batch(coco_samples, pairs[:3], size=(32, 32), mean=mean, std=std, unmasked=True)
    assert batch.crops.shape == (3, 3, 32, 32) and batch.masks.shape == (3, 32, 32)
    # outside the mask the crop is the CLIP mean, i.e. 0 after normalisation (SCAN MASK_FILL="mean"),
    # except along the edge that the bicubic resize blurs
    outside = batch.crops.permute(0, 2, 3, 1)[~batch.masks]
    assert outside.numel() > 0 and (outside.abs().amax(-1) < 1e-3).float().mean().item() > 0.7
    assert (batch.unmasked.permute(0, 2, 3, 1)[~batch.masks].abs().max() > 0.5)     # the unmasked crops keep pixels
    img = torch.from_numpy(coco_samples[pairs[0].record].image()).float().permute(2, 0, 1) / 255
    nat = torch.nn.functional.interpolate(img[None], size=(32, 32), mode="bicubic", align_corners=False)[0]
    m = torch.tensor(mean).view(3, 1, 1)
    assert torch.allclose(batch.natural[0], (nat - m) / 0.2, atol=1e-5)


# ------------------------------------------------------------------------------ a tiny fine-tuning
def _stage(embedded_root, tmp, **ft) -> StageParams:
    cfg = ScanStageParams.model_validate({
        "clip": {"model": "ovlab-tiny-vit", "pretrained": None},
        "contextual_shift": {"layers": [1], "ratio": 0.5},
        "cs_finetune": {"output": str(tmp / "scan_cs"), "data": {"root": str(embedded_root / "coco"), "max_images": 4},
                        "iterations": 3, "batch_size": 4, "checkpoint_dir": str(tmp / "ckpt"), "lr": 1e-3,
                        "warmup": 1, **ft}})
    return StageParams("scan", BaseParams(), cfg, tmp, "<test>")


def _visual_state(path):
    sd = torch.load(path, map_location="cpu", weights_only=True)
    return {k: v for k, v in sd.items() if k.startswith("visual.")}, sd


@pytest.fixture(scope="module")
def learnable_run(embedded_root, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cs_ft")
    stage = _stage(embedded_root, tmp)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = csf.run_cs_finetune(stage, "learnable", progress=False)
    return stage, res


def test_finetuning_trains_visual_prompts_and_keeps_text(learnable_run):
    from ovlab.clip.loading import load_clip_from_params
    from ovlab.scan.contextual_shift import ContextualShiftCLIP

    stage, res = learnable_run
    assert res.weights == stage.path(stage.cfg.cs_finetune.weights_path("learnable")) and res.prompts.is_file()
    m = res.metrics
    assert m["iterations"] == 3 and m["cs_layers"] == [1] and m["cs_ratio"] == 0.5 and len(m["history"]) == 3
    assert m["pairs"] > 4 and m["synthetic"] and m["clip"]["untrained"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pre = load_clip_from_params(stage.cfg.clip, stage).model.state_dict()
    vis, sd = _visual_state(res.weights)
    assert set(sd) == set(pre)                                     # the whole open_clip state dict
    assert any(not torch.equal(v, pre[k]) for k, v in vis.items())  # the visual tower was fine-tuned
    assert all(torch.equal(sd[k], pre[k]) for k in sd if not k.startswith("visual.") and k != "logit_scale")  # --lock-text
    # the learnable prompts moved away from their seeded initialisation and load into a test-time CS-CLIP
    fresh = ContextualShiftCLIP(_tiny_visual(stage), layers=[1], ratio=0.5, source="learnable", seed=0)
    init = fresh.prompts.detach().clone()
    csf.load_prompts(fresh, res.prompts)
    assert not torch.equal(fresh.prompts, init)
    assert torch.equal(fresh.prompts, torch.load(res.prompts, weights_only=True)["prompts"])
    with pytest.raises(ValueError, match="trained for CS layers"):
        csf.load_prompts(ContextualShiftCLIP(fresh.visual, layers=[2], ratio=0.5, source="learnable"), res.prompts)


def test_the_shift_is_applied_during_finetuning(embedded_root, tmp_path, learnable_run):
    """Same run with α = 0 (no background token replaced) ends with other weights: CS is in the loop."""
    stage, res = learnable_run
    off = _stage(embedded_root, tmp_path, ratio=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res_off = csf.run_cs_finetune(off, "learnable", progress=False)
    a, _ = _visual_state(res.weights)
    b, _ = _visual_state(res_off.weights)
    assert res_off.metrics["cs_ratio"] == 0.0
    assert any(not torch.equal(a[k], b[k]) for k in a)


def test_a_killed_run_resumes_to_the_same_weights(embedded_root, tmp_path, learnable_run, monkeypatch):
    stage, res = learnable_run
    again = _stage(embedded_root, tmp_path, checkpoint_every=1)
    real, calls = csf.load_crop_batch, {"n": 0}

    def dies_on_third(*a, **k):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt("killed")
        return real(*a, **k)

    monkeypatch.setattr(csf, "load_crop_batch", dies_on_third)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(KeyboardInterrupt):
            csf.run_cs_finetune(again, "learnable", progress=False)
        monkeypatch.setattr(csf, "load_crop_batch", real)
        resumed = csf.run_cs_finetune(again, "learnable", progress=False)
    a, _ = _visual_state(res.weights)
    b, _ = _visual_state(resumed.weights)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.metrics["history"] == res.metrics["history"]


def test_unknown_source_and_no_pairs_are_clear_errors(embedded_root, tmp_path):
    with pytest.raises(KeyError, match="no source 'zeros'"):
        csf.run_cs_finetune(_stage(embedded_root, tmp_path), "zeros", progress=False)
    with pytest.raises(csf.NoPairsError, match="min_area"):
        csf.run_cs_finetune(_stage(embedded_root, tmp_path, min_area=10**9), "cls", progress=False)


# ------------------------------------------------------------------------- the grid cells load it
def test_cs_cells_load_the_finetuned_clip_of_their_source(repo_root):
    from ovlab.config import load_params

    cfg = load_params(repo_root / "params.yaml").scan
    out = cfg.cs_finetune.output
    assert cfg.grid_section("table6", "learnable").mask_clip == f"{out}/learnable/clip.pt"
    assert cfg.grid_section("table6", "cls").mask_clip == f"{out}/cls/clip.pt"
    assert cfg.grid_section("table3", "both").mask_clip == f"{out}/cls/clip.pt"
    assert cfg.grid_section("table7", "l1_3_5_7_9_r10").mask_clip == f"{out}/cls/clip.pt"
    assert cfg.grid_section("table3", "sim").mask_clip is None          # CS off: the pretrained CLIP
    assert cfg.grid_section("table6", "none").mask_clip is None
    assert cfg.grid_section("models", "sim").mask_clip is None          # trained before any fine-tuning exists
    off = cfg.model_copy(update={"cs_finetune": cfg.cs_finetune.model_copy(update={"enabled": False})})
    assert finetuned_mask_clip(off.grid_section("table6", "cls")) is None
    mine = cfg.model_copy(update={"mask_clip": "weights/my_clip.pt"})
    assert finetuned_mask_clip(mine) == "weights/my_clip.pt"              # an explicit mask_clip wins
    with_none = cfg.model_copy(update={"cs_finetune": cfg.cs_finetune.model_copy(update={"sources": ["cls", "none"]})})
    assert finetuned_mask_clip(with_none.grid_section("table3", "sim")) == f"{out}/none/clip.pt"


def test_learnable_cell_gets_the_trained_prompts(learnable_run):
    from ovlab.scan.contextual_shift import ContextualShiftCLIP

    stage, res = learnable_run

    class Model:                                           # the part of ScanSegmenter the hook reads
        mask_clip = ContextualShiftCLIP(_tiny_visual(stage), layers=[1], ratio=0.5, source="learnable")

    cell = stage.cfg.model_copy(update={"mask_clip": stage.cfg.cs_finetune.weights_path("learnable")})
    assert csf.attach_finetuned_prompts(Model, cell, stage.root) == res.prompts
    assert torch.equal(Model.mask_clip.prompts, torch.load(res.prompts, weights_only=True)["prompts"])
    other = stage.cfg.model_copy(update={"mask_clip": "elsewhere/clip.pt"})
    assert csf.attach_finetuned_prompts(Model, other, stage.root) is None


def _tiny_visual(stage):
    from ovlab.clip.loading import load_clip_from_params

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_clip_from_params(stage.cfg.clip, stage).model.visual
