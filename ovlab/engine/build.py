"""Build the segmenter, its CLIP and its training vocabulary from a stage's params, or from a checkpoint."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from pydantic import ValidationError

from ovlab.clip.loading import ClipModel, load_clip_from_params
from ovlab.config import ParamsError, StageParams, format_validation_error
from ovlab.config.base import BaseParams
from ovlab.models.distill import DistillHead
from ovlab.models.segmenter import Segmenter, build_segmenter

from . import checkpoint as ckpt


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
    model = build_segmenter(cfg.model, clip_embed_dim(clip), clip)
    kd = getattr(getattr(cfg, "gkc", None), "kd", None)
    if kd is not None and kd.mode != "none":
        model.distill = DistillHead(kd.student, cfg.model.hidden_dim, clip_embed_dim(clip), cfg.model.decoder_layers + 1,
                                    text_scale_init=kd.text_scale_init, learn_text_scale=kd.learn_text_scale)
    return Built(stage, clip, model)


def init_from(model: torch.nn.Module, path: str | Path) -> tuple[list[str], list[str]]:
    """Initialise ``model`` from the weights of a ``model.pt`` (``train.init``; non-strict).

    Keys present in both with the same shape are loaded; the rest keep their initialisation.

    Returns:
        ``(missing, skipped)``: model keys not in the file, and file keys not loaded (absent from
        the model or of another shape).

    Raises:
        FileNotFoundError, ValueError: see :func:`ovlab.engine.checkpoint.load`.
    """
    state = ckpt.load(path)["model"]
    own = model.state_dict()
    take = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(take, strict=False)
    return sorted(set(own) - set(take)), sorted(set(state) - set(take))


def from_checkpoint(path: str | Path, *, device: str = "cpu", root: str | Path | None = None) -> Built:
    """Rebuild a trained model from a ``model.pt`` / ``last.pt`` written by the engine.

    The checkpoint stores its stage section and ``base``; relative paths in it resolve against
    ``root`` (default: the current folder).

    Raises:
        FileNotFoundError, ValueError: see :func:`ovlab.engine.checkpoint.load`.
        ParamsError: the stored section no longer validates (names the key).
        ValueError: the stored stage name is ``base``.
    """
    from ovlab.config import Params

    from .tasks import task_for

    state = ckpt.load(path)
    name = state.get("stage", "tgkd")
    if name == "base":
        raise ValueError(f"{path}: written by an unknown stage section {name!r}")
    # A section of params.yaml has its own type; an ad-hoc stage name (the overfit check, a
    # notebook's own run) is an image-task run with a ``tgkd``-shaped section.
    kind = Params.model_fields[name].annotation if name in Params.model_fields else Params.model_fields["tgkd"].annotation
    try:
        cfg = kind.model_validate(state["section"], strict=False)
        base = BaseParams.model_validate({**state["base"], "device": device}, strict=False)
    except ValidationError as exc:
        raise ParamsError(format_validation_error(exc, str(path))) from None
    stage = StageParams(name, base, cfg, Path(root or Path.cwd()), str(path))
    built = task_for(name).build(stage)
    built.model.load_state_dict(state["model"])
    built.model.eval()
    return built
