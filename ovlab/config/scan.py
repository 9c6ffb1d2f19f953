"""SCAN building-block parameters: SIM (spec §4.2), Contextual Shift (§4.3), score ensemble (§4.4).

Defaults fit the embedded profile (``ovlab-tiny-vit``: 64 px, patch 8, 8×8 grid, width 64, 3 blocks,
embed 64); the SCAN values are given in brackets as ``[ViT-L | ViT-B]`` or ``[paper / code]``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from .schema import Section


class SimParams(Section):
    """Semantic Integration Module (SCAN Eq. 1–3; ``ovlab.models.sim.SemanticIntegrationModule``).

    Attributes:
        layers: 1-based CLIP blocks whose spatial tokens are used [12, 18, 24 | 6, 9, 12]; tiny: all 3.
        sigmas: LFE σ per layer in frequency bins [9, 7, 3 on the 16×16 / 14×14 grid]; tiny: the
            paper's values halved for the 8×8 grid [INFER].
        lfe: ``code`` (Conv–ReLU–Conv), ``paper`` (Conv–ReLU, Eq. 1) or ``none`` (Tab. 4, no LFE).
        shared_lfe: one LFE for all layers [code: true].
        cross_attention_layers: stacked MHA layers [code 5 / paper 1].
        cross_attention_residual: E + MHA(E, M, M) [code: true]; false = Eq. 2 literally.
        heads: attention heads of cross-attention and encoder [8]; must divide the CLIP embed dim.
        encoder_layers: transformer-encoder layers [5] (0 = none).
        encoder_ff: encoder feed-forward width [2048]; tiny 256.
        encoder_dropout: [0.1].
        query_interaction: encoder over all queries together [paper] or per query, length 1 [code: false].
        use_spatial: use the spatial tokens (Tab. 4 "F_HW") [true].
        use_cls: add γ·F_CLS^final (Tab. 4 "F_CLS^final") [true].
        normalize_cls: L2-normalise F_CLS^final before γ [code: true; the paper does not say].
        gamma_init: initial γ [0.1].
        resize: ``F.interpolate`` mode bringing the image to the CLIP input size [nearest].
    """

    layers: list[Annotated[int, Field(ge=0)]] = Field(default_factory=lambda: [1, 2, 3], min_length=1)
    sigmas: list[Annotated[float, Field(gt=0)]] = Field(default_factory=lambda: [4.5, 3.5, 1.5], min_length=1)
    lfe: Literal["code", "paper", "none"] = "code"
    shared_lfe: bool = True
    cross_attention_layers: int = Field(5, ge=1)
    cross_attention_residual: bool = True
    heads: int = Field(8, ge=1)
    encoder_layers: int = Field(5, ge=0)
    encoder_ff: int = Field(256, ge=1)
    encoder_dropout: float = Field(0.1, ge=0.0, lt=1.0)
    query_interaction: bool = False
    use_spatial: bool = True
    use_cls: bool = True
    normalize_cls: bool = True
    gamma_init: float = 0.1
    resize: Literal["nearest", "bilinear", "bicubic"] = "nearest"

    @model_validator(mode="after")
    def _check(self):
        if len(self.sigmas) != len(self.layers):
            raise ValueError(f"sigmas needs one value per layer: {len(self.layers)} layers, {len(self.sigmas)} sigmas")
        if len(set(self.layers)) != len(self.layers):
            raise ValueError(f"layers must be distinct, got {self.layers}")
        return self


class ContextualShiftParams(Section):
    """Contextual Shift of the mask-classifying CLIP (SCAN Eq. 5; ``ovlab.clip.shifted_vit``).

    Attributes:
        enabled: apply CS at all (false = Tab. 7 "W/o Contextual Shift").
        layers: 1-based blocks after which background tokens are replaced [1, 3, 5, 7, 9 | 1, 3, 5];
            tiny (3 blocks): [1] (the shallow first ~40 % of the depth, as ViT-B's 5 of 12) [INFER].
        ratio: α, share of background patches replaced [paper 0.3 / code 0.15]; used when ``preset``
            is null or does not list the benchmark.
        preset: ``vit-l`` / ``vit-b``: take α per benchmark from SCAN's yaml comments
            (``ovlab.clip.contextual_shift.CS_RATIO_PRESETS``); null = ``ratio`` everywhere.
        source: substitute token: ``cls`` (SCAN), ``noise``, ``original``, ``learnable``, ``none`` (Tab. 6).
        seed: seed of the background-patch draws [SCAN: unseeded Python ``random``].
    """

    enabled: bool = True
    layers: list[Annotated[int, Field(ge=0)]] = Field(default_factory=lambda: [1])
    ratio: float = Field(0.15, ge=0.0, le=1.0)
    preset: Literal["vit-l", "vit-b"] | None = None
    source: Literal["cls", "noise", "original", "learnable", "none"] = "cls"
    seed: int = 0

    def ratio_for(self, dataset: str) -> float:
        """α for a benchmark (canonical name); 0 when disabled."""
        if not self.enabled or self.source == "none":
            return 0.0
        if self.preset is None:
            return self.ratio
        from ovlab.clip.contextual_shift import CS_RATIO_PRESETS

        return CS_RATIO_PRESETS[self.preset].get(dataset, self.ratio)


class EnsembleParams(Section):
    """Geometric score ensemble and semantic inference (spec §4.4; ``ovlab.models.ensemble``).

    Attributes:
        preset: ``vit-l`` / ``vit-b``: [MASK_THR, λ] and the renormalisation per benchmark from
            SCAN's yaml comments (``ENSEMBLE_PRESETS``); benchmarks not listed use the fields below.
            null = the fields below everywhere.
        clip_weight: λ, the CLIP exponent of p_in^(1−λ)·p_clip^λ [yaml default 0.7].
        mask_threshold: σ(mask) threshold of the CLIP crops [yaml default 0.4].
        renormalize: the A-847 / PC-459 renormalisation with void [false; true for those two].
    """

    preset: Literal["vit-l", "vit-b"] | None = None
    clip_weight: float = Field(0.7, ge=0.0, le=1.0)
    mask_threshold: float = Field(0.4, ge=0.0, le=1.0)
    renormalize: bool = False

    def setting(self, dataset: str):
        """The :class:`ovlab.models.ensemble.EnsembleSetting` for a benchmark (canonical name)."""
        from ovlab.models.ensemble import ENSEMBLE_PRESETS, EnsembleSetting

        own = EnsembleSetting(self.mask_threshold, self.clip_weight, self.renormalize)
        if self.preset is None:
            return own
        return ENSEMBLE_PRESETS[self.preset].get(dataset, own)


class ScanParams(Section):
    """The three SCAN blocks together (a suggested ``scan`` sub-section)."""

    sim: SimParams = SimParams()
    contextual_shift: ContextualShiftParams = ContextualShiftParams()
    ensemble: EnsembleParams = EnsembleParams()
