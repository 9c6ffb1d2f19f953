"""The ``physical`` section: the physically guided OVS paper (Liu et al., "Physically-guided Open Vocabulary
Segmentation with Weighted Patched Alignment Loss"): the CAT-Seg baseline (:class:`CatSegParams`), the
physical structure regulariser L^p (:class:`StructureParams`, §3.1), the weighted patch alignment loss
L^sac (:class:`SacParams`, §3.2), training, evaluation (:class:`PhysicalEvalParams`) and the Table 3 / 4
grids (:class:`PhysicalStageParams`).

Defaults fit the embedded profile (``ovlab-tiny-vit``: 64 px, patch 8, 8×8 grid, width 64, 3 blocks,
embed 64); the paper's / CAT-Seg's values are in brackets (CAT-Seg ``configs/vitl_336.yaml``; the
reference spec §7 for the choices the paper leaves open, marked [INFER] / [AMBIG]).
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field, model_validator

from ovlab.config.clip import ClipParams
from ovlab.config.grid import GridParams, GridSection
from ovlab.config.schema import Section
from ovlab.config.train import AugmentParams, EvalParams, LoopParams, OptimParams, ScheduleParams, TrainDataParams


class CatSegParams(Section):
    """CAT-Seg's cost-aggregation model (``ovlab.physical.model``, ``ovlab.physical.cost_aggregation``).

    Attributes:
        hidden_dim: cost-embedding width [128, ``HIDDEN_DIMS``]; tiny 16 (as the two guidance widths).
        appearance_guidance_dim: projected appearance guidance [128].
        text_guidance_dim: projected text guidance [128].
        decoder_dims: the two upsampling stages [64, 32]; tiny [8, 8] (guidance [8, 8] → [4, 4]).
        decoder_guidance_in: channels of the ×2 / ×4 transposed-conv upsampling of the guidance blocks [256, 128].
        decoder_guidance_dims: their projections [32, 16].
        guidance_layers: 1-based CLIP blocks of the decoder guidance [8, 16 for ViT-L: CAT-Seg's 0-based
            ``layer_indexes`` 7, 15]; tiny: [1, 2].
        num_layers: aggregation layers (spatial + class) [2].
        heads: attention heads [4]; tiny 2.
        window_size: spatial-aggregation window [12]; tiny 4.
        pooling_size: class-aggregation average pooling in training [2]; evaluation uses 1 (CAT-Seg ``eval.sh``).
        class_attention: ``linear`` [CAT-Seg] or ``full`` softmax attention across classes.
        clip_finetune: ``attention`` (Q and V projections, CAT-Seg's default), ``full`` or ``none``.
        templates: prompt template(s) of the class text embeddings: a set name of ``ovlab.clip.text``
            or a string with ``{}`` [CAT-Seg ViT-L ``PROMPT_ENSEMBLE_TYPE: single``: "A photo of a {} in the scene"].
    """

    hidden_dim: int = Field(16, ge=1)
    appearance_guidance_dim: int = Field(16, ge=1)
    text_guidance_dim: int = Field(16, ge=1)
    decoder_dims: list[Annotated[int, Field(ge=1)]] = Field(default_factory=lambda: [8, 8], min_length=2, max_length=2)
    decoder_guidance_in: list[Annotated[int, Field(ge=1)]] = Field(default_factory=lambda: [8, 8], min_length=2, max_length=2)
    decoder_guidance_dims: list[Annotated[int, Field(ge=1)]] = Field(default_factory=lambda: [4, 4], min_length=2, max_length=2)
    guidance_layers: list[Annotated[int, Field(ge=1)]] = Field(default_factory=lambda: [1, 2], min_length=2, max_length=2)
    num_layers: int = Field(2, ge=1)
    heads: int = Field(2, ge=1)
    window_size: int = Field(4, ge=1)
    pooling_size: int = Field(2, ge=1)
    class_attention: Literal["linear", "full"] = "linear"
    clip_finetune: Literal["attention", "full", "none"] = "attention"
    templates: str = "A photo of a {} in the scene"

    @model_validator(mode="after")
    def _check(self):
        if self.hidden_dim <= self.decoder_guidance_dims[0] or self.decoder_dims[0] <= self.decoder_guidance_dims[1]:
            raise ValueError("each decoder stage's input width (hidden_dim, decoder_dims[0]) must exceed its "
                             f"guidance width (decoder_guidance_dims {self.decoder_guidance_dims})")
        if self.hidden_dim % self.heads:
            raise ValueError(f"hidden_dim {self.hidden_dim} must be divisible by heads {self.heads}")
        return self


class StructureParams(Section):
    """L^p, the physical structure regulariser (paper §3.1, Eq. 1, Fig. 3, Tab. 4).

    Attributes:
        enabled: train with L^p (Tab. 3 "+L^p").
        weight: λ_p [1, AMBIG].
        source: pseudo ground truth s_gt: ``canny``, ``edge_gt``, ``sift`` or ``superpoint`` (Tab. 4); the
            paper does not say which one Tab. 3 uses [AMBIG; sift, the first column of Tab. 4].
        layers: CLIP blocks of the multi-level features, shallow to deep (0 = after ``ln_pre``)
            [6, 12, 18, 24 for ViT-L, INFER]; tiny [0, 1, 2, 3].
        dim: width after the 1×1 convolutions [256, paper].
        groups: GroupNorm groups of the Refine modules [32, INFER].
        focal_alpha, focal_gamma: focal loss α, γ [0.25, 2: Lin et al.; AMBIG].
        canny_low, canny_high: Canny hysteresis thresholds [100, 200, INFER].
        canny_blur: Gaussian pre-blur kernel (odd, 0 = none) [3, INFER].
        edge_dilation: EdgeGT dilation in pixels [1, INFER].
        keypoint_render: ``disc`` or ``gaussian`` rendering of SIFT / SuperPoint keypoints [disc, INFER].
        keypoint_radius: disc radius or Gaussian σ in pixels [2, INFER].
        sift_max_keypoints: OpenCV SIFT ``nfeatures`` (0 = all) [0].
        superpoint_checkpoint: Magic Leap's ``superpoint_v1.pth`` (relative to the params file); ``null``
            (written explicitly, embedded profile) = an untrained network.
        superpoint_threshold, superpoint_nms: detection threshold and NMS radius [0.015, 4].
    """

    enabled: bool = False
    weight: float = Field(1.0, ge=0.0)
    source: Literal["canny", "edge_gt", "sift", "superpoint"] = "sift"
    layers: list[Annotated[int, Field(ge=0)]] = Field(default_factory=lambda: [0, 1, 2, 3], min_length=2)
    dim: int = Field(32, ge=1)
    groups: int = Field(8, ge=1)
    focal_alpha: float = Field(0.25, ge=0.0, le=1.0)
    focal_gamma: float = Field(2.0, ge=0.0)
    canny_low: float = Field(100.0, ge=0.0)
    canny_high: float = Field(200.0, ge=0.0)
    canny_blur: int = Field(3, ge=0)
    edge_dilation: int = Field(1, ge=0)
    keypoint_render: Literal["disc", "gaussian"] = "disc"
    keypoint_radius: float = Field(2.0, gt=0.0)
    sift_max_keypoints: int = Field(0, ge=0)
    superpoint_checkpoint: str | None = "weights/superpoint/superpoint_v1.pth"
    superpoint_threshold: float = Field(0.015, ge=0.0)
    superpoint_nms: int = Field(4, ge=0)

    @model_validator(mode="after")
    def _check(self):
        if (2 * self.dim) % self.groups:
            raise ValueError(f"groups {self.groups} must divide 2·dim = {2 * self.dim}")
        if self.canny_blur and self.canny_blur % 2 == 0:
            raise ValueError(f"canny_blur must be odd or 0, got {self.canny_blur}")
        return self


class SacParams(Section):
    """L^sac, the weighted patch alignment loss (paper §3.2, Eq. 2–3).

    Attributes:
        enabled: train with L^sac (Tab. 3 "+L^sac", Tab. 4 column "L^sac").
        weight: λ_sac [1, AMBIG].
        form: ``soft_ce`` (−Σ_j w_ij log p_ij, default [INFER]) or ``mil`` (−log Σ_j w_ij p_ij): the two
            loss readings of the printed Eq. 3 (``ovlab.physical.sac``).
        layer: 1-based CLIP block whose patch tokens are aligned (``null`` = the last) [INFER].
        dim: width of o_img / o_txt [512, INFER].
        tau_init: initial τ [0.07, INFER]. tau_min: τ clamp [0.01, INFER].
        normalize: L2-normalise both projections [true, INFER; Eq. 2 has none, AMBIG].
        min_labelled: skip patches whose labelled share is below this [0: only unlabelled patches are skipped].
    """

    enabled: bool = False
    weight: float = Field(1.0, ge=0.0)
    form: Literal["soft_ce", "mil"] = "soft_ce"
    layer: int | None = Field(None, ge=1)
    dim: int = Field(32, ge=1)
    tau_init: float = Field(0.07, gt=0.0)
    tau_min: float = Field(0.01, gt=0.0)
    normalize: bool = True
    min_labelled: float = Field(0.0, ge=0.0, le=1.0)


class SegLossParams(Section):
    """The baseline's segmentation loss (CAT-Seg).

    Attributes:
        kind: ``bce`` (per-pixel sigmoid BCE on one-hot targets, CAT-Seg) or ``ce``.
        weight: λ_seg [1].
    """

    kind: Literal["bce", "ce"] = "bce"
    weight: float = Field(1.0, ge=0.0)


class PhysicalDataParams(TrainDataParams):
    """Training data: the image task's COCO panoptic layout, or a semantic-label layout (CAT-Seg trains on
    COCO-Stuff-171's ``stuffthingmaps_detectron2``; ``ovlab.physical.data.read_semantic_records``).

    Attributes:
        format: ``panoptic`` (``root``, ``split``, ``image_dir``, ``panoptic_dir``, ``panoptic_json``) or
            ``semantic`` (``root``, ``split``, ``image_dir``, ``label_dir``; set ``categories:
            coco_stuff_171``) [semantic, COCO-Stuff-171].
        label_dir: the label folder of ``semantic`` (default ``stuffthingmaps_detectron2/{split}2017``).
        (others: :class:`ovlab.config.train.TrainDataParams`.)
    """

    format: Literal["panoptic", "semantic"] = "panoptic"
    label_dir: str | None = None


class PhysicalEvalParams(EvalParams):
    """Evaluation (``ovlab.physical.inference``): the image task's protocol, or CAT-Seg's sliding window.

    Attributes:
        sliding_window: CAT-Seg's sliding-window inference [true, CAT-Seg ``eval.sh``].
        window: window side in pixels [384]; tiny 64.
        overlap: window overlap [0.333].
        window_resolution: the square the image is resized to before the windows [640]; tiny 96.
        (others: :class:`ovlab.config.train.EvalParams`; the paper's short side is 640.)
    """

    sliding_window: bool = False
    window: int = Field(64, ge=8)
    overlap: float = Field(0.333, ge=0.0, lt=1.0)
    window_resolution: int = Field(96, ge=8)

    @model_validator(mode="after")
    def _check_window(self):
        if self.window_resolution < self.window:
            raise ValueError(f"window_resolution {self.window_resolution} must be ≥ window {self.window}")
        return self


class PhysicalStageParams(GridSection):
    """``physical`` section: the physically guided segmenter (notebook 06; Tables 1, 3, 4).

    Attributes:
        clip: the CLIP ViT [ViT-L-14-336, openai]; fine-tuned per ``model.clip_finetune``.
        model: :class:`CatSegParams`.
        structure: :class:`StructureParams` (L^p).
        sac: :class:`SacParams` (L^sac).
        loss: :class:`SegLossParams` (the baseline's loss).
        data: :class:`PhysicalDataParams` (``vocabulary: all``: the paper trains on every class)
            [COCO-Stuff-171, ``format: semantic``; embedded: the COCO-133 panoptic layout].
        augment: crop [384 after resizing the short side to 384, CAT-Seg]; a multiple of the CLIP grid.
        optim: AdamW [lr 2e-4, CLIP lr 2e-6 = ``backbone_multiplier`` 0.01, weight decay 1e-4, clip 0.01].
        schedule: [cosine, no warm-up: CAT-Seg ``WarmupCosineLR``].
        train: [80k iterations, batch 4].
        eval: :class:`PhysicalEvalParams` [short side 640, sliding window].
        output: folder of ``ovlab train --section physical``.
        grids: Tables 3 and 4.
    """

    SECTION: ClassVar[str] = "physical"
    TEST_TIME_KEYS: ClassVar[tuple[str, ...]] = ("eval", "output", "grids")

    clip: ClipParams = ClipParams(model="ovlab-tiny-vit")
    model: CatSegParams = CatSegParams()
    structure: StructureParams = StructureParams()
    sac: SacParams = SacParams()
    loss: SegLossParams = SegLossParams()
    data: PhysicalDataParams = PhysicalDataParams(vocabulary="all")
    augment: AugmentParams = AugmentParams(crop_size=64)
    optim: OptimParams = OptimParams(lr=2e-3, weight_decay=1e-4, backbone_multiplier=0.01, clip_grad=None)
    schedule: ScheduleParams = ScheduleParams(kind="poly", steps=[])
    train: LoopParams = LoopParams(iterations=16, batch_size=2, checkpoint_every=16, log_every=4, amp=False)
    eval: PhysicalEvalParams = PhysicalEvalParams(short_side=64, templates="A photo of a {} in the scene")
    output: str = "results/physical/model"
    grids: GridParams = GridParams(output="results/physical")
