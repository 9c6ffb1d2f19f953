"""Semantic Integration Module (SIM): SCAN §3.1, Eq. 1–3.

Pipeline (code variant = the official yongliu20/SCAN ``scan/ovseg_model.py`` + ``scan/frequency.py``):

1. spatial tokens F_HW^i of the selected blocks of the frozen original CLIP ViT (1-based block
   outputs, [CLS] excluded, :func:`clip_sim_inputs`);
2. low-frequency enhancement per layer with its own σ (Eq. 1, :class:`LowFrequencyEnhancement`);
3. flatten and concatenate along the token axis: F_s (B, m·h·w, C_v), no layer/position embedding;
4. memory M = Linear_{D→D}(Linear_{C_v→D}(F_s)), no activation;
5. E ← E + MHA_l(E, M, M) for l = 1..n, LayerNorm after every layer but the last (Eq. 2; code n = 5,
   paper n = 1), with E = F_N the proposal embeddings (B, Q, D);
6. E ← E + γ·ĉ, ĉ = the L2-normalised final CLIP embedding, γ learnable (init 0.1) (Eq. 3);
7. a post-norm ``nn.TransformerEncoder`` (Eq. 3): per query, length-1 sequences (code,
   ``query_interaction=False``) or the Q queries together (paper, "fully interacted").

The same module (shared weights) serves the aux decoder outputs: compute :meth:`memory` once and
pass it to :meth:`forward` for each output.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ovlab.clip.dense import vit_features
from ovlab.scan.lfe import LFE_VARIANTS, LowFrequencyEnhancement, frequency_filter

__all__ = ["LowFrequencyEnhancement", "SemanticIntegrationModule", "clip_sim_inputs", "frequency_filter"]


def clip_sim_inputs(visual, images: torch.Tensor, layers: Sequence[int], *,
                    resize: str = "nearest") -> tuple[list[torch.Tensor], torch.Tensor]:
    """The original-CLIP inputs of SIM: spatial tokens of ``layers`` and the final embedding.

    The images are resized to the ViT's input size with ``F.interpolate`` (SCAN: default
    ``nearest`` mode, padding included: yongliu20/SCAN ``scan/ovseg_model.py``), then run by :func:`ovlab.clip.dense.vit_features`
    (no gradients; the original CLIP is frozen).

    Args:
        visual: open_clip ``VisionTransformer`` (``clip.model.visual``).
        images: (B, 3, H, W) CLIP-normalised.
        layers: 1-based block indices (SCAN ``SELECT_ORI_CLIP_ID``: ViT-L 12, 18, 24; ViT-B 6, 9, 12).
        resize: ``F.interpolate`` mode used when H×W differs from the ViT's size.

    Returns:
        ``(spatial, embedding)``: one (B, C_v, h, w) tensor per layer, in the order given, and the
        (B, D) final embedding (``ln_post`` + ``proj``, unnormalised).

    Raises:
        TypeError / ValueError: from :func:`vit_features` (not a ViT, bad block index).
    """
    size = tuple(visual.image_size) if isinstance(visual.image_size, (tuple, list)) else (visual.image_size,) * 2
    if tuple(images.shape[-2:]) != size:
        images = F.interpolate(images, size=size, mode=resize)
    feats = vit_features(visual, images, blocks=layers)
    return [feats.patch_tokens[int(i)] for i in layers], feats.embedding


class CrossAttentionStack(nn.Module):
    """SCAN's ``CA(num)``: E ← E + MHA_l(E, M, M), LayerNorm_l after every layer but the last.

    SCAN Eq. 2 is one MHA (``layers=1, residual=False``); the official SIM code (yongliu20/SCAN
    ``scan/ovseg_model.py``, ``scan/frequency.py``) stacks 5 with residuals.

    Args:
        dim: D. heads: attention heads (8). layers: n ≥ 1 (code 5, paper 1).
        residual: add E back (code); ``False`` gives Eq. 2 literally, F'_N = MHA(F_N, F_s, F_s).
    """

    def __init__(self, dim: int, heads: int = 8, layers: int = 5, *, residual: bool = True) -> None:
        super().__init__()
        if layers < 1:
            raise ValueError(f"cross-attention layers must be ≥ 1, got {layers}")
        self.residual = residual
        self.attn = nn.ModuleList(nn.MultiheadAttention(dim, heads, batch_first=True) for _ in range(layers))
        self.norms = nn.ModuleList(nn.LayerNorm(dim) for _ in range(layers - 1))

    def forward(self, queries: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        """queries (B, Q, D), memory (B, N, D) -> (B, Q, D)."""
        e = queries
        for i, attn in enumerate(self.attn):
            out = attn(e, memory, memory, need_weights=False)[0]
            e = e + out if self.residual else out
            if i < len(self.norms):
                e = self.norms[i](e)
        return e


class SemanticIntegrationModule(nn.Module):
    """SIM: calibrates proposal embeddings with the original CLIP (SCAN §3.1, Eq. 1–3).

    Args:
        clip_width: C_v, width of the CLIP ViT tokens (ViT-L 1024, ViT-B 768, tiny ViT 64).
        dim: D, proposal-embedding dim = CLIP embed dim (ViT-L 768, ViT-B 512, tiny ViT 64).
        sigmas: one LFE σ per selected layer, in layer order (SCAN ViT-L [9, 7, 3]).
        layers: the 1-based CLIP blocks (kept for :meth:`clip_inputs`; SCAN ViT-L [12, 18, 24]).
        resize: interpolation mode of :meth:`clip_inputs` (SCAN: ``nearest``).
        lfe: ``code`` (Conv–ReLU–Conv), ``paper`` (Conv–ReLU) or ``none`` (raw tokens, Tab. 4 row
            "F_HW" without LFE).
        shared_lfe: one LFE module for all layers (code) or one per layer.
        cross_attention_layers: n of :class:`CrossAttentionStack` (code 5, paper 1).
        cross_attention_residual: E + MHA (code) or MHA alone (Eq. 2 as printed).
        heads: attention heads of the cross-attention and the encoder (8; must divide D).
        encoder_layers: post-norm ``TransformerEncoderLayer`` count (5; 0 = no encoder).
        encoder_ff: encoder feed-forward width (2048). encoder_dropout: (0.1).
        query_interaction: encoder over the Q queries together (paper) or each query alone as a
            length-1 sequence (code, default).
        use_spatial: use F_HW (steps 1–5); ``False`` = Tab. 4 row "F_CLS only".
        use_cls: add γ·ĉ (step 6); ``False`` = Tab. 4 rows without F_CLS^final.
        normalize_cls: L2-normalise the final CLIP embedding before γ (code) or not.
        gamma_init: initial γ (0.1, Eq. 3).

    Attributes:
        gamma: (1,) learnable γ.

    Raises:
        ValueError: unknown ``lfe``, empty ``sigmas`` with ``use_spatial``, or heads not dividing D.
    """

    def __init__(self, clip_width: int, dim: int, sigmas: Sequence[float], *, layers: Sequence[int] | None = None,
                 resize: str = "nearest", lfe: str = "code", shared_lfe: bool = True,
                 cross_attention_layers: int = 5, cross_attention_residual: bool = True, heads: int = 8,
                 encoder_layers: int = 5, encoder_ff: int = 2048, encoder_dropout: float = 0.1,
                 query_interaction: bool = False, use_spatial: bool = True, use_cls: bool = True,
                 normalize_cls: bool = True, gamma_init: float = 0.1) -> None:
        super().__init__()
        if lfe not in LFE_VARIANTS + ("none",):
            raise ValueError(f"sim lfe must be one of {LFE_VARIANTS + ('none',)}, got {lfe!r}")
        if use_spatial and not sigmas:
            raise ValueError("sim: sigmas must give one σ per selected layer (got none)")
        if dim % heads:
            raise ValueError(f"sim: heads={heads} must divide dim={dim}")
        if layers is not None and len(layers) != len(sigmas):
            raise ValueError(f"sim: {len(layers)} layers but {len(sigmas)} sigmas")
        self.layers = None if layers is None else [int(i) for i in layers]
        self.resize = resize
        self.clip_width, self.dim = int(clip_width), int(dim)
        self.sigmas = [float(s) for s in sigmas]
        self.lfe_variant, self.shared_lfe = lfe, shared_lfe
        self.use_spatial, self.use_cls, self.normalize_cls = use_spatial, use_cls, normalize_cls
        self.query_interaction = query_interaction
        self.lfe: nn.ModuleList | None = None
        if use_spatial and lfe != "none":
            n = 1 if shared_lfe else len(self.sigmas)
            self.lfe = nn.ModuleList(LowFrequencyEnhancement(clip_width, lfe) for _ in range(n))
        self.memory_proj = (nn.Sequential(nn.Linear(clip_width, dim), nn.Linear(dim, dim)) if use_spatial else None)
        self.cross_attention = (CrossAttentionStack(dim, heads, cross_attention_layers,
                                                    residual=cross_attention_residual) if use_spatial else None)
        self.gamma = nn.Parameter(torch.tensor([float(gamma_init)]))
        if encoder_layers > 0:
            layer = nn.TransformerEncoderLayer(dim, heads, dim_feedforward=encoder_ff, dropout=encoder_dropout,
                                               activation="relu", batch_first=True, norm_first=False)
            self.encoder: nn.Module = nn.TransformerEncoder(layer, encoder_layers, enable_nested_tensor=False)
        else:
            self.encoder = nn.Identity()

    @classmethod
    def from_params(cls, params, clip_width: int, dim: int) -> "SemanticIntegrationModule":
        """Build from a :class:`ovlab.config.scan.SimParams` section."""
        return cls(clip_width, dim, params.sigmas, layers=params.layers, resize=params.resize, lfe=params.lfe,
                   shared_lfe=params.shared_lfe, cross_attention_layers=params.cross_attention_layers,
                   cross_attention_residual=params.cross_attention_residual, heads=params.heads,
                   encoder_layers=params.encoder_layers, encoder_ff=params.encoder_ff,
                   encoder_dropout=params.encoder_dropout, query_interaction=params.query_interaction,
                   use_spatial=params.use_spatial, use_cls=params.use_cls, normalize_cls=params.normalize_cls,
                   gamma_init=params.gamma_init)

    def clip_inputs(self, visual, images: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """:func:`clip_sim_inputs` for this module's ``layers`` and ``resize``: (grids, (B, D) embedding).

        Raises:
            ValueError: the module was built without ``layers``.
        """
        if self.layers is None:
            raise ValueError("sim: built without layers; call clip_sim_inputs(visual, images, layers)")
        return clip_sim_inputs(visual, images, self.layers, resize=self.resize)

    def memory(self, spatial: Sequence[torch.Tensor]) -> torch.Tensor:
        """Steps 2–4: LFE per layer, concatenation, projection.

        Args:
            spatial: one (B, C_v, h_i, w_i) grid per selected layer, in the order of ``sigmas``.

        Returns:
            (B, Σ h_i·w_i, D) float32 memory M.

        Raises:
            ValueError: the module has ``use_spatial=False``, or the number of grids ≠ len(sigmas).
        """
        if not self.use_spatial:
            raise ValueError("sim: memory() needs use_spatial=True")
        if len(spatial) != len(self.sigmas):
            raise ValueError(f"sim: got {len(spatial)} spatial grids for {len(self.sigmas)} sigmas")
        tokens = []
        for k, (x, sigma) in enumerate(zip(spatial, self.sigmas)):
            x = x.float()
            if self.lfe is not None:
                x = self.lfe[0 if self.shared_lfe else k](x, sigma)
            tokens.append(x.flatten(2).transpose(1, 2))                   # (B, h·w, C_v)
        return self.memory_proj(torch.cat(tokens, dim=1))

    def forward(self, queries: torch.Tensor, spatial: Sequence[torch.Tensor] | None = None,
                cls_embedding: torch.Tensor | None = None, *, memory: torch.Tensor | None = None) -> torch.Tensor:
        """Calibrated proposal embeddings F_N^final (Eq. 3).

        Args:
            queries: (B, Q, D) proposal embeddings F_N.
            spatial: the grids for :meth:`memory` (ignored when ``memory`` is given).
            cls_embedding: (B, D) final CLIP embedding F_CLS^final (needed when ``use_cls``).
            memory: (B, N, D) precomputed :meth:`memory` (aux outputs share it).

        Returns:
            (B, Q, D) float32.

        Raises:
            ValueError: a needed input is missing or has the wrong shape.
        """
        if queries.dim() != 3 or queries.shape[-1] != self.dim:
            raise ValueError(f"sim: queries must be (B, Q, {self.dim}), got {tuple(queries.shape)}")
        b, q, d = queries.shape
        e = queries.float()
        if self.use_spatial:
            if memory is None:
                if spatial is None:
                    raise ValueError("sim: give the spatial grids or a precomputed memory")
                memory = self.memory(spatial)
            e = self.cross_attention(e, memory)
        if self.use_cls:
            if cls_embedding is None or tuple(cls_embedding.shape) != (b, d):
                got = None if cls_embedding is None else tuple(cls_embedding.shape)
                raise ValueError(f"sim: cls_embedding must be ({b}, {d}), got {got}")
            c = cls_embedding.float()
            if self.normalize_cls:
                c = F.normalize(c, dim=-1)
            e = e + self.gamma * c[:, None, :]
        if self.query_interaction:
            return self.encoder(e)
        return self.encoder(e.reshape(b * q, 1, d)).reshape(b, q, d)
