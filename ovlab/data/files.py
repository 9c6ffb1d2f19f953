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
    if p.stat().st_size == 0:
        raise CorruptFileError(p, "empty file (0 bytes)")
    try:
        with Image.open(p) as im:
            im.load()
            if mode is not None and im.mode != mode:
                im = im.convert(mode)
            return np.array(im)
    except (OSError, SyntaxError, ValueError) as exc:
        raise CorruptFileError(p, f"cannot decode image ({exc})") from None


LOSSLESS_SUFFIXES = {".png": "PNG", ".tif": "TIFF", ".tiff": "TIFF"}


def read_label_map(path: str | Path) -> np.ndarray:
    """Decode a label file (class indices, dataset ids or panoptic RGB) and check it is what its
    name says: a ``.png`` must hold PNG data, a ``.tif`` TIFF — a JPEG renamed ``.png`` has lossy
    values that would be scored as labels.

    Returns:
        the array as :func:`read_image` (mode kept: ``P`` palette PNGs keep their indices).

    Raises:
        FileNotFoundError: the file is missing.
        CorruptFileError: empty, truncated, not an image, or its content is another format than
            its suffix (names the file and both formats).
    """
    p = Path(path)
    arr = read_image(p)
    want = LOSSLESS_SUFFIXES.get(p.suffix.lower())
    if want is not None:
        with Image.open(p) as im:
            got = im.format
        if got != want:
            raise CorruptFileError(p, f"the file is {got} data named {p.suffix} (a label map must be lossless {want}; "
                                      "JPEG compression changes label values)")
    return arr


def read_rgb(path: str | Path) -> np.ndarray:
    """Decode an input photograph to (H, W, 3) uint8 RGB, whatever its mode.

    Greyscale is replicated to 3 channels, a palette is applied, alpha is composited on black
    (RGBA, LA), and 16-bit / 32-bit greyscale (``I;16``, ``I``) and 16-bit RGB are scaled to 8 bits by
    their type's range (PIL's own ``convert`` would clip them to 255, turning a 16-bit photo white).

    Raises:
        FileNotFoundError: the file is missing.
        CorruptFileError: empty, truncated or not an image; or an image with no pixel (0×0).
    """
    p = Path(path)
    arr = read_image(p)
    if arr.size == 0:
        raise CorruptFileError(p, f"image has no pixels (shape {arr.shape})")
    with Image.open(p) as im:
        mode = im.mode
        if mode == "P" or mode == "PA":
            arr = np.array(im.convert("RGBA"))
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8) * 255
    elif arr.dtype == np.uint16 or mode.startswith("I;16"):
        arr = (arr.astype(np.float64) / 257.0).round().clip(0, 255).astype(np.uint8)
    elif arr.dtype in (np.int32, np.uint32):
        top = 65535 if int(arr.max(initial=0)) <= 65535 else 2**32 - 1
        arr = (arr.astype(np.float64) * (255.0 / top)).round().clip(0, 255).astype(np.uint8)
    elif arr.dtype in (np.float32, np.float64):
        arr = (arr.clip(0, 1) * 255).round().astype(np.uint8)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    if arr.shape[2] == 2:  # LA
        arr = _over_black(arr[..., :1], arr[..., 1:2])
    elif arr.shape[2] == 4:
        arr = _over_black(arr[..., :3], arr[..., 3:4])
    return np.ascontiguousarray(arr[..., :3], dtype=np.uint8)


def _over_black(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    out = rgb.astype(np.float64) * (alpha.astype(np.float64) / 255.0)
    if out.shape[2] == 1:
        out = np.repeat(out, 3, axis=2)
    return out.round().astype(np.uint8)


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
