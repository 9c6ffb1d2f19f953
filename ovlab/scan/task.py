"""The ``scan`` training task: the SCAN segmenter (:mod:`ovlab.scan.model`) in the engine.

Everything but the model is the image task's (:class:`ovlab.segmenter.task.ImageTask`): COCO-panoptic
batches, the Mask2Former set criterion on the SIM-calibrated predictions (CS is not used in
segmentation training, spec §4.3), the benchmark evaluation through ``model.segment`` (here with
SIM, the CS-CLIP and the ensemble of ``scan.scan``; the per-benchmark presets follow
``eval.dataset``).
"""

from __future__ import annotations

import torch

from ovlab.clip.loading import load_clip_from_params

from ovlab.segmenter.build import Built, clip_embed_dim
from ovlab.segmenter.task import ImageTask


def load_mask_clip(stage, clip):
    """The mask-classifying ViT of ``scan.mask_clip`` (a checkpoint of ``clip.model``), or ``None``.

    Raises:
        WeightsNotFoundError: the checkpoint is not on disk.
    """
    path = stage.cfg.scan.mask_clip
    if path is None:
        return None
    cfg = stage.cfg.clip.model_copy(update={"pretrained": path})
    return load_clip_from_params(cfg, stage).model.visual


def scan_summary(cfg, model) -> dict:
    """The test-time settings a SCAN evaluation used (for ``metrics.json``)."""
    cs = cfg.scan.contextual_shift
    return {"inference": cfg.scan.inference, "sim": cfg.scan.sim.enabled,
            "cs_source": model.mask_clip.source, "cs_layers": list(model.mask_clip.layers),
            "cs_ratio": model.mask_clip.ratio if model.mask_clip.source != "none" else 0.0,
            "cs_enabled": cs.enabled and model.mask_clip.source != "none",
            "mask_threshold": model.setting.mask_threshold, "clip_weight": model.setting.clip_weight,
            "renormalize": model.setting.renormalize}


class ScanTask(ImageTask):
    """SCAN (SCAN §3–4; spec §4, §9): the image task with :func:`ovlab.scan.model.build_scan_segmenter`."""

    def build(self, stage) -> Built:
        """Frozen CLIP ViT + a fresh SCAN segmenter (torch seeded with ``base.seed``), presets for
        ``eval.dataset``.

        Raises:
            WeightsNotFoundError: CLIP weights absent. TypeError: the CLIP is not a ViT.
        """
        from ovlab.scan.model import build_scan_segmenter

        cfg = stage.cfg
        clip = load_clip_from_params(cfg.clip, stage)
        mask_visual = load_mask_clip(stage, clip)
        torch.manual_seed(stage.base.seed)
        model = build_scan_segmenter(cfg, clip_embed_dim(clip), clip, mask_visual=mask_visual)
        model.set_benchmark(cfg.eval.dataset)
        return Built(stage, clip, model)

    def evaluate(self, stage, built: Built, device: torch.device, progress: bool, cache_dir=None):
        """The image task's evaluation with the presets of ``eval.dataset``; the summary also records
        the SCAN test-time settings under ``scan``."""
        built.model.set_benchmark(stage.cfg.eval.dataset)
        summary, per_class = super().evaluate(stage, built, device, progress, cache_dir)
        return {**summary, "scan": scan_summary(stage.cfg, built.model)}, per_class
