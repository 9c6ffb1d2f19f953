"""The Mask2Former set criterion on every decoder prediction (deep supervision, as GKC
``mask2former/maskformer_model_voca_dense_kd_syn.py``).

Each prediction l is matched independently (:class:`~.matcher.HungarianMatcher`) and gets
``loss_mask`` (BCE), ``loss_dice`` and ``loss_ce``; the final prediction's terms carry the plain
names, prediction l < L−1 the suffix ``_l``. The total is Σ λ·term with λ from
:class:`ovlab.config.segmenter.LossParams` (paper: λ_m = 5 for BCE and dice, λ_c = 2). The GKC terms
(TD, KD, grounding) are added on top from the matches this returns.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.distributed as dist

from ovlab.segmenter.class_loss import class_loss, query_targets
from ovlab.segmenter.mask_loss import point_mask_losses
from ovlab.segmenter.matcher import HungarianMatcher

@dataclass
class CriterionOutput:
    """Loss terms of one batch.

    Attributes:
        terms: name → 0-d tensor (unweighted).
        weights: name → λ.
        matches: per prediction (same order as the input), B pairs (query_idx, target_idx).
        num_masks: the normaliser used.
        class_targets: per prediction, the (B, Q) CE targets (class, K = void, -100 = dropped region).
    """

    terms: dict[str, torch.Tensor]
    weights: dict[str, float]
    matches: list[list[tuple[torch.Tensor, torch.Tensor]]] = field(default_factory=list)
    num_masks: float = 1.0
    class_targets: list[torch.Tensor] = field(default_factory=list)

    def total(self) -> torch.Tensor:
        """Σ λ·term (0-d)."""
        return sum(self.weights[k] * v for k, v in self.terms.items())

    def add(self, name: str, value: torch.Tensor, weight: float) -> None:
        """Add a term (e.g. a GKC loss)."""
        self.terms[name] = value
        self.weights[name] = weight


def _num_masks(labels: list[torch.Tensor], device: torch.device) -> float:
    n = torch.tensor(float(sum(int(lab.numel()) for lab in labels)), device=device)
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(n)
        n = n / dist.get_world_size()
    return max(float(n.item()), 1.0)


class SetCriterion:
    """Matching + mask/class losses over the decoder predictions.

    Args:
        params: :class:`ovlab.config.segmenter.LossParams`.
    """

    def __init__(self, params):
        self.p = params
        self.matcher = HungarianMatcher(params.matcher_class, params.matcher_mask, params.matcher_dice, params.num_points)

    def __call__(self, predictions, labels: list[torch.Tensor], masks: list[torch.Tensor], *,
                 generator: torch.Generator | None = None) -> CriterionOutput:
        """Losses of a batch.

        Args:
            predictions: L :class:`ovlab.segmenter.model.Prediction` with ``logits`` (B, Q, C + 1).
            labels: B tensors (N_b,) int64 class indices in 0..C-1.
            masks: B tensors (N_b, H, W) {0, 1} at the input resolution.
            generator: CPU generator for region dropout.

        Raises:
            ValueError: a prediction has no logits (call the model with the text embeddings).
        """
        p = self.p
        preds = predictions if p.deep_supervision else predictions[-1:]
        device = preds[-1].masks.device
        num_masks = _num_masks(labels, device)
        terms, weights, all_matches, all_targets = {}, {}, [], []
        last = len(preds) - 1
        for li, pred in enumerate(preds):
            if pred.logits is None:
                raise ValueError("SetCriterion needs predictions with class logits")
            matches = self.matcher(pred.logits, pred.masks, labels, masks)
            all_matches.append(matches)
            src = [(torch.full_like(q, b), q) for b, (q, _) in enumerate(matches)]
            bi = torch.cat([s[0] for s in src]) if src else torch.zeros(0, dtype=torch.int64)
            qi = torch.cat([s[1] for s in src]) if src else torch.zeros(0, dtype=torch.int64)
            pm = pred.masks[bi.to(device), qi.to(device)]
            tm = torch.cat([masks[b][t] for b, (_, t) in enumerate(matches)]) if matches else pm.new_zeros(0, 1, 1)
            losses = point_mask_losses(pm, tm.to(device), num_masks, num_points=p.num_points,
                                       oversample_ratio=p.oversample_ratio, importance_ratio=p.importance_ratio)
            tgt = query_targets(pred.logits.shape[1], pred.logits.shape[2] - 1, matches, labels,
                                region_dropout=p.region_dropout, generator=generator)
            all_targets.append(tgt)
            losses["loss_ce"] = class_loss(pred.logits, tgt, p.void_weight)
            suffix = "" if li == last else f"_{li}"
            for k, v in losses.items():
                terms[k + suffix] = v
                weights[k + suffix] = {"loss_mask": p.mask_weight, "loss_dice": p.dice_weight,
                                       "loss_ce": p.class_weight}[k]
        return CriterionOutput(terms, weights, all_matches, num_masks, all_targets)
