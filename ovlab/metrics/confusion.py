"""Streaming confusion matrix for semantic segmentation (detectron2 ``SemSegEvaluator`` convention).

Convention, used everywhere in ovlab: ``confusion[i, j]`` = number of pixels whose ground truth is
class ``i`` and whose prediction is class ``j`` (rows = ground truth, columns = prediction).
Ignore pixels (ground truth equal to an ignore label, 255 and 65535 by default) are never counted.
Note that detectron2 and SCAN store the transpose (rows = prediction); :func:`from_detectron2`
converts.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch

DEFAULT_IGNORE = (255, 65535)


_NP_OK = {np.dtype(t) for t in (np.uint8, np.int8, np.int16, np.int32, np.int64)}


def _as_index(x, device: torch.device) -> torch.Tensor:
    """Any integer array/tensor → a tensor on ``device`` (numpy uint16/uint32 widen to int32/int64)."""
    if isinstance(x, torch.Tensor):
        if x.dtype.is_floating_point or x.dtype.is_complex or x.dtype == torch.bool:
            raise TypeError(f"label maps must have an integer dtype, got {x.dtype}")
        if x.dtype in (torch.uint16, torch.uint32, torch.uint64):
            x = x.to(torch.int32 if x.dtype == torch.uint16 else torch.int64)
        return x.to(device)
    a = np.asarray(x)
    if not np.issubdtype(a.dtype, np.integer):
        raise TypeError(f"label maps must have an integer dtype, got {a.dtype}")
    if a.dtype not in _NP_OK:
        a = a.astype(np.int32 if a.dtype == np.uint16 else np.int64)
    return torch.from_numpy(np.ascontiguousarray(a)).to(device)


def _max_of(dtype: torch.dtype) -> int:
    return torch.iinfo(dtype).max


class ConfusionMatrix:
    """Accumulate a K×K confusion matrix over many (ground truth, prediction) label maps.

    Args:
        num_classes: K. Valid labels are 0..K-1.
        ignore_labels: ground-truth values that are skipped (default: those of 255 and 65535 that
            are ≥ K, so 65535 only for K > 255). Given explicitly, they must be ≥ K; ignore pixels are excluded whatever the prediction says there
            (as SCAN ``SGIoU_SemSegEvaluator``).
        device: where the bincount runs (``"cpu"``, ``"cuda"``); the matrix stays there.

    Attributes:
        matrix: (K, K) int64 tensor, ``matrix[i, j]`` = pixels with GT ``i`` predicted ``j``.

    Example::

        cm = ConfusionMatrix(150)
        for gt, pred in pairs:
            cm.update(gt, pred)
        ious = iou(cm.numpy())
    """

    def __init__(self, num_classes: int, ignore_labels: Iterable[int] | None = None, device: str | torch.device = "cpu"):
        if num_classes < 1:
            raise ValueError(f"num_classes must be ≥ 1, got {num_classes}")
        self.num_classes = int(num_classes)
        if ignore_labels is None:  # 255 is a class index when K > 255 (ADE-847, PC-459)
            ignore_labels = [v for v in DEFAULT_IGNORE if v >= num_classes]
        self.ignore_labels = tuple(int(v) for v in ignore_labels)
        bad = [v for v in self.ignore_labels if 0 <= v < num_classes]
        if bad:
            raise ValueError(f"ignore labels {bad} collide with class indices 0..{num_classes - 1}")
        self.device = torch.device(device)
        self.matrix = torch.zeros((num_classes, num_classes), dtype=torch.int64, device=self.device)

    def reset(self) -> None:
        self.matrix.zero_()

    def update(self, gt, pred, *, name: str | None = None) -> None:
        """Add one label map pair (or a batch of them).

        Args:
            gt: ground truth, any shape, any integer dtype (numpy or torch); values in 0..K-1 or an
                ignore label.
            pred: prediction, same shape, values in 0..K-1 (ignored where the GT is ignored).
            name: shown in error messages (e.g. the file name).

        Raises:
            ValueError: shapes differ, or a label is outside 0..K-1 and not an ignore label (the
                message lists the offending values).
        """
        where = f"{name}: " if name else ""
        gshape, pshape = tuple(gt.shape), tuple(pred.shape)
        if gshape != pshape:
            raise ValueError(f"{where}prediction shape {pshape} differs from ground-truth shape {gshape}")
        K = self.num_classes
        g = _as_index(gt, self.device).reshape(-1)
        p = _as_index(pred, self.device).reshape(-1)
        if g.numel() == 0:
            return
        gmin, gmax = int(g.min()), int(g.max())
        lut = self._lut(gmin, gmax)
        # lut[v - gmin] = v*K for classes, K*K (a spill bin) for ignore labels, -1 for bad values
        if lut is not None:
            gi = g.to(torch.int32) if g.dtype != torch.int32 else g
            idx = lut.index_select(0, gi - gmin if gmin else gi)
        if lut is None or int(idx.min()) < 0:
            g = g.to(torch.int64)
            ign = torch.isin(g, torch.tensor(self.ignore_labels, device=self.device, dtype=torch.int64)) if self.ignore_labels else torch.zeros_like(g, dtype=torch.bool)
            vals = torch.unique(g[~(((g >= 0) & (g < K)) | ign)])[:10].tolist()
            raise ValueError(f"{where}ground-truth values {vals} are neither class indices 0..{K - 1} nor ignore labels {list(self.ignore_labels)}")
        pmin, pmax = int(p.min()), int(p.max())
        if pmax >= K or pmin < 0:
            bad = ((p >= K) | (p < 0)) & (idx < K * K)
            if bool(bad.any()):
                vals = torch.unique(p[bad])[:10].tolist()
                raise ValueError(f"{where}prediction values {vals} are not class indices 0..{K - 1}")
            p = p.clamp(0, K - 1)  # only at ignore pixels, which land in the spill bins
        idx.add_(p.to(idx.dtype))
        counts = torch.bincount(idx, minlength=K * K + K)
        self.matrix += counts[: K * K].reshape(K, K)

    def _lut(self, gmin: int, gmax: int) -> torch.Tensor | None:
        """Ground-truth value → bin offset table over [gmin, gmax] (None when the range is huge)."""
        K = self.num_classes
        if gmax - gmin > 1 << 20:
            return None
        key = (gmin, gmax)
        cache = self.__dict__.setdefault("_luts", {})
        if key not in cache:
            wide = torch.int32 if K * K + K < 2**31 else torch.int64
            vals = torch.arange(gmin, gmax + 1, device=self.device, dtype=torch.int64)
            lut = torch.full_like(vals, -1)
            cls = (vals >= 0) & (vals < K)
            lut[cls] = vals[cls] * K
            for v in self.ignore_labels:
                if gmin <= v <= gmax:
                    lut[v - gmin] = K * K
            if len(cache) > 16:
                cache.clear()
            cache[key] = lut.to(wide)
        return cache[key]

    def merge(self, other: "ConfusionMatrix") -> "ConfusionMatrix":
        """Add another matrix of the same K (e.g. from another worker) into this one."""
        if other.num_classes != self.num_classes:
            raise ValueError(f"cannot merge K={other.num_classes} into K={self.num_classes}")
        self.matrix += other.matrix.to(self.device)
        return self

    def numpy(self) -> np.ndarray:
        """(K, K) int64 numpy copy (rows = ground truth)."""
        return self.matrix.cpu().numpy().copy()


def confusion_matrix(gt, pred, num_classes: int, ignore_labels: Iterable[int] | None = None) -> np.ndarray:
    """One-shot :class:`ConfusionMatrix` on a single pair; returns the (K, K) int64 numpy matrix."""
    cm = ConfusionMatrix(num_classes, ignore_labels)
    cm.update(gt, pred)
    return cm.numpy()


def from_detectron2(conf: np.ndarray) -> np.ndarray:
    """Convert a detectron2/SCAN matrix ((K+1)×(K+1), rows = prediction, last row/col = ignore)
    to ovlab's K×K rows-=-ground-truth convention (the ignore row/column is dropped)."""
    c = np.asarray(conf)
    return c[:-1, :-1].T.copy()
