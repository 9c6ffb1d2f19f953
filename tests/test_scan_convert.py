"""``ovlab convert scan`` and its parts: every official key consumed or ignored with a reason, errors
that name the key, the written checkpoint loading back; SCAN's proposal head (one shared MLP) and the
whole-string class-name encoding, by hand."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from ovlab.scan.head import ScanClassifier
from ovlab.segmenter.classifier import TextClassifier

FIXTURE = Path(__file__).resolve().parents[1].parent / "shared" / "parity" / "scan_tiny"
needs_fixture = pytest.mark.skipif(not (FIXTURE / "state_dict.pt").is_file(), reason="SCAN parity fixture absent")


@pytest.fixture(scope="module")
def official():
    if not (FIXTURE / "state_dict.pt").is_file():
        pytest.skip("SCAN parity fixture absent")
    from ovlab.scan.convert import load_official_checkpoint, read_official_config

    return load_official_checkpoint(FIXTURE / "state_dict.pt"), read_official_config(FIXTURE / "config.yaml")


@needs_fixture
def test_every_fixture_key_is_consumed_or_ignored_with_a_reason(official):
    from ovlab.scan.convert import convert_scan_state_dict

    sd, cfg = official
    keys = [line.split("\t")[0] for line in (FIXTURE / "keys.tsv").read_text().splitlines()[1:] if line.strip()]
    assert len(keys) == 516 and set(keys) == set(sd)
    conv = convert_scan_state_dict(sd, cfg)
    assert set(conv.consumed) | set(conv.ignored) == set(keys)
    assert not set(conv.consumed) & set(conv.ignored)
    assert sorted(k for k in conv.ignored if not k.endswith("relative_position_index")) == [
        "clip_adapter.pixel_mean", "clip_adapter.pixel_std", "criterion.empty_weight"]
    assert sum(k.endswith("relative_position_index") for k in conv.ignored) == 8
    # a few mappings, as transformers' conversion script names them
    c = conv.consumed
    assert c["backbone.layers.0.downsample.reduction.weight"] == "backbone.swin.layers.1.downsample.reduction.weight"
    assert c["sem_seg_head.pixel_decoder.mask_features.weight"] == "head.pixel_decoder.mask_projection.weight"
    assert c["learnable_weight"] == "sim.gamma"
    assert c["clip_adapter.original_clip.proj"] == "original_visual.proj"
    q, k, v = sd["sem_seg_head.predictor.transformer_self_attention_layers.2.self_attn.in_proj_weight"].chunk(3)
    assert torch.equal(conv.model["head.transformer.decoder.layers.2.self_attn.k_proj.weight"], k)
    a = conv.architecture
    assert (a.decoder_layers, a.num_queries, a.embed_hidden_dim, a.swin["window_size"]) == (4, 100, 64, 6)
    assert a.clip["vision_cfg"]["head_width"] == 32 and a.sim["layers"] == [2, 3, 4] and a.cs_layers == [1, 3]


@needs_fixture
def test_unknown_key_and_shape_mismatch_name_the_key(official):
    from ovlab.scan.convert import ConversionError, convert_scan_state_dict

    sd, cfg = official
    with pytest.raises(ConversionError, match="sem_seg_head.predictor.extra_head.weight"):
        convert_scan_state_dict({**sd, "sem_seg_head.predictor.extra_head.weight": torch.zeros(3)}, cfg)
    bad = dict(sd)
    bad["fusion_decoder.ln.2.weight"] = torch.zeros(31)
    with pytest.raises(ConversionError, match="fusion_decoder.ln.2.weight"):
        convert_scan_state_dict(bad, cfg)
    with pytest.raises(ConversionError, match="LFM.conv1.weight"):
        convert_scan_state_dict({k: v for k, v in sd.items() if k != "LFM.conv1.weight"}, cfg)


@needs_fixture
def test_cli_writes_a_checkpoint_that_loads_back(tmp_path, official, capsys):
    from ovlab.experiments.cli import main
    from ovlab.experiments.convert import load_converted

    out = tmp_path / "model.pt"
    rc = main(["convert", "scan", "--checkpoint", str(FIXTURE / "state_dict.pt"), "--config",
               str(FIXTURE / "config.yaml"), "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    assert "consumed 505 official keys, ignored 11" in capsys.readouterr().out
    conv = load_converted(out, "scan-converted")
    seg = conv.model
    sd, _ = official
    assert torch.equal(seg.sim.gamma.detach(), sd["learnable_weight"])
    assert torch.equal(seg.clip_visual.proj, sd["clip_adapter.original_clip.proj"])
    assert torch.equal(seg.mask_clip.visual.proj, sd["clip_adapter.clip_model.visual.proj"])
    assert seg.official_padding and seg.name_encoding == "whole"
    # the official per-benchmark numbers only for the known CLIPs; this tiny one keeps its config's
    s = conv.inference_for("ade20k_150")
    assert (s.mask_threshold, s.clip_weight, s.cs_ratio) == (0.4, 0.7, 0.0)
    rc = main(["convert", "scan", "--checkpoint", str(tmp_path / "absent.pth"), "--out", str(tmp_path / "x.pt")])
    assert rc == 2 and "absent.pth" in capsys.readouterr().err


def test_scan_official_presets_follow_the_vit_l_config():
    from dataclasses import replace

    from ovlab.experiments.convert import ConvertedModel

    class _Seg:
        settings = None

        class mask_clip:
            layers = [1, 3, 5, 7, 9]

    from ovlab.config.scan import ScanInference

    _Seg.settings = ScanInference(None, "both", 0.4, 0.7, False, 100.0, "cls", (1, 3, 5, 7, 9), 0.15, 0)
    conv = ConvertedModel(_Seg(), None, "x")
    a847 = conv.inference_for("a-847")
    assert (a847.mask_threshold, a847.clip_weight, a847.renormalize, a847.cs_ratio) == (0.3, 0.75, True, 0.15)
    a150 = conv.inference_for("ade20k_150")
    assert (a150.mask_threshold, a150.clip_weight, a150.renormalize, a150.cs_ratio) == (0.55, 0.75, False, 0.05)
    assert replace(conv.inference_for(None), benchmark=None) == _Seg.settings


# ------------------------------------------------------------------------------------ SCAN's head
def _set(linear: torch.nn.Linear, w, b):
    with torch.no_grad():
        linear.weight.copy_(torch.tensor(w, dtype=torch.float32))
        linear.bias.copy_(torch.tensor(b, dtype=torch.float32))


def test_scan_head_is_one_shared_mlp_by_hand():
    """hidden 2 → 3 → 2: e = W2·relu(W1·q + b1) + b2, the same weights for every prediction."""
    head = ScanClassifier(2, 2, embed_hidden_dim=3, embed_layers=2)
    _set(head.class_embed.layers[0], [[1, 0], [0, 1], [1, 1]], [0.0, -1.0, 0.0])
    _set(head.class_embed.layers[1], [[1, 0, 1], [0, 2, 0]], [0.5, 0.0])
    q = torch.tensor([[[1.0, 2.0]]])
    # relu([1, 1, 3]) = [1, 1, 3] -> [1 + 3 + 0.5, 2] = [4.5, 2]
    q2 = torch.tensor([[[-1.0, 0.5]]])
    # relu([-1, -0.5, -0.5]) = 0 -> [0.5, 0]
    priors, emb = head.embed([q, q2])
    assert torch.equal(emb[0], torch.tensor([[[4.5, 2.0]]])) and torch.equal(emb[1], torch.tensor([[[0.5, 0.0]]]))
    assert priors[0] is emb[0]
    assert sum(p.numel() for p in head.class_embed.parameters()) == 2 * 3 + 3 + 3 * 2 + 2
    # GKC's head: a shared Linear then one ReLU·Linear per prediction (different weights per layer)
    gkc = TextClassifier(2, 2, 2)
    assert gkc.embed_proj[0][1].weight.data_ptr() != gkc.embed_proj[1][1].weight.data_ptr()


def test_scan_head_logits_by_hand():
    """z = 100·cos(e, [t; void]); τ is exactly 100 (not exp(log 100)) and not a parameter."""
    head = ScanClassifier(2, 2, embed_hidden_dim=3)
    with torch.no_grad():
        head.void_embedding.copy_(torch.tensor([[0.0, -3.0]]))
    e = torch.tensor([[[3.0, 4.0]]])
    text = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    z = head.logits(e, text)
    assert torch.allclose(z, torch.tensor([[[60.0, 80.0, -80.0]]]), atol=1e-4)
    assert head.tau.item() == 100.0
    assert "logit_scale" not in dict(head.named_parameters()) and "classifier.logit_scale" not in head.state_dict()


def test_scan_section_uses_scans_head_by_default():
    from ovlab.config.scan import ScanStageParams

    assert ScanStageParams().model.head == "scan"
    assert ScanStageParams.model_validate({"model": {"head": "gkc"}}).model.head == "gkc"


# ------------------------------------------------------------------------------------ class names
class _StubClip:
    """``encode_text`` maps each string to a fixed vector (hand-checkable embeddings)."""

    name, quick_gelu = "stub", False

    def __init__(self, table):
        self.table = table

    def weights_key(self):
        return "stub"

    def encode_text(self, texts, normalize=True, batch_size=256):
        out = torch.stack([torch.tensor(self.table[t], dtype=torch.float32) for t in texts])
        return F.normalize(out, dim=-1) if normalize else out


def test_whole_name_encoding_by_hand():
    """"person, individual" under the template "{}": ``whole`` encodes the string itself (SCAN),
    ``split`` the two names and takes the max of their logits."""
    from ovlab.clip.text import build_text_bank

    clip = _StubClip({"person, individual": [1.0, 0.0], "person": [0.0, 1.0], "individual": [0.6, 0.8],
                      "sky": [-1.0, 0.0]})
    whole = build_text_bank(clip, ["person, individual", "sky"], "none", name_encoding="whole")
    split = build_text_bank(clip, ["person, individual", "sky"], "none", name_encoding="split")
    assert whole.names == ["person, individual", "sky"] and whole.class_index.tolist() == [0, 1]
    assert split.names == ["person", "individual", "sky"] and split.class_index.tolist() == [0, 0, 1]
    img = torch.tensor([[0.0, 1.0]])
    assert torch.allclose(whole.logits(img), torch.tensor([[0.0, 0.0]]))
    assert torch.allclose(split.logits(img), torch.tensor([[1.0, 0.0]]))       # max(1.0, 0.8), sky 0
    with pytest.raises(ValueError, match="name_encoding"):
        build_text_bank(clip, ["sky"], "none", name_encoding="first")


def test_scan_defaults_to_whole_names_gkc_to_split():
    import inspect

    from ovlab.config.scan import ScanParams
    from ovlab.segmenter.vocabulary import build_vocabulary

    assert ScanParams().name_encoding == "whole"
    assert inspect.signature(build_vocabulary).parameters["name_encoding"].default == "split"


@pytest.mark.slow
@needs_fixture
def test_converted_model_evaluates_through_ovlab_evaluate(tmp_path, embedded_root):
    """``ovlab evaluate --format scan-converted`` (and ``scan-official``, converting on the fly) on
    the embedded COCO benchmark: the official protocol end to end (whole names, 14 ViLD templates,
    zero padding after normalisation), the same scores from both formats."""
    import json

    from ovlab.experiments.cli import main

    model = tmp_path / "model.pt"
    assert main(["convert", "scan", "--checkpoint", str(FIXTURE / "state_dict.pt"), "--config",
                 str(FIXTURE / "config.yaml"), "--out", str(model)]) == 0
    common = ["--dataset", "coco_133", "--root", str(embedded_root), "--short-side", "64", "--max-images", "1"]
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    assert main(["evaluate", "--checkpoint", str(model), "--format", "scan-converted", *common, "--output", str(a)]) == 0
    assert main(["evaluate", "--checkpoint", str(FIXTURE / "state_dict.pt"), "--format", "scan-official",
                 "--scan-config", str(FIXTURE / "config.yaml"), *common, "--output", str(b)]) == 0
    ra, rb = json.loads(a.read_text()), json.loads(b.read_text())
    assert ra["num_images"] == 1 and ra["mIoU"] == rb["mIoU"]


@pytest.mark.slow
@needs_fixture
def test_grid_cell_on_a_converted_checkpoint(tmp_path, embedded_root):
    """``model: converted:<path>`` (SCAN Tables 6–8 on released weights): the cell evaluates the
    converted checkpoint with its own test-time overrides (here the Tab. 6 noise source and the
    Tab. 8 mask-only mode) and trains nothing; a missing file says how to make it."""
    from ovlab.config import StageParams
    from ovlab.config.base import BaseParams
    from ovlab.config.scan import ScanStageParams
    from ovlab.experiments.cli import main
    from ovlab.experiments.grid import ModelNotTrainedError, run_cell

    model = tmp_path / "scan.pt"
    assert main(["convert", "scan", "--checkpoint", str(FIXTURE / "state_dict.pt"), "--config",
                 str(FIXTURE / "config.yaml"), "--out", str(model)]) == 0
    ref = f"converted:{model}"
    cfg = ScanStageParams.model_validate({
        "eval": {"dataset": "coco_133", "root": str(embedded_root), "short_side": 64},
        "contextual_shift": {"layers": [1, 3], "ratio": 1.0},
        "grids": {"output": str(tmp_path / "grid"), "eval_datasets": ["coco_133"], "eval_max_images": 1,
                  "table6": {"noise": {"model": ref, "contextual_shift.source": "noise"},
                             "absent": {"model": f"converted:{tmp_path / 'none.pt'}"}},
                  "table8": {"mask": {"model": ref, "inference": "mask"}}}})
    assert cfg.grid_model("table6", "noise") == ("converted", str(model))
    stage = StageParams("scan", BaseParams(), cfg, tmp_path, "<test>")
    m = run_cell(stage, "table6", "noise", progress=False)
    assert m["model"]["kind"] == "converted" and m["evals"]["coco_133"]["num_images"] == 1
    assert m["evals"]["coco_133"]["scan"]["cs_source"] == "noise"
    assert (m["evals"]["coco_133"]["scan"]["name_encoding"], m["evals"]["coco_133"]["scan"]["padding"]) == \
        ("whole", "official")
    assert m["model"]["path"] == str(model) and (tmp_path / "grid" / "table6" / "noise" / "metrics.json").is_file()
    m8 = run_cell(stage, "table8", "mask", progress=False)
    assert m8["evals"]["coco_133"]["scan"]["inference"] == "mask"
    with pytest.raises(ModelNotTrainedError, match="ovlab convert scan"):
        run_cell(stage, "table6", "absent", progress=False)
    with pytest.raises(ValueError, match="may change only test-time keys"):
        ScanStageParams.model_validate({"grids": {"t": {"c": {"model": ref, "sim.lfe": "paper"}}}})


# ------------------------------------------------------------------------------------ official protocol
def test_official_protocol_fills_what_the_section_does_not_set():
    from ovlab.config.scan import ScanStageParams

    kit = ScanStageParams()
    assert (kit.protocol, kit.eval_padding, kit.ensemble.preset) == ("kit", "grey", None)
    off = ScanStageParams.model_validate({"protocol": "official", "eval": {"short_side": 512}})
    assert (off.eval.short_side, off.eval.max_size, off.eval.templates) == (512, 2560, "vild")   # written: kept
    assert (off.eval_padding, off.name_encoding, off.contextual_shift.preset) == ("official", "whole", "vit-l")
    a847 = off.inference_for("a-847")
    assert (a847.mask_threshold, a847.clip_weight, a847.renormalize, a847.cs_ratio) == (0.3, 0.75, True, 0.15)
    voc = off.inference_for("pascal_voc_20")
    assert (voc.mask_threshold, voc.clip_weight, voc.renormalize, voc.cs_ratio) == (0.2, 0.65, False, 0.10)
    assert ScanStageParams.model_validate({"protocol": "official", "eval": {}}).eval.short_side == 640


def test_official_padding_is_zero_after_normalisation_by_hand():
    """The kit pads the [0, 1] image with grey before normalising; the official protocol sets the
    normalised padding to 0 (detectron2 ``ImageList``)."""
    from ovlab.scan.model import _zero_padding

    x = torch.full((1, 1, 2, 3), 5.0)
    got = _zero_padding(x, [(1, 2)])
    assert torch.equal(got, torch.tensor([[[[5.0, 5.0, 0.0], [0.0, 0.0, 0.0]]]]))
    assert _zero_padding(x, None) is x
    with pytest.raises(ValueError, match="image_sizes"):
        _zero_padding(x, [(1, 2), (1, 1)])


def test_scan_model_carries_the_name_encoding_and_padding_of_its_section():
    """What ``ovlab.segmenter.evaluate`` reads: a kit SCAN model encodes whole names unless the
    section says ``split``, and pads the kit's way unless ``eval_padding: official``."""
    import warnings

    from ovlab.clip import load_clip
    from ovlab.config.scan import ScanStageParams
    from ovlab.scan.model import build_scan_segmenter

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clip = load_clip("ovlab-tiny-vit", pretrained=None)
    tiny = {"model": {"num_queries": 4, "decoder_layers": 1}, "sim": {"cross_attention_layers": 1, "encoder_layers": 0}}
    for extra, want in (({}, ("whole", False)), ({"name_encoding": "split", "eval_padding": "official"}, ("split", True))):
        cfg = ScanStageParams.model_validate({**tiny, **extra})
        seg = build_scan_segmenter(cfg, 64, clip, inference=cfg.inference_for(None))
        assert (seg.name_encoding, seg.official_padding) == want
        assert isinstance(seg.classifier, ScanClassifier)


@needs_fixture
def test_cs_finetuned_clip_file_replaces_the_mask_classifier_only(tmp_path, official):
    """``--clip``: the ``module.clip_model.*`` keys of an open_clip_training checkpoint replace the
    mask-classifying CLIP (tools/replace_clip.py); the original CLIP of SIM stays; a wrong shape is named."""
    from ovlab.scan.convert import ConversionError, convert_scan_state_dict, merge_clip_checkpoint

    sd, cfg = official
    conv = convert_scan_state_dict(sd, cfg)
    proj = torch.full_like(conv.clip["visual.proj"], 0.5)
    path = tmp_path / "cs_clip.pt"
    torch.save({"state_dict": {"module.clip_model.visual.proj": proj, "module.logit_scale_extra": torch.zeros(1),
                               "module.clip_model.visual.mask_embedding": torch.zeros(3)}}, path)
    before = conv.original_visual["proj"].clone()
    merge_clip_checkpoint(conv, path)
    assert torch.equal(conv.clip["visual.proj"], proj) and torch.equal(conv.original_visual["proj"], before)
    assert "cs_clip.pt:visual.mask_embedding" in conv.ignored and "cs_clip.pt:module.logit_scale_extra" in conv.ignored
    torch.save({"state_dict": {"module.clip_model.visual.proj": torch.zeros(3, 3)}}, path)
    with pytest.raises(ConversionError, match="visual.proj"):
        merge_clip_checkpoint(conv, path)
