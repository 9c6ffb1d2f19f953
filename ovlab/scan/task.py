"""The ``scan`` training task: the SCAN segmenter (:mod:`ovlab.scan.model`) in the engine.

Everything but the model is the image task's (:class:`ovlab.segmenter.task.ImageTask`): COCO-panoptic
batches, the Mask2Former set criterion on the SIM-calibrated predictions (CS is not used in
segmentation training: SCAN §3.2 applies it to the CLIP that classifies the crops), the benchmark
evaluation through ``model.segment`` (here with SIM, the CS-CLIP and the ensemble).

This is where the config meets the model: for ``eval.dataset`` the task resolves the section's
presets into a :class:`ovlab.config.scan.ScanInference` (:meth:`ovlab.config.scan.ScanParams.inference_for`)
and hands those numbers to the model (:meth:`ovlab.scan.model.ScanSegmenter.set_inference`).
"""

from __future__ import annotations

import torch

from ovlab.clip.loading import load_clip_from_params
from ovlab.config.scan import ScanInference
from ovlab.segmenter.build import Built, clip_embed_dim
from ovlab.segmenter.task import ImageTask


def load_mask_clip(stage, clip):
    """The mask-classifying ViT of ``mask_clip`` (a checkpoint of ``clip.model``), or ``None``.

    Raises:
        WeightsNotFoundError: the checkpoint is not on disk.
    """
    path = stage.cfg.mask_clip
    if path is None:
        return None
    cfg = stage.cfg.clip.model_copy(update={"pretrained": path})
    return load_clip_from_params(cfg, stage).model.visual


def scan_summary(settings: ScanInference, sim: bool) -> dict:
    """The test-time settings a SCAN evaluation used (for ``metrics.json``).

    Args:
        settings: what the model was given (``model.settings``). sim: whether the model has SIM.
    """
    cs_on = settings.cs_source != "none"
    return {"inference": settings.mode, "sim": bool(sim),
            "cs_source": settings.cs_source, "cs_layers": list(settings.cs_layers),
            "cs_ratio": settings.cs_ratio if cs_on else 0.0, "cs_enabled": cs_on,
            "mask_threshold": settings.mask_threshold, "clip_weight": settings.clip_weight,
            "renormalize": settings.renormalize}


class ScanTask(ImageTask):
    """SCAN (SCAN §3–4): the image task with :func:`ovlab.scan.model.build_scan_segmenter`."""

    def build(self, stage) -> Built:
        """Frozen CLIP ViT + a fresh SCAN segmenter (torch seeded with ``base.seed``) with the
        test-time settings of ``eval.dataset``.

        Raises:
            WeightsNotFoundError: CLIP weights absent. TypeError: the CLIP is not a ViT.
        """
        from ovlab.scan.model import build_scan_segmenter

        cfg = stage.cfg
        clip = load_clip_from_params(cfg.clip, stage)
        mask_visual = load_mask_clip(stage, clip)
        torch.manual_seed(stage.base.seed)
        model = build_scan_segmenter(cfg, clip_embed_dim(clip), clip, mask_visual=mask_visual,
                                     inference=cfg.inference_for(cfg.eval.dataset))
        return Built(stage, clip, model)

    def evaluate(self, stage, built: Built, device: torch.device, progress: bool, cache_dir=None):
        """The image task's evaluation with the test-time settings of ``eval.dataset``; the summary also
        records them under ``scan``."""
        settings = stage.cfg.inference_for(stage.cfg.eval.dataset)
        built.model.set_inference(settings)
        summary, per_class = super().evaluate(stage, built, device, progress, cache_dir)
        return {**summary, "scan": scan_summary(settings, built.model.sim is not None)}, per_class
