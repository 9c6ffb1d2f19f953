"""Build the segment-then-classify segmenter and its frozen CLIP from a stage's params."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ovlab.clip.loading import ClipModel, load_clip_from_params
from ovlab.config import StageParams
from ovlab.segmenter.model import Segmenter, build_segmenter



@dataclass
class Built:
    """A model with what it needs: the stage, its CLIP (text encoder) and its CLIP embedding size."""

    stage: StageParams
    clip: ClipModel
    model: Segmenter

    @property
    def embed_dim(self) -> int:
        return int(self.model.classifier.void_embedding.shape[1])


def clip_embed_dim(clip: ClipModel) -> int:
    """The CLIP joint dimension D (text projection width)."""
    return int(clip.model.text_projection.shape[1])


def build(stage: StageParams, *, seed: int | None = None) -> Built:
    """CLIP (frozen) + a freshly initialised segmenter (torch seeded with ``seed``, default ``base.seed``).

    Raises:
        WeightsNotFoundError: the CLIP weights are not on disk.
    """
    cfg = stage.cfg
    clip = load_clip_from_params(cfg.clip, stage)
    torch.manual_seed(stage.base.seed if seed is None else seed)
    model = build_segmenter(model_params_resolved(stage), clip_embed_dim(clip), clip)
    return Built(stage, clip, model)


def model_params_resolved(stage: StageParams):
    """``stage.cfg.model`` with a relative ``backbone.weights`` path resolved against the params
    file's folder (``stage.path``), as every path of ``params.yaml`` is (README, "Parameters"), not
    against the working directory."""
    m = stage.cfg.model
    if m.backbone.weights is None:
        return m
    return m.model_copy(update={"backbone": m.backbone.model_copy(update={"weights": str(stage.path(m.backbone.weights))})})
