"""Segmenter model and loss parameters (GKC §3, Fig. 2, Eq. 4). Defaults = the embedded profile."""

from __future__ import annotations

from typing import Literal

from pydantic import PositiveInt, model_validator

from ovlab.config.schema import Section

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


class BackboneParams(Section):
    """Backbone of the segmenter.

    Attributes:
        kind: ``clip``: the CLIP ModifiedResNet of the stage's ``clip`` (RN50/RN101; GKC default);
            ``imagenet``: a torchvision ResNet (GKC Tab. 7b); ``tiny``: a small random CNN
            (``ovlab.segmenter.backbone.SmallConvTrunk``, widths 16–128; embedded profile of SCAN,
            whose CLIP is a ViT).
        depth: 50 or 101 (``imagenet`` only; for ``clip`` the CLIP model name decides).
        weights: ImageNet state-dict file (``imagenet`` and ``swin``; ``null`` = random init).
        swin: ``swin-t`` / ``swin-s`` / ``swin-b`` (``kind: swin``; timm's Swin with res2–res5 as
            Mask2Former, ``ovlab.segmenter.swin``; SCAN: Swin-B ImageNet-22k window 12 384).
        window_padding: ``mask2former`` (pad to the window, then shift: what Mask2Former/SCAN
            checkpoints were trained with) or ``timm`` (shift, then pad) (``kind: swin``).
        drop_path_rate: Swin stochastic depth [0.3, Mask2Former/SCAN].
    """

    kind: Literal["clip", "imagenet", "tiny", "swin"] = "clip"
    depth: Literal[50, 101] = 50
    weights: str | None = None
    swin: Literal["swin-t", "swin-s", "swin-b"] = "swin-b"
    window_padding: Literal["mask2former", "timm"] = "mask2former"
    drop_path_rate: float = 0.3


class ModelParams(Section):
    """Mask2Former-style segment-then-classify model (GKC §3, Fig. 2; paper values in brackets).

    Adapted from GKC ``mask2former/maskformer_model_voca_dense_kd_syn.py`` and ``mask2former/clip_models.py``.

    Attributes:
        backbone: see :class:`BackboneParams`.
        hidden_dim: decoder / pixel-decoder width [256]; a multiple of 32.
        mask_dim: mask feature width [256].
        num_queries: [100].
        decoder_layers: masked-attention layers [9] (+ the prediction from the learnable queries).
        encoder_layers: deformable-attention encoder layers of the pixel decoder [6].
        heads: attention heads [8].
        ffn_dim: decoder FFN width [2048].
        encoder_ffn_dim: pixel-decoder FFN width [1024].
        logit_scale_init: initial τ [1/0.07].
        learn_logit_scale: τ learnable [true].
        templates: prompts for the class names: ``none`` (GKC code), ``photo`` or ``vild`` (14 ViLD).
        head: proposal-embedding head: ``gkc`` (shared Linear + per-layer ReLU·Linear, GKC) or
            ``scan`` (one shared MLP hidden → ``embed_hidden_dim`` → D for every layer, SCAN;
            ``ovlab.scan.head``; SCAN sections only).
        embed_hidden_dim: hidden width of SCAN's MLP [1024]. embed_layers: its layers [2].
        pixel_mean, pixel_std: input normalisation of images in [0, 1] [ImageNet's, as GKC's code].
    """

    backbone: BackboneParams = BackboneParams()
    hidden_dim: int = 64
    mask_dim: int = 64
    num_queries: PositiveInt = 20
    decoder_layers: PositiveInt = 3
    encoder_layers: int = 1
    heads: PositiveInt = 4
    ffn_dim: int = 256
    encoder_ffn_dim: int = 256
    logit_scale_init: float = 1 / 0.07
    learn_logit_scale: bool = True
    templates: str = "none"
    head: Literal["gkc", "scan"] = "gkc"
    embed_hidden_dim: int = 1024
    embed_layers: int = 2
    pixel_mean: list[float] = IMAGENET_MEAN
    pixel_std: list[float] = IMAGENET_STD

    @model_validator(mode="after")
    def _check(self):
        for name in ("hidden_dim", "mask_dim"):
            if getattr(self, name) % 32:
                raise ValueError(f"{name} must be a multiple of 32 (GroupNorm(32)), got {getattr(self, name)}")
        if self.hidden_dim % self.heads:
            raise ValueError(f"hidden_dim {self.hidden_dim} is not divisible by heads {self.heads}")
        if len(self.pixel_mean) != 3 or len(self.pixel_std) != 3:
            raise ValueError("pixel_mean and pixel_std need 3 values (RGB)")
        return self


class LossParams(Section):
    """Matcher and mask/class losses (Mask2Former; L_M and L_CE of GKC Eq. 4; GKC ``modeling/matcher.py``).
    Paper values by default.

    ``preset`` names a table of :data:`ovlab.config.presets.LOSS_PRESETS` whose values fill every
    field not written explicitly: ``paper`` (GKC Eq. 4, §4.2) or ``code`` (GKC's official code: the
    same weights plus ``region_dropout`` 0.5); ``custom`` uses the fields as written. The code's
    synonym/grounding/KD weights belong to the GKC losses (``gkc.weights``).

    Attributes:
        preset: ``paper`` | ``code`` | ``custom`` (recorded in the metrics).
        mask_weight: λ of the point-sampled sigmoid BCE [5].
        dice_weight: λ of the dice loss [5].
        class_weight: λ_c of the CE [2].
        void_weight: CE weight of the void class [0.1].
        matcher_class, matcher_mask, matcher_dice: matching costs [2, 5, 5].
        num_points: sampled points per mask [12544].
        oversample_ratio: importance-sampling oversampling [3].
        importance_ratio: share of points taken by uncertainty [0.75].
        region_dropout: probability of setting a matched query's CE target to ignore (GKC code 0.5,
            not in the paper) [0].
        deep_supervision: losses on every decoder prediction [true].
    """

    preset: Literal["paper", "code", "custom"] = "paper"
    mask_weight: float = 5.0
    dice_weight: float = 5.0
    class_weight: float = 2.0
    void_weight: float = 0.1
    matcher_class: float = 2.0
    matcher_mask: float = 5.0
    matcher_dice: float = 5.0
    num_points: int = 12544
    oversample_ratio: float = 3.0
    importance_ratio: float = 0.75
    region_dropout: float = 0.0
    deep_supervision: bool = True

    @model_validator(mode="after")
    def _check(self):
        from ovlab.config.presets import LOSS_PRESETS

        for k, v in LOSS_PRESETS.get(self.preset, {}).items():  # the preset fills what is not written
            if k not in self.model_fields_set:
                object.__setattr__(self, k, v)  # still "unset": a merge over this default keeps the preset's
        if not 0.0 <= self.importance_ratio <= 1.0:
            raise ValueError(f"importance_ratio must be in [0, 1], got {self.importance_ratio}")
        if not 0.0 <= self.region_dropout < 1.0:
            raise ValueError(f"region_dropout must be in [0, 1), got {self.region_dropout}")
        if self.num_points < 1 or self.oversample_ratio < 1:
            raise ValueError("num_points must be ≥ 1 and oversample_ratio ≥ 1")
        return self
