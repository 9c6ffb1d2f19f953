"""Proposed ``video`` sections: VIPSeg data, clips and the seen/unseen metrics (GKC §4.4; spec §6).

Not wired into :class:`ovlab.config.Params` yet (the lead adds a ``video`` field with
:class:`VideoParams` when the video stage exists). Defaults fit the embedded data
(``data/embedded/vipseg``: 4 train + 2 val videos of 8 frames at 128×160).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .schema import Section


class VipsegDataParams(Section):
    """Where VIPSeg is and which GKC split to train on (spec §6.2).

    Attributes:
        root: folder holding ``VIPSeg_720P/`` (or ``VIPSeg_720P`` itself); real data:
            ``$DETECTRON2_DATASETS/VIPSeg``.
        source: ``panomasks`` (raw uint16 values, decoded per frame) or ``panomasksRGB`` (+
            ``panoptic_gt_VIPSeg_<split>.json``; indexes the real data without decoding PNGs).
        categories: the 124-class catalog (name or JSON path); its ``novel`` flags give the
            held-out classes unless ``novel_ids`` is set.
        novel_ids: override of the novel VIPSeg category ids (``null`` = the catalog's, i.e.
            GKC's 12: 11, 32, 34, 57, 76, 78, 80, 94, 102, 112, 116, 122).
        train_split: ``train_base_ignore`` (kit default, spec §6.3 [AMBIG]) or ``train_base_delete``.
        ignore_label: label of void and dropped pixels in the semantic targets.
    """

    root: str = "data/embedded/vipseg"
    source: Literal["panomasks", "panomasksRGB"] = "panomasks"
    categories: str = "vipseg_124"
    novel_ids: list[int] | None = None
    train_split: Literal["train_base_ignore", "train_base_delete"] = "train_base_ignore"
    ignore_label: int = Field(255, ge=124)


class ClipParams(Section):
    """How clips are cut (spec §6.4 [AMBIG]: clip length and stride are not given by GKC).

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


class VideoMetricsParams(Section):
    """Seen / unseen / harmonic mIoU (spec §6.3).

    Attributes:
        protocol: ``split-vocab`` (S on ``val_base`` with 112 names, U on ``val_novel`` with 12;
            GKC code-like) or ``generalized`` (one 124-name run on ``val``).
        metrics: output JSON (written atomically, records the protocol).
    """

    protocol: Literal["split-vocab", "generalized"] = "split-vocab"
    metrics: str = "results/video/metrics.json"


class VideoParams(Section):
    """The proposed ``video`` section: data, clips, metrics."""

    data: VipsegDataParams = VipsegDataParams()
    clips: ClipParams = ClipParams()
    metrics: VideoMetricsParams = VideoMetricsParams()
