"""The video task of the training engine: GKC's open-vocabulary VIPSeg benchmark (GKC §3.4, §4.4 Tab. 3;
the schedule is GKC §4.2's, as no config ships).

:class:`VideoTask` plugs the video model into :func:`ovlab.engine.trainer.train` (registered for the
``video`` section in :data:`ovlab.experiments.registry.TASKS`):

- ``build``: the image segmenter of the section's ``model`` (with the KD student head when KD is on),
  run on clips (:class:`ovlab.video.model.VideoSegmenter`); the trainer then loads ``train.init``
  (the image checkpoint; every weight is shared, only the KD head is new);
- ``vocabulary``: the names of the training split's classes (``train_base_ignore``: the 112 seen);
- ``batches``: VMF-style random clips (:class:`ovlab.video.data.IterationClips`);
- ``objective``: :class:`ovlab.video.criterion.VideoObjective` (mask/dice/CE over tubes,
  TD and KD per frame instance);
- ``evaluate``: seen / unseen / harmonic mIoU under both vocabulary protocols
  (:func:`ovlab.video.evaluate.evaluate_video`).

The Table 3 rows are grid cells (:mod:`ovlab.experiments.grid`); ``ovlab train --section video``
trains the section as written.
"""

from __future__ import annotations

import math
from dataclasses import replace

import torch

from ovlab.data.categories import load_categories
from ovlab.data.vipseg_splits import VipsegSplit, load_split
from ovlab.video.model import NEW_KEYS, VideoSegmenter

from ovlab.engine import checkpoint as ckpt
from ovlab.gkc.task import GkcTask
from ovlab.segmenter.build import Built
from ovlab.segmenter.task import categories_ref
from ovlab.video.data import IterationClips
from ovlab.video.evaluate import evaluate_video
from ovlab.segmenter.vocabulary import Vocabulary, build_vocabulary


def training_split(stage) -> VipsegSplit:
    """The training split of ``stage.cfg.data`` (``train_base_ignore`` or ``train_base_delete``).

    Raises:
        DatasetNotFoundError / CorruptFileError: see :func:`ovlab.data.vipseg.read_vipseg`.
    """
    d = stage.cfg.data
    return load_split(stage.path(d.root), d.train_split, source=d.source, categories=categories_ref(stage),
                      novel_ids=d.novel_ids, ignore_label=d.ignore_label, progress=False)


def check_init(stage) -> None:
    """The init checkpoint (``train.init``) was built with this section's ``model`` and ``clip``.

    Raises:
        FileNotFoundError: no such file (run the stage that writes it, e.g. ``dvc repro tgkd_baseline``).
        ValueError: a model or CLIP parameter differs (names the first keys that do).
    """
    init = stage.cfg.train.init
    if init is None:
        return
    section = _init_section(stage)
    ours = stage.cfg.model_dump(mode="json")
    diff = [f"{part}.{k}" for part in ("model", "clip") if ours[part] is not None for k, v in ours[part].items()
            if k not in ("weights_dir", "cache_dir", "allow_download") and not _same(section.get(part, {}).get(k), v)]
    if diff:
        raise ValueError(f"{stage.path(init)} was built with other parameters than video.{diff[0]} (and "
                         f"{len(diff) - 1} more: {diff[1:6]}); leave video.model / video.clip unset to use the "
                         "checkpoint's")


def _init_section(stage) -> dict:
    path = stage.path(stage.cfg.train.init)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: video.train.init not found (run `dvc repro tgkd_baseline`)")
    return ckpt.load(path)["section"]


def resolve_from_init(stage):
    """The stage with ``model`` and ``clip`` taken from the init checkpoint where they are ``null``
    (the video model starts from the image model: every weight is shared, so its architecture and
    CLIP are the checkpoint's); explicit values are checked against it (:func:`check_init`).

    Raises:
        FileNotFoundError / ValueError: see :func:`check_init`; ValueError also when ``model`` or
            ``clip`` is unset and there is no ``train.init``.
    """
    cfg = stage.cfg
    if cfg.model is not None and cfg.clip is not None:
        check_init(stage)
        return stage
    if cfg.train.init is None:
        raise ValueError("video.model and video.clip must be given when video.train.init is null")
    section = _init_section(stage)
    from ovlab.config.clip import ClipParams
    from ovlab.config.segmenter import ModelParams

    updates = {}
    if cfg.model is None:
        updates["model"] = ModelParams.model_validate(section["model"], strict=False)
    if cfg.clip is None:
        updates["clip"] = ClipParams.model_validate(section["clip"], strict=False)
    out = replace(stage, cfg=cfg.model_copy(update=updates))
    check_init(out)
    return out


def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-12)
    return a == b


class VideoTask(GkcTask):
    """The GKC video model on VIPSeg (module docstring). Shares the image task's interface."""

    new_keys = NEW_KEYS

    def resolve(self, stage):
        """The stage with ``model`` / ``clip`` from the init checkpoint (:func:`resolve_from_init`)."""
        return resolve_from_init(stage)

    def build(self, stage) -> Built:
        """CLIP + the video model (image segmenter of ``model``, + ``distill`` head with KD), seeded."""
        built = super().build(stage)
        video = VideoSegmenter.from_image(built.model)
        if hasattr(built.model, "distill"):
            video.distill = built.model.distill
        return replace(built, model=video)

    def vocabulary(self, stage, clip) -> Vocabulary:
        """The training split's classes (split index order), their names' text embeddings."""
        split = training_split(stage)
        return build_vocabulary(clip, split.class_names, list(split.class_ids), templates=stage.cfg.model.templates,
                                cache_dir=stage.path(stage.base.paths.cache))

    def batches(self, stage, vocab: Vocabulary, rank: int, world: int) -> IterationClips:
        cfg = stage.cfg
        split = training_split(stage)
        if split.class_names != vocab.classes:
            raise ValueError("the training vocabulary does not match the training split")
        return IterationClips(split, cfg.train.batch_size, stage.base.seed, cfg.clips.train_clip_length,
                              cfg.clips.train_sampling_range, cfg.augment, rank, world, cfg.train.iterations)

    def objective(self, stage, built: Built, vocab: Vocabulary):
        from ovlab.video.criterion import VideoObjective

        return VideoObjective(stage, built, vocab)

    def evaluate(self, stage, built: Built, device: torch.device, progress: bool, cache_dir=None):
        """``(summary, per-class rows)``: the headline protocol's numbers plus every protocol's."""
        cfg = stage.cfg
        rep = evaluate_video(built.model.eval(), built.clip, cfg, stage.path(cfg.data.root),
                             categories=load_categories(categories_ref(stage)), device=device, cache_dir=cache_dir,
                             progress=progress)
        summary = {"dataset": "vipseg", "resize": cfg.eval.resize, "short_side": cfg.eval.short_side,
                   **rep.summary()}
        return summary, rep.per_class()
