"""Atomic file writes: a reader never sees a half-written output.

Every file the pipeline produces goes through these helpers: the content is written to a
temporary file in the destination folder, flushed to disk, then renamed over the target
(``os.replace`` is atomic on POSIX within one filesystem). If anything raises before the
rename, the temporary file is removed and the previous target, if any, is left untouched.

Files get the permissions an ordinary ``open`` would give them (``0o666`` less the process umask),
not ``mkstemp``'s private ``0o600``. A kill between the write and the rename can leave a
``.<name>.<random>.tmp`` file; :func:`remove_orphans` deletes those (the trainer calls it at start).
A destination that cannot be written (read-only folder, full disk) raises
:class:`OutputNotWritableError`, naming the folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import IO, Any, Iterator


class OutputNotWritableError(OSError):
    """The destination folder cannot be written (read-only, missing permission, disk full).

    The message names the file and the cause; the previous content of the file is untouched.
    """


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _not_writable(target: Path, exc: OSError) -> OutputNotWritableError:
    import errno

    why = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exceeded",
           errno.EROFS: "the file system is read-only", errno.EACCES: "permission denied",
           errno.EPERM: "permission denied"}.get(exc.errno, exc.strerror or str(exc))
    err = OutputNotWritableError(f"cannot write {target}: {why} (folder {target.parent})")
    err.errno = exc.errno
    return err


def remove_orphans(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files a killed :func:`atomic_open` left in ``folder`` (not recursive).

    Only names of the form ``.<name>.<random>.tmp`` are touched. Returns the removed paths.
    """
    d = Path(folder)
    if not d.is_dir():
        return []
    removed = []
    for f in d.glob(".*.tmp"):
        with contextlib.suppress(FileNotFoundError):
            f.unlink()
            removed.append(f)
    return removed


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", **kwargs: Any) -> Iterator[IO]:
    """Open a temporary file that replaces ``path`` only when the ``with`` block succeeds.

    Args:
        path: destination file; its parent folders are created.
        mode: ``"w"`` (text) or ``"wb"`` (binary).
        **kwargs: passed to :func:`open` (e.g. ``encoding``).

    Raises:
        ValueError: if ``mode`` is not a write mode.
        OutputNotWritableError: the folder cannot be created or written (read-only, full disk).
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open supports modes 'w' and 'wb', got {mode!r}")
    target = Path(path)
    if "b" not in mode:
        kwargs.setdefault("encoding", "utf-8")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        os.fchmod(fd, 0o666 & ~_umask())
    except OSError as exc:
        raise _not_writable(target, exc) from None
    try:
        with os.fdopen(fd, mode, **kwargs) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and not isinstance(exc, OutputNotWritableError) and exc.errno is not None:
            import errno

            if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM):
                raise _not_writable(target, exc) from None
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


class LockedError(BlockingIOError):
    """Another process holds the lock file; the message names it and that process's id."""


@contextlib.contextmanager
def exclusive_lock(path: str | os.PathLike, what: str = "this output") -> Iterator[Path]:
    """Hold an exclusive advisory lock (``fcntl.flock``) on ``path`` for the ``with`` block.

    The kernel releases it when the process ends, even by ``kill -9``, so a stale lock file never
    blocks a later run. The file holds the holder's pid (for the message).

    Raises:
        LockedError: another process holds it (does not wait).
        OutputNotWritableError: the lock file cannot be created.
    """
    import fcntl

    p = Path(path)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(p, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as exc:
        raise _not_writable(p, exc) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            raise LockedError(f"{what} is in use by another process (pid {holder}; lock file {p}); "
                              "wait for it to finish or stop it") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield p
    finally:
        os.close(fd)
