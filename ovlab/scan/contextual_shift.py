"""Contextual Shift (CS): replace background patch tokens inside a CLIP ViT (SCAN §3.2, Eq. 4–5), and
the mask-classifying CLIP that runs it on masked crops.

Official code: OpenCLIP's ``VisionTransformer.forward`` as modified in yongliu20/SCAN
``open_clip_training/src/open_clip/transformer.py`` (used for the test-time mask classification and
the CLIP fine-tuning; not in segmentation training).

For a region mask M_k, a patch is **foreground** when any of its pixels is (SCAN:
ceil(AvgPool_patch(m_k))); B_k is the set of the other patches. After each selected block d
(1-based; 0 = after ``ln_pre``) ⌊α·|B_k|⌋ tokens of B_k, drawn uniformly without replacement and
re-drawn at every selected block, are overwritten by a substitute token; foreground tokens, the
other background tokens and the [CLS] token are left alone (Eq. 5: the input of block d+1 is the
shifted output of block d).

Substitute sources (SCAN Tab. 6):

- ``cls``: the [CLS] token of the original CLIP on the natural full image at the output of the same
  block d (raw residual stream, no ``ln_post``) — SCAN (Eq. 5, F_CLS^{i−1});
- ``noise``: Gaussian noise, N(0, s²) per token with s the standard deviation of that sample's patch
  tokens at block d ([INFER]: the paper gives no scale);
- ``original``: the token the same ViT produces at that position and block for the **unmasked**
  crop (the paper's "randomly preserving the original pixels", at the token level; [INFER]);
- ``learnable``: a learnable prompt token per selected block (OVSeg-style, [INFER] init
  N(0, C^-1/2));
- ``none``: no replacement (the "W/o Contextual Shift" rows of SCAN Tab. 7).

SCAN samples with Python ``random`` (unseeded); here every draw uses an explicit
``torch.Generator`` ([INFER]), so the same seed gives the same tokens.

Parts:

- :func:`patch_background`, :func:`replaced_count`, :func:`contextual_shift`: the replacement of Eq. 5
  on a batch of patch tokens;
- :func:`shifted_vit_forward`: open_clip's ``VisionTransformer.forward`` with :func:`contextual_shift`
  applied to the patch tokens after each selected block (Eq. 5; Eq. 4 when no block is selected);
- :class:`ContextualShiftCLIP`: builds the substitute tokens of every source and returns one
  embedding per mask. With ratio 0 or source ``none`` the result equals ``visual(crops)`` exactly.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ovlab.clip.dense import vit_features

SUBSTITUTE_SOURCES = ("cls", "noise", "original", "learnable", "none")

SubstituteFn = Callable[[int, torch.Tensor], torch.Tensor]

def patch_background(masks: torch.Tensor, patch_size: int | tuple[int, int], *,
                     image_size: tuple[int, int] | None = None) -> torch.Tensor:
    """Background flags of the ViT patch grid: patches with **no** foreground pixel.

    The background area of M_k in SCAN Eq. 5; ceil(AvgPool_patch(m_k)) = 0 in yongliu20/SCAN
    ``open_clip_training/src/open_clip/transformer.py``.

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
    """Replace ⌊α·|B_b|⌋ random background tokens per sample (SCAN Eq. 5: F_m^{i−1}|(M_k, F_CLS^{i−1}, α)).

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


# ------------------------------------------------------------------ the shifted ViT forward
def _check_vit(visual) -> None:
    from open_clip.transformer import VisionTransformer

    if not isinstance(visual, VisionTransformer) or visual.attn_pool is not None:
        raise TypeError(f"contextual shift needs an open_clip VisionTransformer without attentional pooling, "
                        f"got {type(visual).__name__}")


def _image_size(visual) -> tuple[int, int]:
    s = visual.image_size
    return tuple(s) if isinstance(s, (tuple, list)) else (s, s)


def shifted_vit_forward(visual, images: torch.Tensor, background: torch.Tensor, layers: Sequence[int],
                        substitute: SubstituteFn, ratio: float, generator: torch.Generator | None) -> torch.Tensor:
    """Run ``visual`` with Contextual Shift after the given blocks (SCAN Eq. 5; the modified
    ``VisionTransformer.forward`` of yongliu20/SCAN ``open_clip_training/src/open_clip/transformer.py``).

    Args:
        visual: open_clip ``VisionTransformer`` (no attentional pooler).
        images: (N, 3, H, W) CLIP-normalised masked crops at the ViT's size.
        background: (N, L) bool background flags of the patch grid (:func:`patch_background`).
        layers: 1-based blocks after which CS is applied (0 = after ``ln_pre``); SCAN ViT-L
            1, 3, 5, 7, 9; ViT-B 1, 3, 5.
        substitute: ``substitute(block, patch_tokens (N, L, C)) -> (N, C) or (N, L, C)``.
        ratio: α in [0, 1]. generator: the draws' generator (see :func:`contextual_shift`).

    Returns:
        (N, D) final embeddings (``ln_post`` + ``proj``), unnormalised; gradients flow to ``visual``.

    Raises:
        TypeError: not a plain ViT. ValueError: a block outside 0..L_blocks, or bad shapes.
    """
    _check_vit(visual)
    n_blocks = len(visual.transformer.resblocks)
    want = sorted(set(int(i) for i in layers))
    bad = [i for i in want if not 0 <= i <= n_blocks]
    if bad:
        raise ValueError(f"contextual shift layers {bad} outside 0..{n_blocks} (1-based; 0 = after ln_pre)")

    def shift(i: int, x: torch.Tensor) -> torch.Tensor:                    # x: (N, 1+L, C), batch first
        patches = x[:, 1:]
        shifted = contextual_shift(patches, background, substitute(i, patches), ratio, generator)
        return torch.cat([x[:, :1], shifted], dim=1)

    x = visual._embeds(images.to(visual.conv1.weight.dtype))
    if 0 in want:
        x = shift(0, x)
    batch_first = getattr(visual.transformer, "batch_first", True)
    y = x if batch_first else x.transpose(0, 1).contiguous()
    for i, blk in enumerate(visual.transformer.resblocks, start=1):
        y = blk(y, attn_mask=None)
        if i in want:
            y = shift(i, y) if batch_first else shift(i, y.transpose(0, 1)).transpose(0, 1)
    x = y if batch_first else y.transpose(0, 1)
    pooled, _ = visual._pool(x)
    return pooled @ visual.proj if visual.proj is not None else pooled


class ContextualShiftCLIP(nn.Module):
    """CS-CLIP: embeds masked crops with Contextual Shift (SCAN §3.2, Eq. 5, Fig. 4).

    Args:
        visual: the mask-classifying open_clip ``VisionTransformer`` (the CS-fine-tuned one in SCAN);
            registered as a sub-module (trainable when unfrozen).
        layers: 1-based CS blocks (SCAN ViT-L [1, 3, 5, 7, 9], ViT-B [1, 3, 5]).
        ratio: α (SCAN code 0.15; per-dataset 0.05–0.15; paper 0.3).
        source: one of :data:`SUBSTITUTE_SOURCES` (SCAN: ``cls``).
        original_visual: the frozen pretrained ViT whose [CLS] tokens on the natural image are the
            ``cls`` substitutes (SCAN ``original_clip``); ``None`` = ``visual`` itself.
        seed: seed of the draws when no generator is passed to :meth:`forward`, and of the
            ``learnable`` prompt initialisation.

    Attributes:
        prompts: (len(layers), C) learnable tokens (``learnable`` source only), row k for layers[k].

    Raises:
        TypeError: not a plain ViT. ValueError: unknown source, ratio outside [0, 1], bad layers.
    """

    def __init__(self, visual, *, layers: Sequence[int], ratio: float, source: str = "cls",
                 original_visual=None, seed: int = 0) -> None:
        super().__init__()
        _check_vit(visual)
        if source not in SUBSTITUTE_SOURCES:
            raise ValueError(f"contextual shift source must be one of {SUBSTITUTE_SOURCES}, got {source!r}")
        if not 0.0 <= float(ratio) <= 1.0:
            raise ValueError(f"contextual shift ratio must be in [0, 1], got {ratio}")
        n_blocks = len(visual.transformer.resblocks)
        self.layers = [int(i) for i in layers]
        bad = [i for i in self.layers if not 0 <= i <= n_blocks]
        if bad or len(set(self.layers)) != len(self.layers):
            raise ValueError(f"contextual shift layers must be distinct in 0..{n_blocks}, got {self.layers}")
        self.visual = visual
        self.ratio, self.source, self.seed = float(ratio), source, int(seed)
        if original_visual is not None:
            _check_vit(original_visual)
            self.original_visual = original_visual
        width = visual.class_embedding.shape[-1]
        self.prompts = None
        if source == "learnable":
            g = torch.Generator().manual_seed(self.seed)
            self.prompts = nn.Parameter(torch.randn(len(self.layers), width, generator=g) * width ** -0.5)

    @property
    def patch_size(self) -> tuple[int, int]:
        p = self.visual.patch_size
        return tuple(p) if isinstance(p, (tuple, list)) else (p, p)

    def _cls_tokens(self, natural: torch.Tensor | None, image_index: torch.Tensor | None, n: int) -> dict:
        if natural is None:
            raise ValueError("contextual shift source 'cls' needs the natural images (natural=...)")
        ref = getattr(self, "original_visual", None)
        ref = self.visual if ref is None else ref
        size = _image_size(ref)
        if tuple(natural.shape[-2:]) != size:
            natural = F.interpolate(natural, size=size, mode="nearest")
        cls = vit_features(ref, natural, blocks=self.layers).cls_tokens
        if image_index is None:
            if natural.shape[0] == 1:
                image_index = torch.zeros(n, dtype=torch.long)
            elif natural.shape[0] == n:
                image_index = torch.arange(n)
            else:
                raise ValueError(f"contextual shift: {natural.shape[0]} natural images for {n} masks; "
                                 f"pass image_index (N,) mapping masks to images")
        image_index = image_index.to(natural.device)
        return {i: cls[i][image_index] for i in self.layers}

    def forward(self, crops: torch.Tensor, masks: torch.Tensor, *, natural: torch.Tensor | None = None,
                image_index: torch.Tensor | None = None, unmasked: torch.Tensor | None = None,
                generator: torch.Generator | None = None, normalize: bool = False) -> torch.Tensor:
        """Embed N masked crops.

        Args:
            crops: (N, 3, S, S) CLIP-normalised masked crops at the ViT's size
                (:func:`ovlab.clip.crops.masked_crops`, ``fill="mean"``).
            masks: (N, h, w) bool region masks of the crops (any size; resized with ``nearest``).
            natural: (B, 3, H, W) CLIP-normalised natural images (``cls`` source); resized to the
                ViT's size with ``nearest`` (SCAN).
            image_index: (N,) int64 image of each mask in ``natural`` (default: all 0 when B = 1,
                the identity when B = N).
            unmasked: (N, 3, S, S) the same crops without the mask fill (``original`` source).
            generator: draws' generator (default: a fresh one seeded with ``seed``, so a call is
                reproducible on its own).
            normalize: L2-normalise the embeddings.

        Returns:
            (N, D) float embeddings (SCAN normalises them before the 100·cos logits).

        Raises:
            ValueError: a source's input is missing, or shapes do not match.
        """
        if crops.dim() != 4 or masks.dim() != 3 or masks.shape[0] != crops.shape[0]:
            raise ValueError(f"contextual shift: crops (N, 3, S, S) and masks (N, h, w) expected, "
                             f"got {tuple(crops.shape)} and {tuple(masks.shape)}")
        n = crops.shape[0]
        if generator is None:
            generator = torch.Generator(device=crops.device).manual_seed(self.seed)
        if self.source == "none" or self.ratio == 0.0 or not self.layers:
            out = self.visual(crops.to(self.visual.conv1.weight.dtype))
        else:
            background = patch_background(masks.to(crops.device), self.patch_size,
                                          image_size=tuple(crops.shape[-2:]))
            out = shifted_vit_forward(self.visual, crops, background, self.layers,
                                      self._substitute_fn(crops, natural, image_index, unmasked, n, generator),
                                      self.ratio, generator)
        return F.normalize(out, dim=-1) if normalize else out

    def _substitute_fn(self, crops, natural, image_index, unmasked, n, generator) -> SubstituteFn:
        if self.source == "cls":
            cls = self._cls_tokens(natural, image_index, n)
            return lambda i, tok: cls[i]
        if self.source == "original":
            if unmasked is None or tuple(unmasked.shape) != tuple(crops.shape):
                raise ValueError(f"contextual shift source 'original' needs unmasked crops of shape "
                                 f"{tuple(crops.shape)}")
            feats = vit_features(self.visual, unmasked, blocks=self.layers).patch_tokens
            orig = {i: t.flatten(2).transpose(1, 2) for i, t in feats.items()}      # (N, L, C)
            return lambda i, tok: orig[i]
        if self.source == "learnable":
            rows = {layer: k for k, layer in enumerate(self.layers)}
            return lambda i, tok: self.prompts[rows[i]].to(tok.dtype).expand(tok.shape[0], -1)

        def noise(i: int, tok: torch.Tensor) -> torch.Tensor:                    # source == "noise"
            s = tok.detach().float().std(dim=(1, 2)).view(-1, 1, 1)
            z = torch.randn(tok.shape, generator=generator, device=generator.device)
            return (z.to(tok.device) * s).to(tok.dtype)
        return noise
