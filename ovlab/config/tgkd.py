"""``tgkd`` section: the GKC segmenter's training stage (notebook 02; GKC §3–4, spec §2)."""

from __future__ import annotations

from ovlab.config.clip import ClipParams
from ovlab.config.gkc import GkcLossParams
from ovlab.config.schema import Section
from ovlab.config.segmenter import LossParams, ModelParams
from ovlab.config.train import AugmentParams, EvalParams, LoopParams, OptimParams, ScheduleParams, TrainDataParams


class TgkdParams(Section):
    """Training and evaluation of the segment-then-classify model.

    Attributes:
        clip: the CLIP giving the text classifier (frozen) and, for ``backbone.kind: clip``, the
            initial backbone weights [RN50, openai].
        model, loss: :mod:`ovlab.config.segmenter` (``loss``: the Mask2Former terms and their weights).
        gkc: text diversification, distillation, grounding and their weights (:mod:`ovlab.config.gkc`);
            all off by default (the baseline); the GKC grids switch them on.
        data, augment, optim, schedule, train, eval: :mod:`ovlab.config.train`.
        output: folder of the run's outputs (``model.pt``, ``metrics.json``, ``per_class.csv``,
            ``dvclive/``).
    """

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
    output: str = "results/tgkd/baseline"
