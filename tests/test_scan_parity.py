"""Architectural parity with the official SCAN forward (yongliu20/SCAN @ 097fbbd).

The golden fixture ``../shared/parity/scan_tiny/`` (CC BY-NC; read in place, never copied) holds a
tiny random-weight official SCAN state dict, two ADE20K images, and every stage of the official
forward at Contextual-Shift ratio 0 and 1. The converted state dict, run through ovlab's
:class:`ovlab.scan.model.ScanSegmenter` with the official settings (normalised-space zero padding,
crops from the unpadded image, whole-string class names), must reproduce each stage within the
fixture README's tolerances: 1e-4 (abs and rel) up to the SIM tensors, atol 1e-3 / rtol 1e-4 after
the ×100 logit scale, boolean masks exactly.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

pytestmark = pytest.mark.slow   # one conversion + 2 official-protocol forwards (~30 s CPU on 2 cores)

FIXTURE = Path(__file__).resolve().parents[1].parent / "shared" / "parity" / "scan_tiny"
PRE = dict(atol=1e-4, rtol=1e-4)      # backbone .. SIM
POST = dict(atol=1e-3, rtol=1e-4)     # after the ×100 logit temperature


def _close(name, got, want, tol):
    got, want = got.detach().float().cpu(), want.detach().float().cpu()
    assert tuple(got.shape) == tuple(want.shape), f"{name}: shape {tuple(got.shape)} vs official {tuple(want.shape)}"
    diff = (got - want).abs().max().item()
    assert torch.allclose(got, want, **tol), f"{name}: max |diff| {diff:.3g} beyond {tol}"


@pytest.fixture(scope="module")
def parity():
    if not (FIXTURE / "state_dict.pt").is_file():
        pytest.skip(f"SCAN parity fixture not found at {FIXTURE}")
    from ovlab.scan.convert import convert_scan_state_dict, load_official_checkpoint, read_official_config
    from ovlab.scan.model import build_converted_segmenter

    torch.set_num_threads(2)
    conv = convert_scan_state_dict(load_official_checkpoint(FIXTURE / "state_dict.pt"),
                                   read_official_config(FIXTURE / "config.yaml"))
    seg = build_converted_segmenter(conv.architecture, conv)
    inputs = torch.load(FIXTURE / "inputs.pt", weights_only=False)
    official = torch.load(FIXTURE / "outputs.pt", weights_only=False)
    runs = [_run(seg, img) for img in inputs["images"]]
    return seg, inputs, official, runs


def _run(seg, img: torch.Tensor) -> dict:
    """One official-protocol forward of a uint8 (3, h, w) image at CS ratio 0 with stage taps, then
    the CLIP branch again at ratio 1."""
    from ovlab.clip.text import encode_names
    from ovlab.scan.convert import converted_clip_model

    h, w = img.shape[1:]
    x = F.pad(img.float()[None] / 255.0, (0, (32 - w % 32) % 32, 0, (32 - h % 32) % 32))
    taps: dict = {"lfe": [], "class_embed": [], "blocks": {}}

    def first(key, what=lambda i, o: o, into=None):
        def hook(module, inputs, output):                 # records only; returns None (output unchanged)
            (taps if into is None else taps[into]).setdefault(key, what(inputs, output))
        return hook

    def every(key):
        def hook(module, inputs, output):
            taps[key].append(output)
        return hook

    hooks = [seg.backbone.register_forward_hook(first("backbone")),
             seg.head.pixel_decoder.register_forward_hook(first("pixel_decoder")),
             seg.classifier.class_embed.register_forward_hook(every("class_embed")),
             seg.sim.lfe[0].register_forward_hook(every("lfe")),
             seg.sim.memory_proj.register_forward_hook(first("memory")),
             seg.sim.cross_attention.register_forward_hook(first("fusion", lambda i, o: (i[0], o))),
             seg.sim.encoder.register_forward_hook(first("encoder", lambda i, o: (i[0], o))),
             seg.clip_visual.ln_pre.register_forward_hook(first(0, into="blocks"))]
    for k, blk in enumerate(seg.clip_visual.transformer.resblocks, start=1):
        hooks.append(blk.register_forward_hook(first(k, into="blocks")))
    names = _names()
    text = encode_names(converted_clip_model(seg), names, "vild")       # whole class names, 14 ViLD templates
    taps["text"] = text
    seg.set_inference(dataclasses.replace(seg.settings, cs_ratio=0.0))
    rec0: dict = {}
    with torch.no_grad():
        taps["sem_seg_cs0"] = seg.segment(x, text, torch.arange(len(names)), len(names),
                                          image_sizes=[(h, w)], record=rec0)[0, :, :h, :w]
        full = seg(x, text, image_sizes=[(h, w)])                # every decoder prediction (pre-SIM taps)
    for hk in hooks:
        hk.remove()
    seg.set_inference(dataclasses.replace(seg.settings, cs_ratio=1.0))
    rec1: dict = {}
    with torch.no_grad():
        probs1, _ = seg.class_probabilities(x, rec0["final"], text, torch.arange(len(names)), len(names),
                                            image_sizes=[(h, w)], record=rec1)
        from ovlab.segmenter.ensemble import semantic_inference
        from ovlab.segmenter.inference import upsample_masks

        taps["sem_seg_cs1"] = semantic_inference(probs1, upsample_masks(rec0["final"].masks, tuple(x.shape[-2:])))[
            0, :, :h, :w]
    taps.update(rec0=rec0, rec1=rec1, full=full, hw=(h, w))
    return taps


def _names() -> list[str]:
    return torch.load(FIXTURE / "inputs.pt", weights_only=False)["class_names"]


def test_text_features_match_official(parity):
    """The 14 ViLD templates on whole class names through the converted text tower, plus the
    normalised void embedding, reproduce the official text classifier (11 × D)."""
    seg, inputs, official, runs = parity
    _close("text_features", runs[0]["text"], inputs["text_features"][:10], PRE)
    void = F.normalize(seg.classifier.void_embedding.detach(), dim=-1)
    _close("non-object row", void, inputs["text_features"][10:], PRE)


def test_tokenizer_matches_official_ids(parity):
    from ovlab.scan.convert import converted_clip_model

    _, inputs, _, _ = parity
    clip = converted_clip_model(parity[0])
    for t, template in enumerate(inputs["prompt_templates"]):
        ids = clip.tokenizer([template.format(n) for n in inputs["class_names"]])
        assert torch.equal(ids.long(), inputs["prompt_token_ids"][t].long()), template


@pytest.mark.parametrize("n", [0, 1])
def test_segmenter_stages_match_official(parity, n):
    """Swin res2–res5, pixel decoder, every decoder prediction (class embedding and masks)."""
    _, _, official, runs = parity
    r, p = runs[n], f"img{n}."
    for k, feat in enumerate(r["backbone"]):
        _close(f"{p}backbone.res{k + 2}", feat, official[f"{p}backbone.res{k + 2}"], PRE)
    pd = r["pixel_decoder"]
    _close(f"{p}pixel_decoder.mask_features", pd.mask_features, official[f"{p}pixel_decoder.mask_features"], PRE)
    for k in range(3):
        _close(f"{p}multi_scale_features.{k}", pd.multi_scale_features[k],
               official[f"{p}pixel_decoder.multi_scale_features.{k}"], PRE)
    n_pred = len(r["full"])
    assert n_pred == 5, "official DEC_LAYERS=4 means 4 masked-attention layers + the learnable-query prediction"
    class_embeds = r["class_embed"][-n_pred:]          # the last forward computed every prediction
    for k in range(n_pred):
        _close(f"{p}decoder.layer{k}.class_embed", class_embeds[k], official[f"{p}decoder.layer{k}.class_embed"], PRE)
        _close(f"{p}decoder.layer{k}.pred_masks", r["full"][k].masks, official[f"{p}decoder.layer{k}.pred_masks"], PRE)


@pytest.mark.parametrize("n", [0, 1])
def test_clip_tokens_and_sim_match_official(parity, n):
    """Original-CLIP tokens per block, LFE outputs, the memory, cross-attention, the encoder input
    (with γ·ĉ) and output, the calibrated embeddings and the in-vocabulary logits."""
    seg, _, official, runs = parity
    r, p = runs[n], f"img{n}."
    for k in range(5):
        tok = r["blocks"][k]                                        # (1, 1 + L, C)
        tok = tok if tok.shape[0] == 1 else tok.transpose(0, 1)
        _close(f"{p}orig_clip.{k}", tok[:, 1:].transpose(0, 1), official[f"{p}orig_clip.{k}"], PRE)
        _close(f"{p}orig_clip.{k}_cls_token", tok[:, :1], official[f"{p}orig_clip.{k}_cls_token"], PRE)
    for k in range(3):
        _close(f"{p}lfm.{k}.out", r["lfe"][k], official[f"{p}lfm.{k}.out"], PRE)
    _close(f"{p}oriclip_mlp.out", r["memory"], official[f"{p}oriclip_mlp.out"], PRE)
    _close(f"{p}fusion_decoder.tgt", r["fusion"][0], official[f"{p}fusion_decoder.tgt"], PRE)
    _close(f"{p}fusion_decoder.out", r["fusion"][1], official[f"{p}fusion_decoder.out"], PRE)
    _close(f"{p}lightweight_transformer.in", r["encoder"][0], official[f"{p}lightweight_transformer.in"], PRE)
    _close(f"{p}lightweight_transformer.out", r["encoder"][1], official[f"{p}lightweight_transformer.out"], PRE)
    final = r["rec0"]["final"]
    _close(f"{p}sim.query_embeddings_normalized", F.normalize(final.embedding, dim=-1),
           official[f"{p}sim.query_embeddings_normalized"], PRE)
    _close(f"{p}sim.in_vocab_logits", final.logits, official[f"{p}sim.in_vocab_logits"], POST)
    assert float(seg.sim.gamma.detach()) != pytest.approx(0.1), "γ must be the checkpoint's learnable_weight, not the init"


@pytest.mark.parametrize("n", [0, 1])
@pytest.mark.parametrize("cs", [0, 1])
def test_clip_branch_and_ensemble_match_official(parity, n, cs):
    """Binary region masks (exactly), crops, region features and logits, the ensembled scores and
    the final semantic logits, at CS ratio 0 and 1."""
    _, _, official, runs = parity
    r, p = runs[n], f"img{n}."
    h, w = r["hw"]
    rec = r[f"rec{cs}"]
    packed = official[f"{p}clip.bin_masks_packbits"].numpy()
    want = torch.from_numpy(np.unpackbits(packed, axis=-1)[..., :w].astype(bool))
    assert torch.equal(rec["bin_masks"][0], want), f"{p}bin masks: {(rec['bin_masks'][0] != want).sum()} pixels differ"
    assert torch.equal(rec["valid"][0], official[f"{p}clip.valid_flag"])
    crops = rec["crops"][0]
    _close(f"{p}clip.regions_sum", crops.double().sum((1, 2, 3)), official[f"{p}clip.regions_sum"],
           dict(atol=0.05, rtol=1e-5))
    if n == 0:
        _close(f"{p}clip.regions_first1", crops[:1], official[f"{p}clip.regions_first1"], PRE)
    suffix = "" if cs == 0 else "_cs1"
    _close(f"{p}clip.region_features_raw{suffix}", rec["region_features"][0],
           official[f"{p}clip.region_features_raw{suffix}"], PRE)
    _close(f"{p}clip.region_logits_cs{cs}", rec["clip_logits"][0], official[f"{p}clip.region_logits_cs{cs}"][:, :-1], POST)
    _close(f"{p}ensembled_mask_cls_cs{cs}", rec["probabilities"][0], official[f"{p}ensembled_mask_cls_cs{cs}"], POST)
    _close(f"{p}sem_seg_cs{cs}", r[f"sem_seg_cs{cs}"], official[f"{p}sem_seg_cs{cs}"], POST)


def test_fixture_exercises_contextual_shift(parity):
    """Guard: ratio 1 changes the official region features, so the cs1 comparison tests the shift."""
    _, _, official, _ = parity
    for n in (0, 1):
        diff = (official[f"img{n}.clip.region_features_raw"] - official[f"img{n}.clip.region_features_raw_cs1"]).abs()
        assert diff.max() > 1e-2


def test_kit_padding_does_not_reproduce_the_official_backbone(parity):
    """Guard for the ``official`` padding switch: grey padding of the [0, 1] image (the kit's) changes
    img0's backbone features (100 rows padded to 128) beyond the tolerance."""
    seg, inputs, official, _ = parity
    img = inputs["images"][0]
    x = F.pad(img.float()[None] / 255.0, (0, 0, 0, 28), value=128 / 255)
    with torch.no_grad():
        res5 = seg.backbone((x - seg.pixel_mean) / seg.pixel_std)[3]
    assert (res5 - official["img0.backbone.res5"]).abs().max() > 1e-2
