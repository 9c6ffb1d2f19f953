"""Score a video model on VIPSeg: seen / unseen / harmonic mIoU under both vocabulary protocols
(GKC §4.4, Tab. 3).

For each protocol of ``eval.protocols`` and each of its parts (:data:`ovlab.metrics.video.EVAL_SPLITS`:
``split-vocab`` → seen on ``val_base`` with the 112 base names, unseen on ``val_novel`` with the 12
novel names; ``generalized`` → all 124 names on ``val``), every video of the split is cut into
evaluation clips (``clips.eval_*``; default one clip per video), each clip is segmented as one
space-time volume, and the per-frame semantic maps (argmax of Mask2Former's semantic inference per
frame, upsampled to the label size) are scored against the split's labels; padded / repeated frames
are not counted (:attr:`ovlab.data.vipseg_splits.ClipSample.valid`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ovlab.data.categories import CategoryList, load_categories
from ovlab.data.vipseg import read_vipseg
from ovlab.data.vipseg_splits import ClipSample, VipsegClips, VipsegSplit, build_split
from ovlab.metrics.video import EVAL_SPLITS, VideoSplitMetrics

from ovlab.segmenter.evaluate import prepare_image
from ovlab.segmenter.vocabulary import Vocabulary, build_vocabulary


@torch.no_grad()
def predict_clip(model, frames: np.ndarray, vocab: Vocabulary, *, resize: str = "short_side", short_side: int = 512,
                 max_size: int = 2560, device: torch.device | str = "cpu") -> np.ndarray:
    """Per-frame semantic prediction of one clip with any vocabulary.

    Args:
        model: :class:`ovlab.video.model.VideoSegmenter` in eval mode.
        frames: (T, H, W, 3) uint8 RGB.
        vocab: the test vocabulary (K classes).
        resize, short_side, max_size: the resolution protocol of :func:`ovlab.segmenter.evaluate.prepare_image`.

    Returns:
        (T, H, W) int64 class indices 0..K−1.
    """
    xs = [prepare_image(f, resize, short_side, max_size) for f in frames]
    h, w = xs[0][1]
    x = torch.cat([t for t, _ in xs])[None].to(device)
    scores = model.segment(x, vocab.text.to(device), vocab.class_index, len(vocab))[0]  # (T, K, H', W')
    scores = F.interpolate(scores[..., :h, :w], size=frames.shape[1:3], mode="bilinear", align_corners=False)
    return scores.argmax(1).cpu().numpy()


def eval_clips(split: VipsegSplit, clips_params, max_videos: int | None = None) -> VipsegClips:
    """The evaluation clips of a split (``clips.eval_*`` of :class:`ovlab.config.video.ClipSamplingParams`)."""
    if max_videos is not None:
        split = VipsegSplit(split.name, split.video_split, split.class_ids, split.videos[:max_videos],
                            split.categories, split.ignore_label)
    c = clips_params
    return VipsegClips.windows(split, c.eval_clip_length, c.eval_stride, c.eval_step, c.eval_tail)


@dataclass
class VideoEvalReport:
    """What :func:`evaluate_video` returns.

    Attributes:
        protocol: the headline protocol.
        results: protocol → :meth:`ovlab.metrics.video.VideoSplitMetrics.compute` dict.
    """

    protocol: str
    results: dict[str, dict]

    def summary(self) -> dict:
        """The headline numbers (``protocol``, ``seen_miou``, ``unseen_miou``, ``harmonic``, counts) and,
        under ``protocols``, every protocol's numbers (per-class lists left out)."""
        head = {k: v for k, v in self.results[self.protocol].items() if k != "per_class"}
        return {**head, "protocols": {p: {k: v for k, v in r.items() if k != "per_class"}
                                      for p, r in self.results.items()}}

    def per_class(self) -> list[dict]:
        """Rows ``protocol, index, name, split, iou`` of every protocol."""
        return [{"protocol": p, **row} for p, r in self.results.items() for row in r["per_class"]]


def evaluate_video(model, clip, cfg, root, *, categories=None, device="cpu", cache_dir=None,
                   progress: bool = True) -> VideoEvalReport:
    """Score ``model`` on the VIPSeg val splits of every protocol of ``cfg.eval.protocols``.

    Args:
        model: :class:`ovlab.video.model.VideoSegmenter`.
        clip: the CLIP whose text encoder gives the test vocabularies.
        cfg: a :class:`ovlab.config.video.VideoStageParams`.
        root: the resolved VIPSeg root.
        categories: the 124-class catalog (a :class:`ovlab.data.categories.CategoryList` or a name;
            default ``cfg.data.categories``).

    Raises:
        DatasetNotFoundError / CorruptFileError: see :func:`ovlab.data.vipseg.read_vipseg`.
    """
    d, ev = cfg.data, cfg.eval
    cats = categories if categories is not None else d.categories
    cats = cats if isinstance(cats, CategoryList) else load_categories(cats)
    videos = read_vipseg(root, "val", source=d.source, categories=cats, progress=False)
    model.eval()
    results = {}
    for protocol in ev.protocols:
        metrics = VideoSplitMetrics.for_vipseg(protocol, cats, d.novel_ids, ignore_label=d.ignore_label)
        for part, split_name in EVAL_SPLITS[protocol].items():
            split = build_split(split_name, videos, categories=cats, novel_ids=d.novel_ids, ignore_label=d.ignore_label)
            vocab = build_vocabulary(clip, split.class_names, list(split.class_ids), templates=ev.templates,
                                     cache_dir=cache_dir)
            clips = eval_clips(split, cfg.clips, ev.max_videos)
            for i in tqdm(range(len(clips)), desc=f"eval {protocol} {split_name}", disable=not progress, leave=False):
                sample: ClipSample = clips[i]
                pred = predict_clip(model, sample.images, vocab, resize=ev.resize, short_side=ev.short_side,
                                    max_size=ev.max_size, device=device)
                metrics.update(sample.semantic, pred, part=part, valid=sample.valid, name=sample.video)
        results[protocol] = metrics.compute()
    return VideoEvalReport(ev.protocol, results)
