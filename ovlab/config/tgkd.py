"""``tgkd`` section: the GKC segmenter's training stage and its ablation grids (GKC §3–4, Tables 2, 4–8)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from ovlab.config.clip import ClipParams
from ovlab.config.gkc import GkcLossParams
from ovlab.config.grid import GridParams, GridSection
from ovlab.config.schema import Section
from ovlab.config.segmenter import LossParams, ModelParams
from ovlab.config.train import AugmentParams, EvalParams, LoopParams, OptimParams, ScheduleParams, TrainDataParams
from ovlab.config.two_stage import TwoStageParams


class CostParams(Section):
    """The inference-cost comparison of GKC Tab. 2 (``ovlab cost``, :mod:`ovlab.gkc.cost`).

    Attributes:
        config: ``embedded`` (the tiny models) | ``paper`` (100 queries, 9 layers, hidden 256):
            :data:`ovlab.config.bench.CONFIGS`.
        clip: the backbone's CLIP ResNet (``RN50``, ``RN101``, ``RN50x4``..., untrained: cost does not
            depend on weights); ``null`` = the profile's ``tgkd.clip.model``. GKC Tab. 2 is measured
            on ResNet-101: the paper profile sets ``RN101``.
        crop_clip: the CLIP that classifies the two-stage crops (any architecture with the same
            embedding width, e.g. Simbaseline's ``ViT-B-16``); ``null`` = ``clip``.
        size: input side in pixels.
        proposals: two-stage proposals (``null`` = the model's query count).
        repeats: timed forward passes per model (interleaved; Table 2's speed ratio is their median,
            printed with its spread: one repeat under load moved it from 12.4x to 3.5x).
        device: ``cpu`` | ``cuda``.
    """

    config: str = "embedded"
    clip: str | None = None
    crop_clip: str | None = None
    size: int = Field(512, ge=32)
    proposals: int | None = Field(None, ge=1)
    repeats: int = Field(5, ge=1)
    device: str = "cpu"


class TgkdParams(GridSection):
    """Training and evaluation of GKC's segment-then-classify model, and its ablation grids.

    Attributes:
        clip: the CLIP giving the text classifier (frozen) and, for ``backbone.kind: clip``, the
            initial backbone weights (GKC: RN50, openai).
        model, loss: :mod:`ovlab.config.segmenter` (``loss``: the Mask2Former terms and their weights).
        gkc: text diversification, distillation, grounding and their weights (:mod:`ovlab.config.gkc`);
            all off by default (the baseline); the grids switch them on.
        data, augment, optim, schedule, train, eval: :mod:`ovlab.config.train`.
        two_stage: the two-stage (Simbaseline-style) inference of GKC Tab. 8, a test-time setting
            (off unless a cell sets ``two_stage.enabled``).
        cost: GKC Tab. 2's cost comparison (``ovlab cost``).
        output: folder of the run's outputs (``model.pt``, ``metrics.json``, ``per_class.csv``,
            ``dvclive/``, ``params.yaml``).
        grids: GKC Tables 4–8 (:mod:`ovlab.config.grid`).

    The defaults are the embedded profile's values (``profiles/embedded.yaml``; ``tests/test_profile_roundtrip.py``
    checks it), so a key deleted from ``params.yaml`` takes the documented embedded value: 16 queries,
    lr 0.002 without clipping and backbone multiplier 1, one lr step at 160, 200 iterations of 4 images.
    """

    SECTION: ClassVar[str] = "tgkd"
    TEST_TIME_KEYS: ClassVar[tuple[str, ...]] = ("eval", "output", "grids", "two_stage", "cost")

    clip: ClipParams = ClipParams(model="ovlab-tiny-rn")
    model: ModelParams = ModelParams(num_queries=16)
    loss: LossParams = LossParams(num_points=1024)
    gkc: GkcLossParams = GkcLossParams()
    data: TrainDataParams = TrainDataParams()
    augment: AugmentParams = AugmentParams()
    optim: OptimParams = OptimParams(lr=2e-3, backbone_multiplier=1.0, clip_grad=None)
    schedule: ScheduleParams = ScheduleParams(steps=[160])
    train: LoopParams = LoopParams(iterations=200, batch_size=4)
    eval: EvalParams = EvalParams()
    two_stage: TwoStageParams = TwoStageParams()
    cost: CostParams = CostParams()
    output: str = "results/tgkd/baseline"
    grids: GridParams = GridParams(output="results/gkc")
