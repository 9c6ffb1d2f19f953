"""Score ensembling of the in-model and CLIP classifiers, and semantic inference (SCAN §3, Fig. 2:
"the matching scores of both model embeddings and CLIP are combined").

Source: the official yongliu20/SCAN ``scan/ovseg_model.py`` ``semantic_inference`` (the OVSeg rule; the
paper gives no formula):

- p_in = softmax(z_in over K+1)[:K] (void normalised in, then dropped);
- p_clip = softmax(z_clip[:K]) (void column dropped **before** the softmax); p_clip ≡ 1 for masks
  whose binarised region is empty (no CLIP crop);
- p = p_in^(1−λ) · p_clip^λ, one λ for all classes (no seen/unseen split);
- A-847 and PC-459 only ("renormalise"): q = [(p / Σ_c p_c)·(1 − p_void,in), p_void,in],
  p̂ = softmax(log(q + ε))[:K] = (q + ε)[:K] / (1 + (K+1)·ε), ε = 1e-8; other datasets p̂ = p;
- seg_c(x) = Σ_q p̂_{q,c}·σ(m_q(x)), then argmax.

The functions take plain numbers. The mask threshold and λ are tuned per benchmark in the comments
of yongliu20/SCAN ``configs/scan_vitL.yaml`` and its ViT-B config ([CODE≠PAPER]):
:data:`ovlab.config.presets.ENSEMBLE_PRESETS`, resolved by :meth:`ovlab.config.scan.ScanParams.inference_for`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

RENORMALIZE_EPS = 1e-8


def binarize_masks(mask_logits: torch.Tensor, threshold: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Region masks for the CLIP crops: σ(m) > threshold, and which are non-empty (``MASK_THR`` and
    ``valid_flag`` of yongliu20/SCAN ``scan/modeling/clip_adapter/adapter.py``).

    Args:
        mask_logits: (..., H, W) float. threshold: in [0, 1].

    Returns:
        ``(masks, valid)``: (..., H, W) bool and (...) bool (False = empty mask, no crop).
    """
    masks = mask_logits.sigmoid() > threshold
    return masks, masks.flatten(-2).any(-1)


def clip_probabilities(clip_logits: torch.Tensor, valid: torch.Tensor | None = None, *,
                       has_void: bool = False) -> torch.Tensor:
    """p_clip = softmax over the K class columns; 1 for invalid masks (yongliu20/SCAN ``scan/ovseg_model.py``).

    Args:
        clip_logits: (B, Q, K) class columns of the CLIP logits; a (B, Q, K+1) tensor with the void
            column last needs ``has_void=True`` (SCAN: ``softmax(clip_cls[:, :-1])``).
        valid: (B, Q) bool, False where the mask is empty (p_clip = 1 there).
        has_void: drop the last column before the softmax.

    Returns:
        (B, Q, K) float32.
    """
    z = clip_logits[..., :-1] if has_void else clip_logits
    p = F.softmax(z.float(), dim=-1)
    if valid is not None:
        p = torch.where(valid[..., None], p, torch.ones_like(p))
    return p


def ensemble_probabilities(in_logits: torch.Tensor, clip_probs: torch.Tensor, clip_weight: float, *,
                           valid: torch.Tensor | None = None, renormalize: bool = False,
                           eps: float = RENORMALIZE_EPS) -> torch.Tensor:
    """Geometric ensemble p̂ of SCAN/OVSeg (yongliu20/SCAN ``scan/ovseg_model.py`` ``semantic_inference``).

    Args:
        in_logits: (B, Q, K+1) in-model class logits, void last.
        clip_probs: (B, Q, K) CLIP class probabilities (:func:`clip_probabilities`).
        clip_weight: λ in [0, 1]; λ = 0 gives p_in, λ = 1 gives p_clip (SCAN's code instead takes
            CLIP alone whenever λ ≤ 0 — a quirk not reproduced).
        valid: (B, Q) bool; where False, p_clip is taken as 1 (whatever ``clip_probs`` holds).
        renormalize: the A-847 / PC-459 rule: q = [(p/Σp)(1 − p_void), p_void],
            p̂ = (q + ε)[:K] / (1 + (K+1)ε) (= SCAN's softmax(log(q + ε))[:K]).
        eps: ε of the renormalisation (1e-8).

    Returns:
        (B, Q, K) float32 class scores (they sum to < 1 per query).

    Raises:
        ValueError: shapes that do not match (K+1 vs K), or λ outside [0, 1].
    """
    if in_logits.dim() != 3 or clip_probs.dim() != 3 or in_logits.shape[:2] != clip_probs.shape[:2] \
            or in_logits.shape[-1] != clip_probs.shape[-1] + 1:
        raise ValueError(f"ensemble: in_logits (B, Q, K+1) and clip_probs (B, Q, K) expected, "
                         f"got {tuple(in_logits.shape)} and {tuple(clip_probs.shape)}")
    if not 0.0 <= clip_weight <= 1.0:
        raise ValueError(f"ensemble: clip_weight λ must be in [0, 1], got {clip_weight}")
    full = F.softmax(in_logits.float(), dim=-1)
    p_in, p_void = full[..., :-1], full[..., -1:]
    p_clip = clip_probs.float()
    if valid is not None:
        p_clip = torch.where(valid[..., None], p_clip, torch.ones_like(p_clip))
    p = p_in.pow(1.0 - clip_weight) * p_clip.pow(clip_weight)
    if not renormalize:
        return p
    k = p.shape[-1]
    q = p / p.sum(-1, keepdim=True) * (1.0 - p_void)
    return (q + eps) / (1.0 + (k + 1) * eps)


def semantic_inference(class_probs: torch.Tensor, mask_logits: torch.Tensor,
                       keep: torch.Tensor | None = None) -> torch.Tensor:
    """Per-pixel class scores seg_c(x) = Σ_q p̂_{q,c}·σ(m_q(x)) (Mask2Former semantic inference, as
    yongliu20/SCAN ``scan/ovseg_model.py``).

    Args:
        class_probs: (B, Q, K) p̂ (:func:`ensemble_probabilities`).
        mask_logits: (B, Q, H, W) mask logits (resize to the output resolution first).
        keep: (B, Q) bool; queries with False contribute nothing (e.g. SCAN's CLIP-only mode drops
            invalid masks).

    Returns:
        (B, K, H, W) float32; take ``argmax(dim=1)`` for the label map.

    Raises:
        ValueError: B or Q differ.
    """
    if class_probs.dim() != 3 or mask_logits.dim() != 4 or class_probs.shape[:2] != mask_logits.shape[:2]:
        raise ValueError(f"semantic_inference: class_probs (B, Q, K) and mask_logits (B, Q, H, W) expected, "
                         f"got {tuple(class_probs.shape)} and {tuple(mask_logits.shape)}")
    p = class_probs.float()
    if keep is not None:
        p = p * keep[..., None].to(p.dtype)
    return torch.einsum("bqc,bqhw->bchw", p, mask_logits.float().sigmoid())
