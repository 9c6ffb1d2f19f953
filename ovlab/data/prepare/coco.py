"""COCO: panoptic → semantic 133 (captions kept) and COCO-Stuff-171 from ``stuffthingmaps``.

- **COCO-133** (Mask2Former ``datasets/prepare_coco_semantic_annos_from_panoptic_annos.py``): every
  segment of the panoptic PNG (id = R + 256·G + 256²·B, panopticapi's ``rgb2id``) gets the
  contiguous index of its category (``coco_panoptic_133`` catalog, detectron2's order); pixels of
  no segment are 255. Crowd segments are labelled too, as in the official script. Output:
  ``panoptic_semseg_{split}2017/<file_name>.png``. The images, the panoptic PNGs and the
  ``annotations/*.json`` (panoptic and, when present, ``captions_{split}2017.json``) are linked or
  copied into the destination so that ``<dst>/coco`` is a complete root for ``ovlab.data.coco_panoptic``.
- **COCO-Stuff-171** (Mask2Former ``datasets/prepare_coco_stuff_164k_sem_seg.py``): the
  ``stuffthingmaps`` PNGs hold the COCO-Stuff id − 1 (0..181, 255 unlabelled; cocostuff README);
  the 171 ids in use map to their index (``coco_stuff_171`` catalog), the 11 unused ids and 255 to
  255. Output: ``stuffthingmaps_detectron2/{split}2017/*.png``.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from ovlab.data.categories import load_categories
from ovlab.data.files import read_image, read_json, rgb_to_id
from ovlab.data.prepare.jobs import (Job, PrepareError, PrepareReport, copy_file, link_folder, lut_apply, require_dir,
                                     run_jobs, save_label)

COCO_LAYOUT = """\
coco/
  {train,val}2017/                        images
  panoptic_{train,val}2017/               panoptic PNGs (id = R + 256*G + 256^2*B)
  annotations/panoptic_{train,val}2017.json
  annotations/captions_{train,val}2017.json   optional, kept
"""
STUFF_LAYOUT = """\
coco/
  {train,val}2017/                        images
  stuffthingmaps/{train,val}2017/*.png    (stuffthingmaps_trainval2017.zip; value = COCO-Stuff id - 1, 255 unlabelled)
"""
SPLITS = ("train", "val")


@functools.lru_cache(maxsize=1)
def _coco133_index() -> dict[int, int]:
    return {c.id: c.index for c in load_categories("coco_panoptic_133")}


def panoptic_to_semantic(panoptic: np.ndarray, segments: list[dict], where: str = "") -> np.ndarray:
    """A COCO panoptic RGB map and its ``segments_info`` → (H, W) uint8 semantic map (0..132, 255).

    Raises:
        ValueError: a segment's ``category_id`` is not one of the 133 (names it).
    """
    ids = rgb_to_id(panoptic)
    index = _coco133_index()
    out = np.full(ids.shape, 255, np.uint8)
    for seg in segments:
        cid = int(seg["category_id"])
        if cid not in index:
            raise ValueError(f"{where}: segment {seg['id']} has category_id {cid}, not a COCO panoptic class")
        out[ids == int(seg["id"])] = index[cid]
    return out


def convert_panoptic(src: Path, out: Path, segments: list[dict]) -> None:
    """One panoptic PNG → its semantic PNG (see :func:`panoptic_to_semantic`)."""
    rgb = read_image(src)
    if rgb.ndim != 3:
        raise ValueError(f"expected an RGB panoptic PNG, got shape {rgb.shape}")
    save_label(out, panoptic_to_semantic(rgb[..., :3], segments, str(src)))


def prepare_coco_133(src: Path, dst: Path, *, splits=None, workers: int = 1, link: str = "symlink",
                     overwrite: bool = False, progress: bool = True) -> PrepareReport:
    """``coco`` with panoptic annotations → ``<dst>/coco/panoptic_semseg_{split}2017/`` (+ links, JSONs).

    Raises:
        PrepareError: no panoptic JSON for any split, a PNG listed in it missing (named), an
            unknown category id.
    """
    src = require_dir(Path(src), "coco_133", COCO_LAYOUT)
    out = Path(dst) / "coco"
    rep = PrepareReport("coco_133")
    jobs = []
    for s in splits or SPLITS:
        pj = src / "annotations" / f"panoptic_{s}2017.json"
        if not pj.is_file():
            if splits:
                raise PrepareError(f"coco_133: {pj} not found\nExpected raw layout:\n{COCO_LAYOUT}")
            continue
        doc = read_json(pj)
        pdir = src / f"panoptic_{s}2017"
        odir = out / f"panoptic_semseg_{s}2017"
        for a in doc.get("annotations", []):
            o = odir / a["file_name"]
            jobs.append(Job(convert_panoptic, (pdir / a["file_name"], o, a["segments_info"]), (pdir / a["file_name"],), (o,)))
        for folder in (f"{s}2017", f"panoptic_{s}2017"):
            if (src / folder).is_dir():
                link_folder(src / folder, out / folder, link, rep)
        copy_file(pj, out / "annotations" / pj.name, rep)
        cap = src / "annotations" / f"captions_{s}2017.json"
        if cap.is_file():
            copy_file(cap, out / "annotations" / cap.name, rep)
        else:
            rep.notes.append(f"no {cap.name} in the source: the caption grounding loss (GKC) will have no captions")
        rep.outputs.append(str(odir))
    if not rep.outputs:
        raise PrepareError(f"coco_133: no annotations/panoptic_{{train,val}}2017.json under {src}\nExpected raw layout:\n{COCO_LAYOUT}")
    return run_jobs(jobs, rep, workers=workers, overwrite=overwrite, progress=progress)


@functools.lru_cache(maxsize=1)
def stuff171_lut() -> np.ndarray:
    """``stuffthingmaps`` value (COCO-Stuff id − 1, 0..255) → 171 index, 255 elsewhere (uint8)."""
    lut = np.full(256, 255, np.uint8)
    for c in load_categories("coco_stuff_171"):
        lut[c.id - 1] = c.index
    return lut


def convert_stuff(src: Path, out: Path) -> None:
    """One ``stuffthingmaps`` PNG → its 171-index PNG."""
    v = read_image(src)
    if v.ndim != 2:
        raise ValueError(f"expected a single-channel stuffthingmaps PNG, got shape {v.shape}")
    save_label(out, lut_apply(v, stuff171_lut(), 255))


def prepare_coco_stuff_171(src: Path, dst: Path, *, splits=None, workers: int = 1, link: str = "symlink",
                           overwrite: bool = False, progress: bool = True) -> PrepareReport:
    """``coco/stuffthingmaps`` → ``<dst>/coco/stuffthingmaps_detectron2/{split}2017/``.

    Raises:
        PrepareError: no ``stuffthingmaps/<split>2017`` folder, or a bad PNG (named).
    """
    src = Path(src)
    maps = src / "stuffthingmaps"
    if not maps.is_dir() and (src / "stuffthingmaps_trainval2017").is_dir():
        maps = src / "stuffthingmaps_trainval2017"
    require_dir(maps, "coco_stuff_171", STUFF_LAYOUT)
    out = Path(dst) / "coco"
    rep = PrepareReport("coco_stuff_171")
    jobs = []
    for s in splits or SPLITS:
        d = maps / f"{s}2017"
        if not d.is_dir():
            if splits:
                raise PrepareError(f"coco_stuff_171: {d} not found\nExpected raw layout:\n{STUFF_LAYOUT}")
            continue
        odir = out / "stuffthingmaps_detectron2" / f"{s}2017"
        jobs += [Job(convert_stuff, (f, odir / f.name), (f,), (odir / f.name,)) for f in sorted(d.glob("*.png"))]
        if (src / f"{s}2017").is_dir():
            link_folder(src / f"{s}2017", out / f"{s}2017", link, rep)
        rep.outputs.append(str(odir))
    return run_jobs(jobs, rep, workers=workers, overwrite=overwrite, progress=progress)
