"""Masked crops δ(I, M): the CLIP input of the two-stage methods.

SCAN / OVSeg (δ of SCAN Eq. 4, §3.2; adapted from SCAN ``scan/modeling/clip_adapter/adapter.py``
and ``utils.py`` ``crop_with_mask``): bbox of the mask (expand ratio 1.0), crop the 0–255 image, fill
outside the mask with the CLIP mean × 255, normalise, bicubic resize to the model size ignoring
aspect. GKC KD teacher (GKC §3.2; GKC ``detr_panoptic_caption_syn_kd_dataset_mapper.py``): fill grey
(128, 128, 128), crop to the bbox, bicubic resize ignoring aspect, normalise. GKC synonym score
code (GKC Eq. 1; GKC ``syn_CLIP_sim.py``): the raw bbox crop (no fill) with the
model's standard preprocessing (short side resized, centre crop). Bicubic resizing and per-channel
normalisation are both linear, so their order does not matter; no clamping is applied.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
FILLS = ("mean", "grey", "none")
RESIZES = ("stretch", "shortest")


def mask_bbox(mask: np.ndarray | torch.Tensor, *, exclusive_max_quirk: bool = False) -> tuple[int, int, int, int]:
    """Tight box of a binary mask as ``(x0, y0, x1, y1)`` with exclusive ends (pixels).

    Args:
        mask: (H, W) bool.
        exclusive_max_quirk: reproduce GKC's mapper, which uses the max index as an exclusive end
            and so loses the last row and column (GKC ``detr_panoptic_caption_syn_kd_dataset_mapper.py``);
            never smaller than 1 px.

    Raises:
        ValueError: the mask is empty.
    """
    m = torch.as_tensor(np.asarray(mask) if not isinstance(mask, torch.Tensor) else mask).bool()
    ys = torch.nonzero(m.any(dim=1)).flatten()
    xs = torch.nonzero(m.any(dim=0)).flatten()
    if len(ys) == 0:
        raise ValueError("mask_bbox: empty mask")
    x0, x1, y0, y1 = int(xs[0]), int(xs[-1]) + 1, int(ys[0]), int(ys[-1]) + 1
    if exclusive_max_quirk:
        x1, y1 = max(x0 + 1, x1 - 1), max(y0 + 1, y1 - 1)
    return x0, y0, x1, y1


def expand_bbox(box: Sequence[int], ratio: float, height: int, width: int) -> tuple[int, int, int, int]:
    """Scale a box about its centre by ``ratio`` and clip it to the image; exclusive ends, ≥ 1 px."""
    x0, y0, x1, y1 = box
    if ratio == 1.0:
        return int(x0), int(y0), int(x1), int(y1)
    cx, cy, w, h = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) * ratio, (y1 - y0) * ratio
    nx0, ny0 = max(0, int(np.floor(cx - w / 2))), max(0, int(np.floor(cy - h / 2)))
    nx1, ny1 = min(width, int(np.ceil(cx + w / 2))), min(height, int(np.ceil(cy + h / 2)))
    return nx0, ny0, max(nx0 + 1, nx1), max(ny0 + 1, ny1)


def _as_chw(image) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(image) if not isinstance(image, torch.Tensor) else image)
    if t.dim() != 3:
        raise ValueError(f"image must be (H, W, 3) or (3, H, W), got shape {tuple(t.shape)}")
    if t.shape[0] != 3 and t.shape[-1] == 3:
        t = t.permute(2, 0, 1)
    return t.float()


def _resize(crop: torch.Tensor, size: tuple[int, int], mode: str) -> torch.Tensor:
    if mode == "stretch":
        return F.interpolate(crop[None], size=size, mode="bicubic", align_corners=False)[0]
    h, w = crop.shape[-2:]
    s = max(size[0] / h, size[1] / w)  # short side to the target, keep aspect (CLIP preprocess)
    nh, nw = max(size[0], round(h * s)), max(size[1], round(w * s))
    r = F.interpolate(crop[None], size=(nh, nw), mode="bicubic", align_corners=False)[0]
    top, left = int(round((nh - size[0]) / 2.0)), int(round((nw - size[1]) / 2.0))
    return r[:, top:top + size[0], left:left + size[1]]


def masked_crops(
    image,
    masks,
    *,
    size: int | tuple[int, int] = 224,
    fill: str = "mean",
    expand: float = 1.0,
    resize: str = "stretch",
    mean: Sequence[float] = CLIP_MEAN,
    std: Sequence[float] = CLIP_STD,
    normalize: bool = True,
    exclusive_max_quirk: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Batched masked crops of one image.

    Args:
        image: (H, W, 3) or (3, H, W) RGB in 0–255 (uint8 or float; numpy or torch).
        masks: (M, H, W) bool, one per crop.
        size: output side (or (h, w)) in pixels, e.g. ``clip.image_size``.
        fill: outside the mask: ``mean`` = CLIP mean × 255 (SCAN), ``grey`` = 128 (GKC KD), ``none`` =
            keep the pixels (a plain bbox crop, GKC synonym-score code).
        expand: bbox expand ratio about its centre (1.0 = tight).
        resize: ``stretch`` = bicubic to ``size`` ignoring aspect (SCAN, GKC KD); ``shortest`` =
            bicubic short side to ``size`` then centre crop (CLIP's standard preprocess).
        mean, std: normalisation (the model's, see :class:`ovlab.clip.ClipModel`).
        normalize: apply ``(x / 255 - mean) / std``; else return values in 0–1.
        exclusive_max_quirk: see :func:`mask_bbox`.

    Returns:
        ``(crops, boxes)``: (M, 3, h, w) float32 and (M, 4) int64 ``x0, y0, x1, y1`` (exclusive).

    Raises:
        ValueError: bad shapes, an empty mask (names its index), unknown ``fill`` / ``resize``.
    """
    if fill not in FILLS:
        raise ValueError(f"fill must be one of {FILLS}, got {fill!r}")
    if resize not in RESIZES:
        raise ValueError(f"resize must be one of {RESIZES}, got {resize!r}")
    img = _as_chw(image)
    m = torch.as_tensor(np.asarray(masks) if not isinstance(masks, torch.Tensor) else masks).bool()
    if m.dim() != 3 or tuple(m.shape[-2:]) != tuple(img.shape[-2:]):
        raise ValueError(f"masks must be (M, H, W) with H, W = {tuple(img.shape[-2:])}, got {tuple(m.shape)}")
    out_size = (size, size) if isinstance(size, int) else tuple(size)
    h, w = img.shape[-2:]
    dev = img.device  # everything on the image's device: no host round trips on CUDA
    m = m.to(dev)
    fill_value = (torch.tensor([c * 255.0 for c in mean], device=dev) if fill == "mean"
                  else torch.full((3,), 128.0, device=dev))
    crops, boxes = [], []
    for k in range(m.shape[0]):
        if not m[k].any():
            raise ValueError(f"masked_crops: mask {k} is empty")
        x0, y0, x1, y1 = expand_bbox(mask_bbox(m[k], exclusive_max_quirk=exclusive_max_quirk), expand, h, w)
        crop = img[:, y0:y1, x0:x1]
        if fill != "none":
            crop = torch.where(m[k, y0:y1, x0:x1][None], crop, fill_value.view(3, 1, 1))
        crops.append(_resize(crop, out_size, resize))
        boxes.append((x0, y0, x1, y1))
    if not crops:
        return torch.zeros(0, 3, *out_size, device=dev), torch.zeros(0, 4, dtype=torch.int64)
    x = torch.stack(crops) / 255.0
    if normalize:
        x = (x - torch.tensor(mean, device=dev).view(1, 3, 1, 1)) / torch.tensor(std, device=dev).view(1, 3, 1, 1)
    return x.float(), torch.tensor(boxes, dtype=torch.int64)
