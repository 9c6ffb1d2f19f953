"""Convert an official SCAN checkpoint (yongliu20/SCAN, detectron2 ``{"model": state_dict}``) into an
ovlab checkpoint, and build the :class:`ovlab.scan.model.ScanSegmenter` it describes.

Key mapping (official → ovlab), every official key consumed or ignored with a reason:

- ``backbone.*`` (Mask2Former's D2SwinTransformer) → ``backbone.swin.*`` (timm's Swin, names via timm's
  own ``checkpoint_filter_fn``: the official ``layers.i.downsample`` is timm's ``layers.{i+1}.downsample``),
  ``backbone.norm{i}`` → ``backbone.norms.{i}``; ``relative_position_index`` buffers are recomputed
  (checked equal, then ignored);
- ``sem_seg_head.pixel_decoder.*`` (MSDeformAttnPixelDecoder) and ``sem_seg_head.predictor.*``
  (masked-attention decoder) → transformers' ``Mask2FormerPixelDecoder`` / ``Mask2FormerTransformerModule``
  names, as transformers' ``convert_mask2former_original_pytorch_checkpoint_to_pytorch.py`` maps
  them (the decoder self-attention's packed ``in_proj`` split into q/k/v); ``predictor.class_embed``
  → SCAN's head (:class:`ovlab.scan.head.ScanClassifier`);
- SIM: ``LFM`` → ``sim.lfe.0``, ``oriclip_mlp.fc1/fc2`` → ``sim.memory_proj.0/1``,
  ``fusion_decoder.multiattn/ln`` → ``sim.cross_attention.attn/norms``, ``lightweight_transformer``
  → ``sim.encoder``, ``learnable_weight`` → ``sim.gamma`` (γ of SCAN Eq. 3);
- ``clip_adapter.non_object_embedding`` → ``classifier.void_embedding``;
- ``clip_adapter.clip_model.*`` → the CLIP (open_clip names; its visual tower is the mask-classifying,
  Contextual-Shift CLIP) and ``clip_adapter.original_clip.*`` → the original visual tower of SIM and of
  the CS [CLS] substitutes; both kept outside the model's ``state_dict`` (frozen).

Ignored: ``criterion.empty_weight`` (the set criterion's void CE weight, a training buffer),
``clip_adapter.pixel_mean/pixel_std`` (CLIP normalisation constants; checked equal to CLIP's).

The architecture is inferred from the tensors' shapes; what shapes cannot tell (attention heads,
SIM's CLIP blocks and σ, CS layers, thresholds) comes from the official config (a detectron2 YAML,
or the parity fixture's ``config.yaml``), else from the official ``configs/scan_vitL.yaml`` values
(:data:`OFFICIAL_DEFAULTS`).
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

CONVERTED_FORMAT = "ovlab-scan-converted/1"

#: What the official ``configs/scan_vitL.yaml`` (yongliu20/SCAN) sets and shapes cannot tell.
OFFICIAL_DEFAULTS: dict[str, Any] = {
    "decoder_heads": 8, "encoder_points": 4, "sim_layers": [12, 18, 24], "sim_sigmas": [9.0, 7.0, 3.0],
    "cs_layers": [1, 3, 5, 7, 9], "cs_ratio": 0.15, "mask_threshold": 0.4, "clip_weight": 0.7,
    "clip_model_name": "ViT-L-14", "pixel_mean": [123.675, 116.28, 103.53], "pixel_std": [58.395, 57.12, 57.375],
    "size_divisibility": 32, "sim_heads": 8, "drop_path_rate": 0.3,
}
CLIP_MEAN_255 = (0.48145466 * 255, 0.4578275 * 255, 0.40821073 * 255)
CLIP_STD_255 = (0.26862954 * 255, 0.26130258 * 255, 0.27577711 * 255)


class ConversionError(ValueError):
    """An official key that is unknown, has an unexpected shape, or cannot be placed (the message names it)."""


@dataclass
class ScanArchitecture:
    """Every number the ovlab SCAN model needs, inferred from an official checkpoint (+ its config).

    Attributes:
        swin: embed_dim, depths, num_heads, window_size, patch_size, mlp_ratio, drop_path_rate.
        hidden_dim, mask_dim, num_queries, decoder_layers (masked-attention layers; the official
            ``DEC_LAYERS`` as given), decoder_heads, ffn_dim, encoder_layers, encoder_ffn_dim,
            encoder_points: the Mask2Former head.
        embed_dim, embed_hidden_dim, embed_layers: SCAN's proposal MLP (D = CLIP joint dim).
        clip: open_clip ``CLIP`` arguments (``embed_dim``, ``vision_cfg``, ``text_cfg``).
        sim: SIM numbers (clip_width, layers, sigmas, cross_attention_layers, heads, encoder_layers,
            encoder_ff).
        cs_layers, cs_ratio, mask_threshold, clip_weight: the official test-time numbers.
        pixel_mean, pixel_std: backbone normalisation (0–255 scale). size_divisibility: padding.
    """

    swin: dict
    hidden_dim: int
    mask_dim: int
    num_queries: int
    decoder_layers: int
    decoder_heads: int
    ffn_dim: int
    encoder_layers: int
    encoder_ffn_dim: int
    encoder_points: int
    embed_dim: int
    embed_hidden_dim: int
    embed_layers: int
    clip: dict
    sim: dict
    cs_layers: list
    cs_ratio: float
    mask_threshold: float
    clip_weight: float
    pixel_mean: list
    pixel_std: list
    size_divisibility: int = 32

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class ConvertedScan:
    """The result of :func:`convert_scan_state_dict`.

    Attributes:
        model: ovlab ``ScanSegmenter.state_dict()`` keys → tensors.
        clip: open_clip ``CLIP`` state dict (text tower + the mask-classifying visual tower).
        original_visual: open_clip ``VisionTransformer`` state dict (SIM's original CLIP).
        architecture: :class:`ScanArchitecture`.
        ignored: official key → reason.
        consumed: official key → ovlab key (``clip.`` / ``original_visual.`` prefixes for the towers).
    """

    model: dict
    clip: dict
    original_visual: dict
    architecture: ScanArchitecture
    ignored: dict = field(default_factory=dict)
    consumed: dict = field(default_factory=dict)

    def checkpoint(self) -> dict:
        """The ovlab checkpoint dict written by ``ovlab convert scan``."""
        return {"format": CONVERTED_FORMAT, "architecture": self.architecture.to_dict(), "model": self.model,
                "clip": self.clip, "original_visual": self.original_visual, "ignored": self.ignored,
                "consumed": self.consumed}


# ------------------------------------------------------------------------------------ config reading
def read_official_config(path: str | os.PathLike | None) -> dict:
    """The official numbers of a config file, as :data:`OFFICIAL_DEFAULTS` keys.

    Accepts a detectron2 YAML (``MODEL: ...``, e.g. yongliu20/SCAN ``configs/scan_vitL.yaml`` or a
    dumped ``config.yaml`` of a run) or the parity fixture's ``config.yaml`` (``fixture:`` +
    ``detectron2_cfg_full:``). ``None`` = the defaults.

    Raises:
        FileNotFoundError: no such file. ConversionError: no ``MODEL`` section.
    """
    out = dict(OFFICIAL_DEFAULTS)
    if path is None:
        return out
    import yaml

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"official SCAN config not found: {p}")
    doc = yaml.load(p.read_text(), Loader=_LenientLoader) or {}
    fixture = doc.get("fixture") or {}
    cfg = doc.get("detectron2_cfg_full", doc)
    model = cfg.get("MODEL")
    if not isinstance(model, dict):
        raise ConversionError(f"{p}: no MODEL section (not a detectron2 / SCAN config)")
    mf, ca = model.get("MASK_FORMER", {}), model.get("CLIP_ADAPTER", {})
    pairs = {"decoder_heads": mf.get("NHEADS"), "sim_layers": model.get("SELECT_ORI_CLIP_ID"),
             "sim_sigmas": model.get("FREQUENCY_SIGMA"), "cs_layers": ca.get("REPLACE_LAYER"),
             "cs_ratio": ca.get("REPLACE_RATIO"), "mask_threshold": ca.get("MASK_THR"),
             "clip_weight": ca.get("CLIP_ENSEMBLE_WEIGHT"), "clip_model_name": ca.get("CLIP_MODEL_NAME"),
             "pixel_mean": model.get("PIXEL_MEAN"), "pixel_std": model.get("PIXEL_STD"),
             "size_divisibility": mf.get("SIZE_DIVISIBILITY"),
             "encoder_points": model.get("SEM_SEG_HEAD", {}).get("DEFORMABLE_TRANSFORMER_ENCODER_N_POINTS"),
             "drop_path_rate": model.get("SWIN", {}).get("DROP_PATH_RATE")}
    out.update({k: v for k, v in pairs.items() if v is not None})
    vision = (fixture.get("clip") or {}).get("vision") or {}
    text = (fixture.get("clip") or {}).get("text") or {}
    if "heads" in vision:
        out["clip_vision_heads"] = int(vision["heads"])
    if "heads" in text:
        out["clip_text_heads"] = int(text["heads"])
    return out


class _LenientLoader:
    """A yaml loader that reads official configs with ``!!python/object/apply:eval`` tags as plain lists."""

    def __new__(cls, stream):
        import yaml

        class Loader(yaml.SafeLoader):
            pass

        Loader.add_multi_constructor("tag:yaml.org,2002:python/", lambda loader, suffix, node: None)
        return Loader(stream)


# ------------------------------------------------------------------------------------ architecture
def _count(sd: dict, pattern: str) -> int:
    rx = re.compile(pattern)
    ids = {int(m.group(1)) for k in sd for m in [rx.match(k)] if m}
    return max(ids) + 1 if ids else 0


def _clip_heads(name: str, width: int, kind: str, cfg: dict) -> int:
    key = f"clip_{kind}_heads"
    if key in cfg:
        return int(cfg[key])
    try:
        import open_clip

        mc = open_clip.get_model_config(name) or {}
        sub = mc.get("vision_cfg" if kind == "vision" else "text_cfg", {})
        if kind == "vision":
            return int(width // int(sub.get("head_width", 64)))
        if "heads" in sub:
            return int(sub["heads"])
    except Exception:  # noqa: BLE001 - fall back to open_clip's own default below
        pass
    return int(width // 64)


def infer_architecture(sd: dict, cfg: dict | None = None) -> ScanArchitecture:
    """Read the architecture off the official state dict's shapes (+ ``cfg`` from :func:`read_official_config`).

    Raises:
        ConversionError: a part the SCAN model needs is absent (names the missing key).
    """
    cfg = dict(OFFICIAL_DEFAULTS) if cfg is None else cfg

    def need(key: str) -> torch.Tensor:
        if key not in sd:
            raise ConversionError(f"official SCAN checkpoint lacks {key!r}")
        return sd[key]

    pe = need("backbone.patch_embed.proj.weight")
    n_stages = _count(sd, r"backbone\.layers\.(\d+)\.")
    depths = [_count(sd, rf"backbone\.layers\.{i}\.blocks\.(\d+)\.") for i in range(n_stages)]
    heads = [int(need(f"backbone.layers.{i}.blocks.0.attn.relative_position_bias_table").shape[1])
             for i in range(n_stages)]
    table = int(need("backbone.layers.0.blocks.0.attn.relative_position_bias_table").shape[0])
    window = (int(round(math.sqrt(table))) + 1) // 2
    fc1 = need("backbone.layers.0.blocks.0.mlp.fc1.weight")
    swin = {"embed_dim": int(pe.shape[0]), "depths": depths, "num_heads": heads, "window_size": window,
            "patch_size": int(pe.shape[-1]), "mlp_ratio": float(fc1.shape[0] / fc1.shape[1]),
            "drop_path_rate": float(cfg["drop_path_rate"])}

    p = "sem_seg_head.predictor."
    hidden = int(need(p + "query_feat.weight").shape[1])
    n_levels = _count(sd, r"sem_seg_head\.pixel_decoder\.input_proj\.(\d+)\.")
    aw = need("sem_seg_head.pixel_decoder.transformer.encoder.layers.0.self_attn.attention_weights.weight")
    points = int(cfg["encoder_points"])
    enc_heads = int(aw.shape[0]) // (n_levels * points)
    if enc_heads != int(cfg["decoder_heads"]):
        raise ConversionError(f"pixel-decoder heads {enc_heads} (from attention_weights {tuple(aw.shape)}, "
                              f"{n_levels} levels × {points} points) differ from the decoder heads "
                              f"{cfg['decoder_heads']}; transformers' Mask2Former uses one head count")
    emb_layers = _count(sd, re.escape(p) + r"class_embed\.layers\.(\d+)\.")
    emb_w0 = need(p + "class_embed.layers.0.weight")
    emb_out = need(p + f"class_embed.layers.{emb_layers - 1}.weight")

    cp = "clip_adapter.clip_model."
    conv1 = need(cp + "visual.conv1.weight")
    v_width, v_patch = int(conv1.shape[0]), int(conv1.shape[-1])
    grid = int(round(math.sqrt(int(need(cp + "visual.positional_embedding").shape[0]) - 1)))
    name = str(cfg["clip_model_name"])
    t_width = int(need(cp + "ln_final.weight").shape[0])
    c_fc = need(cp + "visual.transformer.resblocks.0.mlp.c_fc.weight")
    t_fc = need(cp + "transformer.resblocks.0.mlp.c_fc.weight")
    clip = {"embed_dim": int(need(cp + "text_projection").shape[1]),
            "vision_cfg": {"image_size": grid * v_patch, "patch_size": v_patch, "width": v_width,
                           "layers": _count(sd, re.escape(cp) + r"visual\.transformer\.resblocks\.(\d+)\."),
                           "head_width": v_width // _clip_heads(name, v_width, "vision", cfg),
                           "mlp_ratio": float(c_fc.shape[0] / c_fc.shape[1])},
            "text_cfg": {"context_length": int(need(cp + "positional_embedding").shape[0]),
                         "vocab_size": int(need(cp + "token_embedding.weight").shape[0]), "width": t_width,
                         "heads": _clip_heads(name, t_width, "text", cfg),
                         "layers": _count(sd, re.escape(cp) + r"transformer\.resblocks\.(\d+)\."),
                         "mlp_ratio": float(t_fc.shape[0] / t_fc.shape[1])}}
    sim = {"clip_width": int(need("LFM.conv1.weight").shape[0]) // 2, "layers": [int(i) for i in cfg["sim_layers"]],
           "sigmas": [float(s) for s in cfg["sim_sigmas"]], "heads": int(cfg["sim_heads"]),
           "cross_attention_layers": _count(sd, r"fusion_decoder\.multiattn\.(\d+)\."),
           "encoder_layers": _count(sd, r"lightweight_transformer\.layers\.(\d+)\."),
           "encoder_ff": int(need("lightweight_transformer.layers.0.linear1.weight").shape[0])}
    return ScanArchitecture(
        swin=swin, hidden_dim=hidden, mask_dim=int(need("sem_seg_head.pixel_decoder.mask_features.weight").shape[0]),
        num_queries=int(need(p + "query_feat.weight").shape[0]),
        decoder_layers=_count(sd, re.escape(p) + r"transformer_cross_attention_layers\.(\d+)\."),
        decoder_heads=int(cfg["decoder_heads"]), ffn_dim=int(need(p + "transformer_ffn_layers.0.linear1.weight").shape[0]),
        encoder_layers=_count(sd, r"sem_seg_head\.pixel_decoder\.transformer\.encoder\.layers\.(\d+)\."),
        encoder_ffn_dim=int(need("sem_seg_head.pixel_decoder.transformer.encoder.layers.0.linear1.weight").shape[0]),
        encoder_points=points, embed_dim=int(emb_out.shape[0]), embed_hidden_dim=int(emb_w0.shape[0]),
        embed_layers=emb_layers, clip=clip, sim=sim, cs_layers=[int(i) for i in cfg["cs_layers"]],
        cs_ratio=float(cfg["cs_ratio"]), mask_threshold=float(cfg["mask_threshold"]),
        clip_weight=float(cfg["clip_weight"]), pixel_mean=[float(x) for x in cfg["pixel_mean"]],
        pixel_std=[float(x) for x in cfg["pixel_std"]], size_divisibility=int(cfg["size_divisibility"]))


# ------------------------------------------------------------------------------------ key mapping
_PD = "sem_seg_head.pixel_decoder."
_PR = "sem_seg_head.predictor."
_ENC_SUB = {"norm1": "self_attn_layer_norm", "linear1": "fc1", "linear2": "fc2", "norm2": "final_layer_norm"}
_FFN_SUB = {"linear1": "fc1", "linear2": "fc2", "norm": "final_layer_norm"}

# (regex on the official key, function(match) -> ovlab key); first match wins
_RULES: list[tuple[str, Callable[[re.Match], str]]] = [
    (r"^learnable_weight$", lambda m: "sim.gamma"),
    (r"^backbone\.norm(\d+)\.(weight|bias)$", lambda m: f"backbone.norms.{m[1]}.{m[2]}"),
    (r"^backbone\.layers\.(\d+)\.downsample\.(.+)$", lambda m: f"backbone.swin.layers.{int(m[1]) + 1}.downsample.{m[2]}"),
    (r"^backbone\.((?:patch_embed|layers)\..+)$", lambda m: f"backbone.swin.{m[1]}"),
    (re.escape(_PD) + r"input_proj\.(\d+)\.([01])\.(weight|bias)$",
     lambda m: f"head.pixel_decoder.input_projections.{m[1]}.{m[2]}.{m[3]}"),
    (re.escape(_PD) + r"transformer\.level_embed$", lambda m: "head.pixel_decoder.level_embed"),
    (re.escape(_PD) + r"transformer\.encoder\.layers\.(\d+)\.self_attn\.(.+)$",
     lambda m: f"head.pixel_decoder.encoder.layers.{m[1]}.self_attn.{m[2]}"),
    (re.escape(_PD) + r"transformer\.encoder\.layers\.(\d+)\.(norm1|linear1|linear2|norm2)\.(weight|bias)$",
     lambda m: f"head.pixel_decoder.encoder.layers.{m[1]}.{_ENC_SUB[m[2]]}.{m[3]}"),
    (re.escape(_PD) + r"mask_features\.(weight|bias)$", lambda m: f"head.pixel_decoder.mask_projection.{m[1]}"),
    (re.escape(_PD) + r"(adapter|layer)_(\d+)\.weight$", lambda m: f"head.pixel_decoder.{m[1]}_{m[2]}.0.weight"),
    (re.escape(_PD) + r"(adapter|layer)_(\d+)\.norm\.(weight|bias)$", lambda m: f"head.pixel_decoder.{m[1]}_{m[2]}.1.{m[3]}"),
    (re.escape(_PR) + r"transformer_self_attention_layers\.(\d+)\.self_attn\.out_proj\.(weight|bias)$",
     lambda m: f"head.transformer.decoder.layers.{m[1]}.self_attn.out_proj.{m[2]}"),
    (re.escape(_PR) + r"transformer_self_attention_layers\.(\d+)\.self_attn\.in_proj_(weight|bias)$",
     lambda m: f"head.transformer.decoder.layers.{m[1]}.self_attn.{{q,k,v}}_proj.{m[2]}"),
    (re.escape(_PR) + r"transformer_self_attention_layers\.(\d+)\.norm\.(weight|bias)$",
     lambda m: f"head.transformer.decoder.layers.{m[1]}.self_attn_layer_norm.{m[2]}"),
    (re.escape(_PR) + r"transformer_cross_attention_layers\.(\d+)\.multihead_attn\.(.+)$",
     lambda m: f"head.transformer.decoder.layers.{m[1]}.cross_attn.{m[2]}"),
    (re.escape(_PR) + r"transformer_cross_attention_layers\.(\d+)\.norm\.(weight|bias)$",
     lambda m: f"head.transformer.decoder.layers.{m[1]}.cross_attn_layer_norm.{m[2]}"),
    (re.escape(_PR) + r"transformer_ffn_layers\.(\d+)\.(linear1|linear2|norm)\.(weight|bias)$",
     lambda m: f"head.transformer.decoder.layers.{m[1]}.{_FFN_SUB[m[2]]}.{m[3]}"),
    (re.escape(_PR) + r"decoder_norm\.(weight|bias)$", lambda m: f"head.transformer.decoder.layernorm.{m[1]}"),
    (re.escape(_PR) + r"query_feat\.weight$", lambda m: "head.transformer.queries_features.weight"),
    (re.escape(_PR) + r"query_embed\.weight$", lambda m: "head.transformer.queries_embedder.weight"),
    (re.escape(_PR) + r"level_embed\.weight$", lambda m: "head.transformer.level_embed.weight"),
    (re.escape(_PR) + r"mask_embed\.layers\.(\d+)\.(weight|bias)$",
     lambda m: f"head.transformer.decoder.mask_predictor.mask_embedder.{m[1]}.0.{m[2]}"),
    (re.escape(_PR) + r"class_embed\.layers\.(\d+)\.(weight|bias)$", lambda m: f"classifier.class_embed.layers.{m[1]}.{m[2]}"),
    (r"^clip_adapter\.non_object_embedding$", lambda m: "classifier.void_embedding"),
    (r"^clip_adapter\.clip_model\.(.+)$", lambda m: f"clip.{m[1]}"),
    (r"^clip_adapter\.original_clip\.(.+)$", lambda m: f"original_visual.{m[1]}"),
    (r"^LFM\.(conv[12])\.(weight|bias)$", lambda m: f"sim.lfe.0.{m[1]}.{m[2]}"),
    (r"^oriclip_mlp\.fc([12])\.(weight|bias)$", lambda m: f"sim.memory_proj.{int(m[1]) - 1}.{m[2]}"),
    (r"^fusion_decoder\.multiattn\.(\d+)\.(.+)$", lambda m: f"sim.cross_attention.attn.{m[1]}.{m[2]}"),
    (r"^fusion_decoder\.ln\.(\d+)\.(weight|bias)$", lambda m: f"sim.cross_attention.norms.{m[1]}.{m[2]}"),
    (r"^lightweight_transformer\.layers\.(\d+)\.(.+)$", lambda m: f"sim.encoder.layers.{m[1]}.{m[2]}"),
]


def _ignore_reason(key: str, value: torch.Tensor, arch: ScanArchitecture) -> str | None:
    if key == "criterion.empty_weight":
        return "set-criterion buffer (void-class CE weight); training only"
    if key == "clip_adapter.clip_model.visual.mask_embedding":
        return "OVSeg mask-prompt embedding merged by tools/replace_clip.py; SCAN's forward never reads it"
    if key.endswith("attn.relative_position_index"):
        from timm.models.swin_transformer import get_relative_position_index

        w = arch.swin["window_size"]
        if not torch.equal(value.long(), get_relative_position_index(w, w).long()):
            raise ConversionError(f"{key}: relative_position_index differs from the standard Swin index for window {w}")
        return "Swin buffer recomputed by timm (checked equal)"
    if key in ("clip_adapter.pixel_mean", "clip_adapter.pixel_std"):
        ref = CLIP_MEAN_255 if key.endswith("mean") else CLIP_STD_255
        if not torch.allclose(value.flatten().float(), torch.tensor(ref), atol=1e-3):
            raise ConversionError(f"{key}: {value.flatten().tolist()} is not CLIP's normalisation × 255")
        return "CLIP normalisation constant (checked equal to CLIP's)"
    return None


def convert_scan_state_dict(official: dict, config: dict | None = None) -> ConvertedScan:
    """Map an official SCAN state dict onto ovlab's modules.

    Args:
        official: ``torch.load(SCAN.pth)["model"]`` (a bare state dict, or a ``{"model": ...}`` dict).
        config: :func:`read_official_config` output (``None`` = :data:`OFFICIAL_DEFAULTS`).

    Returns:
        :class:`ConvertedScan` (the ovlab model's keys are checked against a freshly built model:
        every one filled, every shape equal).

    Raises:
        ConversionError: an unknown official key, a shape mismatch or an ovlab key left unfilled
            (each names the key).
    """
    sd = official.get("model", official) if isinstance(official, dict) else official
    arch = infer_architecture(sd, config)
    model, clip, orig, ignored, consumed = {}, {}, {}, {}, {}
    for key, value in sd.items():
        reason = _ignore_reason(key, value, arch)
        if reason is not None:
            ignored[key] = reason
            continue
        for pattern, target in _RULES:
            m = re.match(pattern, key)
            if m:
                new = target(m)
                break
        else:
            raise ConversionError(f"unknown official SCAN key {key!r} {tuple(value.shape)}: no ovlab module takes it")
        if "{q,k,v}" in new:
            parts = value.chunk(3, dim=0)
            for part, name in zip(parts, "qkv"):
                model[new.replace("{q,k,v}", name)] = part.clone()
            consumed[key] = new
            continue
        if new.startswith("clip."):
            clip[new[5:]] = value
        elif new.startswith("original_visual."):
            orig[new[16:]] = value
        else:
            model[new] = value
        consumed[key] = new
    out = ConvertedScan(model, clip, orig, arch, ignored, consumed)
    _check_against_model(out)
    return out


def _check_against_model(conv: ConvertedScan) -> None:
    from ovlab.scan.model import build_converted_segmenter

    ref = build_converted_segmenter(conv.architecture, load=None)
    _compare("model", conv.model, ref.state_dict(), conv.consumed)
    _compare("clip", conv.clip, ref.clip_model.state_dict(), conv.consumed)
    _compare("original_visual", conv.original_visual, ref.clip_visual.state_dict(), conv.consumed)


def _compare(part: str, got: dict, want: dict, consumed: dict) -> None:
    back = {v: k for k, v in consumed.items()}
    for k, v in got.items():
        if k not in want:
            raise ConversionError(f"official key {back.get(k, back.get(f'{part}.{k}', k))!r} maps to {part}.{k}, "
                                  f"which the ovlab model does not have")
        if tuple(v.shape) != tuple(want[k].shape):
            raise ConversionError(f"shape mismatch for official key {back.get(k, back.get(f'{part}.{k}', k))!r}: "
                                  f"{tuple(v.shape)} vs ovlab {part}.{k} {tuple(want[k].shape)}")
    missing = [k for k in want if k not in got]
    if missing:
        raise ConversionError(f"the official checkpoint leaves ovlab {part} keys unfilled: {missing[:8]}"
                              f"{' ...' if len(missing) > 8 else ''}")


def load_official_checkpoint(path: str | os.PathLike) -> dict:
    """``torch.load`` an official SCAN checkpoint (``{"model": ...}`` or a bare state dict) on CPU.

    Raises:
        FileNotFoundError: naming the path and where the released weights come from.
    """
    p = Path(path).expanduser()
    if not p.is_file():
        raise FileNotFoundError(f"SCAN checkpoint not found: {p}. Download the released SCAN weights "
                                f"(yongliu20/SCAN README) on a machine with internet and put them there.")
    obj = torch.load(p, map_location="cpu", weights_only=False)
    return obj.get("model", obj) if isinstance(obj, dict) else obj


def merge_clip_checkpoint(conv: ConvertedScan, clip_path: str | os.PathLike) -> None:
    """Replace the mask-classifying CLIP by the released CS-fine-tuned CLIP file, as yongliu20/SCAN
    ``tools/replace_clip.py`` does: from its ``state_dict`` the keys containing ``clip_model``
    (``module.clip_model.`` stripped) replace ``clip_adapter.clip_model.*``; a file in plain open_clip
    names (``module.`` stripped) is taken whole. ``visual.mask_embedding`` (OVSeg's mask prompt,
    unused by SCAN) and, in the ``clip_model`` layout, keys without ``clip_model`` are recorded as
    ignored (``conv.ignored``).

    Raises:
        FileNotFoundError: no file. ConversionError: a key the CLIP lacks, or a shape mismatch (named).
    """
    p = Path(clip_path).expanduser()
    if not p.is_file():
        raise FileNotFoundError(f"CS fine-tuned CLIP not found: {p} (SCAN's release; nothing is downloaded)")
    obj = torch.load(p, map_location="cpu", weights_only=False)
    sd = obj.get("state_dict", obj) if isinstance(obj, dict) else obj
    if any("clip_model." in k for k in sd):
        new = {}
        for k, v in sd.items():
            if "clip_model." in k:
                new[k.split("clip_model.", 1)[1]] = v
            else:
                conv.ignored[f"{p.name}:{k}"] = "not a clip_model key (tools/replace_clip.py skips it)"
        sd = new
    else:
        sd = {k[7:] if k.startswith("module.") else k: v for k, v in sd.items()}
    for k, v in sd.items():
        if k == "visual.mask_embedding":
            conv.ignored[f"{p.name}:{k}"] = "OVSeg mask-prompt embedding; SCAN's forward never reads it"
            continue
        if k not in conv.clip:
            raise ConversionError(f"CLIP file {p}: key {k!r} is not in the checkpoint's CLIP")
        if tuple(v.shape) != tuple(conv.clip[k].shape):
            raise ConversionError(f"CLIP file {p}: shape mismatch for {k!r}: {tuple(v.shape)} vs {tuple(conv.clip[k].shape)}")
        conv.clip[k] = v
        conv.consumed[f"{p.name}:{k}"] = f"clip.{k}"


def converted_clip_model(seg, *, source: str | None = None):
    """The :class:`ovlab.clip.ClipModel` around a converted segmenter's CLIP (text encoding with
    open_clip's ``SimpleTokenizer``, the BPE SCAN's bundled open_clip uses; CLIP normalisation).

    Args:
        seg: a :class:`ovlab.scan.model.ScanSegmenter` from :func:`ovlab.scan.model.build_converted_segmenter`.
        source: the checkpoint path (recorded as the weights' identity).

    Raises:
        ValueError: ``seg`` carries no converted CLIP.
    """
    import open_clip

    from ovlab.clip.crops import CLIP_MEAN, CLIP_STD
    from ovlab.clip.loading import ClipModel

    clip = seg.clip_model
    if clip is None:
        raise ValueError("this segmenter has no converted CLIP (build it with build_converted_segmenter)")
    size = clip.visual.image_size
    size = tuple(size) if isinstance(size, (tuple, list)) else (int(size), int(size))
    tok = open_clip.tokenizer.SimpleTokenizer(context_length=int(clip.positional_embedding.shape[0]))
    path = Path(source) if source else None
    return ClipModel(model=clip, name="scan-converted", pretrained=str(source) if source else "scan-converted",
                     checkpoint=path, untrained=False, seed=None, image_size=size, mean=CLIP_MEAN, std=CLIP_STD,
                     interpolation="bicubic", resize_mode="squash", quick_gelu=False, preprocess=None, tokenizer=tok,
                     device=next(clip.parameters()).device)
