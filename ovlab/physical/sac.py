"""L^sac, the weighted patch-level alignment loss (physically guided paper §3.2, Eq. 2–3, Fig. 4).

Eq. 2: sim(x_i, t_j) = o_img(x_i)ᵀ o_txt(t_j), x_i the patch tokens of the CLIP ViT (not [CLS]), t_j the
text features of the M candidate classes, o_img / o_txt linear projections. Eq. 3 as printed,
Σ_i Σ_j w_ij softmax_j(sim_ij/τ), is the expected soft-label mass: a quantity to *maximise* (reference
spec §7.3). Two loss readings are implemented (``form``):

- ``soft_ce`` (default [INFER]): the soft-label cross-entropy −(1/N′) Σ_i Σ_j w_ij log p_ij, matching the
  paper's "contrasting image patches and texts with soft labels";
- ``mil``: the printed ratio under a negative log, −(1/N′) Σ_i log Σ_j w_ij p_ij (multi-positive NCE).

w_ij are the fractions of patch i's *labelled* pixels that belong to class j (the paper divides by all
pixels of the patch [INFER]); patches without a labelled pixel are skipped; N′ = kept patches.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

SAC_FORMS = ("soft_ce", "mil")


def weighted_patch_targets(labels: torch.Tensor, patch_size: int, num_classes: int,
                           ignore_index: int = 255) -> torch.Tensor:
    """The soft labels w_ij of Eq. 3: class fractions of each patch over its labelled pixels.

    Args:
        labels: (B, H, W) int class indices 0..K−1 or ``ignore_index``; H and W multiples of ``patch_size``.
        patch_size: patch side in label pixels (the CLIP ViT patch at the label resolution).
        num_classes: K.
        ignore_index: the unlabelled value.

    Returns:
        (B, h·w, K) float32, patches in row-major order (h = H/p, w = W/p); each row sums to 1, or is
        all zero for a patch with no labelled pixel.

    Raises:
        ValueError: H or W not a multiple of ``patch_size``, or a label outside 0..K−1 that is not ignore.
    """
    if labels.dim() != 3:
        raise ValueError(f"labels must be (B, H, W), got shape {tuple(labels.shape)}")
    b, h, w = labels.shape
    p = int(patch_size)
    if p < 1 or h % p or w % p:
        raise ValueError(f"labels {h}x{w} are not a multiple of the patch size {patch_size}")
    labels = labels.long()
    valid = labels != ignore_index
    bad = valid & ((labels < 0) | (labels >= num_classes))
    if bad.any():
        raise ValueError(f"labels hold values outside 0..{num_classes - 1} (and not {ignore_index}): "
                         f"{sorted(set(labels[bad].unique().tolist()))[:5]}")
    gh, gw = h // p, w // p
    ys = torch.arange(h, device=labels.device) // p
    xs = torch.arange(w, device=labels.device) // p
    patch = (ys[:, None] * gw + xs[None, :]).expand(b, h, w)
    idx = (patch * num_classes + labels.clamp(0, num_classes - 1)).reshape(b, -1)
    counts = torch.zeros(b, gh * gw * num_classes, device=labels.device)
    counts.scatter_add_(1, idx, valid.reshape(b, -1).float())
    counts = counts.reshape(b, gh * gw, num_classes)
    total = counts.sum(-1, keepdim=True)
    return torch.where(total > 0, counts / total.clamp_min(1.0), torch.zeros_like(counts))


def sac_loss(logits: torch.Tensor, targets: torch.Tensor, form: str = "soft_ce") -> torch.Tensor:
    """L^sac from the patch–class logits sim/τ and the soft labels (Eq. 3, read as a loss).

    Args:
        logits: (N, K) float, sim_ij / τ.
        targets: (N, K) soft labels from :func:`weighted_patch_targets` (flattened over the batch).
        form: ``soft_ce``: mean over kept rows of −Σ_j w_ij log softmax(logits)_ij; ``mil``: mean over
            kept rows of −log Σ_j w_ij softmax(logits)_ij.

    Returns:
        0-d tensor; rows of ``targets`` that are all zero are skipped; 0 (with a gradient path) when
        no row is kept.

    Raises:
        ValueError: unknown form or mismatched shapes.
    """
    if form not in SAC_FORMS:
        raise ValueError(f"sac_loss: form must be one of {SAC_FORMS}, got {form!r}")
    if logits.shape != targets.shape or logits.dim() != 2:
        raise ValueError(f"sac_loss: logits {tuple(logits.shape)} and targets {tuple(targets.shape)} must be equal (N, K)")
    keep = targets.sum(-1) > 0
    if not keep.any():
        return logits.sum() * 0.0
    logp = F.log_softmax(logits[keep].float(), dim=-1)
    w = targets[keep].to(logp.dtype)
    if form == "soft_ce":
        per = -(w * logp).sum(-1)
    else:
        per = -torch.logsumexp(logp + torch.log(w.clamp_min(0)), dim=-1)  # log 0 = −inf drops the class
    return per.mean()


class PatchTextAlignment(nn.Module):
    """The projections o_img, o_txt and the learnable temperature τ of Eq. 2–3 (training only).

    Args:
        visual_dim: C_v, width of the CLIP ViT patch tokens [1024 for ViT-L/14].
        text_dim: D, width of the class text embeddings [768].
        dim: projection width [512, INFER].
        tau_init: initial τ [0.07, INFER].
        tau_min: τ is clamped to ≥ this [0.01, INFER].
        normalize: L2-normalise both projections before the dot product [true, INFER; Eq. 2 has none].
    """

    def __init__(self, visual_dim: int, text_dim: int, dim: int = 512, tau_init: float = 0.07,
                 tau_min: float = 0.01, normalize: bool = True):
        super().__init__()
        self.o_img = nn.Linear(visual_dim, dim)
        self.o_txt = nn.Linear(text_dim, dim)
        self.log_tau = nn.Parameter(torch.tensor(math.log(tau_init)))
        self.tau_min = float(tau_min)
        self.normalize = bool(normalize)

    @property
    def tau(self) -> torch.Tensor:
        """τ = max(exp(log τ), τ_min), 0-d."""
        return self.log_tau.exp().clamp_min(self.tau_min)

    def forward(self, patches: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """Patch–class logits sim/τ.

        Args:
            patches: (B, C_v, h, w) patch tokens.
            text: (K, D) class text features.

        Returns:
            (B·h·w, K), patches in row-major order per image (as :func:`weighted_patch_targets`).
        """
        x = self.o_img(patches.flatten(2).transpose(1, 2).reshape(-1, patches.shape[1]))
        t = self.o_txt(text)
        if self.normalize:
            x, t = F.normalize(x, dim=-1), F.normalize(t, dim=-1)
        return x @ t.t() / self.tau
