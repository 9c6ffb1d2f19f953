"""The part every dataset preparation shares: one job per source file, run resumably in parallel.

A preparation is a list of :class:`Job`: a picklable top-level function, its source files and the
output files it writes. :func:`run_jobs` skips a job whose outputs all exist (every output is
written atomically through :mod:`ovlab.atomic`, so an existing file is a finished one: a killed
run resumes where it stopped and a second run does nothing), checks the sources of the others,
and runs them over a process pool with a tqdm bar. A missing or undecodable source file is one
:class:`PrepareError` naming it; the temporary file of the job that failed is removed by the
atomic writer, so nothing half-written is left.
"""

from __future__ import annotations

import io
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from tqdm.auto import tqdm

from ovlab.atomic import write_bytes
from ovlab.data.errors import CorruptFileError


class PrepareError(RuntimeError):
    """A source file is missing or cannot be decoded, or the source root lacks a required folder.

    The message names the file (and the dataset and the layout expected, when it is a folder).
    """


@dataclass(frozen=True)
class Job:
    """One unit of work: ``func(*args)`` reads ``sources`` and writes ``outputs`` (all atomically).

    ``func`` must be a module-level function (it is sent to worker processes).
    """

    func: Callable
    args: tuple
    sources: tuple[Path, ...]
    outputs: tuple[Path, ...]


@dataclass
class PrepareReport:
    """What :func:`run_jobs` did.

    Attributes:
        dataset: the preparation's name.
        done: jobs run now.
        skipped: jobs whose outputs already existed.
        outputs: folders written (for the summary).
        notes: anything the user should know (links made, files kept).
    """

    dataset: str
    done: int = 0
    skipped: int = 0
    outputs: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"dataset": self.dataset, "done": self.done, "skipped": self.skipped,
                "outputs": self.outputs, "notes": self.notes}


def _call(job: Job) -> None:
    try:
        job.func(*job.args)
    except CorruptFileError as exc:
        raise PrepareError(str(exc)) from None
    except FileNotFoundError as exc:
        raise PrepareError(f"{exc} (source of {', '.join(map(str, job.outputs))})") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise PrepareError(f"{', '.join(map(str, job.sources))}: {exc}") from None


def run_jobs(jobs: Sequence[Job], report: PrepareReport, *, workers: int = 1, overwrite: bool = False,
             progress: bool = True) -> PrepareReport:
    """Run the jobs whose outputs are not all there yet.

    Args:
        jobs: the work list (see :class:`Job`).
        report: counts are added to it.
        workers: processes (``1``: in this process, in order).
        overwrite: run every job, even finished ones.
        progress: show the tqdm bar.

    Raises:
        PrepareError: a missing source file (every missing one is checked before any work starts,
            the first 5 named) or one that cannot be decoded (named).
    """
    todo = [j for j in jobs if overwrite or not all(o.is_file() for o in j.outputs)]
    report.skipped += len(jobs) - len(todo)
    missing = [s for j in todo for s in j.sources if not s.is_file()]
    if missing:
        raise PrepareError(f"{report.dataset}: {len(missing)} source file(s) missing, e.g. "
                           + ", ".join(map(str, missing[:5])))
    bar = tqdm(total=len(todo), desc=f"prepare {report.dataset}", unit="file", disable=not progress)
    try:
        if workers <= 1 or len(todo) <= 1:
            for j in todo:
                _call(j)
                bar.update()
        else:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                futures = [pool.submit(_call, j) for j in todo]
                try:
                    for f in as_completed(futures):
                        f.result()
                        bar.update()
                except BaseException:
                    for f in futures:
                        f.cancel()
                    raise
    finally:
        bar.close()
    report.done += len(todo)
    return report


# ---- writers and readers the dataset modules share --------------------------------------------

def save_label(path: Path, label: np.ndarray) -> Path:
    """Write a label map atomically: ``.png`` (uint8, or 16-bit when values exceed 255) or ``.tif``
    (uint16, as Mask2Former's ADE-847 and SAN's PC-459 maps).

    Raises:
        ValueError: values outside the file type's range.
    """
    from PIL import Image

    path = Path(path)
    if path.suffix == ".tif":
        if label.min(initial=0) < 0 or label.max(initial=0) > 65535:
            raise ValueError(f"{path}: label values outside uint16")
        im, fmt = Image.fromarray(label.astype(np.uint16)), "TIFF"
    else:
        hi = int(label.max(initial=0))
        if label.min(initial=0) < 0 or hi > 65535:
            raise ValueError(f"{path}: label values outside 0..65535")
        im = Image.fromarray(label.astype(np.uint8 if hi <= 255 else np.uint16))
        fmt = "PNG"
    buf = io.BytesIO()
    im.save(buf, format=fmt)
    return write_bytes(path, buf.getvalue())


def save_image(path: Path, rgb: np.ndarray) -> Path:
    """Write an RGB uint8 image atomically; JPEG with PIL's default quality (as the standard scripts)."""
    from PIL import Image

    buf = io.BytesIO()
    fmt = "JPEG" if Path(path).suffix.lower() in (".jpg", ".jpeg") else "PNG"
    Image.fromarray(rgb).save(buf, format=fmt)
    return write_bytes(path, buf.getvalue())


def lut_apply(values: np.ndarray, lut: np.ndarray, fill: int) -> np.ndarray:
    """``lut[values]`` with values beyond the table mapped to ``fill``."""
    v = values.astype(np.int64)
    out = np.full(v.shape, fill, dtype=lut.dtype)
    ok = (v >= 0) & (v < len(lut))
    out[ok] = lut[v[ok]]
    return out


def link_folder(src: Path, dst: Path, mode: str, report: PrepareReport) -> None:
    """Make ``dst`` show the files of the folder ``src`` (images the preparation does not change).

    ``mode``: ``symlink`` (one link to the folder, the default), ``copy`` (file by file, atomically,
    resumable) or ``none``. Nothing is done when ``dst`` already is ``src`` or exists.

    Raises:
        PrepareError: ``src`` is not a folder.
    """
    src, dst = Path(src), Path(dst)
    if not src.is_dir():
        raise PrepareError(f"{src}: folder not found")
    if mode == "none" or (dst.exists() and dst.resolve() == src.resolve()):
        return
    if mode == "symlink":
        if dst.is_symlink() or dst.exists():
            return
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = dst.with_name(f".{dst.name}.link.tmp")
        if tmp.is_symlink():
            tmp.unlink()
        os.symlink(src.resolve(), tmp, target_is_directory=True)
        os.replace(tmp, dst)
        report.notes.append(f"linked {dst} -> {src.resolve()}")
    elif mode == "copy":
        n = 0
        for f in sorted(src.rglob("*")):
            if f.is_file():
                out = dst / f.relative_to(src)
                if not out.is_file():
                    write_bytes(out, f.read_bytes())
                    n += 1
        report.notes.append(f"copied {n} file(s) from {src} to {dst}")
    else:
        raise ValueError(f"link mode must be symlink, copy or none, got {mode!r}")


def copy_file(src: Path, dst: Path, report: PrepareReport) -> None:
    """Copy one small file (a JSON) atomically unless ``dst`` exists or is ``src``."""
    if dst.exists() and (dst.resolve() == src.resolve() or dst.is_file()):
        return
    write_bytes(dst, src.read_bytes())
    report.notes.append(f"copied {src.name} to {dst}")


def split_list(path: Path) -> list[str] | None:
    """Names in a split file (one per line, blank lines skipped), or ``None`` if it does not exist."""
    if not path.is_file():
        return None
    return [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]


def require_dir(path: Path, dataset: str, layout: str) -> Path:
    """``path`` if it is a folder.

    Raises:
        PrepareError: it is not (names it and draws the raw layout expected).
    """
    if not path.is_dir():
        raise PrepareError(f"{dataset}: source folder not found: {path}\nExpected raw layout:\n{layout.rstrip()}")
    return path
