"""Ground-truth decoders: raw label files of each layout → contiguous class indices.

Every decoder takes the decoded image array (see :func:`ovlab.data.files.read_image`) and the
benchmark's :class:`~ovlab.data.categories.CategoryList`, and returns an (H, W) int64 map with
values 0..K-1 or the benchmark's ignore label.
"""

from __future__ import annotations

import functools

import numpy as np

from ovlab.data.categories import CategoryList


def identity(raw: np.ndarray, cats: CategoryList) -> np.ndarray:
    """Prepared maps (detectron2 ``annotations_detectron2``): value = index, ignore kept."""
    return _gray(raw).astype(np.int64)


def minus_one(raw: np.ndarray, cats: CategoryList) -> np.ndarray:
    """Raw ADEChallengeData2016 / Context maps: value = id 1..K → index id-1; 0 (and 255) → ignore.

    Raises:
        ValueError: other values above K (the file is not of this benchmark; never dropped silently).
    """
    v = _gray(raw).astype(np.int64)
    bad = (v > len(cats)) & (v != 255)
    if bad.any():
        raise ValueError(f"values {np.unique(v[bad])[:10].tolist()} above the {len(cats)} class ids 1..{len(cats)} "
                         "(0 = other) of this layout: not a label map of this benchmark")
    out = v - 1
    out[(v == 0) | (v > len(cats))] = cats.ignore_label
    return out


def voc20(raw: np.ndarray, cats: CategoryList) -> np.ndarray:
    """VOC ``SegmentationClass`` palette PNG → VOC-20: 1..20 → 0..19; background 0 and void 255 → ignore."""
    v = _gray(raw).astype(np.int64)
    out = np.full(v.shape, cats.ignore_label, np.int64)
    ok = (v >= 1) & (v <= 20)
    out[ok] = v[ok] - 1
    return out


def voc20_background(raw: np.ndarray, cats: CategoryList) -> np.ndarray:
    """VOC palette PNG → PAS-20b (background kept as index 0, objects 1..20, void 255 ignored)."""
    v = _gray(raw).astype(np.int64)
    out = np.full(v.shape, cats.ignore_label, np.int64)
    ok = v <= 20
    out[ok] = v[ok]
    return out


@functools.lru_cache(maxsize=8)
def _id_lut(cats: CategoryList, size: int) -> np.ndarray:
    lut = np.full(size, cats.ignore_label, np.int64)
    for c in cats:
        if 0 <= c.id < size:
            lut[c.id] = c.index
    return lut


def dataset_ids(raw: np.ndarray, cats: CategoryList) -> np.ndarray:
    """Maps that store the dataset's own ids (Cityscapes ``labelIds``): id → index, others → ignore."""
    v = _gray(raw).astype(np.int64)
    return _id_lut(cats, max(int(v.max(initial=0)) + 1, 256))[v]


def ade_full_rgb(raw: np.ndarray, cats: CategoryList) -> np.ndarray:
    """ADE20K_2021_17_01 ``*_seg.png``: class id = (R // 10)·256 + G → 847 index; others/0 → ignore.

    Source: ADE20K toolkit ``loadAde20K`` and MANIFEST §2.3.
    """
    if raw.ndim != 3 or raw.shape[2] < 3:
        raise ValueError(f"expected an RGB *_seg.png, got shape {raw.shape}")
    r = raw[..., 0].astype(np.int64)
    g = raw[..., 1].astype(np.int64)
    ids = (r // 10) * 256 + g
    return _id_lut(cats, 65536)[ids]


def _gray(raw: np.ndarray) -> np.ndarray:
    if raw.ndim == 3:
        raise ValueError(f"expected a single-channel label map, got shape {raw.shape}")
    return raw


DECODERS = {f.__name__: f for f in (identity, minus_one, voc20, voc20_background, dataset_ids, ade_full_rgb)}
