"""GKC's open-vocabulary VIPSeg splits (GKC §3.4; adapted from GKC
``datasets/prepare_vspw_novel_json.py``) and clips of their frames (as Video Mask2Former cuts them).

Each split keeps, per frame, the segments whose category is in its vocabulary K and works per
video, as GKC's ``prepare_vspw_novel_json.py`` does on the panoptic JSON:

==================== ============ ============= ===============================================
split                videos from  vocabulary K  rule
==================== ============ ============= ===============================================
``train_base_ignore`` train       112 base      drop novel segments (pixels → ignore); drop
                                                frames left with no segment; keep a video if
                                                it has any base segment
``train_base_delete`` train       112 base      as above, but drop a whole video if any of its
                                                frames has a novel segment
``val_base``          val         112 base      as ``train_base_ignore``, on val
``val_novel``         val         12 novel      keep novel segments only (base pixels → ignore);
                                                frames/videos without a novel segment dropped
``val``               val         all 124       every video and frame, all segments
==================== ============ ============= ===============================================

Semantic labels use the split's own contiguous index (position in K, ids ascending) and the
ignore label (255) for void and for dropped segments — GKC's per-split semantic PNGs
(``prepare_vipseg_semantic_annos_from_panoptic_annos.py``). Frame positions of a split refer to
its kept frames (dropped frames leave temporal gaps, visible in :attr:`VideoFrame.number`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path

import numpy as np

from ovlab.data.categories import CategoryList, load_categories
from ovlab.data.video_clips import ClipWindow, Tail, clip_windows, sample_clip, stack_clip
from ovlab.data.vipseg import NOVEL_IDS, PanoSegment, Source, VipsegFrame, VipsegVideo, lookup, read_vipseg

# name → (video split, vocabulary, drop a video holding any removed segment)
SPLITS: dict[str, tuple[str, str, bool]] = {
    "train_base_ignore": ("train", "base", False),
    "train_base_delete": ("train", "base", True),
    "val_base": ("val", "base", False),
    "val_novel": ("val", "novel", False),
    "val": ("val", "all", False),
}
SPLIT_NAMES: tuple[str, ...] = tuple(SPLITS)


@dataclass(frozen=True)
class FrameTargets:
    """A frame's targets in a split's vocabulary.

    Attributes:
        semantic: (H, W) uint8 split index, ignore label elsewhere (int64 if ignore > 255).
        masks: (N, H, W) bool, one per kept segment (ascending segment id).
        classes: (N,) int64 split index of each mask.
        segment_ids: (N,) int64 :attr:`PanoSegment.id` of each mask.
    """

    semantic: np.ndarray
    masks: np.ndarray
    classes: np.ndarray
    segment_ids: np.ndarray


@dataclass(frozen=True)
class VipsegSplit:
    """A built split: its videos (kept frames only) and its vocabulary.

    Attributes:
        name: one of :data:`SPLIT_NAMES`.
        video_split: ``train`` or ``val``.
        class_ids: the vocabulary K as VIPSeg category ids, ascending; split index = position.
        videos: kept videos; each frame still lists *all* its segments (see :meth:`kept`).
        categories: the 124-class catalog.
        ignore_label: label of void and dropped pixels.
    """

    name: str
    video_split: str
    class_ids: tuple[int, ...]
    videos: tuple[VipsegVideo, ...]
    categories: CategoryList
    ignore_label: int = 255

    @property
    def num_classes(self) -> int:
        return len(self.class_ids)

    @property
    def num_frames(self) -> int:
        return sum(len(v) for v in self.videos)

    @property
    def class_names(self) -> list[str]:
        by_id = self.categories.by_id()
        return [by_id[c].name for c in self.class_ids]

    def index_of(self, category_id: int) -> int:
        """Split index of a VIPSeg category id, or the ignore label when not in K."""
        return self._index.get(category_id, self.ignore_label)

    @cached_property
    def _index(self) -> dict[int, int]:
        return {c: i for i, c in enumerate(self.class_ids)}

    def kept(self, frame: VipsegFrame) -> tuple[PanoSegment, ...]:
        """The frame's segments whose category is in the vocabulary."""
        idx = self._index
        return tuple(s for s in frame.segments if s.category_id in idx)

    def semantic(self, frame: VipsegFrame) -> np.ndarray:
        """(H, W) split-index labels, ignore label for void and dropped segments (uint8 when it fits)."""
        return self.targets(frame, masks=False).semantic

    def targets(self, frame: VipsegFrame, *, masks: bool = True) -> FrameTargets:
        """Semantic map and per-segment masks of one frame (see :class:`FrameTargets`)."""
        ids = frame.segment_ids()
        kept = self.kept(frame)
        dtype = np.uint8 if self.ignore_label <= 255 else np.int64
        sem = lookup(ids, {s.id: self.index_of(s.category_id) for s in kept}, self.ignore_label).astype(dtype)
        m = np.stack([ids == s.id for s in kept]) if masks and kept else np.zeros((0, *ids.shape), dtype=bool)
        return FrameTargets(sem, m, np.array([self.index_of(s.category_id) for s in kept], dtype=np.int64),
                            np.array([s.id for s in kept], dtype=np.int64))

    def classes_present(self) -> list[int]:
        """VIPSeg category ids with at least one kept segment, ascending."""
        return sorted({s.category_id for v in self.videos for f in v.frames for s in self.kept(f)})

    def summary(self) -> dict:
        """``{"split", "video_split", "num_classes", "videos", "frames", "classes_present"}``."""
        return {"split": self.name, "video_split": self.video_split, "num_classes": self.num_classes,
                "videos": len(self.videos), "frames": self.num_frames, "classes_present": self.classes_present()}


def vocabulary(kind: str, categories: CategoryList, novel_ids: Sequence[int]) -> tuple[int, ...]:
    """Category ids of a vocabulary: ``"base"`` (not novel), ``"novel"`` or ``"all"``, ascending.

    Raises:
        ValueError: unknown kind, or a novel id that is not a category id.
    """
    ids = sorted(c.id for c in categories)
    novel = set(novel_ids)
    if novel - set(ids):
        raise ValueError(f"novel ids {sorted(novel - set(ids))} are not {categories.dataset} category ids")
    if kind == "base":
        return tuple(i for i in ids if i not in novel)
    if kind == "novel":
        return tuple(i for i in ids if i in novel)
    if kind == "all":
        return tuple(ids)
    raise ValueError(f"unknown vocabulary {kind!r} (base, novel, all)")


def build_split(name: str, videos: Sequence[VipsegVideo], *, categories: CategoryList | str = "vipseg_124",
                novel_ids: Sequence[int] | None = None, ignore_label: int = 255) -> VipsegSplit:
    """Apply split ``name``'s rules (module table) to already-read videos.

    Args:
        name: one of :data:`SPLIT_NAMES`.
        videos: the videos of the matching video split (:func:`ovlab.data.vipseg.read_vipseg`).
        categories: the 124-class catalog.
        novel_ids: held-out category ids (default :data:`ovlab.data.vipseg.NOVEL_IDS`, GKC's 12).
        ignore_label: label of void and dropped pixels.

    Raises:
        ValueError: unknown split name or bad novel ids.
    """
    if name not in SPLITS:
        raise ValueError(f"unknown VIPSeg split {name!r}; use one of {SPLIT_NAMES}")
    video_split, kind, delete = SPLITS[name]
    cats = load_categories(categories) if isinstance(categories, str) else categories
    keep = vocabulary(kind, cats, NOVEL_IDS if novel_ids is None else novel_ids)
    keep_set = set(keep)
    out = []
    for v in videos:
        if kind == "all":
            out.append(v)
            continue
        frames = [f for f in v.frames if any(s.category_id in keep_set for s in f.segments)]
        removed = any(s.category_id not in keep_set for f in v.frames for s in f.segments)
        if frames and not (delete and removed):
            out.append(replace(v, frames=tuple(frames)))
    return VipsegSplit(name, video_split, keep, tuple(out), cats, ignore_label)


def load_split(root: str | Path, name: str, *, source: Source = "panomasks", categories: CategoryList | str = "vipseg_124",
               novel_ids: Sequence[int] | None = None, ignore_label: int = 255, progress: bool = True) -> VipsegSplit:
    """Read the needed VIPSeg video split under ``root`` and build split ``name``.

    As GKC ``datasets/prepare_vspw_novel_json.py`` builds it.

    Raises:
        DatasetNotFoundError, CorruptFileError: see :func:`ovlab.data.vipseg.read_vipseg`.
        ValueError: unknown split name.
    """
    if name not in SPLITS:
        raise ValueError(f"unknown VIPSeg split {name!r}; use one of {SPLIT_NAMES}")
    videos = read_vipseg(root, SPLITS[name][0], source=source, categories=categories, progress=progress)
    return build_split(name, videos, categories=categories, novel_ids=novel_ids, ignore_label=ignore_label)


def train_base_ignore(root: str | Path, **kw) -> VipsegSplit:
    """Train videos, base vocabulary, novel pixels ignored (GKC ``train_base_ignore``). ``kw``: see :func:`load_split`."""
    return load_split(root, "train_base_ignore", **kw)


def train_base_delete(root: str | Path, **kw) -> VipsegSplit:
    """Train videos without any novel segment, base vocabulary (GKC ``train_base_delete``)."""
    return load_split(root, "train_base_delete", **kw)


def val_base(root: str | Path, **kw) -> VipsegSplit:
    """Val videos, 112-class base vocabulary, novel pixels ignored (GKC ``val_base``)."""
    return load_split(root, "val_base", **kw)


def val_novel(root: str | Path, **kw) -> VipsegSplit:
    """Val frames with novel segments, 12-class novel vocabulary, base pixels ignored (GKC ``val_novel``)."""
    return load_split(root, "val_novel", **kw)


def val(root: str | Path, **kw) -> VipsegSplit:
    """All val videos and frames, 124-class vocabulary (GKC ``val``; the generalized protocol's GT)."""
    return load_split(root, "val", **kw)


@dataclass(frozen=True)
class ClipSample:
    """One clip of a split, ready for a video model (Video Mask2Former targets; GKC §3.4).

    Attributes:
        video: video name.
        frame_names: (T,) frame stems.
        positions: (T,) positions in the split's frame list of the video.
        valid: (T,) bool, frames an evaluation counts (see :class:`ClipWindow`).
        images: (T, H, W, 3) uint8 RGB.
        semantic: (T, H, W) uint8 split index / ignore label.
        masks: (N, T, H, W) bool space-time masks, one per kept segment id seen in the clip
            (all False in frames where it is absent).
        classes: (N,) int64 split index per mask.
        segment_ids: (N,) int64 segment id per mask (video-consistent instance identity).
        isthing: (N,) bool.
    """

    video: str
    frame_names: tuple[str, ...]
    positions: tuple[int, ...]
    valid: np.ndarray
    images: np.ndarray
    semantic: np.ndarray
    masks: np.ndarray
    classes: np.ndarray
    segment_ids: np.ndarray
    isthing: np.ndarray


class VipsegClips(Sequence):
    """Clips of a :class:`VipsegSplit`: item ``i`` is the :class:`ClipSample` of ``plan[i]``.

    Args:
        split: the split.
        plan: ``(video index, ClipWindow)`` pairs; build it with :meth:`windows` or :meth:`sampled`.
    """

    def __init__(self, split: VipsegSplit, plan: Sequence[tuple[int, ClipWindow]]):
        self.split = split
        self.plan = list(plan)

    @classmethod
    def windows(cls, split: VipsegSplit, clip_length: int | None, stride: int = 1, step: int | None = None,
                tail: Tail = "pad") -> "VipsegClips":
        """Deterministic windows over every video (:func:`ovlab.data.video_clips.clip_windows`);
        ``clip_length=None`` makes one clip per video of all its (subsampled) frames."""
        plan = []
        for vi, v in enumerate(split.videos):
            T = clip_length if clip_length is not None else max(1, -(-len(v) // stride))
            plan += [(vi, w) for w in clip_windows(len(v), T, stride, step, tail)]
        return cls(split, plan)

    @classmethod
    def sampled(cls, split: VipsegSplit, clip_length: int, sampling_range: int, rng: np.random.Generator) -> "VipsegClips":
        """One VMF-style random clip per video (:func:`ovlab.data.video_clips.sample_clip`); call
        once per epoch with a generator seeded from (seed, epoch)."""
        return cls(split, [(vi, sample_clip(len(v), clip_length, sampling_range, rng)) for vi, v in enumerate(split.videos)])

    def __len__(self) -> int:
        return len(self.plan)

    def __getitem__(self, i: int) -> ClipSample:  # type: ignore[override]
        vi, w = self.plan[i]
        video = self.split.videos[vi]
        frames = video.frames
        targets = {p: self.split.targets(frames[p]) for p in dict.fromkeys(w.positions)}
        images = stack_clip(w, lambda p: frames[p].image(), what=f"{video.name} frame")
        semantic = stack_clip(w, lambda p: targets[p].semantic, what=f"{video.name} label")
        ids = sorted({int(s) for t in targets.values() for s in t.segment_ids})
        T, H, W = semantic.shape
        masks = np.zeros((len(ids), T, H, W), dtype=bool)
        classes = np.zeros(len(ids), dtype=np.int64)
        row = {s: k for k, s in enumerate(ids)}
        for t, p in enumerate(w.positions):
            tg = targets[p]
            for m, c, s in zip(tg.masks, tg.classes, tg.segment_ids):
                masks[row[int(s)], t] = m
                classes[row[int(s)]] = c
        thing = {s.id: s.isthing for p in targets for s in frames[p].segments}
        return ClipSample(video.name, tuple(frames[p].name for p in w.positions), w.positions,
                          np.array(w.valid, dtype=bool), images, semantic, masks, classes,
                          np.array(ids, dtype=np.int64), np.array([thing[s] for s in ids], dtype=bool))
