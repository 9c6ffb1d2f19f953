"""Checkpoints: written atomically, one folder per configuration fingerprint, exact resume.

A run's folder is ``<checkpoint_dir>/<fingerprint>/`` where the fingerprint hashes everything that
changes the result (the stage section without output paths, and the seed). ``last.pt`` holds the
model, optimiser, scheduler and AMP-scaler states, the iteration and the logged history; the data
order and every random draw are functions of (seed, iteration) (see :mod:`.data`), so resuming at
``last.pt`` reproduces an uninterrupted run bit for bit on CPU — with the same code: ``last.pt``
also records :func:`code_version`, and a run whose code changed since starts over.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import time
from pathlib import Path

import torch

from ovlab.atomic import write_with

FORMAT = "ovlab-segmenter/1"


class CorruptCheckpointError(ValueError):
    """A checkpoint file cannot be read (truncated, not a torch file) or is not an ovlab one; names the file."""


def fingerprint(section: dict, seed: int, ignore: tuple[str, ...] = ("output",)) -> str:
    """16 hex digits hashing the section (minus ``ignore`` keys and ``train.checkpoint_every`` /
    ``num_workers`` / ``checkpoint_dir``, which do not change results) and the seed. ``log_every`` is
    kept: the logged history, stored in the checkpoint, depends on it."""
    doc = {k: v for k, v in section.items() if k not in ignore}
    if isinstance(doc.get("train"), dict):
        doc["train"] = {k: v for k, v in doc["train"].items()
                        if k not in ("checkpoint_every", "num_workers", "checkpoint_dir")}
    return hashlib.sha256(json.dumps({"section": doc, "seed": seed}, sort_keys=True, default=str).encode()).hexdigest()[:16]


def run_fingerprint(stage) -> str:
    """:func:`fingerprint` of a training stage, plus the bytes of its ``train.init`` checkpoint: a run
    fine-tuned from a retrained parent is another run (a finished ``last.pt`` is reused only when
    nothing it was made from changed — data replaced in place is not detected: delete the run folder)."""
    section = stage.cfg.model_dump(mode="json")
    init = stage.cfg.train.init
    if init is not None and stage.path(init).is_file():
        h = hashlib.sha256()
        with open(stage.path(init), "rb") as fh:
            for block in iter(lambda: fh.read(1 << 24), b""):
                h.update(block)
        section = {**section, "init_sha256": h.hexdigest()}
    return fingerprint(section, stage.base.seed)


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """16 hex digits hashing the source of the installed ``ovlab`` package (every ``*.py`` file,
    path and bytes). A resumed run must continue with the code that began it."""
    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for f in sorted(root.rglob("*.py")):
        h.update(f.relative_to(root).as_posix().encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def save(path: str | os.PathLike, state: dict) -> Path:
    """Write ``state`` with ``torch.save`` atomically (a kill leaves the previous file intact)."""
    return write_with(Path(path), lambda fh: torch.save(state, fh))


def load(path: str | os.PathLike, map_location="cpu") -> dict:
    """Read a checkpoint.

    Raises:
        FileNotFoundError: no such file.
        CorruptCheckpointError: truncated or unreadable, or not an ovlab segmenter checkpoint.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"checkpoint not found: {p}")
    try:
        state = torch.load(p, map_location=map_location, weights_only=False)
    except Exception as exc:  # truncated zip, foreign pickle, empty file: torch raises many kinds
        raise CorruptCheckpointError(f"{p}: cannot be read as a checkpoint ({type(exc).__name__}: "
                                     f"{str(exc).splitlines()[0] if str(exc) else ''}); truncated or not a torch file") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CorruptCheckpointError(f"{p}: not an ovlab segmenter checkpoint (format {FORMAT!r} expected)")
    return state


def load_or_quarantine(path: Path, move: bool = True) -> tuple[dict | None, Path | None]:
    """Read a resume checkpoint; an unreadable one is moved aside (``<name>.corrupt-<time>``, when
    ``move``: rank 0) so that it never blocks a later run. Returns ``(state or None, where the bad
    file went or None)``."""
    if not path.is_file():
        return None, None
    try:
        return load(path), None
    except CorruptCheckpointError:
        aside = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
        if move:
            os.replace(path, aside)
        return None, aside


def init_from(model: torch.nn.Module, path: str | Path) -> tuple[list[str], list[str]]:
    """Initialise ``model`` from the weights of a ``model.pt`` (``train.init``; non-strict).

    Keys present in both with the same shape are loaded; the rest keep their initialisation.

    Returns:
        ``(missing, skipped)``: model keys not in the file, and file keys not loaded (absent from
        the model or of another shape).

    Raises:
        FileNotFoundError, ValueError: see :func:`load`.
    """
    state = load(path)["model"]
    own = model.state_dict()
    take = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(take, strict=False)
    return sorted(set(own) - set(take)), sorted(set(state) - set(take))
