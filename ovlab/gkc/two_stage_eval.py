"""Evaluate the two-stage baseline (GKC Tab. 8: Simbaseline with and without TD) on any benchmark.

Scored exactly as :func:`ovlab.segmenter.evaluate.evaluate_model` (same records, resolution protocol
``prepare_image``, confusion matrix, summary and :class:`EvalReport`, through
:func:`~ovlab.segmenter.evaluate.evaluate_predictor`); only the per-image prediction differs:

- ``proposals: model``: the segmenter's masks at the resized input (padding cropped) → masked crops
  of the resized image → CLIP (:class:`ovlab.gkc.two_stage.TwoStageSegmenter`) → scores
  upsampled bilinearly to the ground truth's size → argmax;
- ``proposals: oracle``: one mask per ground-truth class present, crops of the original image,
  scores at the ground truth's size (pixels outside every mask are ignore-labelled, so unscored).

"With / without TD" is a property of the segmenter passed in (trained with text diversification
or not). The segmenter's vocabulary uses ``eval.templates``; the CLIP classifier's uses
``two_stage.templates``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ovlab.gkc.two_stage import TwoStageSegmenter

from ovlab.segmenter.evaluate import EvalReport, evaluate_predictor, prepare_image
from ovlab.segmenter.vocabulary import Vocabulary, build_vocabulary


def oracle_masks(gt: np.ndarray, ignore_label: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One binary mask per class present in a label map: ((N, H, W) bool, (N,) int64 classes, ascending)."""
    g = torch.from_numpy(np.ascontiguousarray(gt)).long()
    classes = torch.unique(g)
    classes = classes[classes != ignore_label]
    return g[None] == classes[:, None, None], classes


@torch.no_grad()
def predict_two_stage(two: TwoStageSegmenter, image: np.ndarray, vocab: Vocabulary | None, clip_vocab: Vocabulary,
                      *, gt: np.ndarray | None = None, ignore_label: int = 255, resize: str = "short_side",
                      short_side: int = 512, max_size: int = 2560, device: torch.device | str = "cpu") -> np.ndarray:
    """Two-stage semantic prediction of one image.

    Args:
        two: the two-stage model (``two.params.proposals`` decides model or oracle proposals).
        image: (H, W, 3) uint8 RGB.
        vocab: the segmenter's vocabulary (unused with oracle proposals).
        clip_vocab: the same classes encoded by ``two.clip``.
        gt: (H, W) int64 ground truth (oracle proposals only); ignore_label: its ignore value.
        resize, short_side, max_size: the resolution protocol (:func:`prepare_image`).

    Returns:
        (H, W) int64 class indices 0..K-1.

    Raises:
        ValueError: oracle proposals without ``gt``; model proposals without ``vocab``.
    """
    if two.params.proposals == "oracle":
        if gt is None:
            raise ValueError("oracle proposals need the ground truth")
        masks, classes = oracle_masks(gt, ignore_label)
        if masks.shape[0] == 0:
            return np.zeros(gt.shape, dtype=np.int64)
        scores = two.segment_oracle(image, masks, clip_vocab, classes).scores
        return scores[0].argmax(0).numpy()
    if vocab is None:
        raise ValueError("model proposals need the segmenter's vocabulary")
    x, (h, w) = prepare_image(image, resize, short_side, max_size)
    scores = two.segment(x.to(device), vocab, clip_vocab, valid_size=(h, w)).scores
    scores = F.interpolate(scores, size=image.shape[:2], mode="bilinear", align_corners=False)
    return scores[0].argmax(0).cpu().numpy()


def evaluate_two_stage(model, clip, params, two_stage, *, crop_clip=None, device="cpu", root=None, cache_dir=None,
                       progress: bool = True) -> EvalReport:
    """Score the two-stage baseline on ``params.dataset`` like :func:`ovlab.segmenter.evaluate.evaluate_model`.

    Args:
        model: the trained :class:`~ovlab.segmenter.model.Segmenter` (with or without TD); may be
            ``None`` for oracle proposals.
        clip: the segmenter's CLIP (its text tower gives the segmenter's vocabulary).
        params: :class:`ovlab.config.train.EvalParams` (dataset, root, resolution, templates...).
        two_stage: :class:`ovlab.config.two_stage.TwoStageParams`.
        crop_clip: the CLIP classifying the crops (default ``clip``; see :func:`crop_clip_from_params`).
        device: where the segmenter runs (the crop CLIP stays on its own device).
        root: resolved benchmark root (default ``params.root``); cache_dir: text-bank cache.

    Returns:
        :class:`EvalReport` (same fields and summary keys as :func:`evaluate_model`).

    Raises:
        ValueError: model proposals without a model.
        DatasetNotFoundError, KeyError: see :func:`evaluate_model`.
    """
    oracle = two_stage.proposals == "oracle"
    if model is None and not oracle:
        raise ValueError("two_stage.proposals 'model' needs a trained segmenter")
    crop_clip = clip if crop_clip is None else crop_clip

    def make_predict(cats):
        clip_vocab = build_vocabulary(crop_clip, cats.names, templates=two_stage.templates, cache_dir=cache_dir)
        vocab = None
        if not oracle:
            vocab = build_vocabulary(clip, cats.names, templates=params.templates, cache_dir=cache_dir)
            model.eval()
        two = TwoStageSegmenter(None if oracle else model, crop_clip, two_stage)
        return lambda image, gt: predict_two_stage(two, image, vocab, clip_vocab, gt=gt, ignore_label=cats.ignore_label,
                                                   resize=params.resize, short_side=params.short_side,
                                                   max_size=params.max_size, device=device)

    return evaluate_predictor(params, make_predict, root=root, progress=progress, desc="two-stage")


def crop_clip_from_params(two_stage, stage, default):
    """The crop classifier's CLIP: ``two_stage.clip`` loaded for ``stage`` (paths, seed, device), else ``default``.

    Raises:
        WeightsNotFoundError, ValueError: see :func:`ovlab.clip.loading.load_clip_from_params`.
    """
    if two_stage.clip is None:
        return default
    from ovlab.clip.loading import load_clip_from_params

    return load_clip_from_params(two_stage.clip, stage)
