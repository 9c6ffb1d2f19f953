"""The composition root's registry: which task trains each ``params.yaml`` section, and rebuilding a
trained model from its checkpoint.

A task (:class:`ovlab.segmenter.task.ImageTask` and its subclasses) supplies what differs between
models; :func:`ovlab.engine.trainer.train` receives it and never looks one up. Add one line to
:data:`TASKS` per new model family.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from ovlab.config import Params, ParamsError, StageParams, format_validation_error
from ovlab.config.base import BaseParams
from ovlab.engine import checkpoint as ckpt
from ovlab.gkc.task import GkcTask
from ovlab.scan.task import ScanTask
from ovlab.segmenter.build import Built
from ovlab.video.task import VideoTask

#: Params section → task class. Sections not listed (an ad-hoc stage name such as the overfit
#: check's) are ``tgkd``-shaped image runs: :class:`ovlab.gkc.task.GkcTask`.
TASKS: dict[str, type] = {
    "tgkd": GkcTask,
    "scan": ScanTask,
    "video": VideoTask,
}


def task_for(section: str):
    """A new task object for a params section (:data:`TASKS`, default :class:`ovlab.gkc.task.GkcTask`)."""
    return TASKS.get(section, GkcTask)()


def train_stage(stage, **kwargs):
    """:func:`ovlab.engine.trainer.train` with the task registered for ``stage.name``."""
    from ovlab.engine.trainer import train

    return train(stage, task=task_for(stage.name), **kwargs)


def from_checkpoint(path: str | Path, *, device: str = "cpu", root: str | Path | None = None) -> Built:
    """Rebuild a trained model from a ``model.pt`` / ``last.pt`` written by the engine.

    The checkpoint stores its stage section and ``base``; relative paths in it resolve against
    ``root`` (default: the current folder).

    Raises:
        FileNotFoundError, ValueError: see :func:`ovlab.engine.checkpoint.load`.
        ParamsError: the stored section no longer validates (names the key).
        ValueError: the stored stage name is ``base``.
    """
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
