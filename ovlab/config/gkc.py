"""GKC loss sections: text diversification, distillation, grounding, loss weights (GKC §3.1–3.3, Eq. 1–4).

The ``gkc`` sub-section of the ``tgkd`` stage (:class:`ovlab.config.tgkd.TgkdParams`), used by
:mod:`ovlab.segmenter.objective`. Defaults are the paper's values; the GKC code's are given as
"code: ..." in each docstring.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ovlab.config.schema import Section


class TextDiversificationParams(Section):
    """GKC text diversification (GKC §3.1, Tab. 7a; GKC ``detr_panoptic_caption_syn_kd_dataset_mapper.py``;
    :mod:`ovlab.gkc.diversify`).

    Attributes:
        strategy: ``none`` | ``random`` | ``group_avg`` | ``group_max`` [none; paper best and code
            ``thresRand``: random].
        random_mode: ``paper`` = draw with probability = synonym score; ``code`` = uniform among the
            names scoring > ``threshold``.
        threshold: ``code`` candidate threshold [0.1].
        fallback: name used when no synonym qualifies: ``plain`` (canonical) or ``argmax``.
        keep_plain_ce: also train the plain-name CE (code: true); the plain CE is then ``loss_ce``
            and the synonym CE ``loss_syn``, weighted by ``loss.class_weight`` / ``gkc.weights.syn``.
        synonyms: the ``synonyms`` stage output.
        scores: the ``synonym_score`` stage output (``random`` only).
    """

    strategy: Literal["none", "random", "group_avg", "group_max"] = "none"
    random_mode: Literal["paper", "code"] = "paper"
    threshold: float = Field(0.1, ge=0.0, lt=1.0)
    fallback: Literal["plain", "argmax"] = "plain"
    keep_plain_ce: bool = False
    synonyms: str = "results/synonyms/coco_panoptic_133.json"
    scores: str = "results/synonym_score/coco_panoptic_133.json"


class DistillParams(Section):
    """GKC knowledge distillation (GKC Eq. 2–3, §3.2, Tab. 5–6; GKC ``mask2former/kd_clip.py``;
    :mod:`ovlab.gkc.distill`).

    Attributes:
        mode: ``none`` | ``vanilla`` | ``vision_guided`` | ``text_guided`` [none; paper: text_guided].
        form: ``paper`` (|distance − distance|, Euclidean) | ``code`` (squared error of cosines with
            s², vanilla term averaged in).
        teacher: ``global`` (attention-pool global token; code default ``attn_g``) | ``spatial``
            (attention-pool spatial tokens; paper best, released checkpoint ``attn_l``).
        spatial_pool: how ``spatial`` tokens become one vector: ``masked`` (paper: "mask-based
            pooling"; with ``teacher_input: crop`` over the mask cut and stretched with the crop) |
            ``mean`` (code: average over the whole 7×7 grid of the crop).
        teacher_input: ``in_model_mask`` (paper: the image masked by the GT mask) | ``crop`` (code:
            grey-filled bbox crop of the un-augmented image, stretched to 224).
        student: ``prior`` (queries before the projection, through a per-layer Linear; paper best) |
            ``post`` (after the projection).
        teacher_eval: teacher BatchNorm in eval mode (code: false, a quirk) [true, INFER].
        max_instances: instances kept per (per-GPU) batch, random subset [200].
        text_scale_init: initial s [1.0].
        learn_text_scale: s is learnt (code: true; the paper has no s) [false].
        separate_text_kd: report the vanilla and pairwise parts as ``loss_kd`` / ``loss_text_kd``
            (code: ``TEXT_KD_WEIGHT > 0``) [false].
    """

    mode: Literal["none", "vanilla", "vision_guided", "text_guided"] = "none"
    form: Literal["paper", "code"] = "paper"
    teacher: Literal["global", "spatial"] = "spatial"
    spatial_pool: Literal["masked", "mean"] = "masked"
    teacher_input: Literal["in_model_mask", "crop"] = "in_model_mask"
    student: Literal["prior", "post"] = "prior"
    teacher_eval: bool = True
    max_instances: int = Field(200, ge=1)
    text_scale_init: float = 1.0
    learn_text_scale: bool = False
    separate_text_kd: bool = False


class GroundingParams(Section):
    """GKC grounding loss on caption nouns (L_G of GKC Eq. 4, §3.3; GKC ``mask2former/modeling/utils/loss.py``;
    :mod:`ovlab.gkc.grounding`).

    Attributes:
        enabled: add ``loss_grounding`` [false; the paper's method: true].
        keep_prob: probability of keeping each caption noun [0.75].
        max_words: nouns per caption [5].
        max_regions: matched queries per image [25].
        validity: ``and`` (a sample needs words and regions) | ``or`` (the code's guard, a quirk).
    """

    enabled: bool = False
    keep_prob: float = Field(0.75, ge=0.0, le=1.0)
    max_words: int = Field(5, ge=1)
    max_regions: int = Field(25, ge=1)
    validity: Literal["and", "or"] = "and"


class LossWeightsParams(Section):
    """Weights λ of the GKC terms of Eq. 4 (:mod:`ovlab.config.presets`).

    ``preset`` gives every weight (paper: syn 2, grounding 2, kd 2, text_kd 2; code: 10, 10, 10, 10);
    a non-null field replaces the preset's value. The Mask2Former terms (mask, dice, plain CE) are
    weighted by the stage's ``loss`` section (:class:`ovlab.config.segmenter.LossParams`), so each
    weight has one home.
    """

    preset: Literal["paper", "code"] = "paper"
    syn: float | None = None
    grounding: float | None = None
    kd: float | None = None
    text_kd: float | None = None

    def resolve(self) -> dict[str, float]:
        """``{loss name: λ}`` of the GKC terms (``loss_syn``, ``loss_grounding``, ``loss_kd``, ``loss_text_kd``)."""
        from ovlab.config.presets import loss_weights

        fields = ("syn", "grounding", "kd", "text_kd")
        w = loss_weights(self.preset, **{f"loss_{f}": getattr(self, f) for f in fields if getattr(self, f) is not None})
        return {f"loss_{f}": w[f"loss_{f}"] for f in fields}


class GkcLossParams(Section):
    """All GKC-specific loss settings: ``tgkd.gkc`` (TD, KD, grounding and their weights).

    With ``td.strategy: none``, ``kd.mode: none`` and ``grounding.enabled: false`` the objective is
    the plain Mask2Former loss (the ``tgkd_baseline`` stage).
    """

    td: TextDiversificationParams = TextDiversificationParams()
    kd: DistillParams = DistillParams()
    grounding: GroundingParams = GroundingParams()
    weights: LossWeightsParams = LossWeightsParams()
