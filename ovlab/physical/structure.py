"""The physical structure prediction network of L^p (physically guided paper §3.1, Fig. 3).

Multi-level features F_t of the shared segmentation backbone (here: CLIP ViT patch tokens at several
blocks, reshaped to the token grid) → a 1×1 conv to ``dim`` channels each → three top-down Refine (RF)
modules, each fusing the deeper fused map with the next shallower level → a 1×1 conv to one channel
(+ sigmoid, applied by the focal loss on the logits) = s_est. The paper says only "fused by
concatenation, then normalized"; the RF module is the reference spec's [INFER] design (§7.2):
upsample the deeper map bilinearly to F_{t−1}'s size, concatenate, GroupNorm, 3×3 conv 2·dim → dim,
ReLU. Training only: the head is dropped at inference.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Refine(nn.Module):
    """One RF module: fuse a deeper map with the next shallower level (Fig. 3)."""

    def __init__(self, dim: int, groups: int):
        super().__init__()
        self.norm = nn.GroupNorm(groups, 2 * dim)
        self.conv = nn.Conv2d(2 * dim, dim, 3, padding=1)

    def forward(self, deeper: torch.Tensor, shallower: torch.Tensor) -> torch.Tensor:
        """(B, dim, h', w') and (B, dim, h, w) → (B, dim, h, w)."""
        up = F.interpolate(deeper, size=shallower.shape[-2:], mode="bilinear", align_corners=False)
        return F.relu(self.conv(self.norm(torch.cat([up, shallower], 1))))


class StructureHead(nn.Module):
    """s_est from L levels (L − 1 RF modules; the paper's four levels give three).

    Args:
        in_dims: channels of each level, shallow to deep.
        dim: width after the 1×1 convolutions [256].
        groups: GroupNorm groups of the RF modules [32]; must divide 2·dim.

    Raises:
        ValueError: fewer than two levels, or ``groups`` does not divide 2·dim.
    """

    def __init__(self, in_dims: list[int], dim: int = 256, groups: int = 32):
        super().__init__()
        if len(in_dims) < 2:
            raise ValueError(f"the structure head needs at least two levels, got {len(in_dims)}")
        if (2 * dim) % groups:
            raise ValueError(f"structure groups {groups} must divide 2·dim = {2 * dim}")
        self.lateral = nn.ModuleList(nn.Conv2d(c, dim, 1) for c in in_dims)
        self.refine = nn.ModuleList(Refine(dim, groups) for _ in range(len(in_dims) - 1))
        self.out = nn.Conv2d(dim, 1, 1)

    def forward(self, levels: list[torch.Tensor], size: tuple[int, int] | None = None) -> torch.Tensor:
        """Structure logits.

        Args:
            levels: L maps (B, C_t, h_t, w_t), shallow to deep.
            size: (H, W) to upsample the logits to (bilinear); ``None`` keeps the shallowest level's size.

        Returns:
            (B, 1, H, W) logits (σ of them is s_est).
        """
        f = [lat(x) for lat, x in zip(self.lateral, levels)]
        x = f[-1]
        for t in range(len(f) - 2, -1, -1):
            x = self.refine[t](x, f[t])
        logits = self.out(x)
        if size is not None and tuple(logits.shape[-2:]) != tuple(size):
            logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
        return logits
