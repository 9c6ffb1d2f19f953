"""Scores from a confusion matrix: IoU, SG-IoU (SCAN Eq. 6), mIoU / fwIoU / mACC / pACC.

All functions take a (K, K) matrix in ovlab's convention: ``confusion[i, j]`` = pixels with ground
truth ``i`` predicted ``j`` (rows = ground truth; see :mod:`ovlab.metrics.confusion`).
Averages follow detectron2's ``SemSegEvaluator`` (what GKC and SCAN evaluate with): a class enters the
mean when G + P > 0, and a class predicted but absent from the ground truth contributes IoU 0.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np

SGMode = Literal["code", "pooled"]


def _counts(confusion) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    c = np.asarray(confusion)
    if hasattr(confusion, "cpu"):  # torch tensor
        c = confusion.cpu().numpy()
    if c.ndim != 2 or c.shape[0] != c.shape[1]:
        raise ValueError(f"confusion matrix must be square (K, K), got shape {c.shape}")
    c = c.astype(np.float64)
    return c, c.sum(axis=1), c.sum(axis=0), np.diag(c).copy()


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    out = np.full(den.shape, np.nan, dtype=np.float64)
    ok = den > 0
    out[ok] = num[ok] / den[ok]
    return out


def iou(confusion) -> np.ndarray:
    """Per-class IoU = TP / (G + P − TP).

    Args:
        confusion: (K, K) counts, rows = ground truth (numpy or torch, any numeric dtype).

    Returns:
        (K,) float64 in [0, 1]; NaN where G + P = 0 (class absent from both); 0 for a class that
        is predicted but absent from the ground truth.
    """
    _, G, P, TP = _counts(confusion)
    return _ratio(TP, G + P - TP)


def _father_lists(fathers, K: int) -> dict[int, list[int]]:
    if hasattr(fathers, "index_fathers"):
        fathers = fathers.index_fathers()
    if not isinstance(fathers, Mapping):
        raise TypeError(f"fathers must map a class index to a list of father indices, got {type(fathers).__name__}")
    out: dict[int, list[int]] = {}
    for q, fs in fathers.items():
        q = int(q)
        if isinstance(fs, (int, np.integer)):
            fs = [fs]
        seen: list[int] = []
        for f in fs:
            f = int(f)
            if not (0 <= q < K and 0 <= f < K):
                raise ValueError(f"association {q} -> {f}: index outside 0..{K - 1}")
            if f != q and f not in seen:
                seen.append(f)
        if seen:
            out[q] = seen
    return out


def sg_true_positives(confusion, fathers: Mapping[int, Sequence[int]], mode: SGMode = "code") -> np.ndarray:
    """Boosted true positives TP'_q of SG-IoU (SCAN Eq. 6, §3.3; adapted from SCAN
    ``scan/evaluation/generalized_sem_seg_evaluation.py`` ``SGIoU_SemSegEvaluator``).

    With C = ``confusion`` (rows = GT), P_f = Σ_i C[i, f] (pixels predicted f on valid GT):

    - ``mode="code"`` (the official evaluator, per father):
      TP'_q = TP_q + Σ_{f∈A(q)} β_f·C[q, f],  β_f = (C[q, f] + C[f, f]) / P_f  (β_f = 1 if P_f = 0).
    - ``mode="pooled"`` (Eq. 6 as printed, Q = A(q) pooled):
      TP'_q = TP_q + β·P_Q G_q,  P_Q G_q = Σ_{f∈Q} C[q, f],  P_Q G_Q = Σ_{f,f'∈Q} C[f', f],
      β = (P_Q G_q + P_Q G_Q) / P_Q,  P_Q = Σ_{f∈Q} P_f  (β = 1 if P_Q = 0).
      [INFER] "GT in Q" reads as any ground truth inside the father set; with one father both
      modes coincide.

    Args:
        confusion: (K, K) counts, rows = ground truth.
        fathers: class index → father indices (synonyms and parents); an int is one father.
            Self-references and repeats are dropped. An :class:`AssociationMap` works too.
        mode: ``"code"`` or ``"pooled"``.

    Returns:
        (K,) float64 boosted true positives (TP where a class has no father).

    Raises:
        ValueError: unknown mode, or an index outside 0..K-1.
    """
    if mode not in ("code", "pooled"):
        raise ValueError(f"unknown SG-IoU mode {mode!r} (use 'code' or 'pooled')")
    C, _, P, TP = _counts(confusion)
    K = C.shape[0]
    tpp = TP.copy()
    lists = _father_lists(fathers, K)
    if mode == "code" and lists:  # vectorised over all (q, f) pairs
        q = np.array([q for q, fs in lists.items() for _ in fs])
        f = np.array([f for fs in lists.values() for f in fs])
        cqf = C[q, f]
        pf = P[f]
        beta = np.where(pf > 0, (cqf + C[f, f]) / np.where(pf > 0, pf, 1.0), 1.0)
        tpp += np.bincount(q, weights=beta * cqf, minlength=K)
    elif mode == "pooled":
        for q, fs in lists.items():
            fs_a = np.asarray(fs)
            pq = P[fs_a].sum()
            pqgq = C[q, fs_a].sum()
            pqgQ = C[np.ix_(fs_a, fs_a)].sum()
            beta = (pqgq + pqgQ) / pq if pq > 0 else 1.0
            tpp[q] += beta * pqgq
    return tpp


def sg_iou(confusion, fathers: Mapping[int, Sequence[int]], mode: SGMode = "code") -> np.ndarray:
    """Per-class Semantic-Guided IoU (SCAN Eq. 6; SCAN ``SGIoU_SemSegEvaluator``): TP'_q / (P_q + G_q − TP_q).

    The union keeps the original TP, so SG-IoU_q ≤ 1 and classes without fathers equal their IoU.
    See :func:`sg_true_positives` for TP' and the two modes.

    Returns:
        (K,) float64; NaN where G + P = 0; 0 for classes predicted but absent from the GT.
    """
    _, G, P, TP = _counts(confusion)
    return _ratio(sg_true_positives(confusion, fathers, mode), G + P - TP)


def summarize(confusion, fathers: Mapping[int, Sequence[int]] | None = None, mode: SGMode = "code") -> dict:
    """The detectron2 ``SemSegEvaluator`` summary, in percent.

    Args:
        confusion: (K, K) counts, rows = ground truth.
        fathers: when given, every figure uses SG-IoU's boosted TP' (as SCAN's evaluator does for
            mIoU, fwIoU, mACC and pACC); else plain TP.
        mode: SG-IoU mode (see :func:`sg_true_positives`).

    Returns:
        ``{"mIoU", "fwIoU", "mACC", "pACC"}`` floats in percent (NaN when nothing is valid) and
        ``"IoU"``, ``"ACC"``: (K,) float64 fractions with NaN for classes that do not count.
        mIoU = mean of IoU over classes with G + P > 0; fwIoU = Σ_{G>0} IoU·G/ΣG;
        mACC = mean over G > 0 of TP/G; pACC = ΣTP/ΣG.
    """
    _, G, P, TP = _counts(confusion)
    tp = sg_true_positives(confusion, fathers, mode) if fathers is not None else TP
    per_iou = _ratio(tp, G + P - TP)
    per_acc = _ratio(tp, G)
    gsum = G.sum()
    has_gt = G > 0

    def _mean(v):
        v = v[~np.isnan(v)]
        return float(v.mean()) * 100 if v.size else float("nan")

    return {
        "mIoU": _mean(per_iou),
        "fwIoU": float(np.sum(per_iou[has_gt] * G[has_gt] / gsum)) * 100 if gsum > 0 else float("nan"),
        "mACC": _mean(per_acc),
        "pACC": float(tp.sum() / gsum) * 100 if gsum > 0 else float("nan"),
        "IoU": per_iou,
        "ACC": per_acc,
    }


def mean_iou(per_class: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean of per-class scores over the classes that count (not NaN), optionally within ``mask``.

    Returns:
        float in the units of ``per_class`` (NaN when no class counts).
    """
    v = np.asarray(per_class, dtype=np.float64)
    if mask is not None:
        v = v[np.asarray(mask, dtype=bool)]
    v = v[~np.isnan(v)]
    return float(v.mean()) if v.size else float("nan")
