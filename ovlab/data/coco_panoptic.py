"""COCO panoptic reader (the standard layout Mask2Former / detectron2 / GKC use).

Layout under a root (``$DETECTRON2_DATASETS/coco`` for the real data)::

    <root>/
      {train,val}2017/                       images (.jpg, or .png for the embedded set)
      panoptic_{train,val}2017/               panoptic PNGs, id = R + 256·G + 256²·B
      annotations/panoptic_{train,val}2017.json
      annotations/captions_{train,val}2017.json     (optional: captions per image)
      panoptic_semseg_{train,val}2017/        (optional: semantic PNGs 0..132 / 255, made by
                                               Mask2Former's prepare_coco_semantic_annos_from_panoptic_annos.py
                                               or :meth:`PanopticRecord.semantic`)

Each image becomes a :class:`PanopticRecord` with its segments (category index 0..132 in
detectron2's contiguous order, isthing, bbox, area, iscrowd), captions, and on demand the binary
masks and the semantic label map.

The JSON files (the format of https://cocodataset.org/#format-data, "Panoptic Segmentation") are
streamed with ``ijson`` (its C ``yajl2_c`` backend when built): at COCO train2017's scale the
panoptic JSON is ~143 MB with ~1.5 M segments, and ``json.load`` of it would hold every annotation
dict at once (issue 19's start-up RSS); streamed, one annotation dict exists at a time.
"""

from __future__ import annotations

import functools
import gc
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np

from ovlab.data.categories import CategoryList, load_categories
from ovlab.data.errors import CorruptFileError, DatasetNotFoundError
from ovlab.data.files import read_image, rgb_to_id

LAYOUT = """\
<root>/
  {split}2017/                          images
  panoptic_{split}2017/                 panoptic PNGs (id = R + 256*G + 256^2*B)
  annotations/panoptic_{split}2017.json COCO panoptic JSON (images, annotations, categories)
  annotations/captions_{split}2017.json optional, COCO captions
"""

SPLITS = ("train", "val")


@dataclass(frozen=True, slots=True)  # slots: ~1.5M of them at COCO scale (issue 19's start-up RSS)
class Segment:
    """One panoptic segment.

    Attributes:
        id: segment id in the panoptic PNG.
        category_id: the dataset's category id (COCO 1..200).
        category_index: contiguous index 0..K-1 (the semantic label value).
        isthing: thing or stuff.
        bbox: ``(x, y, w, h)`` in pixels, as COCO stores it.
        area: pixel count.
        iscrowd: crowd region (ignored by most training recipes).
    """

    id: int
    category_id: int
    category_index: int
    isthing: bool
    bbox: tuple[float, float, float, float]
    area: int
    iscrowd: bool = False


@dataclass
class PanopticRecord:
    """One image of a COCO-panoptic dataset.

    Attributes:
        image_id: COCO image id.
        image_path: the image file.
        panoptic_path: the panoptic PNG.
        height, width: image size in pixels.
        segments: the image's segments, in the JSON's order.
        captions: the image's captions (empty when the captions file is absent).
    """

    image_id: int
    image_path: Path
    panoptic_path: Path
    height: int
    width: int
    segments: list[Segment]
    captions: list[str] = field(default_factory=list)
    ignore_label: int = 255

    def image(self) -> np.ndarray:
        """The image as (H, W, 3) uint8 RGB. Raises :class:`CorruptFileError` naming the file."""
        return read_image(self.image_path, "RGB")

    def segment_ids(self) -> np.ndarray:
        """(H, W) int64 panoptic segment ids (0 = void).

        Raises:
            CorruptFileError: the PNG cannot be decoded or its size differs from the JSON's.
        """
        ids = rgb_to_id(read_image(self.panoptic_path, "RGB"))
        if ids.shape != (self.height, self.width):
            raise CorruptFileError(self.panoptic_path, f"size {ids.shape[::-1]} differs from the JSON's {(self.width, self.height)}")
        return ids

    def masks(self) -> np.ndarray:
        """(N, H, W) bool: one binary mask per entry of :attr:`segments`, same order.

        Raises:
            CorruptFileError: a segment of the JSON has no pixel in the PNG.
        """
        ids = self.segment_ids()
        out = np.zeros((len(self.segments), self.height, self.width), dtype=bool)
        for k, seg in enumerate(self.segments):
            out[k] = ids == seg.id
            if not out[k].any():
                raise CorruptFileError(self.panoptic_path, f"segment {seg.id} of image {self.image_id} has no pixel")
        return out

    def semantic(self) -> np.ndarray:
        """(H, W) uint8 semantic labels: category index per pixel, :attr:`ignore_label` for void."""
        ids = self.segment_ids()
        sem = np.full(ids.shape, self.ignore_label, dtype=np.uint8)
        for seg in self.segments:
            sem[ids == seg.id] = seg.category_index
        return sem


def _require(path: Path, root: Path, split: str) -> Path:
    if not path.exists():
        raise DatasetNotFoundError(
            "COCO panoptic", path, LAYOUT.format(split=split),
            hint=f"(root given: {root}). For the real data, point --root / the params at $DETECTRON2_DATASETS/coco.",
        )
    return path


def _names(folder: Path) -> frozenset[str]:
    """The regular files' names directly in ``folder`` (one ``os.scandir``)."""
    with os.scandir(folder) as it:
        return frozenset(e.name for e in it if e.is_file())


@functools.cache
def _ijson():
    """ijson's C backend (``yajl2_c``) when it is built, else ijson's default (the fastest it finds)."""
    import ijson

    try:
        return ijson.get_backend("yajl2_c")
    except ImportError:
        return ijson


def _stream(path: Path, prefix: str) -> Iterator[Any]:
    """The JSON values at ijson's ``prefix`` of ``path``, one at a time (``"annotations.item"``: each
    element of the top-level ``annotations`` array; ``"images"``: that whole array). The whole file is
    parsed once iterated to the end, so a syntax error anywhere in it raises; numbers are ``int`` or
    ``float`` as ``json.load`` gives them (``use_float``).

    Raises:
        CorruptFileError: not UTF-8, or not valid JSON (names the file and yajl's reason and context:
            the streaming parser reports no line and column).
    """
    from ijson.common import JSONError

    try:
        with open(path, "rb") as f:
            yield from _ijson().items(f, prefix, use_float=True)
    except (JSONError, UnicodeDecodeError) as exc:
        msg = exc.args[0] if exc.args and not isinstance(exc, UnicodeDecodeError) else str(exc)
        lines = [ln.strip() for ln in (msg.decode("utf-8", "replace") if isinstance(msg, bytes) else str(msg)).splitlines()]
        reason = lines[0] if lines and lines[0] else type(exc).__name__
        if isinstance(exc, UnicodeDecodeError) or isinstance(exc.__cause__ or exc.__context__, UnicodeDecodeError) \
                or "utf8" in reason.lower().replace("-", ""):
            raise CorruptFileError(path, f"not UTF-8 text ({reason})") from None
        near = f" near {lines[1]!r}" if len(lines) > 2 and lines[1] else ""  # yajl: reason, context, "(right here) --^"
        raise CorruptFileError(path, f"invalid JSON: {reason}{near}") from None


def _first(path: Path, prefix: str, default: Any) -> Any:
    """The first value at ``prefix`` (a top-level key: its value), else ``default``. Parsing stops there:
    COCO's ``images`` come first, so this reads a few MB of the file; an absent key parses all of it
    (``json.load`` would keep the last of a repeated key; COCO files repeat none)."""
    it = _stream(path, prefix)
    try:
        return next(it, default)
    finally:
        it.close()


_ABSENT = object()


class _Floats(dict):
    """``float(v)`` of JSON numbers by lookup, one shared object per integer value: COCO panoptic
    bboxes are whole pixels, so the ~6 M bbox floats at COCO scale are a few thousand objects (24 bytes
    each, ~140 MB). Other values are converted, not kept; 0 is not kept either, as ``-0.0 == 0`` would
    turn a JSON ``-0.0`` into ``0.0``."""

    def __missing__(self, v):
        f = float(v)
        if type(v) is int and v:
            self[v] = f
        return f


@contextmanager
def _gc_paused():
    """No cyclic garbage collection inside: the ~10 M objects of a COCO-scale read are never garbage,
    but their growing number triggers full collections that rescan them all (~20 % of the read's time)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@_gc_paused()
def read_coco_panoptic(
    root: str | Path,
    split: str = "train",
    categories: CategoryList | str | os.PathLike | None = "coco_panoptic_133",
    *,
    image_dir: str | Path | None = None,
    panoptic_dir: str | Path | None = None,
    panoptic_json: str | Path | None = None,
    captions_json: str | Path | None = None,
) -> list[PanopticRecord]:
    """Read a COCO panoptic split into per-image records (sorted by image id).

    The panoptic JSON is streamed (see the module docstring): a first pass takes ``images`` (and the
    JSON's ``categories`` when ``categories`` is ``None``), stopping there, and a second turns each
    annotation into its record as it is parsed; the captions JSON is streamed the same way. The keys
    may come in any order.

    Args:
        root: dataset root (see the module docstring for the layout).
        split: ``train`` or ``val`` (selects the default file names).
        categories: the contiguous class order: a catalog name, a category JSON path (``str`` or
            ``Path``) or a :class:`CategoryList`; by default the shipped COCO-133 catalog. ``None``
            takes the JSON's own ``categories`` in their order.
        image_dir, panoptic_dir, panoptic_json, captions_json: override the default paths
            (absolute, or relative to ``root``) for non-standard layouts.

    Raises:
        DatasetNotFoundError: root, folder or JSON missing (the message draws the layout).
        CorruptFileError: invalid JSON, an unknown category id, a missing image or PNG file.
    """
    root = Path(root)
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    _require(root, root, split)
    rel = lambda p, default: (root / p) if p is not None else root / default  # noqa: E731
    img_dir = _require(rel(image_dir, f"{split}2017"), root, split)
    pan_dir = _require(rel(panoptic_dir, f"panoptic_{split}2017"), root, split)
    pan_json = _require(rel(panoptic_json, f"annotations/panoptic_{split}2017.json"), root, split)
    cap_json = rel(captions_json, f"annotations/captions_{split}2017.json")

    not_coco = "not a COCO panoptic JSON (needs 'images' and 'annotations')"
    images_json = _first(pan_json, "images", _ABSENT)  # absent: the whole file was parsed (invalid JSON raised)
    if images_json is _ABSENT:
        raise CorruptFileError(pan_json, not_coco)
    stream = _stream(pan_json, "annotations.item")  # invalid JSON raises where the parse reaches it
    first = next(stream, _ABSENT)
    if first is _ABSENT:  # no annotation: an empty array, or no "annotations" key at all
        value = _first(pan_json, "annotations", _ABSENT)
        if value is _ABSENT:
            raise CorruptFileError(pan_json, not_coco)
        if not isinstance(value, list):
            raise CorruptFileError(pan_json, f"not a COCO panoptic JSON ('annotations' is a {type(value).__name__}, not an array)")
    if categories is None:
        cats = sorted(_first(pan_json, "categories", []), key=lambda c: c["id"])
        index_of = {c["id"]: i for i, c in enumerate(cats)}
        thing_of = {c["id"]: bool(c.get("isthing", 0)) for c in cats}
        ignore = 255
    else:
        cl = load_categories(categories) if isinstance(categories, (str, os.PathLike)) else categories
        index_of = {c.id: c.index for c in cl}
        thing_of = {c.id: c.isthing for c in cl}
        ignore = cl.ignore_label
    images = {im["id"]: im for im in images_json}
    del images_json
    captions: dict[int, list[str]] = {}
    if cap_json.exists():
        for a in _stream(cap_json, "annotations.item"):
            captions.setdefault(a["image_id"], []).append(a["caption"].strip())

    # One directory listing per folder instead of a stat per file (236k at COCO scale).
    listed = {d: _names(d) for d in (img_dir, pan_dir)}
    records = []
    as_float = _Floats().__getitem__
    try:
        for ann in chain(() if first is _ABSENT else (first,), stream):  # one JSON annotation at a time
            _add_record(ann, images, index_of, thing_of, ignore, captions, listed, img_dir, pan_dir, pan_json,
                        as_float, records)
    finally:
        stream.close()
    records.sort(key=lambda r: r.image_id)
    return records


def _add_record(ann, images, index_of, thing_of, ignore, captions, listed, img_dir, pan_dir, pan_json, as_float,
                records) -> None:
    """Append the :class:`PanopticRecord` of one JSON annotation to ``records``.

    Raises:
        CorruptFileError: unknown image or category id, or a missing image/PNG file.
    """
    im = images.get(ann["image_id"])
    if im is None:
        raise CorruptFileError(pan_json, f"annotation {ann.get('file_name')} refers to unknown image id {ann['image_id']}")
    segs = []
    for s in ann["segments_info"]:
        if s["category_id"] not in index_of:
            raise CorruptFileError(pan_json, f"image {im['id']}: segment {s['id']} has unknown category id {s['category_id']}")
        segs.append(Segment(
            id=int(s["id"]), category_id=int(s["category_id"]), category_index=index_of[s["category_id"]],
            isthing=thing_of[s["category_id"]], bbox=tuple(map(as_float, s["bbox"])),
            area=int(s["area"]), iscrowd=bool(s.get("iscrowd", 0)),
        ))
    img_path = img_dir / im["file_name"]
    pan_path = pan_dir / ann["file_name"]
    for folder, name, p in ((img_dir, im["file_name"], img_path), (pan_dir, ann["file_name"], pan_path)):
        if name not in listed[folder] and not p.is_file():  # a name with a sub-folder is stat'ed
            raise CorruptFileError(pan_json, f"image {im['id']}: file {p} is missing")
    records.append(PanopticRecord(
        image_id=int(im["id"]), image_path=img_path, panoptic_path=pan_path,
        height=int(im["height"]), width=int(im["width"]), segments=segs,
        captions=captions.get(im["id"], []), ignore_label=ignore,
    ))

