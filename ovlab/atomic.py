"""Atomic file writes: a reader never sees a half-written output.

Every file the pipeline produces goes through these helpers: the content is written to a
temporary file in the destination folder, flushed to disk, then renamed over the target
(``os.replace`` is atomic on POSIX within one filesystem). If anything raises before the
rename, the temporary file is removed and the previous target, if any, is left untouched.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import IO, Any, Iterator


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", **kwargs: Any) -> Iterator[IO]:
    """Open a temporary file that replaces ``path`` only when the ``with`` block succeeds.

    Args:
        path: destination file; its parent folders are created.
        mode: ``"w"`` (text) or ``"wb"`` (binary).
        **kwargs: passed to :func:`open` (e.g. ``encoding``).

    Raises:
        ValueError: if ``mode`` is not a write mode.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open supports modes 'w' and 'wb', got {mode!r}")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    if "b" not in mode:
        kwargs.setdefault("encoding", "utf-8")
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, mode, **kwargs) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; returns the path."""
    with atomic_open(path, "w") as fh:
        fh.write(text)
    return Path(path)


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns the path."""
    with atomic_open(path, "wb") as fh:
        fh.write(data)
    return Path(path)


def write_json(path: str | os.PathLike, obj: Any, *, indent: int | None = 2, sort_keys: bool = False) -> Path:
    """Serialise ``obj`` to JSON (UTF-8, trailing newline) and write it atomically.

    The whole document is serialised *before* the file is touched, so an object that
    cannot be serialised raises ``TypeError`` and leaves the destination as it was.
    """
    text = json.dumps(obj, indent=indent, sort_keys=sort_keys, ensure_ascii=False, allow_nan=False) + "\n"
    return write_text(path, text)


def write_with(path: str | os.PathLike, writer, *, binary: bool = True) -> Path:
    """Call ``writer(fh)`` on a temporary file and move it to ``path`` if it returns.

    Use it for third-party serialisers (``PIL.Image.save``, ``pandas.DataFrame.to_csv``,
    ``torch.save``) that accept an open file object.
    """
    with atomic_open(path, "wb" if binary else "w") as fh:
        writer(fh)
    return Path(path)
