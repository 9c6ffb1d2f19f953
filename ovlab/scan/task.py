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

import os
from dataclasses import dataclass

import torch

from ovlab.clip.loading import load_clip_from_params
from ovlab.config.scan import ScanInference
from ovlab.segmenter.build import Built, clip_embed_dim, model_params_resolved
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


@dataclass
class ConvertedModel:
    """A converted SCAN model ready to evaluate: the segmenter and its CLIP (text encoder)."""

    model: object
    clip: object
    source: str

    def inference_for(self, dataset: str | None):
        """The official per-benchmark test-time numbers (yongliu20/SCAN ``configs/scan_vitL.yaml``
        comments: mask threshold, λ, CS ratio; the log renormalisation for A-847 / PC-459).

        Only for ViT-L (CS layers 1, 3, 5, 7, 9) and ViT-B (1, 3, 5) checkpoints are the presets
        known; others keep the checkpoint config's numbers.
        """
        from dataclasses import replace

        from ovlab.config.presets import CS_RATIO_PRESETS, ENSEMBLE_PRESETS
        from ovlab.config.scan import canonical_benchmark

        s = self.model.settings
        name = canonical_benchmark(dataset)
        preset = {(1, 3, 5, 7, 9): "vit-l", (1, 3, 5): "vit-b"}.get(tuple(self.model.mask_clip.layers))
        if preset is None or name is None:
            return replace(s, benchmark=name)
        ens = ENSEMBLE_PRESETS[preset].get(name)
        ratio = CS_RATIO_PRESETS[preset].get(name, s.cs_ratio)
        if ens is None:
            return replace(s, benchmark=name, cs_ratio=float(ratio))
        return replace(s, benchmark=name, mask_threshold=float(ens.mask_threshold), clip_weight=float(ens.clip_weight),
                       renormalize=bool(ens.renormalize), cs_ratio=float(ratio))


def load_converted(path: str | os.PathLike, fmt: str = "scan-converted", *, config: str | None = None,
                   clip: str | None = None, device: str = "cpu") -> ConvertedModel:
    """Load an official SCAN ``.pth`` (``scan-official``) or an ``ovlab convert scan`` output
    (``scan-converted``) as a :class:`ConvertedModel`.

    Raises:
        FileNotFoundError: no checkpoint (the message says where the released weights go).
        ValueError: not a converted checkpoint / unknown format. ConversionError: see :mod:`ovlab.scan.convert`.
    """
    from pathlib import Path
    from ovlab.scan.convert import (CONVERTED_FORMAT, convert_scan_state_dict, converted_clip_model,
                                    load_official_checkpoint, merge_clip_checkpoint, read_official_config)
    from ovlab.scan.model import build_converted_segmenter

    p = Path(path).expanduser()
    if fmt == "scan-official":
        conv = convert_scan_state_dict(load_official_checkpoint(p), read_official_config(config))
        if clip is not None:
            merge_clip_checkpoint(conv, clip)
        ck = conv.checkpoint()
    elif fmt == "scan-converted":
        if not p.is_file():
            raise FileNotFoundError(f"converted SCAN checkpoint not found: {p} (make it with `ovlab convert scan "
                                    f"--checkpoint SCAN.pth --out {p}`)")
        ck = torch.load(p, map_location="cpu", weights_only=False)
        if not isinstance(ck, dict) or ck.get("format") != CONVERTED_FORMAT:
            raise ValueError(f"{p} is not an `ovlab convert scan` checkpoint (format {CONVERTED_FORMAT!r})")
    else:
        raise ValueError(f"unknown checkpoint format {fmt!r}; known: scan-official, scan-converted")
    seg = build_converted_segmenter(ck["architecture"], ck).to(device)
    return ConvertedModel(seg, converted_clip_model(seg, source=str(p)), str(p))


class ScanTask(ImageTask):
    """SCAN (SCAN §3–4): the image task with :func:`ovlab.scan.model.build_scan_segmenter`."""

    def build(self, stage) -> Built:
        """Frozen CLIP ViT + a fresh SCAN segmenter (torch seeded with ``base.seed``) with the
        test-time settings of ``eval.dataset``.

        Raises:
            WeightsNotFoundError: CLIP weights absent. TypeError: the CLIP is not a ViT.
        """
        from ovlab.scan.model import build_scan_segmenter

        cfg = stage.cfg.model_copy(update={"model": model_params_resolved(stage)})  # weights path against the params folder
        clip = load_clip_from_params(cfg.clip, stage)
        mask_visual = load_mask_clip(stage, clip)
        torch.manual_seed(stage.base.seed)
        model = build_scan_segmenter(cfg, clip_embed_dim(clip), clip, mask_visual=mask_visual,
                                     inference=cfg.inference_for(cfg.eval.dataset))
        from ovlab.scan.cs_finetune import attach_finetuned_prompts

        attach_finetuned_prompts(model, cfg, stage.root)  # Table 6 "learnable": the prompts trained with the CS-CLIP
        return Built(stage, clip, model)

    @staticmethod
    def load_converted(path, fmt: str = "scan-converted", *, config=None, clip=None, device: str = "cpu"):
        """:func:`load_converted` (``ovlab evaluate --format scan-official | scan-converted``)."""
        return load_converted(path, fmt, config=config, clip=clip, device=device)

    def build_converted(self, stage, path) -> Built:
        """A converted official SCAN checkpoint (``ovlab convert scan`` output, or an official ``.pth``
        converted on the fly) with the test-time settings of the section's ``eval.dataset`` (a grid
        cell ``model: converted:<path>``: SCAN Tables 6–8 on the released weights). Architecture,
        SIM and CLIP towers come from the checkpoint; the section gives CS, ensemble and inference.

        Raises:
            FileNotFoundError: no checkpoint. ConversionError: an official key that does not fit.
        """
        from ovlab.scan.convert import CONVERTED_FORMAT, convert_scan_state_dict, converted_clip_model
        from ovlab.scan.model import build_converted_segmenter

        ck = torch.load(path, map_location="cpu", weights_only=False)
        if not (isinstance(ck, dict) and ck.get("format") == CONVERTED_FORMAT):
            ck = convert_scan_state_dict(ck.get("model", ck) if isinstance(ck, dict) else ck).checkpoint()
        model = build_converted_segmenter(ck["architecture"], ck, inference=stage.cfg.inference_for(stage.cfg.eval.dataset))
        model.name_encoding = stage.cfg.name_encoding         # official padding stays on: the weights' protocol
        return Built(stage, converted_clip_model(model, source=str(path)), model)

    def vocabulary(self, stage, clip):
        """The training vocabulary with the section's ``name_encoding`` (SCAN: whole class-name
        strings, as the official text branch)."""
        from ovlab.data.categories import load_categories
        from ovlab.segmenter.task import categories_ref
        from ovlab.segmenter.vocabulary import training_vocabulary

        cfg = stage.cfg
        return training_vocabulary(clip, load_categories(categories_ref(stage)), cfg.data.vocabulary,
                                   templates=cfg.model.templates, cache_dir=stage.path(stage.base.paths.cache),
                                   name_encoding=cfg.name_encoding)

    def evaluate(self, stage, built: Built, device: torch.device, progress: bool, cache_dir=None):
        """The image task's evaluation with the test-time settings of ``eval.dataset``; the summary also
        records them under ``scan``."""
        settings = stage.cfg.inference_for(stage.cfg.eval.dataset)
        built.model.set_inference(settings)
        summary, per_class = super().evaluate(stage, built, device, progress, cache_dir)
        scan = {**scan_summary(settings, built.model.sim is not None),
                "name_encoding": getattr(built.model, "name_encoding", "split"),
                "padding": "official" if getattr(built.model, "official_padding", False) else "grey"}
        return {**summary, "scan": scan}, per_class
