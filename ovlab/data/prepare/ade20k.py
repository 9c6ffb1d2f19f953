"""ADE20K: SceneParsing 150 (``ADEChallengeData2016``) and the full 847-class set (``ADE20K_2021_17_01``).

- **ADE20K-150** (Mask2Former ``datasets/prepare_ade20k_sem_seg.py``): the annotation PNGs hold the
  class id 1..150 and 0 for "other"; the prepared maps hold ``id − 1`` with 0 → 255 (ignore), in
  ``annotations_detectron2/{training,validation}/``. The images are not changed (linked).
- **ADE20K-847** (Mask2Former/SAN/SCAN ``datasets/prepare_ade20k_full_sem_seg.py``): the class id
  of a pixel of ``<name>_seg.png`` is ``(R // 10) · 256 + G`` (ADE20K toolkit ``loadAde20K``); the
  image and that id map are resized so that the short side is 512 when it is longer (cv2, bilinear
  for the image, nearest for the ids; never enlarged), then each id becomes its 847 index (the
  ``ade20k_847`` catalog's ``id`` → ``index``, = Mask2Former's trainId) and every other id 65535.
  Output: ``images_detectron2/<split>/<name>.jpg`` and ``annotations_detectron2/<split>/<name>.tif``
  (uint16). The split is the ``training``/``validation`` folder of the raw tree, else the file name
  (``ADE_train_*`` / ``ADE_val_*``, as the official script decides).
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from ovlab.data.categories import load_categories
from ovlab.data.files import read_image
from ovlab.data.prepare.jobs import Job, PrepareError, PrepareReport, link_folder, lut_apply, require_dir, run_jobs, save_image, save_label

ADE150_LAYOUT = """\
ADEChallengeData2016/
  images/{training,validation}/ADE_*.jpg
  annotations/{training,validation}/ADE_*.png     uint8: class id 1..150, 0 = other
  (or a flat folder: images/*.jpg + annotations/*.png, all taken as --split)
"""
ADE847_LAYOUT = """\
ADE20K_2021_17_01/
  images/ADE/{training,validation}/<scene>/.../ADE_*.jpg
  images/ADE/{training,validation}/<scene>/.../ADE_*_seg.png   RGB: class id = (R // 10) * 256 + G
  (or any folder holding <name>.jpg next to <name>_seg.png)
"""
ADE_SPLITS = ("training", "validation")
SHORT_SIDE = 512  # Mask2Former prepare_ade20k_full_sem_seg.py: max_size = 512 (the short side)
IGNORE_847 = 65535


def convert_ade150(src: Path, out: Path) -> None:
    """One SceneParsing annotation → prepared map (``id − 1``, 0 → 255).

    Raises:
        CorruptFileError: not decodable. ValueError: not a single-channel map or ids above 150.
    """
    v = read_image(src)
    if v.ndim != 2:
        raise ValueError(f"expected a single-channel ADE-150 annotation, got shape {v.shape}")
    v = v.astype(np.int64)
    if v.max(initial=0) > 150:
        raise ValueError(f"ADE-150 ids must be 0..150, found {int(v.max())}")
    lab = np.where(v == 0, 255, v - 1)
    save_label(out, lab)


def ade_full_class_ids(seg_rgb: np.ndarray) -> np.ndarray:
    """``<name>_seg.png`` (H, W, 3) uint8 → (H, W) int32 ADE full class ids ``(R // 10) · 256 + G``.

    Source: ADE20K toolkit ``utils_ade20k.loadAde20K``.

    Raises:
        ValueError: not an RGB image.
    """
    if seg_rgb.ndim != 3 or seg_rgb.shape[2] < 3:
        raise ValueError(f"expected an RGB *_seg.png, got shape {seg_rgb.shape}")
    return (seg_rgb[..., 0].astype(np.int32) // 10) * 256 + seg_rgb[..., 1].astype(np.int32)


def short_side_size(h: int, w: int, short: int = SHORT_SIDE) -> tuple[int, int] | None:
    """New (h, w) with the short side ``short`` when it is longer, else ``None`` (Mask2Former's rule,
    Python's ``round`` on the long side)."""
    if w >= h > short:
        return short, round(w / float(h) * short)
    if h >= w > short:
        return round(h / float(w) * short), short
    return None


@functools.lru_cache(maxsize=1)
def ade847_lut() -> np.ndarray:
    """ADE full class id → 847 index (uint16), 65535 for the ids outside the 847 list."""
    cats = load_categories("ade20k_847")
    lut = np.full(max(c.id for c in cats) + 1, IGNORE_847, np.uint16)
    for c in cats:
        lut[c.id] = c.index
    return lut


def convert_ade847(image: Path, seg: Path, out_image: Path, out_label: Path, short: int) -> None:
    """One ADE20K_2021_17_01 image + ``_seg.png`` → resized JPEG + uint16 847-index TIFF.

    The label is written last: a job is finished only when both files exist.

    Raises:
        CorruptFileError: a file cannot be decoded. ValueError: image and segmentation sizes differ.
    """
    import cv2

    img = read_image(image, "RGB")
    ids = ade_full_class_ids(read_image(seg))
    if img.shape[:2] != ids.shape:
        raise ValueError(f"{image} is {img.shape[1]}x{img.shape[0]} but {seg} is {ids.shape[1]}x{ids.shape[0]}")
    new = short_side_size(*ids.shape, short) if short else None
    if new is not None:
        h, w = new
        img = cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR)
        ids = cv2.resize(ids, (w, h), interpolation=cv2.INTER_NEAREST)
    save_image(out_image, img)
    save_label(out_label, lut_apply(ids, ade847_lut(), IGNORE_847))


def _split_of(path: Path, base: Path) -> str:
    parts = path.relative_to(base).parts
    for s in ADE_SPLITS:
        if s in parts[:-1]:
            return s
    name = path.name
    if name.startswith("ADE_val_"):
        return "validation"
    if name.startswith("ADE_train_"):
        return "training"
    raise PrepareError(f"{path}: cannot tell its split (no training/validation folder, name not ADE_train_*/ADE_val_*)")


def prepare_ade20k_150(src: Path, dst: Path, *, splits=None, workers: int = 1, link: str = "symlink",
                       overwrite: bool = False, progress: bool = True, split: str = "validation") -> PrepareReport:
    """``ADEChallengeData2016`` → ``<dst>/ADEChallengeData2016/annotations_detectron2/<split>/``.

    Raises:
        PrepareError: no annotations folder, or a bad annotation (named).
    """
    src, out = Path(src), Path(dst) / "ADEChallengeData2016"
    ann = require_dir(src / "annotations", "ade20k_150", ADE150_LAYOUT)
    rep = PrepareReport("ade20k_150")
    found = [s for s in ADE_SPLITS if (ann / s).is_dir()]
    pairs = [(s, ann / s, src / "images" / s) for s in found] if found else [(split, ann, src / "images")]
    jobs = []
    for s, adir, idir in pairs:
        if splits and s not in splits:
            continue
        files = sorted(adir.glob("*.png"))
        if not files:
            raise PrepareError(f"ade20k_150: no *.png annotations in {adir}")
        jobs += [Job(convert_ade150, (f, out / "annotations_detectron2" / s / f.name), (f,),
                     (out / "annotations_detectron2" / s / f.name,)) for f in files]
        if idir.is_dir():
            link_folder(idir, out / "images" / s, link, rep)
        rep.outputs.append(str(out / "annotations_detectron2" / s))
    return run_jobs(jobs, rep, workers=workers, overwrite=overwrite, progress=progress)


def prepare_ade20k_847(src: Path, dst: Path, *, splits=None, workers: int = 1, link: str = "symlink",
                       overwrite: bool = False, progress: bool = True, short_side: int = SHORT_SIDE) -> PrepareReport:
    """``ADE20K_2021_17_01`` → ``<dst>/ADE20K_2021_17_01/{images,annotations}_detectron2/<split>/``.

    Args:
        splits: restrict to these (``training``, ``validation``); default both.
        short_side: the resize target (512 as the standard preparation; 0 keeps the full size).

    Raises:
        PrepareError: no ``*_seg.png`` under ``src``, an image without its segmentation or the
            other way round (named), or a file that cannot be decoded.
    """
    src = require_dir(Path(src), "ade20k_847", ADE847_LAYOUT)
    base = src / "images" / "ADE" if (src / "images" / "ADE").is_dir() else src
    out = Path(dst) / "ADE20K_2021_17_01"
    segs = sorted(base.rglob("*_seg.png"))
    if not segs:
        raise PrepareError(f"ade20k_847: no *_seg.png under {base}\nExpected raw layout:\n{ADE847_LAYOUT}")
    rep = PrepareReport("ade20k_847")
    jobs, used = [], set()
    for seg in segs:
        stem = seg.name[: -len("_seg.png")]
        s = _split_of(seg, base)
        if splits and s not in splits:
            continue
        image = seg.with_name(stem + ".jpg")
        oi = out / "images_detectron2" / s / f"{stem}.jpg"
        ol = out / "annotations_detectron2" / s / f"{stem}.tif"
        jobs.append(Job(convert_ade847, (image, seg, oi, ol, short_side), (image, seg), (oi, ol)))
        used.add(s)
    rep.outputs += [str(out / "annotations_detectron2" / s) for s in sorted(used)]
    if short_side != SHORT_SIDE:
        rep.notes.append(f"short side {short_side or 'kept'} instead of the standard {SHORT_SIDE}")
    return run_jobs(jobs, rep, workers=workers, overwrite=overwrite, progress=progress)
