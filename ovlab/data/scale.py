"""Benchmark-scale synthetic data: a COCO-scale panoptic annotation file and an ADE-847-scale
evaluation set, for ``ovlab bench scale`` / ``ovlab bench eval`` (THIS DATA IS SYNTHETIC).

* :func:`make_coco_scale` writes a COCO-panoptic root whose JSON has COCO train2017's size (118,287
  image records, ~1.5 M segments by default) while its pixels are a handful of base images reused by
  symbolic link, so the JSON, the record building and the loader are measured at full scale without
  gigabytes of pixels. Every record is valid: its segments are exactly the base panoptic PNG's.
* :func:`make_ade847_scale` writes ``n`` ground-truth label maps of the prepared ADE20K-847 layout
  (uint16 TIFF, 0..846, 65535 ignore; short side 512 as the standard preparation) with the benchmark's
  images, and a folder of predictions (the ground truth with a fraction of pixels replaced by random
  classes, as 16-bit PNGs), deterministic from a seed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from PIL import Image

COCO_TRAIN_IMAGES = 118_287
"""COCO train2017 image count (the panoptic split has one annotation per image)."""

SEGMENTS_PER_IMAGE = 12.7
"""Mean segments per image of COCO panoptic train2017 (~1.5 M segments / 118 k images)."""


def _id_to_rgb(ids: np.ndarray) -> np.ndarray:
    return np.stack([ids % 256, (ids // 256) % 256, ids // 65536], axis=-1).astype(np.uint8)


def _base_scene(rng: np.random.Generator, n_seg: int, cat_ids: list[int], things: set[int], h: int, w: int):
    """A (h, w) panoptic id map of ``n_seg`` rectangles tiling the image, and its segments_info."""
    cols = int(np.ceil(np.sqrt(n_seg)))
    rows = int(np.ceil(n_seg / cols))
    ids = np.zeros((h, w), dtype=np.int64)
    segs = []
    k = 0
    for r in range(rows):
        for c in range(cols):
            if k == n_seg:
                break
            y0, y1 = r * h // rows, (r + 1) * h // rows
            x0, x1 = c * w // cols, (c + 1) * w // cols
            sid = k + 1
            ids[y0:y1, x0:x1] = sid
            cat = int(rng.choice(cat_ids))
            segs.append({"id": sid, "category_id": cat, "iscrowd": 0, "bbox": [x0, y0, x1 - x0, y1 - y0],
                         "area": int((y1 - y0) * (x1 - x0)), "isthing": int(cat in things)})
            k += 1
    return ids, segs


def make_coco_scale(out: str | Path, *, images: int = COCO_TRAIN_IMAGES, segments_per_image: float = SEGMENTS_PER_IMAGE,
                    bases: int = 16, size: tuple[int, int] = (480, 640), categories: str = "coco_panoptic_133",
                    seed: int = 0, split: str = "train") -> dict:
    """Write a COCO-panoptic root with ``images`` records under ``out`` (see the module docstring).

    Args:
        out: the root (``<split>2017/``, ``panoptic_<split>2017/``, ``annotations/panoptic_<split>2017.json``).
        images: image records (default: COCO train2017's 118,287).
        segments_per_image: mean segments per record (bases get ⌊m⌋ or ⌈m⌉ segments).
        bases: distinct pixel files; record ``i`` links to base ``i % bases``.
        size: (H, W) of the base images, pixels.
        categories: the shipped catalog whose ids the segments use.

    Returns:
        ``{"images": n, "segments": total, "json_bytes": size of the JSON}``.
    """
    from ovlab.data.categories import load_categories

    out = Path(out)
    img_dir, pan_dir, ann_dir = out / f"{split}2017", out / f"panoptic_{split}2017", out / "annotations"
    base_dir = out / "_bases"
    for d in (img_dir, pan_dir, ann_dir, base_dir):
        d.mkdir(parents=True, exist_ok=True)
    cats = load_categories(categories)
    cat_ids = [c.id for c in cats]
    things = {c.id for c in cats if c.isthing}
    rng = np.random.default_rng(seed)
    h, w = size
    lo = int(np.floor(segments_per_image))
    frac = segments_per_image - lo
    base_segs = []
    for b in range(bases):
        n_seg = lo + (1 if b < round(frac * bases) else 0)
        ids, segs = _base_scene(rng, max(n_seg, 1), cat_ids, things, h, w)
        Image.fromarray(_id_to_rgb(ids)).save(base_dir / f"pan_{b}.png")
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(base_dir / f"img_{b}.jpg", quality=80)
        base_segs.append(segs)
    recs, anns, total = [], [], 0
    for i in range(images):
        b = i % bases
        image_id = i + 1
        stem = f"{image_id:012d}"
        for link, target in ((img_dir / f"{stem}.jpg", base_dir / f"img_{b}.jpg"),
                             (pan_dir / f"{stem}.png", base_dir / f"pan_{b}.png")):
            if not link.is_symlink():
                os.symlink(os.path.relpath(target, link.parent), link)
        recs.append({"id": image_id, "file_name": f"{stem}.jpg", "height": h, "width": w})
        segs = [{k: v for k, v in s.items() if k != "isthing"} for s in base_segs[b]]
        anns.append({"image_id": image_id, "file_name": f"{stem}.png", "segments_info": segs})
        total += len(segs)
    doc = {"images": recs, "annotations": anns,
           "categories": [{"id": c.id, "name": c.name, "isthing": int(c.isthing)} for c in cats]}
    path = ann_dir / f"panoptic_{split}2017.json"
    path.write_text(json.dumps(doc))
    return {"images": images, "segments": total, "json_bytes": path.stat().st_size}


def make_ade847_scale(out: str | Path, *, images: int = 2000, short_side: int = 512, num_classes: int = 847,
                      error_rate: float = 0.3, ignore_rate: float = 0.1, distinct: int = 64, seed: int = 0) -> dict:
    """Write ``images`` ADE-847-size label maps in the prepared layout and matching predictions.

    Layout under ``out``: ``ADE20K_2021_17_01/annotations_detectron2/validation/<stem>.tif`` (uint16,
    0..K−1, 65535 ignore), ``ADE20K_2021_17_01/images_detectron2/validation/<stem>.jpg`` (one shared
    grey image by link) and ``predictions/<stem>.png`` (uint16 PNG). Maps are blocky (16-pixel cells, each
    a class; ``ignore_rate`` of the cells ignored, ``error_rate`` predicted as another class, and a 2-pixel
    ignored border around every cell as ADE's unlabelled object outlines); sizes alternate landscape /
    portrait, ``short_side`` × ``short_side``·4/3. ``distinct`` different pairs are drawn and the rest are
    hard links to them (decoding cost is per file; the page cache holds them either way).

    Returns:
        ``{"root": dataset root, "predictions": folder, "images": n}``.
    """
    out = Path(out)
    root = out / "ADE20K_2021_17_01"
    gt_dir = root / "annotations_detectron2" / "validation"
    im_dir = root / "images_detectron2" / "validation"
    pred_dir = out / "predictions"
    for d in (gt_dir, im_dir, pred_dir):
        d.mkdir(parents=True, exist_ok=True)
    long_side = short_side * 4 // 3
    grey = out / "_grey.jpg"
    Image.fromarray(np.full((short_side, long_side, 3), 128, np.uint8)).save(grey)
    rng = np.random.default_rng(seed)
    for i in range(images):
        stem = f"ADE_val_{i + 1:08d}"
        if i < distinct:
            h, w = (short_side, long_side) if i % 2 == 0 else (long_side, short_side)
            ch, cw = h // 16 + 1, w // 16 + 1
            cells = rng.integers(0, num_classes, (ch, cw))
            wrong = np.where(rng.random((ch, cw)) < error_rate, rng.integers(0, num_classes, (ch, cw)), cells)
            ignored = rng.random((ch, cw)) < ignore_rate
            border = np.zeros((16, 16), bool)
            border[:2, :] = border[:, :2] = True
            edge = np.tile(border, (ch, cw))[:h, :w]
            gt = np.where(ignored, 65535, cells).astype(np.uint16).repeat(16, 0).repeat(16, 1)[:h, :w]
            gt[edge] = 65535
            pred = wrong.astype(np.uint16).repeat(16, 0).repeat(16, 1)[:h, :w]
            Image.fromarray(gt).save(gt_dir / f"{stem}.tif")
            Image.fromarray(pred).save(pred_dir / f"{stem}.png")
        else:
            src = f"ADE_val_{i % distinct + 1:08d}"
            for d, suf in ((gt_dir, ".tif"), (pred_dir, ".png")):
                if not (d / f"{stem}{suf}").exists():
                    os.link(d / f"{src}{suf}", d / f"{stem}{suf}")
        link = im_dir / f"{stem}.jpg"
        if not link.is_symlink():
            os.symlink(os.path.relpath(grey, link.parent), link)
    return {"root": str(root), "predictions": str(pred_dir), "images": images}
