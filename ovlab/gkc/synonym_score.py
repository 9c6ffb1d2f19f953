"""GKC synonym score (GKC Eq. 1, §3.1) and the crop settings of its image input.

For a training segment k of class c with synonyms w_c^1..w_c^J:

    S_k^j = softmax_j( cos( R(δ(I, M_k)), T(prompt(w_c^j)) ) / temperature )

R: CLIP image encoder on the segment crop; T: CLIP text encoder. The paper crops "by instance
masks" (``crop: mask``); GKC's ``syn_CLIP_sim.py`` crops the raw bbox with CLIP's standard
preprocessing (``crop: bbox``), ViT-B/32 OpenAI CLIP, prompt ``"a photo of " + name`` and CLIP's
logit scale 100 (temperature 0.01). Classes with a single name get score 1.0 without a forward.
The scores feed GKC's Random text diversification (:mod:`ovlab.gkc.diversify`).

The ``synonym_score`` stage that scores a dataset with these pieces (reads the data, caches, writes
the results and metrics) is :mod:`ovlab.experiments.synonym_score`.
"""

from __future__ import annotations

import torch

from ovlab.clip.loading import ClipModel


def synonym_score(image_embeddings: torch.Tensor, text_embeddings: torch.Tensor, temperature: float) -> torch.Tensor:
    """GKC Eq. 1: softmax over synonyms of cosine similarity / temperature.

    Args:
        image_embeddings: (N, D) crop embeddings (any norm; normalised here).
        text_embeddings: (J, D) the class's synonym embeddings (any norm; normalised here).
        temperature: > 0 (GKC code: 1/100).

    Returns:
        (N, J) float32, rows sum to 1.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    a = image_embeddings.float()
    b = text_embeddings.float()
    a = a / a.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    b = b / b.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return torch.softmax(a @ b.T / temperature, dim=-1)


def crop_settings(cfg, clip: ClipModel) -> dict:
    """Keyword arguments of :func:`ovlab.clip.masked_crops` for the stage's ``crop`` variant."""
    mask = cfg.crop == "mask"
    return dict(size=clip.image_size, fill=cfg.fill if mask else "none", expand=cfg.expand,
                resize="stretch" if mask else "shortest", mean=clip.mean, std=clip.std)
