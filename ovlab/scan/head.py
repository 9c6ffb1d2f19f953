"""SCAN's proposal-embedding head: one shared MLP hidden → embed_hidden → D for every decoder
prediction (SCAN §3; yongliu20/SCAN ``scan/modeling/transformer_decoder/open_vocab_mask2former_predictor.py``:
``class_embed = MLP(hidden_dim, EMBED_HIDDEN_DIM, EMBEDDING_DIM, EMBED_LAYERS)``, ViT-L 256 → 1024 → 768),
with the τ·cos text classifier and the void column (SCAN ``non_object_embedding``,
``scan/modeling/clip_adapter/adapter.py``).

GKC's head (:class:`ovlab.segmenter.classifier.TextClassifier`: a shared Linear, then a per-layer
ReLU·Linear) is the other choice of ``model.head`` (``gkc``); SCAN's is ``scan``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

HEAD_TYPES = ("gkc", "scan")


class ProposalMLP(nn.Module):
    """detectron2/Mask2Former's ``MLP``: ``num_layers`` Linear layers, ReLU between them (not after the last).

    Args:
        in_dim, hidden_dim, out_dim: widths. num_layers: ≥ 1 (SCAN ``EMBED_LAYERS`` = 2).

    Attributes:
        layers: the Linear layers (official key names ``class_embed.layers.{i}``).
    """

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, num_layers: int = 2):
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"MLP needs at least one layer, got {num_layers}")
        dims = [in_dim] + [hidden_dim] * (num_layers - 1) + [out_dim]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = F.relu(x)
        return x


class ScanClassifier(nn.Module):
    """SCAN's head: E_l = MLP(q_l) for every prediction l (shared weights); z = τ·cos(E, [t; void]).

    Has the interface of :class:`ovlab.segmenter.classifier.TextClassifier` (``embed``, ``logits``,
    ``tau``, ``void_embedding``); the "prior" of a prediction is its embedding (SCAN has no
    separate prior).

    Args:
        hidden_dim: decoder width (SCAN 256). embed_dim: D (CLIP joint dim, ViT-L 768).
        embed_hidden_dim: MLP hidden width (SCAN ``EMBED_HIDDEN_DIM`` 1024). embed_layers: (2).
        logit_scale_init: τ (SCAN: 100, fixed). learn_logit_scale: τ trainable (SCAN: false).

    Shapes: ``embed`` L × (B, Q, hidden) → (priors, embeddings) L × (B, Q, D); ``logits``
    (B, Q, D), (M, D) → (B, Q, M + 1), void last.
    """

    def __init__(self, hidden_dim: int, embed_dim: int, *, embed_hidden_dim: int = 1024, embed_layers: int = 2,
                 logit_scale_init: float = 100.0, learn_logit_scale: bool = False):
        super().__init__()
        self.class_embed = ProposalMLP(hidden_dim, embed_hidden_dim, embed_dim, embed_layers)
        if learn_logit_scale:
            self.logit_scale = nn.Parameter(torch.tensor(math.log(logit_scale_init)))
        else:  # a constant (SCAN's literal 100): not in state_dict, not trained
            self.register_buffer("logit_scale", torch.tensor(math.log(logit_scale_init)), persistent=False)
        self._fixed_tau = None if learn_logit_scale else float(logit_scale_init)
        self.void_embedding = nn.Parameter(torch.randn(1, embed_dim) * embed_dim ** -0.5)

    @property
    def tau(self) -> torch.Tensor:
        """τ (a 0-d tensor): exactly ``logit_scale_init`` when fixed (SCAN's literal 100), else exp(θ)."""
        if self._fixed_tau is not None:
            return torch.tensor(self._fixed_tau, device=self.logit_scale.device)
        return self.logit_scale.exp()

    def embed(self, queries: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """L query tensors (B, Q, hidden) → (priors, embeddings), both L × (B, Q, D) (the same tensors)."""
        emb = [self.class_embed(q) for q in queries]
        return emb, emb

    def logits(self, embeddings: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """z = τ·⟨ê, [t̂; v̂]⟩ (SCAN ``get_sim_logits`` on normalised features; void = ``non_object_embedding``).

        Args:
            embeddings: (B, Q, D). text: (M, D) (normalised here).

        Returns:
            (B, Q, M + 1) float, void last.
        """
        cols = torch.cat([F.normalize(text.to(embeddings), dim=-1),
                          F.normalize(self.void_embedding.to(embeddings), dim=-1)], 0)
        return self.tau.to(embeddings) * F.normalize(embeddings, dim=-1) @ cols.T
