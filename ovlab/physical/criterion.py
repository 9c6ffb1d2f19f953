"""The physically guided paper's training objective (Eq. 4, read with the baseline's loss: reference spec
§7.1): L = λ_seg·L_seg + λ_sac·L^sac + λ_p·L^p, weights 1 : 1 : 1 by default [AMBIG].

L_seg is CAT-Seg's per-pixel loss (cvlab-kaist/CAT-Seg ``cat_seg/cat_seg_model.py``): the logits are
upsampled bilinearly to the label size and a sigmoid BCE is taken against the one-hot labels, averaged
over every (pixel, class) pair with ignore pixels' rows all zero (``bce``, CAT-Seg), or a softmax CE over
the labelled pixels (``ce``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ovlab.physical.focal import focal_loss
from ovlab.physical.sac import sac_loss, weighted_patch_targets
from ovlab.segmenter.criterion import CriterionOutput


def segmentation_loss(logits: torch.Tensor, labels: torch.Tensor, kind: str = "bce", ignore_index: int = 255) -> torch.Tensor:
    """CAT-Seg's per-pixel loss.

    Args:
        logits: (B, K, h, w). labels: (B, H, W) int64 (``ignore_index`` = unlabelled).
        kind: ``bce`` (sigmoid BCE on one-hot targets, mean over all B·H·W·K entries; ignore pixels have
            all-zero targets, as CAT-Seg) or ``ce`` (softmax CE, mean over labelled pixels).

    Raises:
        ValueError: unknown kind.
    """
    up = F.interpolate(logits.float(), size=labels.shape[-2:], mode="bilinear", align_corners=False)
    if kind == "ce":
        if not (labels != ignore_index).any():
            return up.sum() * 0.0
        return F.cross_entropy(up, labels, ignore_index=ignore_index)
    if kind != "bce":
        raise ValueError(f"loss kind must be 'bce' or 'ce', got {kind!r}")
    k = up.shape[1]
    valid = labels != ignore_index
    onehot = F.one_hot(labels.clamp(0, k - 1), k).permute(0, 3, 1, 2).float() * valid[:, None]
    return F.binary_cross_entropy_with_logits(up, onehot)


class PhysicalObjective:
    """The task's objective: ``(net, batch, text, generator) → CriterionOutput`` with terms ``seg``,
    ``sac`` (when L^sac is on) and ``structure`` (L^p, when on).

    Args:
        cfg: the ``physical`` section (:class:`ovlab.config.physical.PhysicalStageParams`).
        vocab: the training vocabulary (``class_index``, K).
    """

    def __init__(self, cfg, vocab):
        self.cfg, self.vocab = cfg, vocab

    def __call__(self, net, batch, text: torch.Tensor, generator=None) -> CriterionOutput:
        cfg = self.cfg
        vocab = self.vocab
        out = net(batch.images, text, vocab.class_index.to(text.device), len(vocab))
        terms = {"seg": segmentation_loss(out.logits, batch.semantic, cfg.loss.kind)}
        weights = {"seg": float(cfg.loss.weight)}
        if out.sac_logits is not None:
            h, w = out.grid
            size = batch.semantic.shape[-1]
            if size % w or batch.semantic.shape[-2] % h:
                raise ValueError(f"crop {tuple(batch.semantic.shape[-2:])} is not a multiple of the CLIP grid {out.grid}")
            targets = weighted_patch_targets(batch.semantic, size // w, len(vocab))
            if cfg.sac.min_labelled > 0:
                frac = _labelled_fraction(batch.semantic, size // w)
                targets = targets * (frac >= cfg.sac.min_labelled)[..., None]
            terms["sac"] = sac_loss(out.sac_logits, targets.reshape(-1, len(vocab)), cfg.sac.form)
            weights["sac"] = float(cfg.sac.weight)
        if out.structure is not None:
            s = cfg.structure
            terms["structure"] = focal_loss(out.structure, batch.structure[:, None], s.focal_alpha, s.focal_gamma,
                                            mask=batch.valid[:, None])
            weights["structure"] = float(s.weight)
        return CriterionOutput(terms, weights)


def _labelled_fraction(labels: torch.Tensor, patch: int, ignore_index: int = 255) -> torch.Tensor:
    """(B, h·w): share of each patch's pixels that carry a label."""
    v = (labels != ignore_index).float()[:, None]
    return F.avg_pool2d(v, patch).flatten(1)
