"""GKC's training augmentation (GKC §4.2; GKC ``detr_panoptic_caption_syn_kd_dataset_mapper.py``).

RandomFlip (horizontal, p = 0.5) → ``ResizeScale(min, max, S, S)`` (scale s ~ U[min, max]; the image
is resized, keeping its aspect ratio, to fit in s·S × s·S) → ``FixedSizeCrop(S)`` (random S×S crop,
then padding to S×S: image with ``pad_value``, masks with 0). Segment masks that become empty are
kept (as in the code). Deterministic given the numpy generator.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def augment(image: torch.Tensor, masks: torch.Tensor, rng: np.random.Generator, *, flip: bool = True,
            scale_min: float = 0.8, scale_max: float = 1.2, crop_size: int = 512,
            pad_value: float = 128.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Augment one image and its segment masks.

    Args:
        image: (3, H, W) float32 in [0, 1].
        masks: (N, H, W) bool.
        rng: the sample's generator (flip, scale, crop offsets are drawn in that order).
        crop_size: S (pixels).
        pad_value: on the 0–255 scale (GKC 128).

    Returns:
        ``(image (3, S, S) float32, masks (N, S, S) bool, valid (S, S) bool)``, ``valid`` False on padding.
    """
    if flip and rng.random() < 0.5:
        image, masks = image.flip(-1), masks.flip(-1)
    h, w = image.shape[-2:]
    s = rng.uniform(scale_min, scale_max)
    factor = min(s * crop_size / h, s * crop_size / w)
    nh, nw = max(1, int(round(h * factor))), max(1, int(round(w * factor)))
    image = F.interpolate(image[None], size=(nh, nw), mode="bilinear", align_corners=False)[0]
    if masks.shape[0]:
        masks = F.interpolate(masks[None].float(), size=(nh, nw), mode="nearest")[0] > 0.5
    else:
        masks = masks.new_zeros((0, nh, nw))
    y0 = int(rng.integers(0, nh - crop_size + 1)) if nh > crop_size else 0
    x0 = int(rng.integers(0, nw - crop_size + 1)) if nw > crop_size else 0
    image = image[:, y0:y0 + crop_size, x0:x0 + crop_size]
    masks = masks[:, y0:y0 + crop_size, x0:x0 + crop_size]
    ch, cw = image.shape[-2:]
    out = torch.full((3, crop_size, crop_size), pad_value / 255.0, dtype=image.dtype)
    out[:, :ch, :cw] = image
    m = torch.zeros((masks.shape[0], crop_size, crop_size), dtype=torch.bool)
    m[:, :ch, :cw] = masks
    valid = torch.zeros((crop_size, crop_size), dtype=torch.bool)
    valid[:ch, :cw] = True
    return out, m, valid
