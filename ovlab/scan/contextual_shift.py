"""Contextual Shift (CS): replace background patch tokens inside a CLIP ViT (SCAN Eq. 4–5, spec §4.3).

For a region mask M_k, a patch is **foreground** when any of its pixels is (SCAN:
ceil(AvgPool_patch(m_k))); B_k is the set of the other patches. After each selected block d
(1-based; 0 = after ``ln_pre``) ⌊α·|B_k|⌋ tokens of B_k, drawn uniformly without replacement and
re-drawn at every selected block, are overwritten by a substitute token; foreground tokens, the
other background tokens and the [CLS] token are left alone.

Substitute sources (SCAN Tab. 6):

- ``cls``: the [CLS] token of the original CLIP on the natural full image at the output of the same
  block d (raw residual stream, no ``ln_post``) — SCAN;
- ``noise``: Gaussian noise, N(0, s²) per token with s the standard deviation of that sample's patch
  tokens at block d ([INFER]: the paper gives no scale);
- ``original``: the token the same ViT produces at that position and block for the **unmasked**
  crop (the paper's "randomly preserving the original pixels", at the token level; [INFER]);
- ``learnable``: a learnable prompt token per selected block (OVSeg-style, [INFER] init
  N(0, C^-1/2));
- ``none``: no replacement (the "W/o Contextual Shift" rows).

SCAN samples with Python ``random`` (unseeded); here every draw uses an explicit
``torch.Generator`` ([INFER], spec §4.3(2)), so the same seed gives the same tokens.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

SUBSTITUTE_SOURCES = ("cls", "noise", "original", "learnable", "none")

def patch_background(masks: torch.Tensor, patch_size: int | tuple[int, int], *,
                     image_size: tuple[int, int] | None = None) -> torch.Tensor:
    """Background flags of the ViT patch grid: patches with **no** foreground pixel (spec §4.3(1)).

    Args:
        masks: (N, H, W) bool (or 0/1) region masks.
        patch_size: ViT patch side in pixels (ViT-L/14: 14; ``ovlab-tiny-vit``: 8), or (ph, pw).
        image_size: the ViT input size; masks of another size are first resized to it with
            ``nearest`` (SCAN resizes the crop's mask to 224×224 that way). ``None`` = already there.

    Returns:
        (N, L) bool, L = (H/ph)·(W/pw) in row-major patch order (the ViT's token order, no [CLS]);
        True = background.

    Raises:
        ValueError: masks not 3-D, or a size not divisible by the patch size.
    """
    if masks.dim() != 3:
        raise ValueError(f"patch_background: masks must be (N, H, W), got {tuple(masks.shape)}")
    ph, pw = (patch_size, patch_size) if isinstance(patch_size, int) else tuple(patch_size)
    m = masks.float()
    if image_size is not None and tuple(m.shape[-2:]) != tuple(image_size):
        m = F.interpolate(m[:, None], size=tuple(image_size), mode="nearest")[:, 0]
    h, w = m.shape[-2:]
    if h % ph or w % pw:
        raise ValueError(f"patch_background: mask size {h}×{w} is not a multiple of the patch {ph}×{pw}")
    fg = F.max_pool2d((m > 0).float()[:, None], kernel_size=(ph, pw), stride=(ph, pw))[:, 0]
    return (fg == 0).flatten(1)


def replaced_count(background: torch.Tensor, ratio: float) -> torch.Tensor:
    """⌊α·|B_b|⌋ per sample (computed as ``int(|B_b| * α)``, as SCAN's ``random.sample`` count).

    Args:
        background: (B, L) bool. ratio: α in [0, 1].

    Returns:
        (B,) int64.
    """
    return torch.tensor([int(int(n) * float(ratio)) for n in background.sum(dim=1)], dtype=torch.int64)


def contextual_shift(tokens: torch.Tensor, background: torch.Tensor, substitute: torch.Tensor, ratio: float,
                     generator: torch.Generator | None) -> torch.Tensor:
    """Replace ⌊α·|B_b|⌋ random background tokens of each sample (SCAN Eq. 5, spec §4.3(2)).

    Args:
        tokens: (B, L, C) patch tokens **without** [CLS].
        background: (B, L) bool, True = background patch (:func:`patch_background`).
        substitute: (B, C) one token per sample (``cls``, ``learnable``), or (B, L, C) one per
            position (``original``, ``noise``).
        ratio: α in [0, 1] (SCAN code 0.15 / per-dataset 0.05–0.15, paper 0.3).
        generator: the ``torch.Generator`` of the draws (``None`` = torch's global RNG). Sample b
            draws ``torch.randperm(|B_b|)`` in batch order; nothing is drawn where |B_b| = 0.

    Returns:
        A new (B, L, C) tensor (``tokens`` is not modified); gradients flow to both ``tokens`` (kept
        positions) and ``substitute`` (replaced positions).

    Raises:
        ValueError: shapes that do not match, or ratio outside [0, 1].
    """
    if tokens.dim() != 3:
        raise ValueError(f"contextual_shift: tokens must be (B, L, C), got {tuple(tokens.shape)}")
    b, n, c = tokens.shape
    if tuple(background.shape) != (b, n):
        raise ValueError(f"contextual_shift: background must be ({b}, {n}), got {tuple(background.shape)}")
    if tuple(substitute.shape) not in ((b, c), (b, n, c)):
        raise ValueError(f"contextual_shift: substitute must be ({b}, {c}) or ({b}, {n}, {c}), "
                         f"got {tuple(substitute.shape)}")
    if not 0.0 <= float(ratio) <= 1.0:
        raise ValueError(f"contextual_shift: ratio must be in [0, 1], got {ratio}")
    background = background.bool()
    replace = torch.zeros(b, n, dtype=torch.bool, device=tokens.device)
    draw_device = generator.device if generator is not None else torch.device("cpu")
    for i, k in enumerate(replaced_count(background, ratio).tolist()):
        idx = torch.nonzero(background[i]).flatten()
        if k == 0:
            continue
        perm = torch.randperm(len(idx), generator=generator, device=draw_device)[:k]
        replace[i, idx[perm.to(idx.device)]] = True
    sub = substitute if substitute.dim() == 3 else substitute[:, None, :].expand(b, n, c)
    return torch.where(replace[..., None], sub.to(tokens.dtype), tokens)
