"""The learning check: overfit a few real COCO panoptic images from scratch on CPU (issue: the model
must learn for real). A broken matcher, loss or mask head cannot reach the bar on real images.

Setting: the tiny CLIP RN trunk (untrained) and tiny decoder, no augmentation (flip off, scale 1),
images resized to fit ``crop_size``, all 133 COCO classes as the vocabulary, AdamW lr 2e-3.
Measured by the semantic mIoU / pixel accuracy on the same images, predicted over all 133 classes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from ovlab.config import StageParams
from ovlab.config.base import BaseParams
from ovlab.data.categories import load_categories
from ovlab.metrics.confusion import ConfusionMatrix
from ovlab.metrics.scores import summarize


@dataclass
class OverfitResult:
    """Training-set scores after ``iterations`` (percent) and the training time (s)."""

    iterations: int
    images: int
    mIoU: float
    pACC: float
    seconds: float


def overfit_section(root: Path, output: Path, *, iterations: int, max_images: int, crop_size: int) -> dict:
    """The ``tgkd`` section of the check (COCO panoptic sample layout of ``../shared/data``)."""
    return {
        "clip": {"model": "ovlab-tiny-rn", "pretrained": None},
        # Stated, not left to the section's defaults (which follow the embedded profile's 16 queries):
        # the check's bars were set with 20 queries, more than the samples' segments per image.
        "model": {"num_queries": 20},
        "data": {"root": str(root), "split": "val", "image_dir": "images", "panoptic_dir": "panoptic",
                 "panoptic_json": "panoptic_val2017_mini.json", "vocabulary": "all", "max_images": max_images},
        "augment": {"flip": False, "scale_min": 1.0, "scale_max": 1.0, "crop_size": crop_size},
        "optim": {"lr": 2e-3, "backbone_multiplier": 1.0, "weight_decay": 0.0, "clip_grad": None},
        "schedule": {"steps": [10 * iterations]},
        "train": {"iterations": iterations, "batch_size": max_images, "checkpoint_every": iterations,
                  "log_every": 10, "checkpoint_dir": str(output / "checkpoints")},
        "output": str(output / "run"),
    }


def overfit_coco_samples(root: str | Path, output: str | Path, *, iterations: int = 300, max_images: int = 2,
                         crop_size: int = 160, progress: bool = False) -> OverfitResult:
    """Train on the first ``max_images`` records under ``root`` and score the model on them.

    Raises:
        DatasetNotFoundError: no samples under ``root``.
    """
    from ovlab.config.tgkd import TgkdParams

    from ovlab.experiments.registry import from_checkpoint
    from ovlab.segmenter.evaluate import predict_labels
    from ovlab.segmenter.task import read_training_records
    from ovlab.experiments.registry import train_stage as train
    from ovlab.segmenter.vocabulary import build_vocabulary

    out = Path(output)
    cfg = TgkdParams.model_validate(overfit_section(Path(root), out, iterations=iterations, max_images=max_images,
                                                    crop_size=crop_size))
    stage = StageParams("overfit", BaseParams(), cfg, Path.cwd(), "<overfit>")
    t0 = time.perf_counter()
    train(stage, progress=progress, evaluate=False)
    seconds = time.perf_counter() - t0
    built = from_checkpoint(out / "run" / "model.pt")
    cats = load_categories("coco_panoptic_133")
    vocab = build_vocabulary(built.clip, cats.names)
    cm = ConfusionMatrix(len(cats))
    records = read_training_records(stage)
    for rec in records:
        # the short side the training resize produced (the image fitted into crop_size x crop_size)
        short = round(min(rec.height, rec.width) * min(crop_size / rec.height, crop_size / rec.width))
        cm.update(rec.semantic(), predict_labels(built.model, rec.image(), vocab, short_side=short))
    s = summarize(cm.numpy())
    return OverfitResult(iterations, len(records), float(s["mIoU"]), float(s["pACC"]), round(seconds, 1))
