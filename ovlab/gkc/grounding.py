"""GKC grounding loss L_G between caption nouns and matched queries (GKC §3.3, Eq. 4; GKC
`mask2former/modeling/utils/loss.py` L93–461).

For every (caption c, image i) pair of the batch (B × B; negatives are the other images of the same
batch, GKC ``GATHER=False``), with words w_l of caption c and regions e_r of image i:

    sim_lr = τ·cos(w_l, e_r),   d_lr = τ·(1 − cos(w_l, e_r))
    word→region:  a_lr = softmax_r(sim_lr),  D_w2r(c, i) = Σ_l Σ_r a_lr·d_lr / #words(c)
    region→word:  b_lr = softmax_l(sim_lr),  D_r2w(c, i) = Σ_r Σ_l b_lr·d_lr / #regions(i)

Padding words/regions get similarity min(sim) − 100 before the softmax (≈ zero weight) and are
left out of the outer sums. For each D ∈ {D_w2r, D_r2w}, cross-entropy over −D picks the right
caption for each image (softmax over c) and the right image for each caption (softmax over i),
the diagonal being positive; L_G is the mean of the 4 terms. τ is the classifier's logit scale.

Validity quirk: GKC guards samples with ``(num_words > 0) + (num_regions > 0)``, an OR where an
AND was meant. ``validity="and"`` (default) keeps a sample only if its caption has a word **and**
its image a region; ``"or"`` reproduces the code: a sample with one side empty takes part, its
softmax then runs over padding only (uniform) and padding embeddings (zeros, cos = 0) give d = τ.

Words are the caption nouns of :func:`ovlab.vocab.captions.caption_nouns` (re-exported here), each
encoded alone with the frozen text encoder; regions are the matched query embeddings after the
projection (before normalisation), at most 25 per image (:func:`pad_embeddings`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ovlab.vocab.captions import caption_nouns, sample_caption

__all__ = ["VALIDITY", "caption_nouns", "grounding_distances", "grounding_loss", "pad_embeddings", "sample_caption"]

VALIDITY = ("and", "or")
MAX_REGIONS = 25
"""GKC: at most 25 matched queries per image enter the grounding loss."""
MAX_WORDS = 5
"""GKC: at most 5 nouns per caption."""


def pad_embeddings(items: Sequence[torch.Tensor], max_items: int | None = None,
                   generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack per-image embeddings into a padded batch, keeping a random subset above ``max_items``.

    Args:
        items: B tensors (n_b, D) (n_b may be 0).
        max_items: cap per image (GKC regions: 25); the kept rows stay in their order.
        generator: for the subsets (``None``: global RNG).

    Returns:
        ``(x, mask)``: (B, M, D) zero-padded, M = max kept count (≥ 1), and (B, M) bool.

    Raises:
        ValueError: no items, or embeddings of different widths.
    """
    if not items:
        raise ValueError("pad_embeddings needs at least one image")
    dims = {int(x.shape[-1]) for x in items}
    if len(dims) != 1 or any(x.dim() != 2 for x in items):
        raise ValueError(f"items must be (n, D) with one D, got shapes {[tuple(x.shape) for x in items]}")
    kept = []
    for x in items:
        if max_items is not None and x.shape[0] > max_items:
            idx = torch.randperm(x.shape[0], generator=generator)[:max_items].sort().values
            x = x[idx.to(x.device)]
        kept.append(x)
    m = max(1, max(x.shape[0] for x in kept))
    d = dims.pop()
    ref = items[0]
    out = ref.new_zeros(len(kept), m, d)
    mask = torch.zeros(len(kept), m, dtype=torch.bool, device=ref.device)
    for b, x in enumerate(kept):
        out[b, : x.shape[0]] = x
        mask[b, : x.shape[0]] = True
    return out, mask


def grounding_distances(words: torch.Tensor, word_mask: torch.Tensor, regions: torch.Tensor,
                        region_mask: torch.Tensor, logit_scale) -> tuple[torch.Tensor, torch.Tensor]:
    """The (caption, image) distance matrices D_w2r and D_r2w (GKC `mask2former/modeling/utils/loss.py`).

    Args:
        words: (B, L, D) word embeddings (normalised here, eps 1e-7); padding rows any value.
        word_mask: (B, L) bool, True for real words.
        regions: (B, R, D) region embeddings (normalised here).
        region_mask: (B, R) bool.
        logit_scale: τ (float or 0-d tensor, gradients flow).

    Returns:
        ``(d_w2r, d_r2w)``: two (B, B) tensors indexed [caption c, image i].
    """
    w = F.normalize(words, dim=-1, eps=1e-7)
    e = F.normalize(regions, dim=-1, eps=1e-7)
    cos = torch.einsum("cld,ird->cilr", w, e)                                # (B, B, L, R)
    sim = logit_scale * cos
    dist = logit_scale * (1.0 - cos)
    wm = word_mask.to(torch.bool)
    rm = region_mask.to(torch.bool)
    pair = wm[:, None, :, None] & rm[None, :, None, :]
    fill = sim.detach().min() - 100.0
    sim = torch.where(pair, sim, fill)
    a = sim.softmax(dim=-1)                                                   # over regions
    b = sim.softmax(dim=-2)                                                   # over words
    n_words = wm.sum(-1).clamp_min(1).to(dist.dtype)                         # (B,) per caption
    n_regions = rm.sum(-1).clamp_min(1).to(dist.dtype)                       # (B,) per image
    w2r = ((a * dist).sum(-1) * wm[:, None, :]).sum(-1) / n_words[:, None]
    r2w = ((b * dist).sum(-2) * rm[None, :, :]).sum(-1) / n_regions[None, :]
    return w2r, r2w


def grounding_loss(
    words: torch.Tensor,
    word_mask: torch.Tensor,
    regions: torch.Tensor,
    region_mask: torch.Tensor,
    logit_scale,
    *,
    validity: str = "and",
) -> torch.Tensor:
    """GKC grounding loss L_G (GKC §3.3; GKC `mask2former/modeling/utils/loss.py`): mean of 4 in-batch
    cross-entropies over −D.

    Args:
        words: (B, L, D) caption-noun embeddings; word_mask (B, L) bool.
        regions: (B, R, D) matched-query embeddings; region_mask (B, R) bool.
        logit_scale: τ.
        validity: ``and`` (intended: a sample needs ≥ 1 word and ≥ 1 region) or ``or`` (GKC code).

    Returns:
        0-d tensor; 0 (connected to the inputs) when no sample is valid. One valid sample gives 0
        (a single candidate).

    Raises:
        ValueError: bad ``validity`` or shapes that disagree.
    """
    if validity not in VALIDITY:
        raise ValueError(f"validity must be one of {VALIDITY}, got {validity!r}")
    if words.dim() != 3 or regions.dim() != 3 or words.shape[0] != regions.shape[0] or words.shape[-1] != regions.shape[-1]:
        raise ValueError(f"need words (B, L, D) and regions (B, R, D), got {tuple(words.shape)} and {tuple(regions.shape)}")
    if word_mask.shape != words.shape[:2] or region_mask.shape != regions.shape[:2]:
        raise ValueError("masks must be (B, L) and (B, R)")
    has_w, has_r = word_mask.any(-1), region_mask.any(-1)
    keep = has_w & has_r if validity == "and" else has_w | has_r
    zero = words.sum() * 0.0 + regions.sum() * 0.0
    if isinstance(logit_scale, torch.Tensor):
        zero = zero + logit_scale * 0.0
    if not keep.any():
        return zero
    d_w2r, d_r2w = grounding_distances(words[keep], word_mask[keep], regions[keep], region_mask[keep], logit_scale)
    target = torch.arange(d_w2r.shape[0], device=d_w2r.device)
    terms = []
    for d in (d_w2r, d_r2w):
        logits = -d                                                           # [caption, image]
        terms.append(F.cross_entropy(logits.T, target))                       # each image picks its caption
        terms.append(F.cross_entropy(logits, target))                         # each caption picks its image
    return torch.stack(terms).mean() + zero
