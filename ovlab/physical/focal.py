"""Binary focal loss, the F_focal of L^p (physically guided paper Eq. 1; Lin et al. 2017, "Focal loss for
dense object detection", Eq. 5)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def focal_loss(logits: torch.Tensor, target: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0,
               mask: torch.Tensor | None = None) -> torch.Tensor:
    """Binary focal loss on logits, mean over pixels.

    FL = −α_t (1 − p_t)^γ log p_t with p = σ(logit), p_t = p·y + (1 − p)(1 − y) and
    α_t = α·y + (1 − α)(1 − y) (Lin et al. 2017, Eq. 5); for a soft target y ∈ [0, 1] (Gaussian-rendered
    keypoints) the same expression is used with −log p_t replaced by the binary cross-entropy.
    The paper gives neither α nor γ: 0.25 and 2 are Lin et al.'s defaults [AMBIG, reference spec §7.2].

    Args:
        logits: (...) float, any shape (e.g. (B, 1, H, W)).
        target: same shape, values in [0, 1] (1 = structure pixel).
        alpha: weight of the positives, in [0, 1].
        gamma: focusing exponent ≥ 0 (γ = 0 gives α-weighted BCE).
        mask: optional bool, same shape: the mean runs over the True pixels only (padding excluded).

    Returns:
        0-d tensor; 0 (with a gradient path) when the mask keeps no pixel.

    Raises:
        ValueError: shapes differ, or α / γ out of range.
    """
    if logits.shape != target.shape:
        raise ValueError(f"focal_loss: logits {tuple(logits.shape)} and target {tuple(target.shape)} differ")
    if not 0.0 <= alpha <= 1.0 or gamma < 0:
        raise ValueError(f"focal_loss: need 0 ≤ alpha ≤ 1 and gamma ≥ 0, got alpha={alpha}, gamma={gamma}")
    logits = logits.float()
    y = target.to(logits.dtype)
    p = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, y, reduction="none")
    p_t = p * y + (1 - p) * (1 - y)
    a_t = alpha * y + (1 - alpha) * (1 - y)
    loss = a_t * (1 - p_t).pow(gamma) * ce
    if mask is None:
        return loss.mean()
    if mask.shape != loss.shape:
        raise ValueError(f"focal_loss: mask {tuple(mask.shape)} does not match logits {tuple(logits.shape)}")
    m = mask.to(loss.dtype)
    return (loss * m).sum() / m.sum().clamp_min(1.0)
