"""VIPSeg reader: the ``VIPSeg_720P`` layout, panoptic decoding, and GKC's 12 novel classes.

Layout (what VIPSeg's ``change2_720p.py`` + ``create_panoptic_video_labels.py`` + ``splitjson.py``
write; ``root`` may be the folder holding ``VIPSeg_720P`` or ``VIPSeg_720P`` itself)::

    <root>/VIPSeg_720P/
      images/<video>/<frame>.jpg               RGB frames, short side 720
      panomasks/<video>/<frame>.png            uint16 raw panoptic values (see below)
      panomasksRGB/<video>/<frame>.png         optional: COCO-panoptic RGB (id = R + 256·G + 256²·B)
      panoptic_gt_VIPSeg_{train,val}.json      optional, with panomasksRGB: per-video segments_info
      panoVIPSeg_categories.json               optional: 124 × {id, name, isthing, color}
      {train,val,test}.txt                     video names, one per line (also accepted in <root>/)

Raw ``panomasks`` value v (VIPSeg README; ``create_panoptic_video_labels.py``)::

    v = 0            void
    1 ≤ v ≤ 124      stuff-coded segment of category id v − 1
    v ≥ 125          thing instance: category id v // 100 − 1, instance v % 100

Category ids are the 0-based positions in the 124-list (``vipseg_124`` catalog; the README's
"person is 61" is that id + 1). The official converter decides stuff/thing by ``v < 125`` only,
not by the category's ``isthing``; so does this reader. Instance numbers are consistent across the
frames of a video (the same object keeps its value). ``ovlab.data.procedural`` writes the same
encoding, with instances numbered from 1 (VIPSeg's README numbers them from 0; both decode alike).

``panomasksRGB`` segment ids come from panopticapi's ``IdGenerator`` colours in the official data
(from the raw value itself in the embedded data); the JSON's ``category_id`` is the 0-based id.
Reading that source needs no PNG decoding to index segments, so it is the fast path on real data.

GKC's novel split (GKC §3.4; GKC ``mask2former/data/datasets/register_vipseg.py`` L182): :data:`NOVEL_IDS`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from tqdm.auto import tqdm

from ovlab.data.categories import CategoryList, load_categories
from ovlab.data.errors import CorruptFileError, DatasetNotFoundError
from ovlab.data.files import read_image, read_json, rgb_to_id
from ovlab.data.video_clips import FrameVideo, VideoFrame, frame_sort_key

DATASET = "VIPSeg"
FOLDER = "VIPSeg_720P"
NUM_CLASSES = 124
THING_MIN_VALUE = 125  # raw values ≥ 125 are thing instances
Source = Literal["panomasks", "panomasksRGB"]
SOURCES: tuple[str, ...] = ("panomasks", "panomasksRGB")
VIDEO_SPLITS: tuple[str, ...] = ("train", "val", "test")

#: GKC's 12 novel (unseen) VIPSeg category ids, ascending: pillar 11, ice 32, grandstand 34,
#: tyre 57, box 76, basket 78, trash_can 80, bathtub 94, fan 102, blackboard 112, printer 116,
#: instrument 122 (GKC §3.4). Read from the ``novel`` flags of the ``vipseg_124`` catalog.
NOVEL_IDS: tuple[int, ...] = tuple(sorted(c.id for c in load_categories("vipseg_124").unseen()))

LAYOUT = """\
<root>/VIPSeg_720P/                       (or give VIPSeg_720P itself as the root)
  images/<video>/<frame>.jpg             RGB frames
  panomasks/<video>/<frame>.png          uint16: 0 void; stuff id+1; thing (id+1)*100+instance
  panomasksRGB/<video>/<frame>.png       only for source='panomasksRGB' (create_panoptic_video_labels.py)
  panoptic_gt_VIPSeg_<split>.json        only for source='panomasksRGB' (splitjson.py)
  panoVIPSeg_categories.json             optional, checked against the vipseg_124 catalog
  <split>.txt                            video names (train.txt, val.txt, test.txt; also in <root>/)
"""
HINT = "Get VIPSeg from https://github.com/VIPSeg-Dataset/VIPSeg-Dataset and run its change2_720p.py."


@dataclass(frozen=True)
class PanoSegment:
    """One panoptic segment of a frame.

    Attributes:
        id: its value in the label file: the raw panomask value (``panomasks``) or the RGB
            segment id (``panomasksRGB``); the same object has the same id in every frame.
        category_id: VIPSeg category id 0..123.
        instance: thing instance number ``v % 100`` for thing-coded raw values, −1 for
            stuff-coded ones; for ``panomasksRGB``, the segment id.
        isthing: the category's ``isthing`` in the catalog.
        area: pixels in the frame.
    """

    id: int
    category_id: int
    instance: int
    isthing: bool
    area: int


@dataclass(frozen=True)
class VipsegFrame(VideoFrame):
    """A VIPSeg frame with its segments (all of them, whatever the split keeps).

    Attributes:
        source: ``"panomasks"`` or ``"panomasksRGB"`` (what ``label_path`` holds).
        segments: the frame's segments in ascending id order (empty without annotation).
        height, width: frame size in pixels (0 when unknown, e.g. a test frame).
    """

    source: str = "panomasks"
    segments: tuple[PanoSegment, ...] = ()
    height: int = 0
    width: int = 0

    def image(self) -> np.ndarray:
        """(H, W, 3) uint8 RGB. Raises :class:`CorruptFileError` naming the file."""
        return read_image(self.image_path, "RGB")

    def segment_ids(self) -> np.ndarray:
        """(H, W) int64 segment ids (:attr:`PanoSegment.id` values; 0 = void).

        Raises:
            FileNotFoundError: the frame has no annotation.
            CorruptFileError: undecodable PNG, or a size other than (height, width).
        """
        if self.label_path is None:
            raise FileNotFoundError(f"{self.image_path}: this frame has no annotation")
        if self.source == "panomasksRGB":
            ids = rgb_to_id(read_image(self.label_path, "RGB"))
        else:
            raw = read_image(self.label_path)
            if raw.ndim != 2:
                raise CorruptFileError(self.label_path, f"panomask must be single-channel, got shape {raw.shape}")
            ids = raw.astype(np.int64)
        if self.height and ids.shape != (self.height, self.width):
            raise CorruptFileError(self.label_path, f"size {ids.shape[1]}x{ids.shape[0]} differs from the index's {self.width}x{self.height}")
        return ids

    def category_map(self) -> np.ndarray:
        """(H, W) int64 VIPSeg category ids 0..123, −1 for void."""
        return lookup(self.segment_ids(), {s.id: s.category_id for s in self.segments}, -1)


@dataclass(frozen=True)
class VipsegVideo(FrameVideo):
    """A VIPSeg video: its name and :class:`VipsegFrame` objects in temporal order."""

    frames: tuple[VipsegFrame, ...]


def lookup(ids: np.ndarray, table: dict[int, int], default: int) -> np.ndarray:
    """Map every value of ``ids`` through ``table`` (values not in it → ``default``).

    Args:
        ids: integer array, any shape.
    Returns:
        int64 array of the same shape.
    """
    uniq, inv = np.unique(np.asarray(ids), return_inverse=True)
    vals = np.array([table.get(int(u), default) for u in uniq], dtype=np.int64)
    return vals[inv].reshape(np.shape(ids))


def decode_panomask(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Decode raw VIPSeg panomask values (see the module docstring).

    Args:
        values: (H, W) non-negative integers (uint16 as stored).

    Returns:
        ``(category, instance)``: (H, W) int64 each; category id 0..123 or −1 for void;
        instance ``v % 100`` for thing-coded pixels, −1 elsewhere.

    Raises:
        ValueError: a value decodes to a category id outside 0..123 (lists the values).
    """
    v = np.asarray(values).astype(np.int64)
    thing = v >= THING_MIN_VALUE
    cat = np.where(thing, v // 100 - 1, v - 1)
    bad = (cat >= NUM_CLASSES) | (v < 0)
    if bad.any():
        raise ValueError(f"panomask values {np.unique(v[bad])[:10].tolist()} decode to no VIPSeg category (0..123)")
    return cat, np.where(thing, v % 100, -1)


def panomask_segments(values: np.ndarray, categories: CategoryList) -> tuple[PanoSegment, ...]:
    """The segments of one raw panomask: one per distinct non-zero value, ascending.

    Raises:
        ValueError: see :func:`decode_panomask`.
    """
    v = np.asarray(values).astype(np.int64).ravel()
    if v.size and v.min() < 0:
        raise ValueError("panomask values must be ≥ 0")
    counts = np.bincount(v) if v.size else np.zeros(1, dtype=np.int64)
    present = np.nonzero(counts)[0]
    present = present[present > 0]
    cats, inst = decode_panomask(present)
    by_id = categories.by_id()
    return tuple(PanoSegment(int(p), int(c), int(i), bool(by_id[int(c)].isthing), int(counts[p]))
                 for p, c, i in zip(present, cats, inst))


def locate(root: str | Path) -> Path:
    """The ``VIPSeg_720P`` folder under ``root`` (or ``root`` itself when it holds ``images/``).

    Raises:
        DatasetNotFoundError: neither holds an ``images`` folder (draws the layout).
    """
    r = Path(root).expanduser()
    for base in (r / FOLDER, r):
        if (base / "images").is_dir():
            return base
    raise DatasetNotFoundError(DATASET, r / FOLDER / "images", LAYOUT, hint=f"(root given: {r}). {HINT}")


def video_names(root: str | Path, split: str) -> list[str]:
    """Video names of ``split`` (``train``, ``val``, ``test``) from ``<split>.txt``, in file order.

    Raises:
        ValueError: unknown split.
        DatasetNotFoundError: no ``<split>.txt`` in ``VIPSeg_720P/`` nor beside it.
    """
    if split not in VIDEO_SPLITS:
        raise ValueError(f"VIPSeg video split must be one of {VIDEO_SPLITS}, got {split!r}")
    base = locate(root)
    for f in (base / f"{split}.txt", base.parent / f"{split}.txt"):
        if f.is_file():
            return [ln.strip() for ln in f.read_text(encoding="utf-8").splitlines() if ln.strip()]
    raise DatasetNotFoundError(DATASET, base / f"{split}.txt", LAYOUT, hint=HINT)


def check_category_file(base: Path, categories: CategoryList) -> None:
    """Compare ``panoVIPSeg_categories.json`` (if present) with ``categories`` by id and name.

    Raises:
        CorruptFileError: the file disagrees (names the first differing id).
    """
    f = base / "panoVIPSeg_categories.json"
    if not f.is_file():
        return
    doc = read_json(f)
    entries = doc.get("categories", doc) if isinstance(doc, dict) else doc
    try:
        theirs = {int(c["id"]): str(c["name"]) for c in entries}
    except (KeyError, TypeError, ValueError) as exc:
        raise CorruptFileError(f, f"bad category entry ({exc!r})") from None
    ours = {c.id: c.name for c in categories}
    if theirs != ours:
        diff = sorted(set(theirs.items()) ^ set(ours.items()))[:1]
        raise CorruptFileError(f, f"categories differ from the {categories.dataset!r} catalog, e.g. {diff}")


def read_vipseg(
    root: str | Path,
    split: str = "val",
    *,
    source: Source = "panomasks",
    categories: CategoryList | str = "vipseg_124",
    videos: Iterable[str] | None = None,
    progress: bool = True,
) -> list[VipsegVideo]:
    """Index one VIPSeg video split: frames in temporal order, with every frame's segments.

    A video's frames are its annotated frames (one per label PNG, each needing its image;
    images without a label are not listed), ordered by frame number (:func:`frame_sort_key`).
    With ``source="panomasks"`` every panomask is decoded once to list its segments
    (``np.bincount``; minutes for the full val split); ``"panomasksRGB"`` reads them from
    ``panoptic_gt_VIPSeg_<split>.json``. The ``test`` split has no annotation: its frames come
    from ``images/`` and have no segments.

    Args:
        root: see the module docstring.
        split: ``train``, ``val`` or ``test``.
        source: ``panomasks`` (raw values) or ``panomasksRGB`` (+ the panoptic JSON).
        categories: the 124-class catalog (name or :class:`CategoryList`).
        videos: only these videos (default: all of the split, in ``<split>.txt`` order).
        progress: show a tqdm bar over videos.

    Returns:
        One :class:`VipsegVideo` per video, in the split file's order.

    Raises:
        DatasetNotFoundError: root, split file, a video folder, an image or the JSON is missing.
        CorruptFileError: an undecodable PNG or a value outside the encoding (names the file), a
            JSON segment with an unknown category, or a category file that disagrees.
    """
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
    cats = load_categories(categories) if isinstance(categories, str) else categories
    base = locate(root)
    check_category_file(base, cats)
    names = video_names(root, split) if videos is None else list(videos)
    if split == "test":
        return [_images_only(base, v) for v in names]
    label_dir = base / source
    if not label_dir.is_dir():
        raise DatasetNotFoundError(DATASET, label_dir, LAYOUT, hint=HINT)
    index = _rgb_index(base, split, cats) if source == "panomasksRGB" else None
    out = []
    for v in tqdm(names, desc=f"VIPSeg {split}", unit="video", disable=not progress):
        if index is not None:
            if v not in index:
                raise DatasetNotFoundError(DATASET, f"{base / f'panoptic_gt_VIPSeg_{split}.json'}: video {v}", LAYOUT)
            out.append(VipsegVideo(v, tuple(_rgb_frame(base, v, a, cats) for a in index[v])))
        else:
            out.append(VipsegVideo(v, tuple(_panomask_frame(base, v, p, cats) for p in _label_files(label_dir / v))))
    return out


def _label_files(d: Path) -> list[Path]:
    if not d.is_dir():
        raise DatasetNotFoundError(DATASET, d, LAYOUT, hint=HINT)
    files = sorted(d.glob("*.png"), key=lambda p: frame_sort_key(p.stem))
    if not files:
        raise DatasetNotFoundError(DATASET, d / "<frame>.png", LAYOUT, hint=HINT)
    return files


def _image_of(base: Path, video: str, stem: str) -> Path:
    for suf in (".jpg", ".png", ".jpeg"):
        p = base / "images" / video / f"{stem}{suf}"
        if p.is_file():
            return p
    raise DatasetNotFoundError(DATASET, base / "images" / video / f"{stem}.jpg", LAYOUT, hint="(the frame of an annotation)")


def _panomask_frame(base: Path, video: str, png: Path, cats: CategoryList) -> VipsegFrame:
    raw = read_image(png)
    if raw.ndim != 2:
        raise CorruptFileError(png, f"panomask must be single-channel, got shape {raw.shape}")
    try:
        segs = panomask_segments(raw, cats)
    except ValueError as exc:
        raise CorruptFileError(png, str(exc)) from None
    return VipsegFrame(png.stem, frame_sort_key(png.stem)[1], _image_of(base, video, png.stem), png,
                       "panomasks", segs, int(raw.shape[0]), int(raw.shape[1]))


def _rgb_index(base: Path, split: str, cats: CategoryList) -> dict[str, list[tuple[dict, dict]]]:
    f = base / f"panoptic_gt_VIPSeg_{split}.json"
    if not f.is_file():
        raise DatasetNotFoundError(DATASET, f, LAYOUT, hint="Make it with VIPSeg's create_panoptic_video_labels.py and splitjson.py.")
    doc = read_json(f)
    try:
        sizes = {v["video_id"]: {im["file_name"]: im for im in v["images"]} for v in doc["videos"]}
        index = {}
        for va in doc["annotations"]:
            vid = va["video_id"]
            anns = sorted(va["annotations"], key=lambda a: frame_sort_key(Path(a["file_name"]).stem))
            index[vid] = [(a, sizes.get(vid, {}).get(a["file_name"], {})) for a in anns]
    except (KeyError, TypeError) as exc:
        raise CorruptFileError(f, f"not a VIPSeg panoptic JSON ({exc!r}; needs videos[].images, annotations[].annotations)") from None
    known = {c.id for c in cats}
    for vid, anns in index.items():
        for a, _ in anns:
            for s in a["segments_info"]:
                if s["category_id"] not in known:
                    raise CorruptFileError(f, f"video {vid} frame {a['file_name']}: unknown category id {s['category_id']}")
    return index


def _rgb_frame(base: Path, video: str, entry: tuple[dict, dict], cats: CategoryList) -> VipsegFrame:
    ann, im = entry
    png = base / "panomasksRGB" / video / ann["file_name"]
    if not png.is_file():
        raise DatasetNotFoundError(DATASET, png, LAYOUT, hint=HINT)
    by_id = cats.by_id()
    segs = tuple(sorted((PanoSegment(int(s["id"]), int(s["category_id"]), int(s["id"]),
                                     bool(by_id[int(s["category_id"])].isthing), int(s.get("area", 0)))
                         for s in ann["segments_info"]), key=lambda s: s.id))
    stem = png.stem
    return VipsegFrame(stem, frame_sort_key(stem)[1], _image_of(base, video, stem), png, "panomasksRGB", segs,
                       int(im.get("height", 0)), int(im.get("width", 0)))


def _images_only(base: Path, video: str) -> VipsegVideo:
    d = base / "images" / video
    if not d.is_dir():
        raise DatasetNotFoundError(DATASET, d, LAYOUT, hint=HINT)
    files = sorted((p for p in d.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png")), key=lambda p: frame_sort_key(p.stem))
    return VipsegVideo(video, tuple(VipsegFrame(p.stem, frame_sort_key(p.stem)[1], p) for p in files))
