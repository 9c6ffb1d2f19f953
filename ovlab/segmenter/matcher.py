"""Hungarian matching of queries to ground-truth segments (Mask2Former; GKC ``modeling/matcher.py``).

Cost C = w_mask·BCE_pts + w_dice·Dice_pts − w_class·softmax(z)[target], on ``num_points`` uniformly
random points shared by all masks of an image; solved by scipy's ``linear_sum_assignment``. The
pair-wise BCE/dice come from transformers' Mask2Former. Always fp32 (autocast is disabled).
"""

from __future__ import annotations

import torch
from scipy.optimize import linear_sum_assignment
from transformers.models.mask2former.modeling_mask2former import (
    pair_wise_dice_loss,
    pair_wise_sigmoid_cross_entropy_loss,
    sample_point,
)


def _no_autocast(device: torch.device):
    return torch.autocast(device_type=device.type, enabled=False)


class HungarianMatcher:
    """Match the Q predictions of each image to its N ground-truth segments.

    Args:
        cost_class, cost_mask, cost_dice: cost weights (GKC: 2, 5, 5); ``cost_class = 0`` = mask-only.
        num_points: points sampled per image (12544).

    Raises:
        ValueError: all costs zero, or ``num_points`` < 1.
    """

    def __init__(self, cost_class: float = 2.0, cost_mask: float = 5.0, cost_dice: float = 5.0, num_points: int = 12544):
        if cost_class == 0 and cost_mask == 0 and cost_dice == 0:
            raise ValueError("all matching costs are 0")
        if num_points < 1:
            raise ValueError(f"num_points must be ≥ 1, got {num_points}")
        self.cost_class, self.cost_mask, self.cost_dice, self.num_points = cost_class, cost_mask, cost_dice, num_points

    def cost_matrix(self, class_logits: torch.Tensor, mask_logits: torch.Tensor, labels: torch.Tensor,
                    masks: torch.Tensor, points: torch.Tensor | None = None) -> torch.Tensor:
        """The (Q, N) matching cost of one image.

        Args:
            class_logits: (Q, C + 1) logits (void last); labels: (N,) int64 targets in 0..C-1.
            mask_logits: (Q, h, w); masks: (N, H, W) {0, 1} (any resolution: points are normalised).
            points: (P, 2) sampling coordinates in [0, 1]² (x, y); default ``num_points`` uniform.
        """
        with _no_autocast(mask_logits.device):
            if points is None:
                points = torch.rand(self.num_points, 2, device=mask_logits.device)
            prob = class_logits.float().softmax(-1)
            cost_class = -prob[:, labels]
            pts = points[None]
            tgt = sample_point(masks[:, None].float(), pts.expand(masks.shape[0], -1, -1), align_corners=False).squeeze(1)
            pred = sample_point(mask_logits[:, None].float(), pts.expand(mask_logits.shape[0], -1, -1),
                                align_corners=False).squeeze(1)
            cost = (self.cost_mask * pair_wise_sigmoid_cross_entropy_loss(pred, tgt)
                    + self.cost_dice * pair_wise_dice_loss(pred, tgt) + self.cost_class * cost_class)
            big = torch.finfo(cost.dtype).max
            return torch.nan_to_num(cost, nan=big, posinf=big, neginf=big)

    @torch.no_grad()
    def __call__(self, class_logits: torch.Tensor, mask_logits: torch.Tensor,
                 labels: list[torch.Tensor], masks: list[torch.Tensor]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Match a batch.

        Args:
            class_logits: (B, Q, C + 1); mask_logits: (B, Q, h, w).
            labels: B tensors (N_b,) int64; masks: B tensors (N_b, H, W).

        Returns:
            B pairs ``(query_idx, target_idx)`` of int64 tensors of length min(Q, N_b) (empty when N_b = 0).
        """
        out = []
        for b in range(class_logits.shape[0]):
            if labels[b].numel() == 0:
                e = torch.zeros(0, dtype=torch.int64)
                out.append((e, e.clone()))
                continue
            cost = self.cost_matrix(class_logits[b], mask_logits[b], labels[b], masks[b])
            qi, ti = linear_sum_assignment(cost.cpu().numpy())
            out.append((torch.as_tensor(qi, dtype=torch.int64), torch.as_tensor(ti, dtype=torch.int64)))
        return out
