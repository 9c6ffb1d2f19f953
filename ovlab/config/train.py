"""Training-engine parameters: data, augmentation, optimiser, schedule, loop, evaluation (GKC §4.2,
SCAN §4.2; GKC ``Base-COCO-PanopticSegmentation.yaml``, SCAN ``configs/scan_vitL.yaml``). Defaults = the
embedded profile; the paper's values are in brackets."""

from __future__ import annotations

from typing import Literal

from pydantic import PositiveInt, model_validator

from ovlab.config.schema import Section


class TrainDataParams(Section):
    """Training images (COCO panoptic layout; GKC §4.1).

    Attributes:
        root: dataset folder (``data/embedded/coco``; real: ``$DETECTRON2_DATASETS/coco``).
        split: ``train`` / ``val``.
        image_dir, panoptic_dir, panoptic_json, captions_json: overrides of the standard layout.
        categories: category catalog or JSON.
        vocabulary: ``seen`` trains on the seen classes only (novel segments dropped, GKC's
            open-vocabulary split) or ``all`` (every class, e.g. GKC's COCO training for cross-dataset).
        max_images: use only the first N images (``null`` = all).
    """

    root: str = "data/embedded/coco"
    split: str = "train"
    image_dir: str | None = None
    panoptic_dir: str | None = None
    panoptic_json: str | None = None
    captions_json: str | None = None
    categories: str = "coco_panoptic_133"
    vocabulary: Literal["seen", "all"] = "seen"
    max_images: int | None = None


class AugmentParams(Section):
    """GKC's mapper (GKC §4.2; GKC ``detr_panoptic_caption_syn_kd_dataset_mapper.py``): flip, ``ResizeScale``
    then ``FixedSizeCrop``.

    Attributes:
        flip: horizontal flip with p = 0.5 [true].
        scale_min, scale_max: ResizeScale range [0.8, 1.2].
        crop_size: FixedSizeCrop / ResizeScale target, pixels [512]; a multiple of 32.
        pad_value: image padding on the 0–255 scale [128]; label padding is ignore.
    """

    flip: bool = True
    scale_min: float = 0.8
    scale_max: float = 1.2
    crop_size: PositiveInt = 128
    pad_value: float = 128.0

    @model_validator(mode="after")
    def _check(self):
        if self.crop_size % 32:
            raise ValueError(f"crop_size must be a multiple of 32, got {self.crop_size}")
        if not 0 < self.scale_min <= self.scale_max:
            raise ValueError(f"need 0 < scale_min ≤ scale_max, got {self.scale_min}, {self.scale_max}")
        return self


class OptimParams(Section):
    """AdamW (GKC §4.2, SCAN §4.2; GKC ``Base-COCO-PanopticSegmentation.yaml``, SCAN ``configs/scan_vitL.yaml``).

    Attributes:
        lr: base learning rate [3e-4].
        weight_decay: [0.05]; which parameters get 0 is ``no_decay``.
        no_decay: the parameters without weight decay (:func:`ovlab.engine.optim.decays`): ``code``
            = norm layers, ``nn.Embedding`` tables and Swin's positional tables only, so τ, the void
            embedding, the KD text scale s and the pixel decoder's level embedding decay (GKC / SCAN
            ``train_net.py``; the papers say "as Mask2Former", whose rule this is); ``extended`` = those
            four get 0 as well (ovlab's earlier rule) [code].
        backbone_multiplier: lr factor of the backbone [0.1].
        clip_grad: full-model gradient L2-norm clip [0.01]; ``null`` = off.
        betas: AdamW betas [0.9, 0.999].
    """

    lr: float = 1e-3
    weight_decay: float = 0.05
    no_decay: Literal["code", "extended"] = "code"
    backbone_multiplier: float = 0.1
    clip_grad: float | None = 1.0
    betas: list[float] = [0.9, 0.999]


class ScheduleParams(Section):
    """Learning-rate schedule (detectron2 ``WarmupMultiStepLR`` / ``WarmupPolyLR``).

    Attributes:
        kind: ``step`` (GKC: ×γ at each of ``steps``) or ``poly`` ((1 − it/iters)^power; SCAN),
            or ``cosine`` ((1 + cos(π·it/iters))/2; CAT-Seg ``WarmupCosineLR``, the physically guided paper).
        steps: iterations of the steps [40000, 45000].
        gamma: step factor [0.1].
        power: poly power [0.9].
        warmup_iters: linear warm-up length [0 for GKC; 1500 for SCAN].
        warmup_factor: lr factor at iteration 0 of the warm-up.
    """

    kind: Literal["step", "poly", "cosine"] = "step"
    steps: list[int] = [240, 280]
    gamma: float = 0.1
    power: float = 0.9
    warmup_iters: int = 0
    warmup_factor: float = 1.0


class LoopParams(Section):
    """The training loop.

    Attributes:
        iterations: total iterations [50000].
        batch_size: images per iteration over all processes [112].
        checkpoint_every: write the checkpoint every N iterations (and at the end).
        log_every: log losses to DVCLive every N iterations.
        amp: mixed precision on GPU (ignored on CPU; matcher and losses stay fp32) [true].
        gpus: processes per node; > 1 re-launches itself under ``torchrun`` (DDP) [8].
        num_workers: data-loader workers (0 = in the main process).
        checkpoint_dir: where runs keep checkpoints, one sub-folder per config fingerprint
            (not a DVC output, so a killed run resumes).
        init: a ``model.pt`` whose weights initialise the model before training (keys of the same
            name and shape; e.g. the video model from the image model, GKC §4.4) [null].
    """

    iterations: int = 300
    batch_size: int = 8
    checkpoint_every: int = 50
    log_every: int = 5
    amp: bool = True
    gpus: int = 1
    num_workers: int = 0
    checkpoint_dir: str = "checkpoints"
    init: str | None = None

    @model_validator(mode="after")
    def _check(self):
        for name in ("iterations", "batch_size", "checkpoint_every", "log_every", "gpus"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be ≥ 1, got {getattr(self, name)}")
        if self.batch_size % self.gpus:
            raise ValueError(f"batch_size {self.batch_size} is not divisible by gpus {self.gpus}")
        return self


class EvalParams(Section):
    """Evaluation of a trained model (any benchmark of :mod:`ovlab.data.benchmarks`).

    Attributes:
        dataset: benchmark name or alias (``coco_133``, ``ade20k_150``, ``pascal_context_59``...).
        root: where the benchmark is found (``$DETECTRON2_DATASETS`` layout; ``null`` = that variable).
        resize: resolution protocol: ``short_side`` (resize the short side to ``short_side``, cap
            the long side at ``max_size``, predict, upsample to the GT size) or ``none`` (native size).
        short_side: [512 for GKC/SCAN tests at 512; 640 for SCAN].
        max_size: [2560].
        templates: prompt templates of the test vocabulary (``none`` | ``photo`` | ``vild``).
        max_images: evaluate the first N images only (``null`` = all).
        protocol: seen/unseen protocol of the metrics file (``generalized``: one vocabulary with all classes).
    """

    dataset: str = "coco_133"
    root: str | None = "data/embedded"
    resize: Literal["short_side", "none"] = "short_side"
    short_side: PositiveInt = 128
    max_size: PositiveInt = 2560
    templates: str = "none"
    max_images: PositiveInt | None = None
    protocol: Literal["generalized"] = "generalized"
