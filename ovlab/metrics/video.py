"""Seen / unseen / harmonic mIoU of the open-vocabulary video benchmark (GKC §4.4, Tab. 3).

Frames of every clip are scored as semantic maps (GKC does not say how it scores videos; this is our choice):
confusion matrices accumulate over all counted frames of all clips, and mIoU follows detectron2
(:mod:`ovlab.metrics.scores`). Both vocabulary protocols, since GKC does not say which one Tab. 3 used:

- ``"split-vocab"`` (what GKC's per-split registrations imply): two runs. The *seen* run predicts
  with the 112 base names on ``val_base`` (GT in the 112-class index); the *unseen* run predicts
  with the 12 novel names on ``val_novel`` (12-class index). S and U are the mIoU of each run.
- ``"generalized"`` (SCAN ``GeneralizedSemSegEvaluator.evaluation_set``): one run with all 124
  names on ``val``; S and U average the per-class IoU over the seen and over the unseen classes.

H = 2SU / (S + U). Every dict and file this module writes records the protocol.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np

from ovlab.atomic import write_json

from ovlab.metrics.confusion import ConfusionMatrix
from ovlab.metrics.scores import iou
from ovlab.metrics.splits import SplitScores, generalized_split, split_vocab

Protocol = Literal["split-vocab", "generalized"]
PROTOCOLS: tuple[str, ...] = ("split-vocab", "generalized")
#: The VIPSeg splits (:mod:`ovlab.data.vipseg_splits`) whose GT each protocol's parts use.
EVAL_SPLITS: dict[str, dict[str, str]] = {
    "split-vocab": {"seen": "val_base", "unseen": "val_novel"},
    "generalized": {"all": "val"},
}


class VideoSplitMetrics:
    """Accumulate clip predictions and score them under one protocol.

    Args:
        protocol: ``"split-vocab"`` or ``"generalized"``.
        unseen: (K,) bool mask over the full vocabulary (True = unseen/novel), or the list of
            unseen class indices together with ``num_classes``.
        num_classes: K of the full vocabulary (needed when ``unseen`` is a list).
        names: (K,) class names of the full vocabulary (for the per-class table).
        ignore_label: GT value never counted (255).
        device: where the confusion bincount runs.

    Parts: ``generalized`` has one part ``"all"`` (K classes, full-vocabulary indices);
    ``split-vocab`` has ``"seen"`` (the seen classes in ascending full index, re-indexed 0..S−1)
    and ``"unseen"`` (likewise 0..U−1) — the indices of ``val_base`` / ``val_novel``.

    Example (VIPSeg)::

        m = VideoSplitMetrics.for_vipseg("generalized")
        for clip, pred in zip(clips, preds):        # pred: (T, H, W) indices 0..123
            m.update(clip.semantic, pred, valid=clip.valid)
        m.write("results/video/metrics.json")
    """

    def __init__(self, protocol: Protocol, unseen: Sequence[int] | np.ndarray, num_classes: int | None = None,
                 names: Sequence[str] | None = None, ignore_label: int = 255, device: str = "cpu"):
        if protocol not in PROTOCOLS:
            raise ValueError(f"unknown protocol {protocol!r}; use one of {PROTOCOLS}")
        a = np.asarray(unseen)
        if a.dtype == bool:
            mask = a.copy()
            if num_classes is not None and mask.shape != (num_classes,):
                raise ValueError(f"unseen mask has shape {mask.shape}, expected ({num_classes},)")
        else:
            if num_classes is None:
                raise ValueError("give num_classes with a list of unseen indices")
            if a.size and (a.min() < 0 or a.max() >= num_classes):
                raise ValueError(f"unseen indices must lie in 0..{num_classes - 1}")
            mask = np.zeros(num_classes, dtype=bool)
            mask[a.astype(np.int64)] = True
        if names is not None and len(names) != mask.size:
            raise ValueError(f"{len(names)} names for {mask.size} classes")
        self.protocol = protocol
        self.unseen_mask = mask
        self.names = list(names) if names is not None else [str(i) for i in range(mask.size)]
        self.ignore_label = int(ignore_label)
        sizes = {"all": mask.size} if protocol == "generalized" else {"seen": int((~mask).sum()), "unseen": int(mask.sum())}
        self.parts = {p: ConfusionMatrix(k, [ignore_label], device) for p, k in sizes.items() if k > 0}
        self.frames = {p: 0 for p in sizes}
        self.clips = {p: 0 for p in sizes}

    @classmethod
    def for_vipseg(cls, protocol: Protocol, categories="vipseg_124", novel_ids: Sequence[int] | None = None,
                   **kw) -> "VideoSplitMetrics":
        """The VIPSeg 124-class setting; unseen = ``novel_ids`` (default GKC's 12, :data:`ovlab.data.vipseg.NOVEL_IDS`)."""
        from ovlab.data.categories import load_categories
        from ovlab.data.vipseg import NOVEL_IDS

        cats = load_categories(categories) if isinstance(categories, str) else categories
        novel = set(NOVEL_IDS if novel_ids is None else novel_ids)
        return cls(protocol, np.array([c.id in novel for c in cats]), names=cats.names, **kw)

    def part_indices(self, part: str) -> list[int]:
        """Full-vocabulary indices of a part's classes, in the part's index order."""
        if part == "all":
            return list(range(self.unseen_mask.size))
        return [int(i) for i in np.nonzero(self.unseen_mask if part == "unseen" else ~self.unseen_mask)[0]]

    def update(self, gt, pred, *, part: str | None = None, valid=None, name: str | None = None) -> None:
        """Add one clip (or one frame).

        Args:
            gt: (T, H, W) or (H, W) integer GT in the part's index space, ignore label elsewhere.
            pred: same shape, predicted indices in the part's space (numpy or torch).
            part: ``"all"`` for generalized (the default there); ``"seen"`` or ``"unseen"`` for
                split-vocab (required).
            valid: (T,) bool, the frames to count (:attr:`ClipSample.valid`); default all.
            name: for error messages (e.g. the video name).

        Raises:
            ValueError: wrong part for the protocol, mismatched shapes, labels outside the part's
                classes (see :meth:`ConfusionMatrix.update`).
        """
        part = part if part is not None else ("all" if self.protocol == "generalized" else None)
        if part not in self.frames:
            raise ValueError(f"protocol {self.protocol!r} has parts {list(self.frames)}; got part={part!r}")
        if part not in self.parts:
            raise ValueError(f"part {part!r} has no class")
        if tuple(gt.shape) != tuple(pred.shape):
            raise ValueError(f"{name + ': ' if name else ''}prediction shape {tuple(pred.shape)} differs from GT shape {tuple(gt.shape)}")
        if gt.ndim == 2:
            gt, pred = gt[None], pred[None]
        keep = np.ones(gt.shape[0], dtype=bool) if valid is None else np.asarray(valid, dtype=bool)
        if keep.shape != (gt.shape[0],):
            raise ValueError(f"valid has shape {keep.shape}, expected ({gt.shape[0]},)")
        idx = np.nonzero(keep)[0]
        if idx.size == keep.size:
            self.parts[part].update(gt, pred, name=name)
        elif idx.size:
            sel = idx.tolist()  # indexes numpy arrays and torch tensors alike
            self.parts[part].update(gt[sel], pred[sel], name=name)
        self.frames[part] += int(idx.size)
        self.clips[part] += 1

    def confusion(self, part: str) -> np.ndarray:
        """(K_part, K_part) int64 confusion of a part (rows = GT)."""
        return self.parts[part].numpy()

    def scores(self) -> SplitScores:
        """Seen, unseen, harmonic mIoU in percent (NaN when a part has no counted pixel)."""
        if self.protocol == "generalized":
            return generalized_split(self.confusion("all"), self.unseen_mask)
        empty = np.zeros((1, 1), dtype=np.int64)  # a part without classes scores NaN
        s = self.confusion("seen") if "seen" in self.parts else empty
        u = self.confusion("unseen") if "unseen" in self.parts else empty
        return split_vocab(s, u)

    def compute(self) -> dict:
        """JSON-ready results (NaN → ``None``).

        Returns:
            ``{"protocol", "seen_miou", "unseen_miou", "harmonic", "num_classes": {"seen", "unseen"},
            "frames": {part: n}, "clips": {part: n}, "eval_splits": {part: VIPSeg split},
            "per_class": [{"index", "name", "split", "iou"}]}`` (mIoU, H and IoU in percent;
            ``per_class`` lists the full-vocabulary classes; IoU None where a class does not count).
        """
        sc = self.scores()
        per = np.full(self.unseen_mask.size, np.nan)
        for part in self.parts:
            per[self.part_indices(part)] = iou(self.confusion(part)) * 100
        return {
            "protocol": self.protocol,
            "seen_miou": _num(sc.seen),
            "unseen_miou": _num(sc.unseen),
            "harmonic": _num(sc.harmonic),
            "num_classes": {"seen": int((~self.unseen_mask).sum()), "unseen": int(self.unseen_mask.sum())},
            "frames": dict(self.frames),
            "clips": dict(self.clips),
            "eval_splits": dict(EVAL_SPLITS[self.protocol]),
            "per_class": [{"index": i, "name": self.names[i], "split": "unseen" if self.unseen_mask[i] else "seen",
                           "iou": _num(per[i])} for i in range(per.size)],
        }

    def write(self, path: str | Path, **extra) -> dict:
        """Write :meth:`compute` (plus ``extra`` keys, e.g. the model or params) as JSON atomically; returns it."""
        out = {**self.compute(), **extra}
        out["protocol"] = self.protocol  # never overridden by extra
        write_json(path, out)
        return out


def _num(x: float) -> float | None:
    return None if x is None or np.isnan(x) else float(x)
