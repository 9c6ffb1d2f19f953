"""The embedded dataset: small synthetic scenes, deterministic from a seed.

THIS DATA IS SYNTHETIC. It exists so that the whole pipeline runs in minutes on a laptop and its
tests check real code paths (readers, metrics, training, seen/unseen splits) on data the project
makes itself. Numbers measured on it check the pipeline, not the methods.

What :func:`make_embedded` writes under ``out``::

    coco/                                   COCO panoptic layout (read by ovlab.data.coco_panoptic)
      {train,val}2017/<id>.png              RGB images, H×W = 128×160
      panoptic_{train,val}2017/<id>.png     panoptic PNGs (id = R + 256·G + 256²·B; 0 = void)
      panoptic_semseg_{train,val}2017/<id>.png   semantic labels 0..132, 255 = void
      annotations/panoptic_{train,val}2017.json  images, annotations (segments_info), categories
      annotations/captions_{train,val}2017.json  5 template captions per image
    vipseg/VIPSeg_720P/                     VIPSeg layout (videos)
      images/<video>/<frame>.jpg
      panomasks/<video>/<frame>.png         uint16: 0 void; stuff id+1; thing (id+1)·100 + instance
      panomasksRGB/<video>/<frame>.png      COCO-panoptic RGB of the same segments (segment id = raw value)
      panoptic_gt_VIPSeg_{train,val}.json   videos[].images, annotations[].annotations[].segments_info
                                            (id, category_id 0..123, iscrowd, area), categories — the
                                            layout of VIPSeg's create_panoptic_video_labels.py + splitjson.py
      panoVIPSeg_categories.json
      train.txt, val.txt, test.txt          video names
    README.md                               says it is synthetic, how it was made, with which seed

Scenes: two or three stuff bands with wavy borders (sky over grass, wall over floor, …) and one
to four thing instances (ellipses, boxes, triangles, diamonds) drawn over them, each class with
its catalog colour and a class-specific texture so that a small model can tell them apart. A
one-pixel outline around every thing is void. Classes come from COCO-panoptic-133; GKC's novel
(unseen) classes never appear in the training split and appear in most validation images.
Videos move the things along straight lines over ≥ 8 frames; some contain GKC's novel VIPSeg classes.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

from ovlab.atomic import write_bytes, write_json, write_text
from ovlab.data.categories import Category, load_categories
from ovlab.data.files import id_to_rgb

HEIGHT, WIDTH = 128, 160

# Classes the image scenes draw from (COCO-panoptic raw names). Seen ones appear in train and val;
# unseen ones (GKC's novel split) only in val.
SEEN_STUFF = ["sky-other-merged", "grass-merged", "road", "sea", "wall-other-merged", "sand", "tree-merged",
              "floor-wood", "snow", "mountain-merged"]
UNSEEN_STUFF = ["river", "playingfield", "wall-stone"]
SEEN_THINGS = ["person", "car", "dog", "cat", "horse", "bus", "bird", "bottle", "chair", "umbrella"]
UNSEEN_THINGS = ["cow", "giraffe", "bicycle", "suitcase"]
# (top, bottom) stuff pairs that make plausible scenes; a third band is sometimes added in the middle.
TOPS = ["sky-other-merged", "wall-other-merged", "tree-merged", "mountain-merged"]

VIDEO_SEEN_STUFF = ["sky", "grass", "road", "wall", "floor", "sea"]
VIDEO_UNSEEN_STUFF = ["ice", "grandstand"]
VIDEO_SEEN_THINGS = ["person", "car", "dog", "bus", "bicycle", "chair_or_seat"]
VIDEO_UNSEEN_THINGS = ["box", "basket", "fan"]

CAPTION_TEMPLATES = (
    "a photo of {things} with {stuff} in the background.",
    "there is a {t0} near the {s0}.",
    "a synthetic scene showing {things}.",
    "{stuff_cap} and {n} object(s): {things}.",
    "an image of a {s0} and a {t0}.",
)

SYNTHETIC_NOTE = (
    "SYNTHETIC DATA made by ovlab.data.procedural (not photographs). Numbers measured on it check "
    "the pipeline, not the methods."
)


@dataclass(frozen=True)
class EmbeddedSpec:
    """Size of the embedded dataset."""

    n_train: int = 40
    n_val: int = 16
    n_videos_train: int = 4
    n_videos_val: int = 2
    n_frames: int = 8
    height: int = HEIGHT
    width: int = WIDTH


def _class_seed(name: str) -> int:
    return int(hashlib.sha256(name.encode()).hexdigest()[:8], 16)


def _texture(cat_name: str, color, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """(h, w, 3) float texture of a class: its colour, a class-specific pattern, per-pixel noise."""
    kind = _class_seed(cat_name) % 4
    yy, xx = np.mgrid[0:h, 0:w]
    period = 4 + _class_seed(cat_name + "p") % 6
    if kind == 0:
        pattern = np.zeros((h, w))
    elif kind == 1:
        pattern = ((yy // period) % 2) * 2.0 - 1.0
    elif kind == 2:
        pattern = (((yy // period) + (xx // period)) % 2) * 2.0 - 1.0
    else:
        pattern = np.sin(xx * 2 * np.pi / (period * 2)) * np.cos(yy * 2 * np.pi / (period * 2))
    base = np.asarray(color, dtype=np.float64)[None, None, :]
    tex = base + 28.0 * pattern[..., None] + rng.normal(0.0, 8.0, size=(h, w, 3))
    return tex


def _shape_mask(kind: int, h: int, w: int, cy: float, cx: float, ry: float, rx: float) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    dy, dx = (yy - cy) / max(ry, 1), (xx - cx) / max(rx, 1)
    if kind == 0:  # ellipse
        return dy**2 + dx**2 <= 1.0
    if kind == 1:  # box
        return (np.abs(dy) <= 1.0) & (np.abs(dx) <= 1.0)
    if kind == 2:  # triangle, apex up
        return (dy <= 1.0) & (dy >= -1.0) & (np.abs(dx) <= (dy + 1.0) / 2.0)
    return np.abs(dy) + np.abs(dx) <= 1.0  # diamond


@dataclass
class _Thing:
    cat: Category
    cy: float
    cx: float
    ry: float
    rx: float
    vy: float = 0.0
    vx: float = 0.0


def _render(
    stuff: list[Category],
    things: list[_Thing],
    h: int,
    w: int,
    rng: np.random.Generator,
    phase: float,
    t: float = 0.0,
):
    """Render one frame. Returns (image uint8 (h,w,3), stuff map list[(cat, mask)], thing masks list[(thing, mask)])."""
    img = np.zeros((h, w, 3), dtype=np.float64)
    xx = np.arange(w)
    n = len(stuff)
    # band borders: wavy lines at evenly spaced heights
    borders = [h * (k + 1) / n + 6 * np.sin(xx * 2 * np.pi / w * (1 + k) + phase + 0.15 * t) for k in range(n - 1)]
    yy = np.arange(h)[:, None]
    band = np.zeros((h, w), dtype=np.int64)
    for b in borders:
        band += (yy >= b[None, :]).astype(np.int64)
    stuff_masks = []
    for k, cat in enumerate(stuff):
        m = band == k
        img[m] = _texture(cat.name, cat.color, h, w, rng)[m]
        stuff_masks.append((cat, m))
    occupied = np.zeros((h, w), dtype=bool)
    thing_masks = []
    for th in things:
        kind = _class_seed(th.cat.name) % 4
        m = _shape_mask(kind, h, w, th.cy + th.vy * t, th.cx + th.vx * t, th.ry, th.rx)
        img[m] = _texture(th.cat.name, th.cat.color, h, w, rng)[m]
        # later things occlude earlier ones
        for j, (_, prev) in enumerate(thing_masks):
            thing_masks[j] = (thing_masks[j][0], prev & ~m)
        occupied |= m
        thing_masks.append((th, m))
    stuff_masks = [(c, m & ~occupied) for c, m in stuff_masks]
    return np.clip(img, 0, 255).astype(np.uint8), stuff_masks, thing_masks


def _outline(mask: np.ndarray) -> np.ndarray:
    return mask & ~ndimage.binary_erosion(mask)


def _bbox(mask: np.ndarray) -> list[int]:
    ys, xs = np.nonzero(mask)
    return [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)]


def _png_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", optimize=False, compress_level=6)
    return buf.getvalue()


def _jpg_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def _pick_things(rng, pool: list[Category], n: int, h: int, w: int, moving: bool = False) -> list[_Thing]:
    out = []
    for _ in range(n):
        cat = pool[int(rng.integers(len(pool)))]
        ry = float(rng.uniform(0.12, 0.25) * h)
        rx = float(rng.uniform(0.10, 0.22) * w)
        cy = float(rng.uniform(0.3 * h, 0.85 * h))
        cx = float(rng.uniform(0.15 * w, 0.85 * w))
        vy, vx = (float(rng.uniform(-1.0, 1.0)), float(rng.uniform(-3.0, 3.0))) if moving else (0.0, 0.0)
        out.append(_Thing(cat, cy, cx, ry, rx, vy, vx))
    return out


def _captions(stuff: list[Category], things: list[Category], name) -> list[str]:
    tnames = [name(c) for c in things] or ["nothing"]
    snames = [name(c) for c in stuff]
    fields = {
        "things": ", ".join(dict.fromkeys(tnames)),
        "stuff": " and ".join(snames),
        "stuff_cap": " and ".join(snames).capitalize(),
        "t0": tnames[0],
        "s0": snames[-1],
        "n": len(things),
    }
    return [t.format(**fields) for t in CAPTION_TEMPLATES]


def make_scene(rng: np.random.Generator, cats: dict[str, Category], *, unseen: bool, h: int = HEIGHT, w: int = WIDTH):
    """One synthetic image scene.

    Args:
        rng: the generator (consumed).
        cats: COCO-133 categories by raw name.
        unseen: allow GKC's novel (unseen) classes.

    Returns:
        ``(image (h, w, 3) uint8, segment ids (h, w) int64 with 0 = void, segments_info list, stuff, things)``
        with COCO-style ``segments_info`` entries (id, category_id, iscrowd, bbox, area).
    """
    top = cats[TOPS[int(rng.integers(len(TOPS)))]]
    bottom_pool = [c for c in SEEN_STUFF if c not in TOPS] + (UNSEEN_STUFF if unseen else [])
    bottom = cats[bottom_pool[int(rng.integers(len(bottom_pool)))]]
    stuff = [top, bottom]
    if rng.random() < 0.35:
        middle_pool = [c for c in SEEN_STUFF if cats[c] not in stuff and c not in TOPS]
        stuff.insert(1, cats[middle_pool[int(rng.integers(len(middle_pool)))]])
    thing_pool = [cats[c] for c in SEEN_THINGS + (UNSEEN_THINGS if unseen else [])]
    things = _pick_things(rng, thing_pool, int(rng.integers(1, 5)), h, w)
    if unseen and rng.random() < 0.6:  # most val images show at least one unseen thing
        things[-1].cat = cats[UNSEEN_THINGS[int(rng.integers(len(UNSEEN_THINGS)))]]
    img, stuff_masks, thing_masks = _render(stuff, things, h, w, rng, phase=float(rng.uniform(0, 2 * np.pi)))
    cats_by_id = {c.id: c for c in cats.values()}
    ids = np.zeros((h, w), dtype=np.int64)
    for cat, m in stuff_masks:
        ids[m] = cat.id * 1000
    void = np.zeros((h, w), dtype=bool)
    for k, (th, m) in enumerate(thing_masks):
        ids[m] = th.cat.id * 1000 + k + 1
        void |= _outline(m)
    ids[void] = 0  # a one-pixel void outline around every thing, as annotators leave
    segments, kept_things = [], []
    for seg_id in np.unique(ids):
        m = ids == seg_id
        if seg_id == 0:
            continue
        if m.sum() < 30:  # slivers left by occlusion become void
            ids[m] = 0
            continue
        cat = cats_by_id[int(seg_id) // 1000]
        segments.append({"id": int(seg_id), "category_id": cat.id, "iscrowd": 0, "bbox": _bbox(m), "area": int(m.sum())})
        if cat.isthing:
            kept_things.append(cat)
    return img, ids, segments, stuff, kept_things


def _coco_split(out: Path, split: str, n: int, seed: int, cats133, name) -> dict:
    rng = np.random.default_rng([seed, 0 if split == "train" else 1])
    cats = cats133.by_name()
    images, annotations, captions = [], [], []
    for k in range(n):
        image_id = (1 if split == "train" else 2) * 100000 + k
        img, ids, segments, stuff, things = make_scene(rng, cats, unseen=(split == "val"))
        fname = f"{image_id:012d}.png"
        write_bytes(out / f"{split}2017" / fname, _png_bytes(img))
        write_bytes(out / f"panoptic_{split}2017" / fname, _png_bytes(id_to_rgb(ids)))
        sem = np.full(ids.shape, 255, dtype=np.uint8)
        by_id = cats133.by_id()
        for s in segments:
            sem[ids == s["id"]] = by_id[s["category_id"]].index
        write_bytes(out / f"panoptic_semseg_{split}2017" / fname, _png_bytes(sem))
        images.append({"id": image_id, "file_name": fname, "height": int(img.shape[0]), "width": int(img.shape[1]),
                       "license": 0})
        annotations.append({"image_id": image_id, "file_name": fname, "segments_info": segments})
        for j, c in enumerate(_captions(stuff, things, name)):
            captions.append({"id": image_id * 10 + j, "image_id": image_id, "caption": c})
    categories = [{"id": c.id, "name": c.name, "isthing": int(c.isthing), "color": list(c.color),
                   "supercategory": c.extra.get("supercategory", "")} for c in cats133]
    info = {"description": SYNTHETIC_NOTE, "version": "1.0", "seed": seed}
    licenses = [{"id": 0, "name": "synthetic, made by ovlab (public domain)", "url": ""}]
    write_json(out / "annotations" / f"panoptic_{split}2017.json",
               {"info": info, "licenses": licenses, "images": images, "annotations": annotations,
                "categories": categories}, indent=None)
    write_json(out / "annotations" / f"captions_{split}2017.json",
               {"info": info, "licenses": licenses, "images": images, "annotations": captions}, indent=None)
    return {"images": n, "segments": sum(len(a["segments_info"]) for a in annotations)}


def _vipseg_segments(pano: np.ndarray) -> list[dict]:
    """segments_info of one raw panomask, as VIPSeg's create_panoptic_video_labels.py lists them
    (ascending value; category id = v − 1 below 125, else v // 100 − 1), with the raw value as id."""
    values, counts = np.unique(pano, return_counts=True)
    return [{"id": int(v), "category_id": int(v) - 1 if v < 125 else int(v) // 100 - 1, "iscrowd": 0, "area": int(n)}
            for v, n in zip(values, counts) if v != 0]


def _vipseg(out: Path, spec: EmbeddedSpec, seed: int) -> dict:
    cats = load_categories("vipseg_124")
    by_name = cats.by_name()
    root = out / "VIPSeg_720P"
    rng = np.random.default_rng([seed, 2])
    names = {"train": [], "val": []}
    pano_json = {"train": ([], []), "val": ([], [])}  # (videos, annotations) per split
    plan = [("train", False)] * (spec.n_videos_train - spec.n_videos_train // 2) + [("train", True)] * (spec.n_videos_train // 2)
    plan += [("val", True)] * spec.n_videos_val
    for v, (split, with_novel) in enumerate(plan):
        video = f"{v + 1:03d}_synthetic_{split}"
        names[split].append(video)
        stuff_pool = VIDEO_SEEN_STUFF + (VIDEO_UNSEEN_STUFF if with_novel else [])
        stuff = [by_name[VIDEO_SEEN_STUFF[int(rng.integers(2))]]]  # sky or grass on top
        rest = [s for s in stuff_pool if by_name[s] not in stuff]
        stuff.append(by_name[rest[int(rng.integers(len(rest)))]])
        things = _pick_things(rng, [by_name[t] for t in VIDEO_SEEN_THINGS], int(rng.integers(1, 4)),
                              spec.height, spec.width, moving=True)
        if with_novel:  # a novel thing enters the clip
            things.append(_pick_things(rng, [by_name[t] for t in VIDEO_UNSEEN_THINGS], 1, spec.height, spec.width,
                                       moving=True)[0])
        phase = float(rng.uniform(0, 2 * np.pi))
        images, annotations = [], []
        for f in range(spec.n_frames):
            img, stuff_masks, thing_masks = _render(stuff, things, spec.height, spec.width, rng, phase, t=float(f))
            pano = np.zeros((spec.height, spec.width), dtype=np.uint16)
            for cat, m in stuff_masks:
                pano[m] = cat.id + 1
            for k, (th, m) in enumerate(thing_masks):
                if th.cat.isthing:
                    pano[m] = (th.cat.id + 1) * 100 + k + 1
                else:
                    pano[m] = th.cat.id + 1
                pano[_outline(m)] = 0
            frame = f"{f * 5:08d}"
            write_bytes(root / "images" / video / f"{frame}.jpg", _jpg_bytes(img))
            write_bytes(root / "panomasks" / video / f"{frame}.png", _png_bytes(pano))
            write_bytes(root / "panomasksRGB" / video / f"{frame}.png", _png_bytes(id_to_rgb(pano)))
            images.append({"id": frame, "width": spec.width, "height": spec.height, "file_name": f"{frame}.png"})
            annotations.append({"image_id": frame, "file_name": f"{frame}.png",
                                "segments_info": _vipseg_segments(pano)})
        pano_json[split][0].append({"video_id": video, "images": images})
        pano_json[split][1].append({"video_id": video, "annotations": annotations})
    cat_list = [{"id": c.id, "name": c.name, "isthing": int(c.isthing), "color": list(c.color)} for c in cats]
    write_json(root / "panoVIPSeg_categories.json", cat_list)
    for split, (videos, annotations) in pano_json.items():
        write_json(root / f"panoptic_gt_VIPSeg_{split}.json",
                   {"videos": videos, "annotations": annotations, "categories": cat_list}, indent=None)
    write_text(root / "train.txt", "".join(f"{n}\n" for n in names["train"]))
    write_text(root / "val.txt", "".join(f"{n}\n" for n in names["val"]))
    write_text(root / "test.txt", "")
    return {"videos_train": len(names["train"]), "videos_val": len(names["val"]), "frames_per_video": spec.n_frames}


def make_embedded(out: str | Path, seed: int = 0, spec: EmbeddedSpec = EmbeddedSpec()) -> dict:
    """Write the embedded (synthetic) dataset to ``out``; deterministic from ``seed``.

    Every file is written atomically. Returns a summary dict (counts per split), which is also
    written to ``out/summary.json`` beside a README that says the data is synthetic.
    """
    from ovlab.data.names import normalize_class_name

    out = Path(out)
    cats133 = load_categories("coco_panoptic_133")
    name = lambda c: normalize_class_name(c.name)  # noqa: E731
    summary = {
        "synthetic": True,
        "seed": seed,
        "size": [spec.height, spec.width],
        "coco_train": _coco_split(out / "coco", "train", spec.n_train, seed, cats133, name),
        "coco_val": _coco_split(out / "coco", "val", spec.n_val, seed, cats133, name),
        "vipseg": _vipseg(out / "vipseg", spec, seed),
    }
    write_json(out / "summary.json", summary)
    write_text(out / "README.md", f"# Embedded dataset (synthetic)\n\n{SYNTHETIC_NOTE}\n\n"
               f"Made by `ovlab data make-embedded --seed {seed}` (module ovlab.data.procedural); "
               "see that module's docstring for the layout.\n")
    return summary
