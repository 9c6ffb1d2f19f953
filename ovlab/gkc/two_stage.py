"""Two-stage open-vocabulary segmentation: proposals → masked crops → CLIP (GKC Tab. 2 and 8).

The Simbaseline / ZegFormer family (GKC §2, "two-stage methods"): a class-agnostic proposal model
gives Q masks; each mask's masked crop goes through the CLIP image encoder and is classified by
cosine with the class names' text embeddings (max over a class's names), softmax with CLIP's logit
scale; the CLIP probabilities are optionally combined with the proposal model's own class
probabilities by the geometric ensemble p = p_in^(1−λ)·p_clip^λ (Simbaseline / OVSeg; SCAN ``ovseg_model.py``,
:mod:`ovlab.segmenter.ensemble`), then Mask2Former semantic inference seg_c(x) = Σ_q p_{q,c}·σ(m_q(x)).

Here the proposal model is the trained GKC :class:`~ovlab.segmenter.model.Segmenter` (its final
prediction; with or without text diversification is a property of that model), or the ground-truth
masks (oracle). Crops follow SCAN / zsseg: binarise σ(mask logits upsampled to the resized,
unpadded input) > threshold, crop that image, fill the background, resize to the CLIP input. Crops
are cut on the CPU (:func:`ovlab.clip.crops.masked_crops`) and encoded on the CLIP's device.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ovlab.clip.crops import masked_crops
from ovlab.gkc.synonym_score import crop_settings

from ovlab.segmenter.ensemble import binarize_masks, clip_probabilities, ensemble_probabilities
from ovlab.segmenter.ensemble import semantic_inference as probability_inference
from ovlab.segmenter.inference import names_to_classes, upsample_masks


def void_score(class_logits: torch.Tensor) -> torch.Tensor:
    """Objectness 1 − p_void of each query: (B, Q, K+1) logits, void last → (B, Q) float32."""
    return 1.0 - class_logits.float().softmax(-1)[..., -1]


def select_top_k(class_logits: torch.Tensor, mask_logits: torch.Tensor, k: int | None
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Keep the k queries of each image with the highest 1 − p_void (ties: lower query index first).

    The kept queries stay in their original order, so ``k = None`` (or k ≥ Q) returns the inputs.

    Args:
        class_logits: (B, Q, K+1) in-model class logits, void last.
        mask_logits: (B, Q, H, W).
        k: queries kept; ``None`` = all.

    Returns:
        ``(class_logits (B, k, K+1), mask_logits (B, k, H, W), index (B, k) int64)``.

    Raises:
        ValueError: k < 1, or B / Q differ between the inputs.
    """
    if class_logits.shape[:2] != mask_logits.shape[:2]:
        raise ValueError(f"select_top_k: class_logits {tuple(class_logits.shape)} and mask_logits "
                         f"{tuple(mask_logits.shape)} disagree on (B, Q)")
    b, q = class_logits.shape[:2]
    if k is not None and k < 1:
        raise ValueError(f"top_k must be ≥ 1, got {k}")
    if k is None or k >= q:
        index = torch.arange(q, device=class_logits.device).expand(b, q)
        return class_logits, mask_logits, index
    order = torch.sort(void_score(class_logits), dim=1, descending=True, stable=True).indices
    index = order[:, :k].sort(dim=1).values
    rows = torch.arange(b, device=index.device)[:, None]
    return class_logits[rows, index], mask_logits[rows, index], index


def region_logits(clip, image: torch.Tensor, masks: torch.Tensor, vocab, *, crop: dict,
                  batch_size: int = 100) -> tuple[torch.Tensor, torch.Tensor]:
    """CLIP class logits of the masked crops of one image (GKC §2 two-stage methods; crops as SCAN's mask classifier makes them).

    z_{n,c} = τ · max_{names j of c} cos(R(δ(I, M_n)), T(j)), τ = CLIP's logit scale.

    Args:
        clip: :class:`ovlab.clip.ClipModel` (``encode_image``, ``logit_scale``).
        image: (3, H, W) or (H, W, 3) RGB in 0–255 (any float or uint8; cut on the CPU).
        masks: (N, H, W) bool; empty masks get no crop.
        vocab: :class:`ovlab.segmenter.vocabulary.Vocabulary` of ``clip`` (K classes, M names).
        crop: keyword arguments of :func:`ovlab.clip.crops.masked_crops` (size, fill, expand...).
        batch_size: crops per CLIP forward.

    Returns:
        ``(logits, valid)``: (N, K) float32 (rows of empty masks are 0) and (N,) bool (non-empty), on
        the CLIP's device.

    Raises:
        ValueError: bad shapes (from :func:`masked_crops`), batch_size < 1.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be ≥ 1, got {batch_size}")
    masks = masks.bool().cpu()
    valid = masks.flatten(1).any(1)
    out = torch.zeros(masks.shape[0], len(vocab), dtype=torch.float32, device=clip.device)
    todo = torch.nonzero(valid).flatten()
    image = image.cpu() if isinstance(image, torch.Tensor) else image
    scale = clip.logit_scale
    for i in range(0, len(todo), batch_size):
        chunk = todo[i:i + batch_size]
        crops, _ = masked_crops(image, masks[chunk], **crop)
        out[chunk.to(out.device)] = vocab.bank.logits(clip.encode_image(crops), scale).float().to(out.device)
    return out, valid.to(out.device)


def combine_probabilities(in_logits: torch.Tensor | None, clip_logits: torch.Tensor, valid: torch.Tensor,
                          ensemble: str, clip_weight: float) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Class probabilities of the proposals (Simbaseline / OVSeg rule; SCAN ``ovseg_model.py``).

    ``none``: p = softmax(z_clip), masks without a crop dropped (zsseg's CLIP-only mode).
    ``geometric``: p = p_in^(1−λ)·p_clip^λ with p_in = softmax(z_in over K+1)[:K] and p_clip ≡ 1
    for masks without a crop (:func:`ovlab.segmenter.ensemble.ensemble_probabilities`).

    Args:
        in_logits: (B, N, K+1) in-model class logits, void last (``None`` for ``none``).
        clip_logits: (B, N, K) CLIP class logits; valid: (B, N) bool.
        ensemble: ``none`` | ``geometric``; clip_weight: λ in [0, 1].

    Returns:
        ``(probs (B, N, K) float32, keep (B, N) bool or None)`` for :func:`probability_inference`.

    Raises:
        ValueError: unknown ensemble, ``geometric`` without in-model logits, λ outside [0, 1].
    """
    p_clip = clip_probabilities(clip_logits, valid)
    if ensemble == "none":
        return p_clip, valid
    if ensemble != "geometric":
        raise ValueError(f"ensemble must be 'none' or 'geometric', got {ensemble!r}")
    if in_logits is None:
        raise ValueError("ensemble 'geometric' needs the in-model class logits (model proposals)")
    return ensemble_probabilities(in_logits, p_clip, clip_weight, valid=valid), None


@dataclass
class TwoStageOutput:
    """What the two-stage model gives for a batch (B images, N proposals, K classes).

    Attributes:
        scores: (B, K, h, w) float32 semantic scores (argmax over K = the prediction).
        probs: (B, N, K) the proposals' final class probabilities.
        clip_probs: (B, N, K) CLIP probabilities (1 where no crop).
        valid: (B, N) bool, the proposal gave a crop.
        index: (B, N) int64 the proposals' query indices (oracle: the GT class of each mask).
    """

    scores: torch.Tensor
    probs: torch.Tensor
    clip_probs: torch.Tensor
    valid: torch.Tensor
    index: torch.Tensor


class TwoStageSegmenter:
    """A proposal segmenter plus a CLIP crop classifier (GKC Tab. 2 / 8 two-stage baseline).

    Args:
        segmenter: the trained :class:`~ovlab.segmenter.model.Segmenter` (``None`` for oracle
            proposals only); put it in eval mode first.
        clip: the :class:`ovlab.clip.ClipModel` classifying the crops.
        params: :class:`ovlab.config.two_stage.TwoStageParams`.
    """

    def __init__(self, segmenter, clip, params):
        self.segmenter = segmenter
        self.clip = clip
        self.params = params

    @property
    def crop_kwargs(self) -> dict:
        """Keyword arguments of :func:`masked_crops` (the synonym-score stage's crop rule, CLIP size)."""
        kw = crop_settings(self.params, self.clip)
        if self.params.input_size is not None:
            kw["size"] = self.params.input_size
        return kw

    def _regions(self, image, masks, clip_vocab):
        return region_logits(self.clip, image, masks, clip_vocab, crop=self.crop_kwargs,
                             batch_size=self.params.batch_size)

    @torch.no_grad()
    def segment(self, images: torch.Tensor, vocab, clip_vocab, valid_size: tuple[int, int] | None = None
                ) -> TwoStageOutput:
        """Two-stage semantic scores with the segmenter's proposals.

        Args:
            images: (B, 3, H, W) RGB in [0, 1] on the segmenter's device; H, W multiples of 32.
            vocab: the segmenter's :class:`~ovlab.segmenter.vocabulary.Vocabulary` (K classes).
            clip_vocab: the same K classes encoded by :attr:`clip`'s text tower.
            valid_size: (h, w) of the image inside the (padded) input; default (H, W).

        Returns:
            :class:`TwoStageOutput` with scores (B, K, h, w).

        Raises:
            ValueError: no segmenter, vocabularies of different sizes, H/W not multiples of 32.
        """
        if self.segmenter is None:
            raise ValueError("two-stage: model proposals need a segmenter")
        k = len(vocab)
        if len(clip_vocab) != k:
            raise ValueError(f"two-stage: the segmenter's vocabulary has {k} classes, the CLIP's {len(clip_vocab)}")
        dev = images.device
        h, w = valid_size or tuple(images.shape[-2:])
        final = self.segmenter(images, vocab.text.to(dev))[-1]
        logits = names_to_classes(final.logits, vocab.class_index, k)
        logits, masks, index = select_top_k(logits, final.masks, self.params.top_k)
        masks = upsample_masks(masks, tuple(images.shape[-2:]))[..., :h, :w]
        binary, _ = binarize_masks(masks, self.params.mask_threshold)
        rows = [self._regions(images[b, :, :h, :w] * 255.0, binary[b], clip_vocab) for b in range(images.shape[0])]
        clip_logits = torch.stack([r[0] for r in rows]).to(dev)
        valid = torch.stack([r[1] for r in rows]).to(dev)
        probs, keep = combine_probabilities(logits, clip_logits, valid, self.params.ensemble, self.params.clip_weight)
        scores = probability_inference(probs, masks, keep)
        return TwoStageOutput(scores, probs, clip_probabilities(clip_logits, valid), valid, index)

    @torch.no_grad()
    def segment_oracle(self, image, masks: torch.Tensor, clip_vocab, index: torch.Tensor | None = None
                       ) -> TwoStageOutput:
        """Two-stage semantic scores of given hard masks (oracle proposals; CLIP classification only).

        seg_c(x) = Σ_n softmax(z_clip)_{n,c}·1[x ∈ M_n].

        Args:
            image: (H, W, 3) or (3, H, W) RGB in 0–255.
            masks: (N, H, W) bool, e.g. one per ground-truth class present.
            clip_vocab: the K classes encoded by :attr:`clip`.
            index: (N,) what each mask is (kept in the output), default 0..N-1.

        Returns:
            :class:`TwoStageOutput` with B = 1 and scores (1, K, H, W) on the CPU.
        """
        masks = torch.as_tensor(masks).bool().cpu()
        logits, valid = self._regions(image, masks, clip_vocab)
        logits, valid = logits.cpu()[None], valid.cpu()[None]
        probs, keep = combine_probabilities(None, logits, valid, "none", 0.0)
        hard = torch.where(masks, float("inf"), float("-inf"))[None]  # σ(±inf) = 1 / 0 exactly
        scores = probability_inference(probs, hard, keep)
        idx = torch.arange(masks.shape[0]) if index is None else torch.as_tensor(index)
        return TwoStageOutput(scores, probs, probs, valid, idx[None])
