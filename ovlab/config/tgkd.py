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
        config: ``embedded`` (the tiny models) | ``paper`` (RN50 CLIP, 100 queries, 9 layers):
            :data:`ovlab.config.bench.CONFIGS`.
        size: input side in pixels.
        proposals: two-stage proposals (``null`` = the model's query count).
        repeats: timed forward passes per model.
        device: ``cpu`` | ``cuda``.
    """

    config: str = "embedded"
    size: int = Field(512, ge=32)
    proposals: int | None = Field(None, ge=1)
    repeats: int = Field(3, ge=1)
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
    """

    SECTION: ClassVar[str] = "tgkd"
    TEST_TIME_KEYS: ClassVar[tuple[str, ...]] = ("eval", "output", "grids", "two_stage", "cost")

    clip: ClipParams = ClipParams(model="ovlab-tiny-rn")
    model: ModelParams = ModelParams()
    loss: LossParams = LossParams(num_points=1024)
    gkc: GkcLossParams = GkcLossParams()
    data: TrainDataParams = TrainDataParams()
    augment: AugmentParams = AugmentParams()
    optim: OptimParams = OptimParams()
    schedule: ScheduleParams = ScheduleParams()
    train: LoopParams = LoopParams()
    eval: EvalParams = EvalParams()
    two_stage: TwoStageParams = TwoStageParams()
    cost: CostParams = CostParams()
    output: str = "results/tgkd/baseline"
    grids: GridParams = GridParams(output="results/gkc")
