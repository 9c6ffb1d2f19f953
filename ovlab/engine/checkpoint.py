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
from pathlib import Path

import torch

from ovlab.atomic import write_with

FORMAT = "ovlab-segmenter/1"


def fingerprint(section: dict, seed: int, ignore: tuple[str, ...] = ("output",)) -> str:
    """16 hex digits hashing the section (minus ``ignore`` keys and ``train.checkpoint_every`` /
    ``num_workers`` / ``checkpoint_dir``, which do not change results) and the seed. ``log_every`` is
    kept: the logged history, stored in the checkpoint, depends on it."""
    doc = {k: v for k, v in section.items() if k not in ignore}
    if isinstance(doc.get("train"), dict):
        doc["train"] = {k: v for k, v in doc["train"].items()
                        if k not in ("checkpoint_every", "num_workers", "checkpoint_dir")}
    return hashlib.sha256(json.dumps({"section": doc, "seed": seed}, sort_keys=True, default=str).encode()).hexdigest()[:16]


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
        ValueError: not an ovlab segmenter checkpoint.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"checkpoint not found: {p}")
    state = torch.load(p, map_location=map_location, weights_only=False)
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(f"{p}: not an ovlab segmenter checkpoint (format {FORMAT!r} expected)")
    return state


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
