"""Evaluation: streaming confusion matrices, IoU / SG-IoU (SCAN Eq. 6), seen/unseen/harmonic mIoU,
association maps, vocabulary similarity, and the ``ovlab eval`` command.

Convention everywhere: ``confusion[i, j]`` = pixels with ground truth ``i`` predicted ``j``
(rows = ground truth).

The names below are imported on first use (PEP 562 ``__getattr__``), so that ``ovlab eval`` and its
decoding workers, which count with numpy, do not import torch (``ConfusionMatrix`` does): that import
was ~95 % of ``import ovlab.metrics.evaluate`` (8 s of 8.3 s on a loaded 2-core machine).
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "ovlab.metrics.association": ("AssociationError", "AssociationMap", "association_names", "from_index_map",
                                  "load_association_map", "load_scan_index_map"),
    "ovlab.metrics.confusion": ("DEFAULT_IGNORE", "ConfusionMatrix", "confusion_matrix", "from_detectron2"),
    "ovlab.metrics.scores": ("iou", "mean_iou", "sg_iou", "sg_true_positives", "summarize"),
    "ovlab.metrics.splits": ("SplitScores", "generalized_split", "harmonic_mean", "restrict_labels", "split_vocab"),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(_MODULE_OF)


def __getattr__(name: str):
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_MODULE_OF))
