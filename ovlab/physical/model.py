"""The physically guided segmenter: CAT-Seg's cost-aggregation model (the paper's baseline, Tab. 3) with
the two training-only heads of the paper, the structure head of L^p (§3.1, Fig. 3) and the patch–text
projections of L^sac (§3.2, Eq. 2).

Forward (CAT-Seg, Cho et al. 2023 §3; read against cvlab-kaist/CAT-Seg ``cat_seg/cat_seg_model.py``):
the image is resized to the CLIP resolution and CLIP-normalised; the CLIP ViT (fine-tuned, attention
only) gives raw patch tokens at its blocks and the dense image embedding (``ln_post`` + ``proj`` on every
patch token); the cost volume is the cosine similarity of the dense embedding with the class text
embeddings (one per class: a multi-name class's names are averaged, as CAT-Seg's class embeddings);
:class:`ovlab.physical.cost_aggregation.CostAggregator` turns it into per-class logits at 4× the token
grid, with the dense embedding as appearance guidance and two intermediate blocks (upsampled ×2 and ×4
by transposed convolutions, CAT-Seg ``upsample1``/``upsample2``) as decoder guidance. Any vocabulary
works at test time.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ovlab.physical.cost_aggregation import CostAggregator
from ovlab.physical.sac import PatchTextAlignment
from ovlab.physical.structure import StructureHead

CLIP_FINETUNE = ("attention", "full", "none")


def class_embeddings(text: torch.Tensor, class_index: torch.Tensor, num_classes: int) -> torch.Tensor:
    """One unit embedding per class: the renormalised mean of its names' embeddings.

    Args:
        text: (M, D) name embeddings. class_index: (M,) int64 class of each name. num_classes: K.

    Returns:
        (K, D) unit-norm.
    """
    out = torch.zeros(num_classes, text.shape[1], dtype=text.dtype, device=text.device)
    out.index_add_(0, class_index.to(text.device), F.normalize(text, dim=-1))
    return F.normalize(out, dim=-1)


def set_clip_finetune(visual: nn.Module, mode: str) -> list[str]:
    """Choose which CLIP ViT weights train (CAT-Seg ``CLIP_FINETUNE``).

    ``attention`` (CAT-Seg's default): the query and value projections of every block's attention
    (open_clip's fused ``in_proj`` is trained with the key rows' gradient zeroed; AdamW's decoupled
    weight decay still shrinks those rows by lr·wd per step, 2e-10 at the paper's CLIP lr); ``full``:
    everything; ``none``: frozen.

    Returns:
        the names of the parameters left trainable.

    Raises:
        ValueError: unknown mode.
    """
    if mode not in CLIP_FINETUNE:
        raise ValueError(f"clip_finetune must be one of {CLIP_FINETUNE}, got {mode!r}")
    names = []
    for name, p in visual.named_parameters():
        on = mode == "full" or (mode == "attention" and ".attn.in_proj_" in name)
        p.requires_grad_(on)
        if on:
            names.append(name)
            if mode == "attention":
                c = p.shape[0] // 3
                keep = torch.ones_like(p)
                keep[c:2 * c] = 0
                p.register_hook(lambda g, keep=keep: g * keep)
    return names


@dataclass
class PhysicalOutput:
    """What one forward gives.

    Attributes:
        logits: (B, K, 4h, 4w) per-class segmentation logits (h × w = CLIP token grid).
        structure: (B, 1, H, W) structure logits at the input size (σ = s_est), or ``None`` (no head / eval).
        sac_logits: (B·h·w, K) patch–class logits sim/τ (Eq. 3), or ``None``.
        grid: (h, w) of the CLIP token grid.
    """

    logits: torch.Tensor
    structure: torch.Tensor | None
    sac_logits: torch.Tensor | None
    grid: tuple[int, int]


class PhysicalSegmenter(nn.Module):
    """CAT-Seg + the L^p structure head + the L^sac projections.

    Args:
        visual: the CLIP ``VisionTransformer`` (kept as ``backbone``: its lr is ``optim.lr`` ×
            ``optim.backbone_multiplier``, CAT-Seg ``CLIP_MULTIPLIER``).
        text_dim: D. mean, std: CLIP normalisation (RGB, images in [0, 1]).
        model: :class:`ovlab.config.physical.CatSegParams`.
        structure: :class:`ovlab.config.physical.StructureParams` (``enabled`` false: no head).
        sac: :class:`ovlab.config.physical.SacParams` (``enabled`` false: no projections).

    Raises:
        ValueError: a block index outside 1..L, or inconsistent widths.
    """

    def __init__(self, visual: nn.Module, text_dim: int, mean, std, model, structure, sac):
        super().__init__()
        self.backbone = visual
        n_blocks = len(visual.transformer.resblocks)
        width = int(visual.conv1.out_channels)
        size = visual.image_size
        self.clip_size = tuple(size) if isinstance(size, (tuple, list)) else (int(size), int(size))
        self.grid = (self.clip_size[0] // visual.patch_size[0], self.clip_size[1] // visual.patch_size[1])
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        g = list(model.guidance_layers)
        if len(g) != 2 or not all(1 <= i <= n_blocks for i in g):
            raise ValueError(f"model.guidance_layers needs two blocks in 1..{n_blocks}, got {g}")
        self.guidance_layers = g
        self.trainable_clip = set_clip_finetune(visual, model.clip_finetune)
        gi = list(model.decoder_guidance_in)
        self.upsample1 = nn.ConvTranspose2d(width, gi[0], 2, stride=2)
        self.upsample2 = nn.ConvTranspose2d(width, gi[1], 4, stride=4)
        embed_dim = int(visual.proj.shape[1]) if visual.proj is not None else width
        self.aggregator = CostAggregator(
            embed_dim, text_dim, hidden_dim=model.hidden_dim, appearance_guidance_dim=model.appearance_guidance_dim,
            text_guidance_dim=model.text_guidance_dim, decoder_dims=tuple(model.decoder_dims), decoder_guidance_in=tuple(gi),
            decoder_guidance_dims=tuple(model.decoder_guidance_dims), num_layers=model.num_layers, heads=model.heads,
            window=model.window_size, pooling=model.pooling_size, class_attention=model.class_attention)
        self.structure_layers: list[int] = []
        self.structure_head = None
        if structure.enabled:
            layers = list(structure.layers)
            if not all(0 <= i <= n_blocks for i in layers):
                raise ValueError(f"structure.layers must be blocks in 0..{n_blocks}, got {layers}")
            self.structure_layers = layers
            self.structure_head = StructureHead([width] * len(layers), structure.dim, structure.groups)
        self.sac_layer = None
        self.sac_head = None
        if sac.enabled:
            self.sac_layer = n_blocks if sac.layer is None else int(sac.layer)
            if not 1 <= self.sac_layer <= n_blocks:
                raise ValueError(f"sac.layer must be in 1..{n_blocks}, got {sac.layer}")
            self.sac_head = PatchTextAlignment(width, text_dim, sac.dim, sac.tau_init, sac.tau_min, sac.normalize)

    # ------------------------------------------------------------------------------------------- CLIP
    def clip_tokens(self, images: torch.Tensor, blocks: set[int]):
        """Run the CLIP ViT with gradients.

        Args:
            images: (B, 3, H, W) in [0, 1] (any size: resized bilinearly to the CLIP resolution).
            blocks: 1-based blocks whose raw patch tokens to keep (0 = after ``ln_pre``).

        Returns:
            ``(tokens {block: (B, C, h, w)}, dense (B, D, h, w))``: raw residual-stream patch tokens and
            the dense image embedding (``ln_post`` + ``proj`` on every patch token).
        """
        v = self.backbone
        x = images
        if tuple(x.shape[-2:]) != self.clip_size:
            x = F.interpolate(x, size=self.clip_size, mode="bilinear", align_corners=False)
        x = (x - self.mean) / self.std
        b = x.shape[0]
        h, w = self.grid

        def grid(t):
            return t[:, 1:].reshape(b, h, w, -1).permute(0, 3, 1, 2)

        y = v._embeds(x.to(v.conv1.weight.dtype))
        keep = {0: grid(y)} if 0 in blocks else {}
        batch_first = getattr(v.transformer, "batch_first", True)
        y = y if batch_first else y.transpose(0, 1)
        for i, blk in enumerate(v.transformer.resblocks, start=1):
            y = blk(y)
            if i in blocks:
                keep[i] = grid(y if batch_first else y.transpose(0, 1))
        y = y if batch_first else y.transpose(0, 1)
        dense = v.ln_post(y)
        if v.proj is not None:
            dense = dense @ v.proj
        return keep, grid(dense)

    # ---------------------------------------------------------------------------------------- forward
    def forward(self, images: torch.Tensor, text: torch.Tensor, class_index: torch.Tensor | None = None,
                num_classes: int | None = None, *, heads: bool | None = None) -> PhysicalOutput:
        """Segmentation logits (and, in training, the regulariser outputs).

        Args:
            images: (B, 3, H, W) in [0, 1].
            text: (M, D) name embeddings. class_index: (M,) class of each name (``None``: one name per class).
            num_classes: K (default M).
            heads: run the L^p / L^sac heads (default: in training mode only; they are dropped at inference).

        Returns:
            :class:`PhysicalOutput`.
        """
        heads = self.training if heads is None else heads
        k = text.shape[0] if num_classes is None else int(num_classes)
        ci = torch.arange(text.shape[0], device=text.device) if class_index is None else class_index
        cls_text = class_embeddings(text.float(), ci, k)
        want = set(self.guidance_layers)
        if heads:
            want |= set(self.structure_layers)
            if self.sac_layer is not None:
                want.add(self.sac_layer)
        tokens, dense = self.clip_tokens(images, want)
        img = F.normalize(dense.float(), dim=1)
        cost = torch.einsum("bdhw,kd->bkhw", img, cls_text)[:, None]            # (B, 1, K, h, w)
        g1 = self.upsample1(tokens[self.guidance_layers[0]].float())
        g2 = self.upsample2(tokens[self.guidance_layers[1]].float())
        b = images.shape[0]
        logits = self.aggregator(cost, dense.float(), cls_text[None].expand(b, -1, -1), [g1, g2],
                                 pooling=None if self.training else 1)
        structure = sac = None
        if heads and self.structure_head is not None:
            structure = self.structure_head([tokens[i].float() for i in self.structure_layers], size=tuple(images.shape[-2:]))
        if heads and self.sac_head is not None:
            sac = self.sac_head(tokens[self.sac_layer].float(), cls_text)
        return PhysicalOutput(logits, structure, sac, self.grid)

    @torch.no_grad()
    def segment(self, images: torch.Tensor, text: torch.Tensor, class_index: torch.Tensor, num_classes: int) -> torch.Tensor:
        """Per-class probabilities at the input size: (B, K, H, W) = σ(logits) upsampled bilinearly
        (the interface :func:`ovlab.segmenter.evaluate.predict_labels` calls)."""
        out = self.forward(images, text, class_index, num_classes, heads=False)
        logits = F.interpolate(out.logits, size=images.shape[-2:], mode="bilinear", align_corners=False)
        return logits.sigmoid()


def build_physical_segmenter(cfg, clip) -> PhysicalSegmenter:
    """A fresh :class:`PhysicalSegmenter` on ``clip``'s ViT from a ``physical`` section.

    Raises:
        TypeError: the CLIP is not a ViT.
    """
    if clip.family != "vit":
        raise TypeError(f"the physically guided segmenter needs a CLIP ViT, got {clip.name} ({clip.family})")
    text_dim = int(clip.model.text_projection.shape[1])
    return PhysicalSegmenter(clip.model.visual, text_dim, clip.mean, clip.std, cfg.model, cfg.structure, cfg.sac)
