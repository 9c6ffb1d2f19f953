"""The ``physical`` training task: the physically guided segmenter (:mod:`ovlab.physical.model`) in the engine.

From the image task (:class:`ovlab.segmenter.task.ImageTask`) it keeps the COCO-panoptic-layout records,
the training vocabulary and the deterministic augmented crops; it adds each crop's semantic labels and
pseudo-ground-truth structure (:mod:`ovlab.physical.data`), the objective of Eq. 4
(:class:`ovlab.physical.criterion.PhysicalObjective`) and CAT-Seg's evaluation (whole image or sliding
window, :mod:`ovlab.physical.inference`).
"""

from __future__ import annotations

import torch

from ovlab.clip.loading import load_clip_from_params
from ovlab.segmenter.build import Built
from ovlab.segmenter.evaluate import evaluate_predictor
from ovlab.segmenter.task import ImageTask
from ovlab.segmenter.vocabulary import build_vocabulary


class PhysicalTask(ImageTask):
    """CAT-Seg + L^p + L^sac (physically guided paper §3–4)."""

    def build(self, stage) -> Built:
        """CLIP ViT (attention fine-tuned as ``model.clip_finetune``) + a fresh segmenter (torch seeded
        with ``base.seed``).

        Raises:
            WeightsNotFoundError: CLIP weights absent. TypeError: the CLIP is not a ViT.
        """
        from ovlab.physical.model import build_physical_segmenter

        clip = load_clip_from_params(stage.cfg.clip, stage)
        torch.manual_seed(stage.base.seed)
        return Built(stage, clip, build_physical_segmenter(stage.cfg, clip))

    def batches(self, stage, vocab, rank: int, world: int):
        """The image task's crops (panoptic records, or ``data.format: semantic`` label maps) with
        semantic labels and s_gt.

        Raises:
            DatasetNotFoundError: the data is absent (the message draws the layout).
            SuperPointNotFoundError: source ``superpoint`` and the checkpoint is absent.
        """
        from ovlab.physical.data import PhysicalBatches

        s = stage.cfg.structure
        superpoint = None
        if s.enabled and s.source == "superpoint":
            from ovlab.physical.superpoint import load_superpoint

            ckpt = None if s.superpoint_checkpoint is None else stage.path(s.superpoint_checkpoint)
            superpoint = load_superpoint(ckpt, threshold=s.superpoint_threshold, nms_radius=s.superpoint_nms,
                                         seed=stage.base.seed)
        d = stage.cfg.data
        if d.format == "semantic":
            from ovlab.data.categories import load_categories
            from ovlab.physical.data import read_semantic_records
            from ovlab.segmenter.data import IterationBatches
            from ovlab.segmenter.task import categories_ref

            records = read_semantic_records(stage.path(d.root), d.split, image_dir=d.image_dir, label_dir=d.label_dir,
                                            max_images=d.max_images)
            cfg = stage.cfg
            base = IterationBatches(records, vocab.label_lut(len(load_categories(categories_ref(stage)))),
                                    cfg.train.batch_size, stage.base.seed, cfg.augment, rank, world, cfg.train.iterations)
        else:
            base = super().batches(stage, vocab, rank, world)
        return PhysicalBatches(base, s, superpoint)

    def objective(self, stage, built: Built, vocab):
        from ovlab.physical.criterion import PhysicalObjective

        return PhysicalObjective(stage.cfg, vocab)

    def evaluate(self, stage, built: Built, device: torch.device, progress: bool, cache_dir=None):
        """Score on ``eval.dataset`` with the benchmark's whole class list (CAT-Seg protocol: whole image
        at ``eval.short_side`` or sliding windows)."""
        from ovlab.physical.inference import predict_physical

        ev = stage.cfg.eval
        model = built.model.eval()

        def make_predict(cats):
            vocab = build_vocabulary(built.clip, cats.names, templates=ev.templates, cache_dir=cache_dir)
            return lambda image, gt: predict_physical(model, image, vocab, ev, device)

        rep = evaluate_predictor(ev, make_predict, root=stage.path(ev.root) if ev.root else None, progress=progress)
        summary = {"dataset": rep.dataset, "num_images": rep.num_images, "resize": ev.resize,
                   "short_side": ev.short_side, "sliding_window": ev.sliding_window, **rep.summary}
        return summary, rep.per_class
