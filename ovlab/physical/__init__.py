"""The physically guided OVS paper (Liu et al., "Physically-guided Open Vocabulary Segmentation with
Weighted Patched Alignment Loss"): the CAT-Seg cost-aggregation baseline (``cost_aggregation``, ``model``),
the physical structure regulariser L^p (``structure``, ``pseudo_gt``, ``superpoint``, ``focal``; §3.1,
Eq. 1), the weighted patch alignment loss L^sac (``sac``; §3.2, Eq. 2–3), the objective of Eq. 4
(``criterion``) and the engine task (``task``)."""

from ovlab.physical.focal import focal_loss
from ovlab.physical.pseudo_gt import edge_gt
from ovlab.physical.sac import sac_loss, weighted_patch_targets

__all__ = ["edge_gt", "focal_loss", "sac_loss", "weighted_patch_targets"]
