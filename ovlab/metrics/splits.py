"""Seen / unseen / harmonic mIoU for an open-vocabulary class split (GKC §4.1, Tab. 3).

Two protocols (the paper does not say which it used and the official code does not settle it, so
we offer both):

- ``"split-vocab"``: S is the mIoU of a run whose vocabulary holds only the seen classes (GT of
  unseen classes ignored), U the mIoU of a separate run with only the unseen classes — two
  confusion matrices (what GKC's per-split registrations imply).
- ``"generalized"``: one run with the whole vocabulary; S and U average the per-class IoU over the
  seen and over the unseen classes (SCAN ``GeneralizedSemSegEvaluator.evaluation_set``).

H = 2·S·U / (S + U) (0 when S + U = 0; NaN when S or U is NaN).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ovlab.metrics.scores import iou, mean_iou


@dataclass(frozen=True)
class SplitScores:
    """Seen, unseen and harmonic mIoU in percent, and the protocol that produced them."""

    seen: float
    unseen: float
    harmonic: float
    protocol: str

    def as_dict(self) -> dict:
        return asdict(self)


def harmonic_mean(seen: float, unseen: float) -> float:
    """H = 2SU / (S + U); 0 if S + U = 0; NaN if either is NaN."""
    if np.isnan(seen) or np.isnan(unseen):
        return float("nan")
    return 0.0 if seen + unseen == 0 else 2 * seen * unseen / (seen + unseen)


def generalized_split(confusion, unseen: np.ndarray | list[int]) -> SplitScores:
    """``generalized`` protocol: one (K, K) matrix over the whole vocabulary.

    Args:
        confusion: (K, K) counts, rows = ground truth.
        unseen: (K,) bool mask of unseen classes, or a list of unseen class indices.

    Returns:
        :class:`SplitScores` in percent.
    """
    per = iou(confusion)
    mask = _mask(unseen, per.shape[0])
    s = mean_iou(per, ~mask) * 100
    u = mean_iou(per, mask) * 100
    return SplitScores(s, u, harmonic_mean(s, u), "generalized")


def split_vocab(confusion_seen, confusion_unseen) -> SplitScores:
    """``split-vocab`` protocol: S = mIoU of the seen-only run, U = mIoU of the unseen-only run.

    Args:
        confusion_seen: (S, S) counts from the run with the seen vocabulary.
        confusion_unseen: (U, U) counts from the run with the unseen vocabulary.
    """
    s = mean_iou(iou(confusion_seen)) * 100
    u = mean_iou(iou(confusion_unseen)) * 100
    return SplitScores(s, u, harmonic_mean(s, u), "split-vocab")


def restrict_labels(labels: np.ndarray, keep: np.ndarray | list[int], num_classes: int, ignore_label: int = 255) -> np.ndarray:
    """Re-index a full-vocabulary label map to a sub-vocabulary (for the split-vocab protocol).

    Args:
        labels: (H, W) integer map with values 0..K-1 or ignore labels.
        keep: the kept class indices, in the sub-vocabulary's order (sub index = position).
        num_classes: K of the full vocabulary.
        ignore_label: written where the class is not kept (and where it was already ignored).

    Returns:
        (H, W) int64 map with values 0..len(keep)-1 or ``ignore_label``.
    """
    lut = np.full(max(num_classes, int(np.max(labels, initial=0)) + 1), ignore_label, dtype=np.int64)
    keep = np.asarray(keep, dtype=np.int64)
    lut[keep] = np.arange(keep.size)
    return lut[np.asarray(labels, dtype=np.int64)]


def _mask(unseen, K: int) -> np.ndarray:
    a = np.asarray(unseen)
    if a.dtype == bool:
        if a.shape != (K,):
            raise ValueError(f"unseen mask must have shape ({K},), got {a.shape}")
        return a
    m = np.zeros(K, dtype=bool)
    m[a.astype(np.int64)] = True
    return m
