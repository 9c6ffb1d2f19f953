"""Swin Transformer backbones for the segmenter (timm's Swin-T/S/B), with res2–res5 at strides 4–32
as Mask2Former uses them (SCAN §4.2: Swin-B, ImageNet-22k, window 12, 384 px).

The blocks, patch embedding, patch merging and relative-position attention are timm's
(``timm.models.swin_transformer``). Two things follow Mask2Former's detectron2 wrapper
(facebookresearch/Mask2Former ``mask2former/modeling/backbone/swin.py``; SCAN ships the same file as
``scan/modeling/backbone/swin.py``) rather than timm's classifier:

- **window padding** (``window_padding``): Mask2Former zero-pads each block's (normed) feature map
  to a multiple of the window size *before* the cyclic shift and builds the shifted-window mask on
  the padded map; timm shifts first and pads after. They agree when a stage's size is a multiple
  of the window and differ when its padding exceeds the shift (⌊window/2⌋): then real tokens share
  a shifted window with padded zeros in Mask2Former's order and with the wrapped-around tokens in
  timm's (Swin-B, window 12, shift 6, a 640×640 input: res2 160 and res4 40 pad 8 → differ; res3 80
  and res5 20 pad 4 → agree).
  ``mask2former`` (default, what a Mask2Former/SCAN checkpoint was trained with) or ``timm``.
  Windows are never shrunk to small feature maps and every odd block shifts by ⌊window/2⌋ (timm's
  ``always_partition``), as Mask2Former.
- **output norms**: one LayerNorm per output (``norm0``..``norm3``) on each stage's output.

Weights: ``weights`` names a local Swin checkpoint (Microsoft's ``swin_base_patch4_window12_384_22k.pth``
or a timm state dict; converted with timm's own ``checkpoint_filter_fn``); nothing is downloaded.
"""

from __future__ import annotations

import os
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ovlab.clip.loading import WeightsNotFoundError

WINDOW_PADDINGS = ("mask2former", "timm")


@dataclass(frozen=True)
class SwinVariant:
    """Architecture numbers of one Swin (Liu et al. 2021, Tab. 1)."""

    embed_dim: int
    depths: tuple[int, ...]
    num_heads: tuple[int, ...]
    window_size: int
    pretrain_img_size: int


#: Swin-T/S/B as Mask2Former configures them (``configs/*/swin/*.yaml``): T and S ImageNet-1k 224
#: window 7; B ImageNet-22k 384 window 12 (SCAN's backbone, SCAN §4.2).
SWIN_VARIANTS: dict[str, SwinVariant] = {
    "swin-t": SwinVariant(96, (2, 2, 6, 2), (3, 6, 12, 24), 7, 224),
    "swin-s": SwinVariant(96, (2, 2, 18, 2), (3, 6, 12, 24), 7, 224),
    "swin-b": SwinVariant(128, (2, 2, 18, 2), (4, 8, 16, 32), 12, 384),
}


def shifted_window_mask(hp: int, wp: int, window: int, shift: int, device=None) -> torch.Tensor:
    """Mask2Former's SW-MSA mask on an (already padded) hp×wp map: (nW, window², window²), 0 within
    a region, −100 across regions (``BasicLayer.forward`` of Mask2Former's ``swin.py``)."""
    img = torch.zeros(1, hp, wp, 1, device=device)
    cnt = 0
    for hs in (slice(0, -window), slice(-window, -shift), slice(-shift, None)):
        for ws in (slice(0, -window), slice(-window, -shift), slice(-shift, None)):
            img[:, hs, ws, :] = cnt
            cnt += 1
    win = img.view(1, hp // window, window, wp // window, window, 1).permute(0, 1, 3, 2, 4, 5)
    win = win.reshape(-1, window * window)
    diff = win[:, None, :] - win[:, :, None]
    return diff.masked_fill(diff != 0, -100.0).masked_fill(diff == 0, 0.0)


def _mask2former_attn(self, x: torch.Tensor) -> torch.Tensor:
    """Window attention of one timm ``SwinTransformerBlock`` in Mask2Former's order: pad to the
    window, then shift, mask built on the padded map. x: (B, H, W, C) normed → (B, H, W, C)."""
    b, h, w, c = x.shape
    ws = int(self.window_size[0])
    shift = int(self.shift_size[0])
    pad_b, pad_r = (ws - h % ws) % ws, (ws - w % ws) % ws
    x = F.pad(x, (0, 0, 0, pad_r, 0, pad_b))
    hp, wp = h + pad_b, w + pad_r
    mask = None
    if shift > 0:
        x = torch.roll(x, shifts=(-shift, -shift), dims=(1, 2))
        mask = shifted_window_mask(hp, wp, ws, shift, device=x.device).to(x.dtype)
    win = x.view(b, hp // ws, ws, wp // ws, ws, c).permute(0, 1, 3, 2, 4, 5).reshape(-1, ws * ws, c)
    out = self.attn(win, mask=mask)
    out = out.view(b, hp // ws, wp // ws, ws, ws, c).permute(0, 1, 3, 2, 4, 5).reshape(b, hp, wp, c)
    if shift > 0:
        out = torch.roll(out, shifts=(shift, shift), dims=(1, 2))
    return out[:, :h, :w, :].contiguous()


class SwinBackbone(nn.Module):
    """timm Swin Transformer → res2..res5 (B, C_i, H/s_i, W/s_i), s = 4, 8, 16, 32, C_i = embed·2^i.

    Args:
        embed_dim, depths, num_heads, window_size: the architecture (:data:`SWIN_VARIANTS`).
        patch_size: patch side [4]. mlp_ratio: [4]. qkv_bias: [true].
        drop_path_rate: stochastic depth (Mask2Former Swin-B 0.3).
        window_padding: one of :data:`WINDOW_PADDINGS` (module docstring).
        weights: local Swin checkpoint file or ``None`` (random init from the torch seed).

    Attributes:
        swin: the timm ``SwinTransformer`` (no classifier head).
        norms: the four output LayerNorms (``norm0..3`` of Mask2Former).
        channels: [C_2, C_3, C_4, C_5].

    Raises:
        ValueError: unknown ``window_padding`` or depths/heads of different lengths.
        WeightsNotFoundError: ``weights`` names a missing file.
        RuntimeError: the checkpoint does not fit the architecture (timm's strict load, head keys
            and Mask2Former's ``norm*`` excepted).

    Shapes: ``forward`` (B, 3, H, W) normalised, H and W multiples of ``patch_size`` → 4 maps.
    """

    def __init__(self, *, embed_dim: int, depths: Sequence[int], num_heads: Sequence[int], window_size: int,
                 patch_size: int = 4, mlp_ratio: float = 4.0, qkv_bias: bool = True, drop_path_rate: float = 0.3,
                 window_padding: str = "mask2former", weights: str | os.PathLike | None = None):
        super().__init__()
        from timm.models.swin_transformer import SwinTransformer

        if window_padding not in WINDOW_PADDINGS:
            raise ValueError(f"swin window_padding must be one of {WINDOW_PADDINGS}, got {window_padding!r}")
        if len(depths) != len(num_heads):
            raise ValueError(f"swin: {len(depths)} depths but {len(num_heads)} head counts")
        self.window_padding = window_padding
        self.swin = SwinTransformer(img_size=window_size * patch_size * 8, patch_size=patch_size, num_classes=0,
                                    embed_dim=embed_dim, depths=tuple(depths), num_heads=tuple(num_heads),
                                    window_size=window_size, always_partition=True, strict_img_size=False,
                                    mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, drop_path_rate=drop_path_rate)
        self.swin.norm = nn.Identity()           # the classifier's final norm: Mask2Former has one per output
        self.channels = [int(embed_dim * 2 ** i) for i in range(len(depths))]
        self.norms = nn.ModuleList(nn.LayerNorm(c) for c in self.channels)
        if window_padding == "mask2former":
            for stage in self.swin.layers:
                for blk in stage.blocks:
                    blk._attn = types.MethodType(_mask2former_attn, blk)
        if weights is not None:
            self.load_pretrained(weights)

    @classmethod
    def from_variant(cls, name: str, **kwargs) -> "SwinBackbone":
        """Build ``swin-t`` / ``swin-s`` / ``swin-b`` (:data:`SWIN_VARIANTS`).

        Raises:
            ValueError: unknown name.
        """
        if name not in SWIN_VARIANTS:
            raise ValueError(f"unknown Swin variant {name!r}; known: {', '.join(SWIN_VARIANTS)}")
        v = SWIN_VARIANTS[name]
        return cls(embed_dim=v.embed_dim, depths=v.depths, num_heads=v.num_heads, window_size=v.window_size, **kwargs)

    def load_pretrained(self, weights: str | os.PathLike) -> None:
        """Load a local ImageNet Swin checkpoint (Microsoft or timm names; timm's ``checkpoint_filter_fn``).

        Raises:
            WeightsNotFoundError: no such file. RuntimeError: missing or unexpected backbone keys.
        """
        from timm.models.swin_transformer import checkpoint_filter_fn

        path = Path(weights).expanduser()
        if not path.is_file():
            raise WeightsNotFoundError(
                f"Swin weights not found at {path}. Put the ImageNet checkpoint there (e.g. Microsoft's "
                f"swin_base_patch4_window12_384_22k.pth for SCAN's Swin-B); nothing is downloaded.")
        sd = torch.load(path, map_location="cpu", weights_only=True)
        sd = checkpoint_filter_fn(sd, self.swin)
        sd = {k: v for k, v in sd.items() if not k.startswith(("head", "norm."))}
        missing, unexpected = self.swin.load_state_dict(sd, strict=False)
        if missing or unexpected:
            raise RuntimeError(f"Swin checkpoint {path} does not fit the architecture: missing {missing[:5]}, "
                               f"unexpected {unexpected[:5]}")

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        x = self.swin.patch_embed(images)                                # (B, H/4, W/4, C) NHWC
        out = []
        for stage, norm in zip(self.swin.layers, self.norms):
            x = stage(x)
            out.append(norm(x).permute(0, 3, 1, 2).contiguous())
        return out
