"""Reading dataset files with errors that name the file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ovlab.data.errors import CorruptFileError


def read_json(path: str | Path) -> Any:
    """Parse a JSON file.

    Raises:
        FileNotFoundError: the file is missing.
        CorruptFileError: it is not valid JSON (names the file, line and column).
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise CorruptFileError(p, f"not UTF-8 text ({exc})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CorruptFileError(p, f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None


def read_image(path: str | Path, mode: str | None = None) -> np.ndarray:
    """Decode an image file fully (truncated files fail here, not later).

    Args:
        path: PNG/JPEG/... file.
        mode: PIL mode to convert to (``"RGB"``, ``"L"``); ``None`` keeps the file's mode,
            so palette (``P``) label PNGs keep their indices.

    Returns:
        ``np.ndarray`` of shape (H, W) or (H, W, C), the file's dtype (uint8, or uint16/int32
        for 16-bit PNGs).

    Raises:
        FileNotFoundError: the file is missing.
        CorruptFileError: it cannot be decoded (truncated, not an image).
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such file")
    try:
        with Image.open(p) as im:
            im.load()
            if mode is not None and im.mode != mode:
                im = im.convert(mode)
            return np.array(im)
    except (OSError, SyntaxError, ValueError) as exc:
        raise CorruptFileError(p, f"cannot decode image ({exc})") from None


def rgb_to_id(rgb: np.ndarray) -> np.ndarray:
    """COCO panoptic id from an RGB PNG: ``id = R + 256·G + 256²·B``.

    Args:
        rgb: (H, W, 3) uint8.

    Returns:
        (H, W) int64 segment ids.

    Raises:
        ValueError: the array is not (H, W, 3).
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) RGB array, got shape {rgb.shape}")
    rgb = rgb.astype(np.int64)
    return rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]


def id_to_rgb(ids: np.ndarray) -> np.ndarray:
    """Inverse of :func:`rgb_to_id`: (H, W) ids < 256³ → (H, W, 3) uint8."""
    ids = np.asarray(ids, dtype=np.int64)
    if ids.min(initial=0) < 0 or ids.max(initial=0) >= 256**3:
        raise ValueError("panoptic ids must lie in [0, 256**3)")
    return np.stack([ids % 256, (ids // 256) % 256, ids // 65536], axis=-1).astype(np.uint8)
