"""The maths of :class:`ovlab.integrations.detectron2.SGIoUEvaluator`, without detectron2.

:class:`SGAccumulator` adds (GT, prediction) pairs into one confusion matrix
(:class:`ovlab.metrics.ConfusionMatrix`, rows = GT) and summarises it as detectron2's
``SemSegEvaluator`` does (mIoU, fwIoU, mACC, pACC, per-class IoU; :func:`ovlab.metrics.summarize`)
plus SG-IoU (SCAN Eq. 6; :func:`ovlab.metrics.sg_iou`) and seen / unseen / harmonic mIoU
(generalized protocol, :func:`ovlab.metrics.generalized_split`). The association map is taken by
name (a shipped map such as ``scan_ade20k_847`` or a JSON file) and matched to the evaluated
model's class names (its ``stuff_classes``), so a model whose vocabulary is in another order still
gets the right fathers.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ovlab.metrics import ConfusionMatrix, generalized_split, summarize


def _key(name: str) -> str:
    return name.strip().lower()


def fathers_by_name(class_names: Sequence[str], association) -> dict[int, list[int]]:
    """Father indices in the order of ``class_names`` from a name-keyed association map.

    A class matches a map entry by its full name or, failing that, by its first comma-separated
    synonym (``"building, edifice"`` ↔ ``"building"``).

    Args:
        class_names: the evaluated vocabulary, index order.
        association: a :class:`~ovlab.metrics.association.AssociationMap`, or its name / JSON path.

    Raises:
        ValueError: a class of the map that has fathers matches no name of ``class_names``.
    """
    from ovlab.metrics.association import AssociationMap, load_association_map

    amap = association if isinstance(association, AssociationMap) else load_association_map(association)
    idx: dict[str, int] = {}
    for i, n in enumerate(class_names):
        idx.setdefault(_key(n), i)
    for i, n in enumerate(class_names):
        idx.setdefault(_key(n.split(",")[0]), i)

    def find(n: str) -> int | None:
        return idx.get(_key(n), idx.get(_key(n.split(",")[0])))

    out: dict[int, list[int]] = {}
    missing = []
    for child, fs in amap.fathers().items():
        q = find(child)
        if q is None:
            missing.append(child)
            continue
        got = [f for f in (find(x) for x in fs) if f is not None and f != q]
        if got:
            out[q] = got
    if missing:
        raise ValueError(f"{len(missing)} class(es) of the association map are not in the evaluated vocabulary, "
                         f"e.g. {missing[:3]}: pass the map of this vocabulary")
    return out


class SGAccumulator:
    """Confusion-matrix accumulation and the SG-IoU / seen-unseen summary.

    Args:
        class_names: the vocabulary in index order (detectron2 ``stuff_classes``).
        ignore_label: GT value skipped (255 or 65535).
        association: association map (name, path or map) or ``None`` (SG-IoU = IoU).
        unseen: names or indices of the unseen classes (``None``: no seen/unseen split).
        sg_mode: ``"code"`` (SCAN's evaluator) or ``"pooled"`` (Eq. 6 as printed).
    """

    def __init__(self, class_names: Sequence[str], ignore_label: int = 255, association=None,
                 unseen: Sequence | None = None, sg_mode: str = "code"):
        self.class_names = list(class_names)
        self.num_classes = len(self.class_names)
        self.ignore_label = int(ignore_label)
        self.fathers = fathers_by_name(self.class_names, association) if association is not None else None
        self.sg_mode = sg_mode
        self.unseen = None
        if unseen is not None:
            names = {_key(n): i for i, n in enumerate(self.class_names)}
            self.unseen = sorted({int(u) if not isinstance(u, str) else names[_key(u)] for u in unseen})
        self.reset()

    def reset(self) -> None:
        self._cm = ConfusionMatrix(self.num_classes, ignore_labels=sorted({self.ignore_label, 255, 65535} - set(range(self.num_classes))))

    def add(self, gt: np.ndarray, pred: np.ndarray) -> None:
        """One image: (H, W) GT indices (ignore label allowed) and (H, W) predicted indices 0..K-1.

        Raises:
            ValueError: shapes differ or predictions outside 0..K-1.
        """
        if np.shape(gt) != np.shape(pred):
            raise ValueError(f"prediction shape {np.shape(pred)} differs from ground truth {np.shape(gt)}")
        self._cm.update(np.asarray(gt), np.asarray(pred))

    @property
    def confusion(self) -> np.ndarray:
        """(K, K) int64 counts, rows = GT."""
        return self._cm.numpy()

    def merge(self, confusion: np.ndarray) -> None:
        """Add another worker's confusion matrix (distributed evaluation)."""
        import torch

        c = np.asarray(confusion)
        if c.shape != (self.num_classes, self.num_classes):
            raise ValueError(f"cannot merge a {c.shape} confusion matrix into K={self.num_classes}")
        self._cm.matrix += torch.as_tensor(c, dtype=self._cm.matrix.dtype, device=self._cm.matrix.device)

    def summary(self, confusion: np.ndarray | None = None) -> dict:
        """detectron2-style ``{"mIoU", "fwIoU", "mACC", "pACC", "IoU-<name>"...}`` in percent, plus
        ``"SG-mIoU"`` (and ``"SG-IoU-<name>"``) when an association map is set, and ``"mIoU-seen"``,
        ``"mIoU-unseen"``, ``"hIoU"`` when unseen classes are set."""
        conf = self.confusion if confusion is None else np.asarray(confusion)
        s = summarize(conf)
        res = {k: float(s[k]) for k in ("mIoU", "fwIoU", "mACC", "pACC")}
        for i, n in enumerate(self.class_names):
            res[f"IoU-{n}"] = float(s["IoU"][i]) * 100
        if self.fathers is not None:
            sg = summarize(conf, self.fathers, self.sg_mode)
            res["SG-mIoU"] = float(sg["mIoU"])
            for i, n in enumerate(self.class_names):
                res[f"SG-IoU-{n}"] = float(sg["IoU"][i]) * 100
        if self.unseen is not None:
            sp = generalized_split(conf, self.unseen)
            res.update({"mIoU-seen": sp.seen, "mIoU-unseen": sp.unseen, "hIoU": sp.harmonic})
        return res
