"""Semantic inference of a mask-classification model (Mask2Former).

As GKC ``mask2former/maskformer_model_voca_dense_kd_syn.py`` L1061–1064.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def names_to_classes(logits: torch.Tensor, class_index: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Per-class logits as the max over each class's names' logits, void kept last (GKC
    ``mask2former/maskformer_model_voca_dense_kd_syn.py`` L778–781).

    Args:
        logits: (..., M + 1) logits over M names plus void (last column).
        class_index: (M,) int64, the class 0..K-1 of each name.
        num_classes: K.

    Returns:
        (..., K + 1). When every class has one name in order, this is the input.

    Raises:
        ValueError: sizes disagree, or a class has no name.
    """
    m = logits.shape[-1] - 1
    if class_index.numel() != m:
        raise ValueError(f"class_index has {class_index.numel()} names but the logits have {m} (+ void)")
    present = torch.bincount(class_index.cpu(), minlength=num_classes)
    if present.numel() != num_classes or bool((present == 0).any()):
        raise ValueError(f"every class 0..{num_classes - 1} needs at least one name")
    if m == num_classes and bool((class_index.cpu() == torch.arange(m)).all()):
        return logits
    names = logits[..., :m]
    out = names.new_full((*names.shape[:-1], num_classes), float("-inf"))
    idx = class_index.to(names.device).expand_as(names)
    out = out.scatter_reduce(-1, idx, names, reduce="amax", include_self=True)
    return torch.cat([out, logits[..., m:]], -1)


def semantic_inference(class_logits: torch.Tensor, mask_logits: torch.Tensor) -> torch.Tensor:
    """seg_c(x) = Σ_q softmax(z_q)_c · σ(m_q(x)), void dropped after the softmax (Mask2Former).

    Args:
        class_logits: (B, Q, K + 1), void last.
        mask_logits: (B, Q, H, W).

    Returns:
        (B, K, H, W) float scores (argmax over K = the semantic prediction).
    """
    p = class_logits.float().softmax(-1)[..., :-1]
    return torch.einsum("bqk,bqhw->bkhw", p, mask_logits.float().sigmoid())


def upsample_masks(mask_logits: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of (B, Q, h, w) mask logits to ``size`` (align_corners=False)."""
    return F.interpolate(mask_logits, size=size, mode="bilinear", align_corners=False)
