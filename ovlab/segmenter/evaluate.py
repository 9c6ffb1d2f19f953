"""Evaluate a segmenter on any benchmark of :mod:`ovlab.data.benchmarks` through :mod:`ovlab.metrics`.

Resolution protocol (``eval.resize``): ``short_side`` resizes the image so its short side is
``short_side`` (long side capped at ``max_size``), pads to a multiple of 32 with grey, predicts,
crops the padding and upsamples the scores bilinearly to the ground truth's size; ``none`` predicts
at the native size (padded). The vocabulary is the benchmark's whole class list (the ``generalized``
protocol: seen and unseen classes compete, as in SCAN
``GeneralizedSemSegEvaluator``); seen / unseen / harmonic use the catalog's
``novel`` flags.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ovlab.data.benchmarks import get_benchmark
from ovlab.data.files import read_image
from ovlab.metrics.confusion import ConfusionMatrix
from ovlab.metrics.scores import summarize
from ovlab.metrics.splits import generalized_split

from ovlab.segmenter.vocabulary import Vocabulary, build_vocabulary

PAD = 128 / 255


def prepare_image(image: np.ndarray, resize: str, short_side: int, max_size: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """(H, W, 3) uint8 → ((1, 3, H', W') float in [0, 1] padded to multiples of 32, (h, w) before padding)."""
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float()[None] / 255.0
    h, w = x.shape[-2:]
    if resize == "short_side":
        s = min(short_side / min(h, w), max_size / max(h, w))
        nh, nw = max(1, int(round(h * s))), max(1, int(round(w * s)))
        if (nh, nw) != (h, w):
            x = F.interpolate(x, size=(nh, nw), mode="bilinear", align_corners=False)
        h, w = nh, nw
    ph, pw = -h % 32, -w % 32
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), value=PAD)
    return x, (h, w)


@torch.no_grad()
def predict_labels(model, image: np.ndarray, vocab: Vocabulary, *, resize: str = "short_side", short_side: int = 512,
                   max_size: int = 2560, device: torch.device | str = "cpu") -> np.ndarray:
    """Semantic prediction of one image with any vocabulary.

    Args:
        model: :class:`ovlab.segmenter.model.Segmenter` in eval mode.
        image: (H, W, 3) uint8 RGB.
        vocab: the test vocabulary.

    Returns:
        (H, W) int64 class indices 0..K-1 of ``vocab``.
    """
    x, (h, w) = prepare_image(image, resize, short_side, max_size)
    if getattr(model, "official_padding", False):  # SCAN official protocol: zero padding after normalisation
        scores = model.segment(x.to(device), vocab.text.to(device), vocab.class_index, len(vocab),
                               image_sizes=[(h, w)])
    else:
        scores = model.segment(x.to(device), vocab.text.to(device), vocab.class_index, len(vocab))
    scores = scores[..., :h, :w]
    scores = F.interpolate(scores, size=image.shape[:2], mode="bilinear", align_corners=False)
    return scores[0].argmax(0).cpu().numpy()


@dataclass
class EvalReport:
    """Benchmark scores of a model.

    Attributes:
        dataset: canonical benchmark name; num_images: images scored.
        confusion: (K, K) int64, rows = GT.
        summary: mIoU / fwIoU / mACC / pACC (percent), seen / unseen / harmonic mIoU and the protocol.
        per_class: rows (index, name, novel, IoU percent).
    """

    dataset: str
    num_images: int
    confusion: np.ndarray
    summary: dict
    per_class: list[dict] = field(default_factory=list)


def evaluate_model(model, clip, params, *, device="cpu", root=None, cache_dir=None, progress: bool = True) -> EvalReport:
    """Score ``model`` on ``params.dataset`` (:class:`ovlab.config.train.EvalParams`).

    Args:
        root: resolved benchmark root (default ``params.root``).

    Raises:
        DatasetNotFoundError: the benchmark is not under the root (the message draws its layout).
        KeyError: unknown benchmark name (lists the known ones).
    """

    def make_predict(cats):
        vocab = build_vocabulary(clip, cats.names, templates=params.templates, cache_dir=cache_dir,
                                 name_encoding=getattr(model, "name_encoding", "split"))
        model.eval()
        return lambda image, gt: predict_labels(model, image, vocab, resize=params.resize, short_side=params.short_side,
                                                max_size=params.max_size, device=device)

    return evaluate_predictor(params, make_predict, root=root, progress=progress)


def evaluate_predictor(params, make_predict, *, root=None, progress: bool = True, desc: str = "eval") -> EvalReport:
    """Score any per-image predictor on ``params.dataset``: the loop and summary of :func:`evaluate_model`.

    Args:
        params: :class:`ovlab.config.train.EvalParams` (dataset, root, max_images are read here).
        make_predict: ``make_predict(categories: CategoryList) -> predict``, called once after the
            records are found; ``predict(image (H, W, 3) uint8 RGB, gt (H, W) int64) -> (H, W) int``
            class indices 0..K-1 (``gt`` is there for oracle predictors; others ignore it).
        root: resolved benchmark root (default ``params.root``).
        desc: progress-bar label.

    Raises:
        DatasetNotFoundError: the benchmark is not under the root (the message draws its layout).
        KeyError: unknown benchmark name (lists the known ones).
        FileNotFoundError: a record without its image.
    """
    bench = get_benchmark(params.dataset)
    cats = bench.categories()
    records = bench.records(root if root is not None else params.root)
    if params.max_images is not None:
        records = records[: params.max_images]
    predict = make_predict(cats)
    cm = ConfusionMatrix(len(cats), ignore_labels=[cats.ignore_label])
    for rec in tqdm(records, desc=f"{desc} {bench.name}", disable=not progress, leave=False):
        if rec.image is None:
            raise FileNotFoundError(f"{bench.name}: no image for {rec.gt}")
        gt = bench.load_gt(rec)
        pred = predict(read_image(rec.image, "RGB"), gt)
        cm.update(gt, pred, name=str(rec.gt))
    conf = cm.numpy()
    full = summarize(conf)
    summary = {k: v for k, v in full.items() if k not in ("IoU", "ACC")}
    novel = np.array([c.novel for c in cats])
    if novel.any():
        summary.update({f"{k}_mIoU" if k != "protocol" else k: v
                        for k, v in generalized_split(conf, novel).as_dict().items()})
    per = full["IoU"] * 100
    rows = [{"index": c.index, "name": c.name, "novel": bool(c.novel),
             "IoU": None if np.isnan(per[c.index]) else float(per[c.index])} for c in cats]
    return EvalReport(bench.name, len(records), conf, summary, rows)
