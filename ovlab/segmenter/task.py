"""What the training loop trains: a task object per params section (image segmenter, SCAN, video).

:func:`ovlab.engine.trainer.train` owns the loop (optimiser, schedule, AMP, checkpoints, exact
resume, DVCLive, DDP); a task supplies what differs between models:

- ``resolve(stage) -> stage``: the stage with every value filled in (called before training);
- ``build(stage) -> Built``: CLIP + freshly initialised model (torch seeded);
- ``vocabulary(stage, clip) -> Vocabulary``: the training classes and their text embeddings;
- ``batches(stage, vocab, rank, world)``: a ``Dataset`` whose item ``it`` is this process's batch of
  iteration ``it`` (a pure function of (seed, it)), with ``.to(device)``;
- ``objective(stage, built, vocab)``: a callable ``(net, batch, text, generator) -> CriterionOutput``;
- ``evaluate(stage, built, device, progress, cache_dir) -> (summary dict, per-class rows or None)``.

The methods subclass :class:`ImageTask` (:class:`ovlab.gkc.task.GkcTask`, :class:`ovlab.scan.task.ScanTask`,
:class:`ovlab.video.task.VideoTask`); :mod:`ovlab.experiments.registry` maps a params section to one.
"""

from __future__ import annotations

import torch

from ovlab.data.categories import load_categories
from ovlab.data.coco_panoptic import read_coco_panoptic

from ovlab.segmenter.build import Built, build
from ovlab.segmenter.data import IterationBatches
from ovlab.segmenter.evaluate import evaluate_model
from ovlab.segmenter.objective import MaskObjective
from ovlab.segmenter.vocabulary import Vocabulary, training_vocabulary

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
    """The segment-then-classify segmenter on COCO-panoptic-layout data with the Mask2Former losses
    (the baseline of GKC §3 and SCAN §3; Mask2Former ``mask2former/maskformer_model.py``)."""

    def resolve(self, stage):
        """The stage with every value the run needs filled in (here: ``stage`` itself). The video task
        takes its model and CLIP from the init checkpoint here."""
        return stage

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
        return MaskObjective(stage.cfg.loss, vocab)

    def preflight(self, stage) -> None:
        """Check before training what the final evaluation needs (the trainer calls it first): the
        ``eval.dataset`` name and its files under ``eval.root``, so a typo fails at iteration 0, not
        after the last one.

        Raises:
            KeyError: unknown benchmark name. DatasetNotFoundError: no ground truth under the root.
        """
        from ovlab.data.benchmarks import get_benchmark

        ev = getattr(stage.cfg, "eval", None)
        if getattr(ev, "dataset", None):
            get_benchmark(ev.dataset).locate(stage.path(ev.root) if ev.root else None)

    def evaluate(self, stage, built: Built, device: torch.device, progress: bool, cache_dir=None):
        cfg = stage.cfg
        rep = evaluate_model(built.model.eval(), built.clip, cfg.eval, device=device,
                             root=stage.path(cfg.eval.root) if cfg.eval.root else None, cache_dir=cache_dir,
                             progress=progress)
        summary = {"dataset": rep.dataset, "num_images": rep.num_images, "resize": cfg.eval.resize,
                   "short_side": cfg.eval.short_side, **rep.summary}
        return summary, rep.per_class
