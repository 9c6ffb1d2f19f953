"""``two_stage`` section: the Simbaseline / ZegFormer-style two-stage baseline (GKC Tab. 2 and 8).

Class-agnostic proposals (the trained segmenter's masks, or the ground truth as an oracle) → masked
crops → CLIP image encoder → cosine with the vocabulary's text embeddings, optionally ensembled
with the segmenter's own class scores (:mod:`ovlab.gkc.two_stage`; adapted from SCAN
``scan/ovseg_model.py`` L321–353).

Proposed for ``params.yaml`` (not wired into :class:`ovlab.config.Params` here). Defaults are
Simbaseline's (zsseg.baseline ``MODEL.CLIP_ADAPTER``: mean fill, expand ratio 1.0, mask threshold
0.5, regions resized to the CLIP input, geometric ensemble with weight 0.8); the CLIP is the
segmenter's own unless ``clip`` names another (Simbaseline: ViT-B/16).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from ovlab.config.clip import ClipParams
from ovlab.config.schema import Section


class TwoStageParams(Section):
    """Two-stage inference: proposals → masked crops → CLIP classification (GKC Tab. 2, 8).

    Attributes:
        enabled: score the model through the two-stage pipeline instead of its own single-stage
            inference (GKC Tab. 8 cells switch it on).
        proposals: ``model`` = the segmenter's final-prediction Q mask logits; ``oracle`` = one binary
            mask per ground-truth class present in the image (CLIP classification only).
        top_k: keep the k queries with the highest 1 − p_void (in-model void probability); ``null`` = all Q.
        mask_threshold: σ(mask logit) > threshold binarises a proposal for its crop (Simbaseline
            ``MASK_THR`` 0.5); an empty binary mask gives no crop (p_clip ≡ 1, SCAN/zsseg).
        crop: ``mask`` = background filled with ``fill``, cut to the (expanded) bbox, bicubic resize
            ignoring aspect (Simbaseline); ``bbox`` = the raw bbox crop with CLIP's standard
            preprocessing (:func:`ovlab.gkc.synonym_score.crop_settings`).
        fill: outside-mask fill of the ``mask`` crop: ``mean`` (CLIP mean, Simbaseline) or ``grey`` (128).
        expand: bbox expand ratio about its centre (Simbaseline ``MASK_EXPAND_RATIO`` 1.0).
        input_size: side in pixels of the crops fed to CLIP; ``null`` = the CLIP model's own input size.
        templates: prompt templates of the CLIP classifier's text embeddings (``none`` | ``photo`` |
            ``vild``; Simbaseline ``vild``).
        ensemble: ``none`` = CLIP scores only (masks without a crop are dropped) | ``geometric`` =
            p_in^(1−λ) · p_clip^λ (Simbaseline / OVSeg; SCAN ``scan/ovseg_model.py``); ``oracle`` needs ``none``.
        clip_weight: λ of the geometric ensemble, in [0, 1] (Simbaseline ``CLIP_ENSEMBLE_WEIGHT`` 0.8).
        batch_size: crops per CLIP image-encoder forward.
        clip: the CLIP that classifies the crops; ``null`` = the segmenter's CLIP (same backbone,
            GKC Tab. 2). Simbaseline: ViT-B-16 / openai.
    """

    enabled: bool = False
    proposals: Literal["model", "oracle"] = "model"
    top_k: int | None = Field(None, ge=1)
    mask_threshold: float = Field(0.5, ge=0.0, lt=1.0)
    crop: Literal["mask", "bbox"] = "mask"
    fill: Literal["mean", "grey"] = "mean"
    expand: float = Field(1.0, ge=1.0)
    input_size: int | None = Field(None, ge=1)
    templates: str = "vild"
    ensemble: Literal["none", "geometric"] = "geometric"
    clip_weight: float = Field(0.8, ge=0.0, le=1.0)
    batch_size: int = Field(100, ge=1)
    clip: ClipParams | None = None

    @model_validator(mode="after")
    def _check(self):
        if self.proposals == "oracle" and self.ensemble != "none":
            raise ValueError("proposals 'oracle' has no in-model class scores: set ensemble to 'none'")
        return self
