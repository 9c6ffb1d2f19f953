"""Dense visual features of CLIP and mask pooling.

ResNet (open_clip ``ModifiedResNet``; GKC teacher, GKC §3.2 and Tab. 6; GKC ``mask2former/kd_clip.py``):
  res2..res5 maps (strides 4/8/16/32), the attention-pool **global token** (``attn_g``: the
  mean-token query), the attention-pool output at **every spatial position** (``attn_l``: all HW+1
  tokens are queries of the same self-attention, then ``c_proj``) and a **masked attention-pool**
  over a region.
ViT (open_clip ``VisionTransformer``; SCAN SIM/CS, SCAN §3.1–3.2; SCAN ``scan/ovseg_model.py``):
  patch tokens and [CLS] at any list of block indices (1-based: index i = output of residual block
  i, before ``ln_post``; index 0 = the post-``ln_pre`` embedding), and the final projected
  embedding (``ln_post`` then ``proj``).

All inputs are CLIP-normalised images (B, 3, H, W). Nothing here changes the model's weights.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch
import torch.nn.functional as F


# --------------------------------------------------------------------------------------------- masks
def resize_masks(masks: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Fraction of each target cell covered by the mask.

    Args:
        masks: (B, M, h, w) bool or float in [0, 1].
        size: (H, W) of the feature grid.

    Returns:
        (B, M, H, W) float32 in [0, 1]: ``adaptive_avg_pool2d`` of the mask (area interpolation;
        exact cell coverage when h, w are multiples of H, W).
    """
    if masks.dim() != 4:
        raise ValueError(f"masks must be (B, M, h, w), got shape {tuple(masks.shape)}")
    m = masks.float()
    if tuple(m.shape[-2:]) == tuple(size):
        return m
    b, k = m.shape[:2]
    return F.adaptive_avg_pool2d(m.reshape(b * k, 1, *m.shape[-2:]), size).reshape(b, k, *size)


def mask_pool(tokens: torch.Tensor, masks: torch.Tensor, *, mode: str = "area") -> tuple[torch.Tensor, torch.Tensor]:
    """Average spatial tokens over each (resized) mask.

    pooled[b, m] = Σ_xy w[b,m,x,y] · tokens[b,:,x,y] / Σ_xy w[b,m,x,y], with the weights w from
    the mask resized to the token grid by :func:`resize_masks`:

    - ``area``: w = fraction of the cell covered (soft);
    - ``binary``: w = 1 where any pixel of the cell is covered (SCAN's ceil(avgpool) rule in
      SCAN ``open_clip_training/src/open_clip/transformer.py``);
    - ``nearest``: w = nearest-neighbour resize of the binary mask.

    Args:
        tokens: (B, C, H, W) float.
        masks: (B, M, h, w) bool/float.

    Returns:
        ``(pooled, valid)``: (B, M, C) in the tokens' dtype (zeros where invalid) and (B, M) bool,
        False where the resized mask is empty.
    """
    if tokens.dim() != 4:
        raise ValueError(f"tokens must be (B, C, H, W), got shape {tuple(tokens.shape)}")
    if masks.dim() != 4 or masks.shape[0] != tokens.shape[0]:
        raise ValueError(f"masks must be (B, M, h, w) with B={tokens.shape[0]}, got shape {tuple(masks.shape)}")
    size = tuple(tokens.shape[-2:])
    if mode == "area":
        w = resize_masks(masks, size)
    elif mode == "binary":
        w = (resize_masks(masks, size) > 0).float()
    elif mode == "nearest":
        w = (F.interpolate(masks.float(), size=size, mode="nearest") > 0.5).float()
    else:
        raise ValueError(f"mode must be 'area', 'binary' or 'nearest', got {mode!r}")
    w = w.to(tokens.dtype)
    denom = w.sum(dim=(-1, -2))
    pooled = torch.einsum("bmhw,bchw->bmc", w, tokens) / denom.clamp_min(1e-12).unsqueeze(-1)
    valid = denom > 0
    return pooled * valid.unsqueeze(-1), valid


# ----------------------------------------------------------------------------------- attention pool
def pool_positional_embedding(pool, h: int, w: int) -> torch.Tensor:
    """The attention pool's positional embedding for an h×w grid: (1 + h·w, C).

    The grid part is bicubically resized when (h, w) differs from the trained square grid.
    """
    pe = pool.positional_embedding
    s = int(round((pe.shape[0] - 1) ** 0.5))
    if (h, w) == (s, s):
        return pe
    c = pe.shape[1]
    grid = pe[1:].reshape(1, s, s, c).permute(0, 3, 1, 2)
    grid = F.interpolate(grid.float(), size=(h, w), mode="bicubic", align_corners=False).to(pe.dtype)
    return torch.cat([pe[:1], grid.permute(0, 2, 3, 1).reshape(h * w, c)])


def _attend(pool, query: torch.Tensor, kv: torch.Tensor, key_padding_mask=None) -> torch.Tensor:
    """open_clip AttentionPool2d's attention with separate query / key-value sets: (Lq, N, Dout)."""
    out, _ = F.multi_head_attention_forward(
        query=query, key=kv, value=kv, embed_dim_to_check=kv.shape[-1], num_heads=pool.num_heads,
        q_proj_weight=pool.q_proj.weight, k_proj_weight=pool.k_proj.weight, v_proj_weight=pool.v_proj.weight,
        in_proj_weight=None, in_proj_bias=torch.cat([pool.q_proj.bias, pool.k_proj.bias, pool.v_proj.bias]),
        bias_k=None, bias_v=None, add_zero_attn=False, dropout_p=0.0,
        out_proj_weight=pool.c_proj.weight, out_proj_bias=pool.c_proj.bias, use_separate_proj_weight=True,
        training=False, key_padding_mask=key_padding_mask, need_weights=False,
    )
    return out


def attention_pool(pool, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Global and spatial tokens of CLIP's attention pool (GKC ``attn_g`` / ``attn_l``;
    GKC ``mask2former/kd_clip.py``).

    Tokens: t_0 = mean_xy x + p_0, t_xy = x_xy + p_xy. One multi-head self-attention over all
    1 + HW tokens, every token a query, then ``c_proj``. Output 0 is exactly
    ``AttentionPool2d.forward(x)``; outputs 1.. are the "spatial tokens".

    Args:
        pool: an open_clip ``AttentionPool2d`` (``visual.attnpool``).
        x: (B, C, H, W) res5 features; other grids use a resized positional embedding.

    Returns:
        ``(global_token, spatial_tokens)``: (B, D) and (B, D, H, W), D = pool output dim.
    """
    b, c, h, w = x.shape
    t = x.flatten(2).permute(2, 0, 1)                                     # (HW, B, C)
    t = torch.cat([t.mean(dim=0, keepdim=True), t]) + pool_positional_embedding(pool, h, w)[:, None].to(x.dtype)
    out = _attend(pool, t, t)                                             # (1+HW, B, D)
    return out[0], out[1:].permute(1, 2, 0).reshape(b, -1, h, w)


def masked_attention_pool(pool, x: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Attention pool restricted to a region ("mask-based pooling in the attention pooling", GKC Tab. 6).

    For each mask m (resized to the H×W grid; a cell belongs to the region when any of its pixels
    does): query q = mean over the region's cells of x + p_0; keys/values = {q} ∪ {x_xy + p_xy :
    xy in the region}; output = ``c_proj`` of the attention. With a full mask it equals the global
    token of :func:`attention_pool`. GKC Tab. 6 names this pooling without a formula, and GKC's
    unused ``AttentionPool2dMasked`` is not shipped in a readable form, so this definition is ours.

    Args:
        pool: open_clip ``AttentionPool2d``.
        x: (B, C, H, W) res5 features.
        masks: (B, M, h, w) bool/float region masks (any resolution).

    Returns:
        (B, M, D).

    Raises:
        ValueError: a mask is empty (names the batch and mask index).
    """
    b, c, h, w = x.shape
    cover = resize_masks(masks, (h, w)) > 0                               # (B, M, H, W)
    m = cover.shape[1]
    empty = ~cover.flatten(2).any(-1)
    if empty.any():
        bi, mi = (int(v) for v in empty.nonzero()[0])
        raise ValueError(f"masked_attention_pool: mask {mi} of image {bi} is empty")
    pe = pool_positional_embedding(pool, h, w).to(x.dtype)
    t = x.flatten(2).permute(0, 2, 1)                                     # (B, HW, C)
    wgt = cover.flatten(2).to(x.dtype)                                    # (B, M, HW)
    q = (wgt @ t) / wgt.sum(-1, keepdim=True) + pe[0]                     # (B, M, C)
    kv = (t + pe[1:]).unsqueeze(1).expand(b, m, h * w, c)                 # (B, M, HW, C)
    kv = torch.cat([q.unsqueeze(2), kv], dim=2).reshape(b * m, 1 + h * w, c).permute(1, 0, 2)
    pad = torch.cat([torch.zeros(b, m, 1, dtype=torch.bool, device=x.device), ~cover.flatten(2)], dim=2)
    out = _attend(pool, q.reshape(1, b * m, c), kv, key_padding_mask=pad.reshape(b * m, 1 + h * w))
    return out[0].reshape(b, m, -1)


# -------------------------------------------------------------------------------------------- ResNet
@dataclass
class ResNetFeatures:
    """Dense features of a CLIP ResNet for a batch of B images (CLIP RN50 sizes in brackets).

    Attributes:
        res2, res3, res4, res5: (B, C_i, H/s, W/s), strides 4/8/16/32 [C = 256/512/1024/2048].
        global_token: (B, D) attention-pool output of the mean-token query (= ``encode_image``
            unnormalised) [D = 1024].
        spatial_tokens: (B, D, H/32, W/32) attention-pool output at every position.
    """

    res2: torch.Tensor
    res3: torch.Tensor
    res4: torch.Tensor
    res5: torch.Tensor
    global_token: torch.Tensor
    spatial_tokens: torch.Tensor


@torch.no_grad()
def resnet_features(visual, images: torch.Tensor) -> ResNetFeatures:
    """Run a ``ModifiedResNet`` visual tower and keep every level (see :class:`ResNetFeatures`).

    Args:
        visual: ``clip.model.visual`` (open_clip ``ModifiedResNet``), in eval mode.
        images: (B, 3, H, W) CLIP-normalised; H, W multiples of 32.

    Raises:
        TypeError: not a ModifiedResNet.
    """
    from open_clip.modified_resnet import ModifiedResNet

    if not isinstance(visual, ModifiedResNet):
        raise TypeError(f"resnet_features needs an open_clip ModifiedResNet, got {type(visual).__name__}")
    x = visual.stem(images.to(visual.conv1.weight.dtype))
    r2 = visual.layer1(x)
    r3 = visual.layer2(r2)
    r4 = visual.layer3(r3)
    r5 = visual.layer4(r4)
    g, s = attention_pool(visual.attnpool, r5)
    return ResNetFeatures(r2, r3, r4, r5, g, s)


# ----------------------------------------------------------------------------------------------- ViT
@dataclass
class ViTFeatures:
    """Dense features of a CLIP ViT for a batch of B images (ViT-B/16 at 224 px in brackets).

    Attributes:
        patch_tokens: {block index: (B, C, h, w)} raw residual-stream patch tokens (no ``ln_post``)
            [C = 768, h = w = 14].
        cls_tokens: {block index: (B, C)} the [CLS] token at the same blocks.
        embedding: (B, D) the final projected embedding (``ln_post`` + ``proj``; = ``encode_image``
            unnormalised) [D = 512].
    """

    patch_tokens: dict[int, torch.Tensor] = field(default_factory=dict)
    cls_tokens: dict[int, torch.Tensor] = field(default_factory=dict)
    embedding: torch.Tensor | None = None


@torch.no_grad()
def vit_features(visual, images: torch.Tensor, blocks: Sequence[int] = ()) -> ViTFeatures:
    """Run an open_clip ``VisionTransformer`` and keep tokens at the given blocks.

    Args:
        visual: ``clip.model.visual`` (open_clip ``VisionTransformer`` without attentional pooler).
        images: (B, 3, H, W) CLIP-normalised at the model's image size.
        blocks: 1-based block indices (i = output of residual block i, as SCAN's
            ``SELECT_ORI_CLIP_ID`` in SCAN ``scan/ovseg_model.py``); 0 = the embedding after ``ln_pre``.

    Raises:
        TypeError: not a VisionTransformer, or one with an attentional pooler.
        ValueError: a block index outside 0..L, or an image size the positional embedding does not fit.
    """
    from open_clip.transformer import VisionTransformer

    if not isinstance(visual, VisionTransformer) or visual.attn_pool is not None:
        raise TypeError(f"vit_features needs an open_clip VisionTransformer without attentional pooling, "
                        f"got {type(visual).__name__}")
    n_blocks = len(visual.transformer.resblocks)
    want = sorted(set(int(i) for i in blocks))
    bad = [i for i in want if not 0 <= i <= n_blocks]
    if bad:
        raise ValueError(f"block indices {bad} outside 0..{n_blocks} (1-based; 0 = after ln_pre)")
    size = tuple(visual.image_size) if isinstance(visual.image_size, (tuple, list)) else (visual.image_size,) * 2
    if tuple(images.shape[-2:]) != size:
        raise ValueError(f"images are {tuple(images.shape[-2:])}, the ViT expects {size}")
    b = images.shape[0]
    gh, gw = size[0] // visual.patch_size[0], size[1] // visual.patch_size[1]
    out = ViTFeatures()

    def keep(i: int, tok: torch.Tensor) -> None:
        out.cls_tokens[i] = tok[:, 0]
        out.patch_tokens[i] = tok[:, 1:].reshape(b, gh, gw, -1).permute(0, 3, 1, 2).contiguous()

    x = visual._embeds(images.to(visual.conv1.weight.dtype))                # (B, 1+hw, C)
    if 0 in want:
        keep(0, x)
    batch_first = getattr(visual.transformer, "batch_first", True)
    y = x if batch_first else x.transpose(0, 1)
    for i, blk in enumerate(visual.transformer.resblocks, start=1):
        y = blk(y)
        if i in want:
            keep(i, y if batch_first else y.transpose(0, 1))
    x = y if batch_first else y.transpose(0, 1)
    pooled, _ = visual._pool(x)
    out.embedding = pooled @ visual.proj if visual.proj is not None else pooled
    return out
