"""Point-sampled mask losses of Mask2Former (L_M of GKC Eq. 4): sigmoid BCE + dice on sampled points.

Points: ``oversample_ratio``·P random candidates per matched mask, the ``importance_ratio``·P most
uncertain (uncertainty = −|logit|) kept, the rest uniformly random. BCE is the mean over points, dice
uses +1 smoothing; both are summed over matched masks and divided by ``num_masks``. The BCE and dice
are transformers' Mask2Former functions. Always fp32.
"""

from __future__ import annotations

import torch
from transformers.models.mask2former.modeling_mask2former import dice_loss, sample_point, sigmoid_cross_entropy_loss


def uncertain_points(mask_logits: torch.Tensor, num_points: int, oversample_ratio: float,
                     importance_ratio: float) -> torch.Tensor:
    """Importance point sampling (PointRend / Mask2Former).

    Args:
        mask_logits: (R, 1, h, w) logits of R masks.

    Returns:
        (R, num_points, 2) coordinates in [0, 1]² (x, y).
    """
    r = mask_logits.shape[0]
    n_sampled = int(num_points * oversample_ratio)
    coords = torch.rand(r, n_sampled, 2, device=mask_logits.device)
    logits = sample_point(mask_logits, coords, align_corners=False)  # (R, 1, n_sampled)
    uncertainty = -logits.abs()[:, 0]
    n_uncertain = int(importance_ratio * num_points)
    idx = torch.topk(uncertainty, k=n_uncertain, dim=1).indices
    chosen = torch.gather(coords, 1, idx[..., None].expand(-1, -1, 2))
    n_random = num_points - n_uncertain
    if n_random > 0:
        chosen = torch.cat([chosen, torch.rand(r, n_random, 2, device=mask_logits.device)], 1)
    return chosen


def point_mask_losses(pred_masks: torch.Tensor, target_masks: torch.Tensor, num_masks: float | torch.Tensor, *,
                      num_points: int = 12544, oversample_ratio: float = 3.0,
                      importance_ratio: float = 0.75) -> dict[str, torch.Tensor]:
    """``loss_mask`` (BCE) and ``loss_dice`` of matched pairs.

    Args:
        pred_masks: (R, h, w) mask logits of the matched queries.
        target_masks: (R, H, W) {0, 1} targets in the same order (any resolution).
        num_masks: the normaliser (number of GT masks in the batch, averaged over workers, ≥ 1).

    Returns:
        ``{"loss_mask": 0-d, "loss_dice": 0-d}`` (zeros connected to the graph when R = 0).
    """
    if pred_masks.shape[0] == 0:
        zero = pred_masks.sum() * 0.0
        return {"loss_mask": zero, "loss_dice": zero}
    with torch.autocast(device_type=pred_masks.device.type, enabled=False):
        pred = pred_masks[:, None].float()
        tgt = target_masks[:, None].float()
        with torch.no_grad():
            coords = uncertain_points(pred, num_points, oversample_ratio, importance_ratio)
            labels = sample_point(tgt, coords, align_corners=False).squeeze(1)
        logits = sample_point(pred, coords, align_corners=False).squeeze(1)
        return {"loss_mask": sigmoid_cross_entropy_loss(logits, labels, num_masks),
                "loss_dice": dice_loss(logits, labels, num_masks)}
