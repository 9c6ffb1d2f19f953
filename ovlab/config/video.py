"""``video`` section: the open-vocabulary video benchmark on VIPSeg (GKC §3.4, §4.4 Tab. 3).

The video model (:mod:`ovlab.video.model`) is fine-tuned from an image checkpoint (``train.init``)
on the seen classes of VIPSeg and scored on seen / unseen / harmonic mIoU
(:mod:`ovlab.metrics.video`). The three rows of GKC Table 3 are grid cells (``grids.table3``,
:mod:`ovlab.config.grid`), each trained and scored by ``ovlab grid video table3/<row>`` (DVC matrix
stage ``video_table3``). The model and CLIP are the init checkpoint's unless given. Defaults = the embedded profile (``data/embedded/vipseg``: 4 train + 2 val
videos of 8 frames at 128×160); paper values in brackets.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, ValidationError, model_validator

from ovlab.config.clip import ClipParams
from ovlab.config.gkc import GkcLossParams, GroundingParams, TextDiversificationParams
from ovlab.config.grid import GridParams, GridSection
from ovlab.config.schema import Section
from ovlab.config.segmenter import LossParams, ModelParams
from ovlab.config.train import AugmentParams, LoopParams, OptimParams, ScheduleParams


class VipsegDataParams(Section):
    """Where VIPSeg is and which GKC split to train on (GKC ``datasets/prepare_vspw_novel_json.py``).

    Attributes:
        root: folder holding ``VIPSeg_720P/`` (or ``VIPSeg_720P`` itself); real data:
            ``$DETECTRON2_DATASETS/VIPSeg``.
        source: ``panomasks`` (raw uint16 values, decoded per frame) or ``panomasksRGB`` (+
            ``panoptic_gt_VIPSeg_<split>.json``; indexes the real data without decoding PNGs).
        categories: the 124-class catalog (name or JSON path); its ``novel`` flags give the
            held-out classes unless ``novel_ids`` is set.
        novel_ids: override of the novel VIPSeg category ids (``null`` = the catalog's, i.e.
            GKC's 12: 11, 32, 34, 57, 76, 78, 80, 94, 102, 112, 116, 122).
        train_split: ``train_base_ignore`` (kit default: GKC's code does not say which split the paper used) or ``train_base_delete``.
        ignore_label: label of void and dropped pixels in the semantic targets.
    """

    root: str = "data/embedded/vipseg"
    source: Literal["panomasks", "panomasksRGB"] = "panomasks"
    categories: str = "vipseg_124"
    novel_ids: list[int] | None = None
    train_split: Literal["train_base_ignore", "train_base_delete"] = "train_base_ignore"
    ignore_label: int = Field(255, ge=124)


class ClipSamplingParams(Section):
    """How clips are cut (GKC gives neither clip length nor stride; the defaults follow Video Mask2Former's 2-frame clips).

    Attributes:
        train_clip_length: T of a training clip (Video Mask2Former ``SAMPLING_FRAME_NUM`` = 2).
        train_sampling_range: VMF ``SAMPLING_FRAME_RANGE``, frames around the reference frame
            from which the other T − 1 are drawn (with replacement, as VMF).
        eval_clip_length: T of an evaluation window; ``null`` = the whole video in one clip.
        eval_stride: frame step inside a window (1 = every annotated frame is evaluated).
        eval_step: window start step in subsampled frames (``null`` = T, non-overlapping).
        eval_tail: the last window of a video: ``pad`` (repeat the last frame, not counted),
            ``shift`` (end on the last frame, repeats not counted), ``short`` or ``drop``.
    """

    train_clip_length: int = Field(2, ge=1)
    train_sampling_range: int = Field(20, ge=0)
    eval_clip_length: int | None = Field(None, ge=1)
    eval_stride: int = Field(1, ge=1)
    eval_step: int | None = Field(None, ge=1)
    eval_tail: Literal["pad", "shift", "short", "drop"] = "pad"


class VideoEvalParams(Section):
    """How the video model is scored (GKC §4.4: per-frame semantic maps of every val clip).

    Attributes:
        protocol: the headline protocol of the metrics file: ``split-vocab`` (S on ``val_base``
            with the 112 base names, U on ``val_novel`` with the 12 novel names; GKC code-like) or
            ``generalized`` (one 124-name run on ``val``; SCAN's evaluator) (the paper does not say which; both are reported).
        protocols: every protocol computed and recorded (must contain ``protocol``).
        resize: ``short_side`` (frames resized so the short side is ``short_side``, long side ≤
            ``max_size``; scores upsampled back to the label size) or ``none`` (native size).
        short_side: [INFER 720: the native ``VIPSeg_720P`` short side; GKC does not say].
        max_size: long-side cap [1280].
        templates: prompts of the test names (``none`` | ``photo`` | ``vild``).
        max_videos: score the first N val videos only (``null`` = all).
    """

    protocol: Literal["split-vocab", "generalized"] = "split-vocab"
    protocols: list[Literal["split-vocab", "generalized"]] = Field(
        default_factory=lambda: ["split-vocab", "generalized"], min_length=1)
    resize: Literal["short_side", "none"] = "short_side"
    short_side: int = Field(128, ge=32)
    max_size: int = Field(2560, ge=32)
    templates: str = "none"
    max_videos: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _check(self):
        if self.protocol not in self.protocols:
            raise ValueError(f"protocol {self.protocol!r} must be one of protocols {self.protocols}")
        if len(set(self.protocols)) != len(self.protocols):
            raise ValueError(f"protocols repeat: {self.protocols}")
        return self


#: GKC Table 3: the baseline (mask, dice and CE only), + text-guided KD, + KD + TD.
TABLE3_ROWS: dict[str, dict[str, Any]] = {
    "baseline": {},
    "kd": {"gkc.kd.mode": "text_guided"},
    "kd_td": {"gkc.kd.mode": "text_guided", "gkc.td.strategy": "random"},
}


def apply_dotted(doc: dict, overrides: dict[str, Any], where: str = "") -> dict:
    """A copy of ``doc`` with ``{"a.b.c": value}`` overrides set; every path must already exist.

    Raises:
        KeyError: a path names no existing key (the message gives the full dotted path).
    """
    out = _copy(doc)
    for dotted, value in overrides.items():
        node, parts = out, dotted.split(".")
        for i, key in enumerate(parts):
            if not isinstance(node, dict) or key not in node:
                known = ", ".join(sorted(node)) if isinstance(node, dict) else "(not a mapping)"
                under = f" under {'.'.join(parts[:i])!r}" if i else ""
                raise KeyError(f"{where}{dotted}: unknown key (no {key!r}{under}; known there: {known})")
            if i == len(parts) - 1:
                node[key] = value
            else:
                node = node[key]
    return out


def _copy(x):
    return {k: _copy(v) for k, v in x.items()} if isinstance(x, dict) else x


class VideoStageParams(GridSection):
    """The ``video`` stage: fine-tune the video model on VIPSeg's seen classes and score it (GKC §4.4).

    Attributes:
        clip: the frozen CLIP (text classifier; KD teacher); ``null`` = the init checkpoint's
            (:meth:`ovlab.video.task.VideoTask.resolve`).
        model: the segmenter (:mod:`ovlab.config.segmenter`); ``null`` = the init checkpoint's; when
            given it must equal it.
        loss: Mask2Former terms; matching and point sampling run over the space-time tube.
        gkc: TD / KD (:mod:`ovlab.config.gkc`), applied per frame instance (our reading of GKC §4.4: the paper gives no video formulation). Video
            specifics: ``td.synonyms: wordnet`` builds each VIPSeg class's names from WordNet
            (each ``_or_`` part and the lemmas of its first noun sense, the ``synonyms`` stage's
            filters; :mod:`ovlab.vocab.auto_synonyms`) — or give a
            ``{canonical: [names]}`` JSON; ``td.scores`` is not read: the synonym score (GKC Eq. 1)
            of a clip instance is computed from the frozen CLIP's features of its frames.
            ``grounding.enabled`` must be false (VIPSeg has no captions).
        data: :class:`VipsegDataParams`; clips: :class:`ClipSamplingParams`.
        augment: one transform per clip (:class:`ovlab.config.train.AugmentParams`).
        optim, schedule, train: the fine-tune [batch 16, 3k iterations, lr 1e-4, step at 2k];
            ``train.init`` = the image ``model.pt`` to start from (GKC: the COCO model).
        eval: :class:`VideoEvalParams`.
        output: folder of ``ovlab train --section video``.
        grids: GKC Table 3 as the cells of ``grids.table3`` (dotted overrides of this section);
            row ``r`` writes ``<grids.output>/table3/<r>/`` (``model.pt``, ``metrics.json``,
            ``per_class.csv``, ``dvclive/``, ``params.yaml``).
    """

    SECTION: ClassVar[str] = "video"

    clip: ClipParams | None = None
    model: ModelParams | None = None
    loss: LossParams = LossParams(num_points=512)
    gkc: GkcLossParams = GkcLossParams(td=TextDiversificationParams(strategy="none", synonyms="wordnet"),
                                       grounding=GroundingParams(enabled=False))
    data: VipsegDataParams = VipsegDataParams()
    clips: ClipSamplingParams = ClipSamplingParams()
    augment: AugmentParams = AugmentParams(crop_size=96)
    optim: OptimParams = OptimParams(lr=2e-3, backbone_multiplier=1.0, clip_grad=None)
    schedule: ScheduleParams = ScheduleParams(steps=[25])
    train: LoopParams = LoopParams(iterations=30, batch_size=2, checkpoint_every=30,
                                   init="results/tgkd/baseline/model.pt")
    eval: VideoEvalParams = VideoEvalParams()
    output: str = "results/video/model"
    grids: GridParams = GridParams(output="results/video", tables={"table3": TABLE3_ROWS})

    @model_validator(mode="after")
    def _check(self):
        if self.gkc.grounding.enabled:
            raise ValueError("gkc.grounding.enabled must be false: VIPSeg has no captions")
        return self
