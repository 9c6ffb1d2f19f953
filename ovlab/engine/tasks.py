"""What the training loop trains: a task object per params section (image segmenter, SCAN, video).

:func:`ovlab.engine.trainer.train` owns the loop (optimiser, schedule, AMP, checkpoints, exact
resume, DVCLive, DDP); a task supplies what differs between models:

- ``build(stage) -> Built``: CLIP + freshly initialised model (torch seeded);
- ``vocabulary(stage, clip) -> Vocabulary``: the training classes and their text embeddings;
- ``batches(stage, vocab, rank, world)``: a ``Dataset`` whose item ``it`` is this process's batch of
  iteration ``it`` (a pure function of (seed, it)), with ``.to(device)``;
- ``objective(stage, built, vocab)``: a callable ``(net, batch, text, generator) -> CriterionOutput``;
- ``evaluate(stage, built, device, progress, cache_dir) -> (summary dict, per-class rows or None)``.

:data:`TASKS` maps a params section name to its task class (``"module:Class"``, imported on use);
sections not listed use :class:`ImageTask`.
"""

from __future__ import annotations

import importlib

import torch

from ovlab.data.categories import load_categories
from ovlab.data.coco_panoptic import read_coco_panoptic

from .build import Built, build
from .data import IterationBatches
from .evaluator import evaluate_model
from .vocabulary import Vocabulary, training_vocabulary

#: Params section → task class. Add one line per new model family.
TASKS: dict[str, str] = {
    "tgkd": "ovlab.engine.tasks:ImageTask",
    "scan": "ovlab.engine.scan_task:ScanTask",
    "video": "ovlab.engine.video_task:VideoTask",
}


def categories_ref(stage):
    """``data.categories``: a catalog name as is, a JSON path resolved against the stage root."""
    c = stage.cfg.data.categories
    return stage.path(c) if c.endswith(".json") else c


def read_training_records(stage):
    """The training records of ``stage.cfg.data`` (COCO panoptic layout).

    Raises:
        DatasetNotFoundError: the data is absent (the message names the layout).
    """
    d = stage.cfg.data
    records = read_coco_panoptic(
        stage.path(d.root), d.split, categories_ref(stage),
        image_dir=d.image_dir, panoptic_dir=d.panoptic_dir, panoptic_json=d.panoptic_json,
        captions_json=d.captions_json)
    return records[: d.max_images] if d.max_images is not None else records


class ImageTask:
    """The GKC segment-then-classify segmenter on COCO-panoptic-layout data (GKC §3–4; spec §2)."""

    def build(self, stage) -> Built:
        return build(stage)

    def vocabulary(self, stage, clip) -> Vocabulary:
        cfg = stage.cfg
        cats = load_categories(categories_ref(stage))
        return training_vocabulary(clip, cats, cfg.data.vocabulary, templates=cfg.model.templates,
                                   cache_dir=stage.path(stage.base.paths.cache))

    def batches(self, stage, vocab: Vocabulary, rank: int, world: int):
        cfg = stage.cfg
        cats = load_categories(categories_ref(stage))
        return IterationBatches(read_training_records(stage), vocab.label_lut(len(cats)), cfg.train.batch_size,
                                stage.base.seed, cfg.augment, rank, world, cfg.train.iterations)

    def objective(self, stage, built: Built, vocab: Vocabulary):
        from .objective import build_objective

        return build_objective(stage, built, vocab)

    def evaluate(self, stage, built: Built, device: torch.device, progress: bool, cache_dir=None):
        cfg = stage.cfg
        rep = evaluate_model(built.model.eval(), built.clip, cfg.eval, device=device,
                             root=stage.path(cfg.eval.root) if cfg.eval.root else None, cache_dir=cache_dir,
                             progress=progress)
        summary = {"dataset": rep.dataset, "num_images": rep.num_images, "resize": cfg.eval.resize,
                   "short_side": cfg.eval.short_side, **rep.summary}
        return summary, rep.per_class


def task_for(section: str):
    """The task object of a params section (:data:`TASKS`, default :class:`ImageTask`).

    Raises:
        ImportError / AttributeError: the registered ``module:Class`` does not exist.
    """
    ref = TASKS.get(section, TASKS["tgkd"])
    module, name = ref.split(":")
    return getattr(importlib.import_module(module), name)()
