"""Masked-crop / class-name pairs for SCAN's CLIP fine-tuning (SCAN §3.2 last paragraph; the OVSeg
"masked images dataset" that yongliu20/SCAN ``open_clip_training`` reads as ``coco_proposal_1cap.csv``).

SCAN fine-tunes on OVSeg's 442k pairs (masks of a trained proposal model matched with nouns of the
COCO captions, masked and mean-filled). That file is not shipped; ovlab builds the pairs from the
training set it has, the COCO panoptic ground truth read by :mod:`ovlab.data.coco_panoptic`: every
non-crowd segment of at least ``min_area`` pixels, paired with its class name [INFER; listed in
docs/paper_vs_code.md].

A batch holds, per pair, what the Contextual-Shift CLIP needs (:class:`ovlab.scan.contextual_shift.ContextualShiftCLIP`):
the masked crop (bbox, CLIP-mean fill, bicubic stretch: :func:`ovlab.clip.crops.masked_crops`, as SCAN
``scan/modeling/clip_adapter/utils.py`` ``crop_with_mask``), its region mask at the crop size
(nearest), the natural source image at the CLIP size (the [CLS] substitutes; SCAN's fine-tuning
resizes the source image to 224) and, for the ``original`` source, the unmasked crop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ovlab.clip.crops import masked_crops


@dataclass(frozen=True)
class CropPair:
    """One training pair: segment ``segment`` of record ``record``, labelled ``class_index`` / ``name``."""

    record: int
    segment: int
    class_index: int
    name: str


@dataclass
class CropBatch:
    """A batch of B pairs at the CLIP input size S.

    Attributes:
        crops: (B, 3, S, S) float32 CLIP-normalised masked crops (fill = CLIP mean).
        masks: (B, S, S) bool region masks of the crops.
        natural: (B, 3, S, S) float32 CLIP-normalised source images (bicubic resize).
        unmasked: (B, 3, S, S) the same crops without the fill, or ``None``.
        class_index: (B,) int64 class of each pair.
    """

    crops: torch.Tensor
    masks: torch.Tensor
    natural: torch.Tensor
    unmasked: torch.Tensor | None
    class_index: torch.Tensor


def crop_pairs(records: Sequence, names: Sequence[str], *, min_area: int = 1, skip_crowd: bool = True,
               classes: set[int] | None = None) -> list[CropPair]:
    """Every usable segment of ``records`` as a pair, in record then segment order.

    Args:
        records: :class:`ovlab.data.coco_panoptic.PanopticRecord` list.
        names: class name per contiguous index (the catalog's).
        min_area: smallest ``Segment.area`` in pixels (the JSON's count).
        skip_crowd: drop ``iscrowd`` segments.
        classes: keep only these class indices (``None`` = all).

    Returns:
        the pairs (possibly empty).
    """
    out = []
    for r, rec in enumerate(records):
        for s, seg in enumerate(rec.segments):
            if seg.area < min_area or (skip_crowd and seg.iscrowd):
                continue
            if classes is not None and seg.category_index not in classes:
                continue
            out.append(CropPair(r, s, int(seg.category_index), str(names[seg.category_index])))
    return out


def load_crop_batch(records: Sequence, pairs: Sequence[CropPair], *, size: tuple[int, int],
                    mean: Sequence[float], std: Sequence[float], unmasked: bool = False) -> CropBatch:
    """Decode the images of ``pairs`` (each image once) and cut their crops.

    Args:
        records: the records the pairs index. pairs: B pairs.
        size: (S_h, S_w) CLIP input size. mean, std: CLIP normalisation of [0, 1] RGB.
        unmasked: also return the crops without the mask fill (``original`` substitute).

    Returns:
        a :class:`CropBatch` in the order of ``pairs``.

    Raises:
        CorruptFileError: an image or panoptic PNG cannot be read (names the file).
        ValueError: a segment has no pixel inside the image.
    """
    size = (int(size[0]), int(size[1]))
    b = len(pairs)
    crops = torch.zeros(b, 3, *size)
    masks = torch.zeros(b, *size, dtype=torch.bool)
    natural = torch.zeros(b, 3, *size)
    plain = torch.zeros(b, 3, *size) if unmasked else None
    m_t = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
    s_t = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)
    by_record: dict[int, list[int]] = {}
    for i, p in enumerate(pairs):
        by_record.setdefault(p.record, []).append(i)
    for r, rows in by_record.items():
        rec = records[r]
        img = rec.image()
        seg_masks = rec.masks()
        chosen = np.stack([seg_masks[pairs[i].segment] for i in rows])
        c, boxes = masked_crops(img, chosen, size=size, fill="mean", mean=mean, std=std)
        crops[rows] = c
        if plain is not None:
            plain[rows] = masked_crops(img, chosen, size=size, fill="none", mean=mean, std=std)[0]
        mt = torch.from_numpy(chosen)
        for k, (x0, y0, x1, y1) in enumerate(boxes.tolist()):
            region = mt[k, y0:y1, x0:x1][None, None].float()
            masks[rows[k]] = F.interpolate(region, size=size, mode="nearest")[0, 0] > 0.5
        full = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float()[None] / 255.0
        nat = F.interpolate(full, size=size, mode="bicubic", align_corners=False)[0]
        natural[rows] = ((nat - m_t) / s_t)[None].expand(len(rows), -1, -1, -1)
    return CropBatch(crops, masks, natural, plain, torch.tensor([p.class_index for p in pairs], dtype=torch.int64))
