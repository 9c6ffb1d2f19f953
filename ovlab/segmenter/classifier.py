"""Open-vocabulary class head: query embeddings projected to the CLIP text space (GKC §3, Fig. 2).

For each decoder prediction l: prior_l = class_embed(q_l) (Linear hidden→hidden, shared; the KD
student "prior"), e_l = embed_proj_l(prior_l) = Linear_l(ReLU(prior_l)) (hidden→D, one per layer,
as GKC's ``aux_embed_porj_i``), logits z_{q,k} = τ·⟨ê_q, t̂_k⟩ over the K text embeddings plus a
learnable void embedding as column K (GKC ``non_object_embedding``), τ = exp(θ), θ learnable, init log(1/0.07).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

EPS = 1e-7


class TextClassifier(nn.Module):
    """Projection heads, logit scale τ and the void embedding.

    Args:
        hidden_dim: decoder width (256 in GKC).
        embed_dim: CLIP joint dimension D (RN50: 1024).
        num_predictions: L decoder predictions (each gets its own projection).
        logit_scale_init: initial τ (1/0.07 ≈ 14.29).
        learn_logit_scale: θ trainable (GKC ``LEARNED_TEMP=True``).
    """

    def __init__(self, hidden_dim: int, embed_dim: int, num_predictions: int, *,
                 logit_scale_init: float = 1 / 0.07, learn_logit_scale: bool = True):
        super().__init__()
        self.class_embed = nn.Linear(hidden_dim, hidden_dim)
        self.embed_proj = nn.ModuleList(
            [nn.Sequential(nn.ReLU(), nn.Linear(hidden_dim, embed_dim)) for _ in range(num_predictions)])
        self.logit_scale = nn.Parameter(torch.tensor(math.log(logit_scale_init)), requires_grad=learn_logit_scale)
        self.void_embedding = nn.Parameter(torch.randn(1, embed_dim) * embed_dim ** -0.5)

    @property
    def tau(self) -> torch.Tensor:
        """τ = exp(θ), a 0-d tensor."""
        return self.logit_scale.exp()

    def embed(self, queries: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Query features → (priors, embeddings).

        Args:
            queries: L tensors (B, Q, hidden).

        Returns:
            priors: L tensors (B, Q, hidden); embeddings: L tensors (B, Q, D), not normalised.
        """
        priors = [self.class_embed(q) for q in queries]
        return priors, [proj(p) for proj, p in zip(self.embed_proj, priors)]

    def logits(self, embeddings: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """z = τ·cos(e, [t; void]) (GKC ``mask2former/maskformer_model_voca_dense_kd_syn.py``).

        Args:
            embeddings: (B, Q, D).
            text: (M, D) text embeddings of the vocabulary's names (normalised here, eps 1e-7).

        Returns:
            (B, Q, M + 1): the last column is void.
        """
        cols = torch.cat([text.to(embeddings), self.void_embedding.to(embeddings)], 0)
        e = F.normalize(embeddings, dim=-1, eps=EPS)
        cols = F.normalize(cols, dim=-1, eps=EPS)
        return self.tau * e @ cols.T
