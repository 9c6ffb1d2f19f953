"""The composition root's registry: which task trains each ``params.yaml`` section, and rebuilding a
trained model from its checkpoint.

A task (:class:`ovlab.segmenter.task.ImageTask` and its subclasses) supplies what differs between
models; :func:`ovlab.engine.trainer.train` receives it and never looks one up. Add one branch to
:func:`task_for` per new model family.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from ovlab.config import Params, ParamsError, StageParams, format_validation_error
from ovlab.config.base import BaseParams
from ovlab.engine import checkpoint as ckpt
from ovlab.segmenter.build import Built

SECTIONS = ("tgkd", "scan", "video", "physical")
"""The params sections that train a model, each with its task."""


def task_for(section: str):
    """A new task object for a params section: ``tgkd`` → :class:`ovlab.gkc.task.GkcTask`, ``scan`` →
    :class:`ovlab.scan.task.ScanTask`, ``video`` → :class:`ovlab.video.task.VideoTask`, ``physical`` →
    :class:`ovlab.physical.task.PhysicalTask`. A name that is
    not a section (an ad-hoc stage such as the overfit check's) is a ``tgkd``-shaped image run.

    Each branch imports only its own method package, so a command imports the code it runs and
    nothing else (the DVC stages' dependencies follow from it: ``tests/test_pipeline_deps.py``).
    """
    if section == "scan":
        from ovlab.scan.task import ScanTask

        return ScanTask()
    if section == "video":
        from ovlab.video.task import VideoTask

        return VideoTask()
    if section == "physical":
        from ovlab.physical.task import PhysicalTask

        return PhysicalTask()
    from ovlab.gkc.task import GkcTask

    return GkcTask()


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


def check_evaluation(stage, datasets=None) -> None:
    """Check, before any training, what the run's final evaluation needs: every benchmark name and
    the benchmark root, so that a typo in ``eval.dataset``, ``eval.root`` or ``grids.eval_datasets``
    fails at the start of the run instead of after the last iteration.

    Args:
        stage: a training section's :class:`ovlab.config.StageParams`.
        datasets: the benchmarks the run will be scored on (``grids.eval_datasets``); ``None`` = the
            section's own ``eval.dataset`` (nothing to check when its ``eval`` names no benchmark,
            e.g. the video section, whose evaluation reads ``data.root`` like its training).

    Raises:
        ParamsError: an unknown benchmark name, or no benchmark layout under the root; the message
            names the key (``tgkd.grids.eval_datasets``, ``tgkd.eval.root``) and what was searched.
    """
    from ovlab.data.benchmarks import get_benchmark
    from ovlab.data.errors import DatasetNotFoundError

    ev = getattr(stage.cfg, "eval", None)
    if datasets is None:
        if getattr(ev, "dataset", None) is None:
            return
        names, key = [ev.dataset], f"{stage.name}.eval.dataset"
    else:
        names, key = list(datasets), f"{stage.name}.grids.eval_datasets"
    root = stage.path(ev.root) if getattr(ev, "root", None) else None
    benches = []
    for name in names:  # every name first: a typo is a config error whatever is on disk
        try:
            benches.append((name, get_benchmark(name)))
        except KeyError as exc:
            raise ParamsError(f"{stage.source}: {key}: {exc.args[0]}") from None
    for name, bench in benches:
        try:
            bench.locate(root)
        except DatasetNotFoundError as exc:
            raise ParamsError(f"{stage.source}: {stage.name}.eval.root: the {name} benchmark that the run is scored "
                              f"on at its end is not there: {exc}") from None
