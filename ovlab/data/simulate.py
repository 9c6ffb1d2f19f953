"""Simulated benchmarks in the REAL layouts with the REAL vocabularies (the ``paper-smoke`` profile's data).

THIS DATA IS SYNTHETIC (scenes drawn by :mod:`ovlab.data.procedural`'s renderer). It exists so that
the ``paper`` profile's code paths run end to end on a CPU, reading exactly the files the real
datasets have, through the real readers (:mod:`ovlab.data.coco_panoptic`, :mod:`ovlab.data.benchmarks`,
:mod:`ovlab.data.vipseg`, :mod:`ovlab.physical.data`) and the real preparations
(:mod:`ovlab.data.prepare`). Numbers measured on it check the pipeline, not the methods.

:func:`make_simulated` writes the *raw downloads* under ``<out>`` (= ``$DETECTRON2_DATASETS``), then
runs the real ``ovlab data prepare`` of every dataset in place (``--src $D/<dataset> --dst $D``), so
the prepared files (ADE-847 and PC-459 uint16 TIFFs, ADE-150 / PC-59 / VOC ``annotations_detectron2``
PNGs, Cityscapes ``labelTrainIds``, COCO ``panoptic_semseg`` and ``stuffthingmaps_detectron2``, VIPSeg
``semantic``) are what the preparation code makes of them::

    coco/{train,val}2017/<12 digits>.jpg                   images
    coco/panoptic_{train,val}2017/<12 digits>.png          panoptic PNGs (id = R + 256 G + 256² B)
    coco/annotations/panoptic_{train,val}2017.json         all 133 categories; every one appears in train
    coco/annotations/captions_{train,val}2017.json         5 captions per image
    coco/stuffthingmaps/{train,val}2017/*.png              COCO-Stuff ids − 1 (the same scenes, 171 vocabulary)
    ADEChallengeData2016/{images,annotations}/validation/ADE_val_*.{jpg,png}     ids 1..150, 0 other
    ADE20K_2021_17_01/images/ADE/validation/<scene>/ADE_val_*{.jpg,_seg.png}      id = (R // 10)·256 + G
    VOCdevkit/VOC2010/{JPEGImages,trainval/*.mat,ImageSets/Main/val.txt}          Context LabelMap ids 1..459
    VOCdevkit/VOC2012/{JPEGImages,SegmentationClass,ImageSets/Segmentation/val.txt}  VOC palette PNGs
    cityscapes/{leftImg8bit,gtFine}/val/<city>/*_{leftImg8bit,gtFine_labelIds}.png
    VIPSeg/VIPSeg_720P/...                                  :func:`ovlab.data.procedural` videos (124 classes)

Every class of a benchmark's catalog is drawn in turn (a seeded permutation, cycled), so over the
COCO training split all 133 classes appear (GKC trains on all of them, defect 1 of issue 14), and
each evaluation image shows several classes of its own vocabulary. Things are laid out side by side
so that none is fully hidden. Deterministic from the seed.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ovlab.atomic import write_bytes, write_json, write_text
from ovlab.data.categories import Category, CategoryList, load_categories
from ovlab.data.files import id_to_rgb
from ovlab.data.procedural import EmbeddedSpec, _bbox, _captions, _jpg_bytes, _outline, _png_bytes, _render, _Thing, _vipseg

SIMULATED_NOTE = (
    "SIMULATED DATA made by ovlab.data.simulate (synthetic scenes in the real datasets' layouts and "
    "vocabularies, not photographs). Numbers measured on it check the pipeline, not the methods."
)

BENCHMARK_FOLDERS = {
    "coco_133": "coco", "coco_stuff_171": "coco", "ade20k_150": "ADEChallengeData2016",
    "ade20k_847": "ADE20K_2021_17_01", "pascal_context_59": "VOCdevkit/VOC2010",
    "pascal_context_459": "VOCdevkit/VOC2010", "pascal_voc_20": "VOCdevkit/VOC2012",
    "pascal_voc_20b": "VOCdevkit/VOC2012", "cityscapes_19": "cityscapes", "vipseg": "VIPSeg",
}
"""The raw folder of each preparation under the root (each is prepared in place)."""


@dataclass(frozen=True)
class SimulateSpec:
    """Sizes of the simulated datasets.

    Attributes:
        coco_train: COCO training images (enough that every one of the 133 classes appears:
            3 stuff bands and 4 things per image → at least 18 images).
        coco_val: COCO validation images.
        eval_images: validation images of every other benchmark.
        height, width: image size in pixels (Cityscapes: ``height`` × 2·``height``).
        videos_train, videos_val, frames: VIPSeg videos per split and frames per video.
    """

    coco_train: int = 20
    coco_val: int = 2
    eval_images: int = 2
    height: int = 160
    width: int = 192
    videos_train: int = 2
    videos_val: int = 1
    frames: int = 4


def _colour(cat: Category) -> Category:
    """The category with a colour of its own when the catalog has none (black)."""
    if tuple(cat.color) != (0, 0, 0):
        return cat
    h = hashlib.sha256(cat.name.encode()).digest()
    return dataclasses.replace(cat, color=(40 + h[0] % 180, 40 + h[1] % 180, 40 + h[2] % 180))


class _Cycle:
    """Draws classes from a seeded permutation of a pool, in turn (every class before any repeats)."""

    def __init__(self, pool: list[Category], rng: np.random.Generator):
        self.pool = [pool[i] for i in rng.permutation(len(pool))]
        self.k = 0

    def take(self, n: int) -> list[Category]:
        out = []
        while len(out) < n and self.pool:
            c = self.pool[self.k % len(self.pool)]
            self.k += 1
            if c not in out:
                out.append(c)
        return out


def _scene(rng: np.random.Generator, bands: list[Category], things: list[Category], h: int, w: int):
    """Render ``bands`` (wavy stuff bands, top to bottom) and ``things`` (side by side, never fully
    hidden). Returns ``(image (h, w, 3) uint8, [(category, mask (h, w) bool, instance k)])`` with a
    one-pixel void outline removed from every thing's and its neighbours' masks (void = no mask)."""
    bands, things = [_colour(c) for c in bands], [_colour(c) for c in things]
    placed = []
    n = max(len(things), 1)
    for j, cat in enumerate(things):
        rx = float(rng.uniform(0.30, 0.42) * w / n)
        ry = float(rng.uniform(0.18, 0.28) * h)
        cx = (j + 0.5) * w / n
        cy = float(rng.uniform(0.45 * h, 0.7 * h))
        placed.append(_Thing(cat, cy, cx, ry, rx))
    img, stuff_masks, thing_masks = _render(bands, placed, h, w, rng, phase=float(rng.uniform(0, 2 * np.pi)))
    void = np.zeros((h, w), dtype=bool)
    for _, m in thing_masks:
        void |= _outline(m)
    segs = [(c, m & ~void, 0) for c, m in stuff_masks]
    segs += [(th.cat, m & ~void, k + 1) for k, (th, m) in enumerate(thing_masks)]
    return img, [(c, m, k) for c, m, k in segs if m.sum() >= 30]


def _pools(cats: CategoryList) -> tuple[list[Category], list[Category]]:
    stuff = [c for c in cats if not c.isthing]
    things = [c for c in cats if c.isthing]
    return stuff, things


# ---- COCO panoptic 133 (+ captions) and COCO-Stuff-171 ------------------------------------------

def _stuff171_id(cat: Category, by_name: dict[str, Category]) -> int:
    """COCO-Stuff-171 id of a COCO-panoptic class: the same class, or the stuff class a ``-merged``
    panoptic class was merged from first (``sky-other-merged`` → ``sky-other``, ``tree-merged`` → ``tree``).

    Raises:
        KeyError: no such COCO-Stuff class (names the panoptic class).
    """
    n = cat.name
    for cand in (n, n.replace("-merged", ""), n.replace("-merged", "") + "-other", n.replace("-other-merged", "-other")):
        if cand in by_name:
            return by_name[cand].id
    raise KeyError(f"COCO panoptic class {n!r} has no COCO-Stuff-171 counterpart")


def _coco(root: Path, spec: SimulateSpec, seed: int) -> dict:
    from ovlab.data.names import normalize_class_name

    cats = load_categories("coco_panoptic_133")
    stuff171 = load_categories("coco_stuff_171").by_name()
    stuff_pool, thing_pool = _pools(cats)
    summary = {}
    for split, n, code in (("train", spec.coco_train, 0), ("val", spec.coco_val, 1)):
        rng = np.random.default_rng([seed, 10 + code])
        stuff_cycle, thing_cycle = _Cycle(stuff_pool, rng), _Cycle(thing_pool, rng)
        images, annotations, captions, present = [], [], [], set()
        for k in range(n):
            image_id = 100000 * (code + 1) + k + 1
            stem = f"{image_id:012d}"
            img, segs = _scene(rng, stuff_cycle.take(3), thing_cycle.take(4), spec.height, spec.width)
            ids = np.zeros(img.shape[:2], np.int64)
            stuffmap = np.full(img.shape[:2], 255, np.uint8)
            segments = []
            for cat, m, inst in segs:
                sid = cat.id * 1000 + inst
                ids[m] = sid
                stuffmap[m] = _stuff171_id(cat, stuff171) - 1
                segments.append({"id": int(sid), "category_id": cat.id, "iscrowd": 0, "bbox": _bbox(m), "area": int(m.sum())})
                present.add(cat.name)
            write_bytes(root / f"{split}2017" / f"{stem}.jpg", _jpg_bytes(img))
            write_bytes(root / f"panoptic_{split}2017" / f"{stem}.png", _png_bytes(id_to_rgb(ids)))
            write_bytes(root / "stuffthingmaps" / f"{split}2017" / f"{stem}.png", _png_bytes(stuffmap))
            images.append({"id": image_id, "file_name": f"{stem}.jpg", "height": spec.height, "width": spec.width,
                           "license": 0})
            annotations.append({"image_id": image_id, "file_name": f"{stem}.png", "segments_info": segments})
            scene_stuff = [c for c, _, i in segs if i == 0]
            scene_things = [c for c, _, i in segs if i > 0]
            for j, text in enumerate(_captions(scene_stuff, scene_things, lambda c: normalize_class_name(c.name))):
                captions.append({"id": image_id * 10 + j, "image_id": image_id, "caption": text})
        categories = [{"id": c.id, "name": c.name, "isthing": int(c.isthing), "color": list(c.color),
                       "supercategory": c.extra.get("supercategory", "")} for c in cats]
        info = {"description": SIMULATED_NOTE, "version": "1.0", "seed": seed}
        licenses = [{"id": 0, "name": "simulated, made by ovlab (public domain)", "url": ""}]
        write_json(root / "annotations" / f"panoptic_{split}2017.json",
                   {"info": info, "licenses": licenses, "images": images, "annotations": annotations,
                    "categories": categories}, indent=None)
        write_json(root / "annotations" / f"captions_{split}2017.json",
                   {"info": info, "licenses": licenses, "images": images, "annotations": captions}, indent=None)
        summary[split] = {"images": n, "classes_present": len(present)}
    if summary["train"]["classes_present"] != len(cats):
        raise RuntimeError(f"simulated COCO train shows {summary['train']['classes_present']} of {len(cats)} classes; "
                           f"raise SimulateSpec.coco_train")
    return summary


# ---- semantic-segmentation benchmarks -------------------------------------------------------------

def _semantic_scenes(cats: list[Category], n: int, rng, h: int, w: int, n_bands: int = 2, n_things: int = 3,
                     bands: list[Category] | None = None):
    """``n`` scenes over ``cats`` (drawn in turn): ``[(image, [(category, mask)])]``."""
    cyc = _Cycle(cats, rng)
    out = []
    for _ in range(n):
        drawn = cyc.take(n_bands + n_things)
        top = bands if bands is not None else drawn[:n_bands]
        rest = drawn if bands is not None else drawn[n_bands:]
        img, segs = _scene(rng, top, rest[:n_things], h, w)
        out.append((img, [(c, m) for c, m, _ in segs]))
    return out


def _ade150(root: Path, spec: SimulateSpec, rng) -> int:
    cats = list(load_categories("ade20k_150"))
    for k, (img, segs) in enumerate(_semantic_scenes(cats, spec.eval_images, rng, spec.height, spec.width)):
        stem = f"ADE_val_{k + 1:08d}"
        lab = np.zeros(img.shape[:2], np.uint8)  # 0 = other
        for c, m in segs:
            lab[m] = c.id
        write_bytes(root / "images" / "validation" / f"{stem}.jpg", _jpg_bytes(img))
        write_bytes(root / "annotations" / "validation" / f"{stem}.png", _png_bytes(lab))
    return spec.eval_images


def _ade847(root: Path, spec: SimulateSpec, rng) -> int:
    cats = list(load_categories("ade20k_847"))
    for k, (img, segs) in enumerate(_semantic_scenes(cats, spec.eval_images, rng, spec.height, spec.width)):
        stem = f"ADE_val_{k + 1:08d}"
        seg = np.zeros(img.shape[:2] + (3,), np.uint8)  # class id 0 = unlabelled
        for c, m in segs:
            seg[m, 0], seg[m, 1] = (c.id // 256) * 10, c.id % 256
            seg[m, 2] = 1  # instance channel
        d = root / "images" / "ADE" / "validation" / "simulated_scene"
        write_bytes(d / f"{stem}.jpg", _jpg_bytes(img))
        write_bytes(d / f"{stem}_seg.png", _png_bytes(seg))
    return spec.eval_images


def _context(root: Path, spec: SimulateSpec, rng) -> int:
    """PASCAL-Context: the 59 classes first (by their 459 ids), one more of the other 400 per image."""
    import io

    from scipy.io import savemat

    full = load_categories("pascal_context_459").by_id()
    in59 = [full[int(c.extra["pc459_id"])] for c in load_categories("pascal_context_59")]
    others = [c for c in full.values() if c not in in59]
    cyc59, cyc_other = _Cycle(in59, rng), _Cycle(others, rng)
    names = []
    for k in range(spec.eval_images):
        stem = f"2008_{k + 1:06d}"
        drawn = cyc59.take(4) + cyc_other.take(1)
        img, segs = _scene(rng, drawn[:2], drawn[2:], spec.height, spec.width)
        lab = np.zeros(img.shape[:2], np.uint16)  # 0 unlabelled
        for c, m, _ in segs:
            lab[m] = c.id
        buf = io.BytesIO()
        savemat(buf, {"LabelMap": lab})
        write_bytes(root / "trainval" / f"{stem}.mat", buf.getvalue())
        write_bytes(root / "JPEGImages" / f"{stem}.jpg", _jpg_bytes(img))
        names.append(stem)
    write_text(root / "ImageSets" / "Main" / "val.txt", "".join(f"{n}\n" for n in names))
    return len(names)


def _voc_palette() -> list[int]:
    """The standard VOC colour map (bit-interleaved), 256 × RGB."""
    pal = []
    for i in range(256):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        pal += [r, g, b]
    return pal


def _voc(root: Path, spec: SimulateSpec, rng) -> int:
    import io

    objects = [c for c in load_categories("pascal_voc_20b") if c.id != 0]
    background = next(c for c in load_categories("pascal_voc_20b") if c.id == 0)
    names = []
    for k, (img, segs) in enumerate(_semantic_scenes(objects, spec.eval_images, rng, spec.height, spec.width,
                                                     n_bands=0, n_things=3, bands=[background])):
        stem = f"2007_{k + 1:06d}"
        lab = np.full(img.shape[:2], 255, np.uint8)  # the void boundary
        for c, m in segs:
            lab[m] = c.id
        pim = Image.fromarray(lab, mode="P")
        pim.putpalette(_voc_palette())
        buf = io.BytesIO()
        pim.save(buf, format="PNG")
        write_bytes(root / "SegmentationClass" / f"{stem}.png", buf.getvalue())
        write_bytes(root / "JPEGImages" / f"{stem}.jpg", _jpg_bytes(img))
        names.append(stem)
    write_text(root / "ImageSets" / "Segmentation" / "val.txt", "".join(f"{n}\n" for n in names))
    return len(names)


def _cityscapes(root: Path, spec: SimulateSpec, rng) -> int:
    cats = load_categories("cityscapes_19")
    stuff, things = _pools(cats)
    h, w = spec.height, 2 * spec.height
    sc, tc = _Cycle(stuff, rng), _Cycle(things, rng)
    for k in range(spec.eval_images):
        img, segs = _scene(rng, sc.take(3), tc.take(3), h, w)
        lab = np.zeros((h, w), np.uint8)  # labelId 0 = unlabeled
        for c, m, _ in segs:
            lab[m] = c.id
        stem = f"frankfurt_000000_{k + 1:06d}"
        write_bytes(root / "leftImg8bit" / "val" / "frankfurt" / f"{stem}_leftImg8bit.png", _png_bytes(img))
        write_bytes(root / "gtFine" / "val" / "frankfurt" / f"{stem}_gtFine_labelIds.png", _png_bytes(lab))
    return spec.eval_images


def make_simulated(out: str | Path, seed: int = 0, spec: SimulateSpec = SimulateSpec(), *, prepare: bool = True) -> dict:
    """Write the simulated datasets under ``out`` (a ``$DETECTRON2_DATASETS`` root) and prepare them.

    Args:
        out: the root; every dataset goes in its standard folder (module docstring).
        seed: everything is deterministic from it.
        spec: the sizes.
        prepare: run the real :func:`ovlab.data.prepare.prepare` of every dataset in place
            (``False``: the raw layouts only).

    Returns:
        a summary (images per dataset, COCO classes present, the preparations run), also written
        to ``out/summary.json`` beside a README saying that the data is simulated.

    Raises:
        RuntimeError: the COCO training split would not show all 133 classes (``spec.coco_train``
            too small). PrepareError: a preparation failed (a bug here or there).
    """
    out = Path(out)
    summary: dict = {"simulated": True, "seed": seed, "size": [spec.height, spec.width]}
    summary["coco"] = _coco(out / "coco", spec, seed)
    rng = np.random.default_rng([seed, 20])
    summary["ade20k_150"] = _ade150(out / "ADEChallengeData2016", spec, rng)
    summary["ade20k_847"] = _ade847(out / "ADE20K_2021_17_01", spec, rng)
    summary["pascal_context"] = _context(out / "VOCdevkit" / "VOC2010", spec, rng)
    summary["pascal_voc"] = _voc(out / "VOCdevkit" / "VOC2012", spec, rng)
    summary["cityscapes"] = _cityscapes(out / "cityscapes", spec, rng)
    summary["vipseg"] = _vipseg(out / "VIPSeg", EmbeddedSpec(n_videos_train=spec.videos_train, n_videos_val=spec.videos_val,
                                                            n_frames=spec.frames, height=spec.height, width=spec.width), seed)
    if prepare:
        from ovlab.data.prepare import prepare as run_prepare

        done = {}
        for name, folder in BENCHMARK_FOLDERS.items():
            rep = run_prepare(name, out / folder, out, workers=1, link="symlink", progress=False)
            done[name] = rep.done
        summary["prepared"] = done
    write_json(out / "summary.json", summary)
    write_text(out / "README.md", f"# Simulated datasets\n\n{SIMULATED_NOTE}\n\nMade by `ovlab data simulate --seed {seed}` "
               "(module ovlab.data.simulate); see that module's docstring for the layout.\n")
    return summary
