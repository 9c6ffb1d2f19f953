"""Evaluation: streaming confusion matrices, IoU / SG-IoU (SCAN Eq. 6), seen/unseen/harmonic mIoU,
association maps, vocabulary similarity, and the ``ovlab eval`` command.

Convention everywhere: ``confusion[i, j]`` = pixels with ground truth ``i`` predicted ``j``
(rows = ground truth).
"""

from ovlab.metrics.association import (
    AssociationError,
    AssociationMap,
    association_names,
    from_index_map,
    load_association_map,
    load_scan_index_map,
)
from ovlab.metrics.confusion import DEFAULT_IGNORE, ConfusionMatrix, confusion_matrix, from_detectron2
from ovlab.metrics.scores import iou, mean_iou, sg_iou, sg_true_positives, summarize
from ovlab.metrics.splits import SplitScores, generalized_split, harmonic_mean, restrict_labels, split_vocab

__all__ = [
    "AssociationError",
    "AssociationMap",
    "association_names",
    "from_index_map",
    "load_association_map",
    "load_scan_index_map",
    "DEFAULT_IGNORE",
    "ConfusionMatrix",
    "SplitScores",
    "confusion_matrix",
    "from_detectron2",
    "generalized_split",
    "harmonic_mean",
    "iou",
    "mean_iou",
    "restrict_labels",
    "sg_iou",
    "sg_true_positives",
    "split_vocab",
    "summarize",
]
