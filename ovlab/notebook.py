"""Stage notebooks outside the pipeline: opened by hand they write to a scratch folder, and saving
them keeps the committed file byte for byte (outputs stripped, metadata normalised).

A stage notebook (``notebooks/NN_*.ipynb``) is a DVC stage: its file is a dependency and the files
it writes are DVC outputs. Opened by hand in JupyterLab (``make lab``) it must leave both alone:

- :func:`opened_by_hand` tells the two cases apart: papermill (``ovlab run``) injects ``base``; a
  hand run leaves it ``None``;
- :func:`scratch_stage` re-roots the section's output paths under the scratch folder
  (``<base.paths.cache>/scratch/``, git-ignored, never a DVC output) unless the notebook's
  ``scratch`` parameter says ``False``;
- :func:`pre_save_hook` is the Jupyter server's ``FileContentsManager.pre_save_hook`` (installed by
  ``scripts/setup.sh`` into the virtual environment's Jupyter config, and passed by ``make lab``):
  a notebook under a ``notebooks/`` folder beside a ``dvc.yaml`` is saved without outputs or
  execution counts, with only the ``parameters`` tag kept in cell metadata and the notebook
  metadata reduced to the kernel spec and language name: exactly the committed form, so
  ``git status`` and ``dvc status`` stay clean after a hand run.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

SCRATCH = "scratch"
"""Folder under ``base.paths.cache`` that hand runs write to."""

KERNELSPEC = {"display_name": "Python 3", "language": "python", "name": "python3"}


def opened_by_hand(base) -> bool:
    """``True`` when the notebook was not run by papermill (its ``base`` parameter is still ``None``)."""
    return base is None


def scratch_stage(stage, outputs: tuple[str, ...], *, scratch: bool | None = None, by_hand: bool = True):
    """The stage with the section's output paths re-rooted under the scratch folder.

    Args:
        stage: :class:`ovlab.config.StageParams`.
        outputs: the section's fields that name files the notebook writes (``("output", "metrics",
            "report")`` for ``synonyms``); inputs are left as they are.
        scratch: the notebook's ``scratch`` parameter: ``None`` = scratch exactly when opened by
            hand, ``True`` / ``False`` = always / never.
        by_hand: :func:`opened_by_hand` of the notebook's ``base``.

    Returns:
        ``stage`` itself when not redirected, else a copy whose ``outputs`` point to
        ``<base.paths.cache>/scratch/<original relative path>`` (absolute paths keep their name
        under ``scratch/abs/``).

    Raises:
        AttributeError: a name in ``outputs`` is not a field of the section.
    """
    if not (by_hand if scratch is None else scratch):
        return stage
    root = Path(stage.base.paths.cache) / SCRATCH
    update = {}
    for name in outputs:
        value = getattr(stage.cfg, name)
        p = Path(str(value))
        update[name] = str(root / ("abs" / Path(*p.parts[1:]) if p.is_absolute() else p))
    return replace(stage, cfg=stage.cfg.model_copy(update=update))


def clean_notebook(nb: dict) -> dict:
    """The committed form of a notebook (a ``dict`` in nbformat 4 JSON), changed in place and returned:
    no outputs, no execution counts, cell metadata reduced to the ``parameters`` tag, notebook
    metadata to ``kernelspec`` and ``language_info.name`` (widget state and versions dropped)."""
    for cell in nb.get("cells", []):
        meta = cell.get("metadata", {})
        tags = [t for t in meta.get("tags", []) if t == "parameters"]
        cell["metadata"] = {"tags": tags} if tags else {}
        if cell.get("cell_type") == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
        else:
            cell.pop("outputs", None)
            cell.pop("execution_count", None)
    meta = nb.get("metadata", {})
    lang = meta.get("language_info", {}).get("name", "python")
    # the kernel stage notebooks run on (``ovlab run --kernel python3``); JupyterLab's display name
    # ("Python 3 (ipykernel)") is not kept
    nb["metadata"] = {"kernelspec": dict(KERNELSPEC), "language_info": {"name": lang}}
    return nb


def is_stage_notebook(path: str | os.PathLike) -> bool:
    """A ``.ipynb`` in a ``notebooks/`` folder whose parent holds ``dvc.yaml`` (a stage notebook)."""
    p = Path(path)
    return p.suffix == ".ipynb" and p.parent.name == "notebooks" and (p.parent.parent / "dvc.yaml").is_file()


def pre_save_hook(model: dict, path: str, contents_manager=None, **kwargs) -> None:
    """Jupyter server ``FileContentsManager.pre_save_hook``: stage notebooks are saved clean
    (:func:`clean_notebook`); every other file is saved as is.

    Args:
        model: the contents model being saved (``type``, ``content``...).
        path: the API path relative to the server root (``notebooks/01_synonym_curation.ipynb``).
        contents_manager: the server's contents manager (its ``root_dir`` locates the file).
    """
    if model.get("type") != "notebook" or not isinstance(model.get("content"), dict):
        return
    root = getattr(contents_manager, "root_dir", None) or os.getcwd()
    if is_stage_notebook(Path(root) / path):
        clean_notebook(model["content"])
