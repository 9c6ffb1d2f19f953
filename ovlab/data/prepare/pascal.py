"""PASCAL: Context 59 / 459 (VOC2010 images, the Context ``.mat`` labels) and VOC 2012 20 / 20b.

- **Context-459** (ov-seg/SAN ``prepare_pcontext_sem_seg_459cls.py``): the ``LabelMap`` of each
  ``trainval/<name>.mat`` of the PASCAL-Context release holds the class id 1..459 (``labels.txt``),
  0 unlabelled; the prepared map holds ``id − 1`` with 0 → 65535, as a uint16 TIFF in
  ``annotations_detectron2/pc459_<split>/``.
- **Context-59**: the same ``LabelMap`` through the 59-class list (``pascal_context_59`` catalog,
  ``pc459_id`` = the class's id in the 459 list, GKC ``register_pascal_context.py`` ``ori_id``);
  the other 400 classes and 0 → 255. PNG in ``annotations_detectron2/pc59_<split>/``.
- **VOC-20 / 20b** (CAT-Seg ``datasets/prepare_voc.py``): ``SegmentationClass`` palette PNGs hold
  0 background, 1..20 the classes, 255 the void boundary. VOC-20 keeps ``value − 1`` for the
  classes and sends background and void to 255 (``annotations_detectron2/<split>/``); VOC-20b
  keeps the values (background = 0, void 255; ``annotations_detectron2_bg/<split>/``). RGB
  colour-coded PNGs are decoded through the standard VOC colour map first.

Splits: VOC2010 ``ImageSets/SegmentationContext/{train,val}.txt`` (mmsegmentation's lists) or else
``ImageSets/Main/{train,val}.txt`` for Context (4998 / 5105 images, the same split), VOC2012
``ImageSets/Segmentation/{train,val}.txt`` for VOC (1464 / 1449); without split files every
label file goes to ``--split``.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from ovlab.data.categories import load_categories
from ovlab.data.files import read_image
from ovlab.data.prepare.jobs import (Job, PrepareReport, link_folder, lut_apply, require_dir, run_jobs,
                                     save_label, split_list)

CONTEXT_LAYOUT = """\
VOCdevkit/VOC2010/
  JPEGImages/<name>.jpg
  ImageSets/Main/{train,val}.txt          (the split lists; optional)
  trainval/<name>.mat                     PASCAL-Context trainval.tar.gz: LabelMap, ids 1..459, 0 unlabelled
                                          (or pass --labels DIR)
"""
VOC_LAYOUT = """\
VOCdevkit/VOC2012/
  JPEGImages/<name>.jpg                   (or images/)
  SegmentationClass/<name>.png            palette PNG: 0 background, 1..20, 255 void
  ImageSets/Segmentation/{train,val}.txt  (the split lists; optional)
"""
IGNORE_459 = 65535


def read_label_mat(path: Path) -> np.ndarray:
    """The ``LabelMap`` of a PASCAL-Context ``.mat`` file (``scipy.io.loadmat``) as int64.

    Raises:
        ValueError: no ``LabelMap`` variable, or not a 2-D map.
    """
    from scipy.io import loadmat

    try:
        mat = loadmat(str(path))
    except (ValueError, TypeError, OSError) as exc:
        raise ValueError(f"cannot read the .mat file ({exc})") from None
    if "LabelMap" not in mat:
        raise ValueError(f"no 'LabelMap' in the .mat file (variables: {sorted(k for k in mat if not k.startswith('__'))})")
    lab = np.asarray(mat["LabelMap"])
    if lab.ndim != 2:
        raise ValueError(f"LabelMap must be 2-D, got shape {lab.shape}")
    return lab.astype(np.int64)


@functools.lru_cache(maxsize=1)
def context59_lut() -> np.ndarray:
    """459 id (0..459) → 59 index, 255 for the other classes and for 0 (uint8)."""
    lut = np.full(460, 255, np.uint8)
    for c in load_categories("pascal_context_59"):
        lut[int(c.extra["pc459_id"])] = c.index
    return lut


def context_459(ids: np.ndarray) -> np.ndarray:
    """Context ids 1..459 → indices 0..458, 0 → 65535.

    Raises:
        ValueError: ids outside 0..459.
    """
    if ids.min(initial=0) < 0 or ids.max(initial=0) > 459:
        raise ValueError(f"PASCAL-Context ids must be 0..459, found {int(ids.min())}..{int(ids.max())}")
    return np.where(ids == 0, IGNORE_459, ids - 1)


def convert_context(src: Path, out59: Path | None, out459: Path | None) -> None:
    """One ``.mat`` → the 59 PNG and/or the 459 TIFF (see the module docstring)."""
    ids = read_label_mat(src)
    full = context_459(ids)
    if out459 is not None:
        save_label(out459, full)
    if out59 is not None:
        save_label(out59, lut_apply(ids, context59_lut(), 255))


def _context(src: Path, dst: Path, which: str, *, splits, workers, link, overwrite, progress, split, labels) -> PrepareReport:
    src = require_dir(Path(src), f"pascal_context_{which}", CONTEXT_LAYOUT)
    mats = Path(labels) if labels else next((d for d in (src / "trainval", src.parent / "trainval", src) if any(d.glob("*.mat"))), src / "trainval")
    require_dir(mats, f"pascal_context_{which}", CONTEXT_LAYOUT)
    out = Path(dst) / "VOCdevkit" / "VOC2010"
    rep = PrepareReport(f"pascal_context_{which}")
    sets = src / "ImageSets" / ("SegmentationContext" if (src / "ImageSets" / "SegmentationContext").is_dir() else "Main")
    groups = {s: split_list(sets / f"{s}.txt") for s in ("train", "val")}
    if all(v is None for v in groups.values()):
        groups = {split: sorted(p.stem for p in mats.glob("*.mat"))}
        rep.notes.append(f"no ImageSets/Main split lists: every .mat goes to {split!r}")
    jobs = []
    for s, names in groups.items():
        if names is None or (splits and s not in splits):
            continue
        d = out / "annotations_detectron2" / f"pc{which}_{s}"
        for n in names:
            o = d / (f"{n}.png" if which == "59" else f"{n}.tif")
            args = (mats / f"{n}.mat", o, None) if which == "59" else (mats / f"{n}.mat", None, o)
            jobs.append(Job(convert_context, args, (mats / f"{n}.mat",), (o,)))
        rep.outputs.append(str(d))
    if (src / "JPEGImages").is_dir():
        link_folder(src / "JPEGImages", out / "JPEGImages", link, rep)
    return run_jobs(jobs, rep, workers=workers, overwrite=overwrite, progress=progress)


def prepare_pascal_context_59(src, dst, *, splits=None, workers=1, link="symlink", overwrite=False, progress=True,
                              split="val", labels=None) -> PrepareReport:
    """VOC2010 + Context ``.mat`` → ``<dst>/VOCdevkit/VOC2010/annotations_detectron2/pc59_<split>/``.

    Raises:
        PrepareError: no ``.mat`` folder, a listed ``.mat`` missing or unreadable (named).
    """
    return _context(src, dst, "59", splits=splits, workers=workers, link=link, overwrite=overwrite,
                    progress=progress, split=split, labels=labels)


def prepare_pascal_context_459(src, dst, *, splits=None, workers=1, link="symlink", overwrite=False, progress=True,
                               split="val", labels=None) -> PrepareReport:
    """VOC2010 + Context ``.mat`` → ``<dst>/VOCdevkit/VOC2010/annotations_detectron2/pc459_<split>/`` (uint16 TIFF).

    Raises:
        PrepareError: as :func:`prepare_pascal_context_59`.
    """
    return _context(src, dst, "459", splits=splits, workers=workers, link=link, overwrite=overwrite,
                    progress=progress, split=split, labels=labels)


@functools.lru_cache(maxsize=1)
def _voc_colours() -> dict[tuple[int, int, int], int]:
    cols = {tuple(c.color): c.index for c in load_categories("pascal_voc_20b")}
    cols[(224, 224, 192)] = 255  # the void boundary colour of the VOC colour map
    return cols


def voc_indices(raw: np.ndarray) -> np.ndarray:
    """A ``SegmentationClass`` PNG as decoded (palette indices, or RGB colours) → (H, W) values 0..20 / 255.

    Raises:
        ValueError: an RGB colour outside the VOC colour map, or palette values outside 0..20 / 255.
    """
    if raw.ndim == 3:
        rgb = raw[..., :3].astype(np.int64)
        key = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
        out = np.full(key.shape, -1, np.int64)
        for col, idx in _voc_colours().items():
            out[key == ((col[0] << 16) | (col[1] << 8) | col[2])] = idx
        if (out < 0).any():
            bad = np.unique(key[out < 0])[:5]
            raise ValueError(f"colours outside the VOC colour map: {[(int(k) >> 16, (int(k) >> 8) & 255, int(k) & 255) for k in bad]}")
        return out
    v = raw.astype(np.int64)
    bad = (v > 20) & (v != 255)
    if bad.any():
        raise ValueError(f"VOC label values must be 0..20 or 255, found {np.unique(v[bad])[:5].tolist()}")
    return v


def voc20(values: np.ndarray) -> np.ndarray:
    """VOC values → VOC-20 (1..20 → 0..19; background 0 and void 255 → 255)."""
    return np.where((values >= 1) & (values <= 20), values - 1, 255)


def convert_voc(src: Path, out: Path, background: bool) -> None:
    """One ``SegmentationClass`` PNG → its VOC-20 (``background=False``) or VOC-20b map."""
    v = voc_indices(read_image(src))
    save_label(out, v if background else voc20(v))


def _voc(src, dst, background: bool, *, splits, workers, link, overwrite, progress, split) -> PrepareReport:
    name = "pascal_voc_20b" if background else "pascal_voc_20"
    src = Path(src)
    seg = require_dir(src / "SegmentationClass", name, VOC_LAYOUT)
    out = Path(dst) / "VOCdevkit" / "VOC2012"
    rep = PrepareReport(name)
    groups = {s: split_list(src / "ImageSets" / "Segmentation" / f"{s}.txt") for s in ("train", "val")}
    if all(v is None for v in groups.values()):
        groups = {split: sorted(p.stem for p in seg.glob("*.png"))}
        rep.notes.append(f"no ImageSets/Segmentation split lists: every label goes to {split!r}")
    folder = "annotations_detectron2_bg" if background else "annotations_detectron2"
    jobs = []
    for s, names in groups.items():
        if names is None or (splits and s not in splits):
            continue
        d = out / folder / s
        jobs += [Job(convert_voc, (seg / f"{n}.png", d / f"{n}.png", background), (seg / f"{n}.png",), (d / f"{n}.png",))
                 for n in names]
        rep.outputs.append(str(d))
    images = next((src / f for f in ("JPEGImages", "images") if (src / f).is_dir()), None)
    if images is not None:
        link_folder(images, out / "JPEGImages", link, rep)
    return run_jobs(jobs, rep, workers=workers, overwrite=overwrite, progress=progress)


def prepare_pascal_voc_20(src, dst, *, splits=None, workers=1, link="symlink", overwrite=False, progress=True,
                          split="val") -> PrepareReport:
    """VOC2012 ``SegmentationClass`` → ``<dst>/VOCdevkit/VOC2012/annotations_detectron2/<split>/`` (background ignored).

    Raises:
        PrepareError: no ``SegmentationClass``, a listed PNG missing or bad (named).
    """
    return _voc(src, dst, False, splits=splits, workers=workers, link=link, overwrite=overwrite, progress=progress, split=split)


def prepare_pascal_voc_20b(src, dst, *, splits=None, workers=1, link="symlink", overwrite=False, progress=True,
                           split="val") -> PrepareReport:
    """VOC2012 ``SegmentationClass`` → ``<dst>/VOCdevkit/VOC2012/annotations_detectron2_bg/<split>/`` (background kept).

    Raises:
        PrepareError: as :func:`prepare_pascal_voc_20`.
    """
    return _voc(src, dst, True, splits=splits, workers=workers, link=link, overwrite=overwrite, progress=progress, split=split)
