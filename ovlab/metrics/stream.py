"""Scoring a folder of prediction files end to end: decode in parallel worker processes, accumulate
with numpy, stream (memory flat in the number of images).

What a user waits for in ``ovlab eval`` is decoding and I/O, not the accumulation (~1.5 ms per
ADE-847 map). So each worker process decodes a chunk of items (a (ground truth, prediction) pair
each) and accumulates a partial (K, K) matrix; the parent only adds partial matrices, at most
``2 × workers`` chunks in flight (so memory does not grow with the number of images). Results are
exactly the single-process ones (integer sums commute), and so are the errors: chunks are consumed
in order, so the error raised is that of the first bad item in order, with its own message and type
(an exception raised in a worker is rebuilt in the parent, never a worker traceback).

Label files are read by :func:`read_label_file`: OpenCV decodes lossless single-channel 8/16-bit
PNGs and TIFFs from one read of the file (faster than PIL, no second open for the format check), and
anything else (palette PNGs, RGB, truncated or mislabelled files) goes through PIL's
:func:`ovlab.data.files.read_label_map`, so values and error messages are the same as there.

``ovlab bench eval`` measures it against detectron2's ``SemSegEvaluator.process`` path (PIL decode +
per-image ``np.bincount``, one process).

Convention: ``confusion[i, j]`` = pixels of ground truth ``i`` predicted ``j`` (rows = ground truth),
ignore pixels of the ground truth never counted, as :class:`ovlab.metrics.ConfusionMatrix`.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import pickle
import struct
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ovlab.data.files import read_image, read_label_map


class PairError(ValueError):
    """A (ground truth, prediction) pair that cannot be scored; the message names the file."""


# --------------------------------------------------------------------------------------- decoding
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_PNG_IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"
_TIFF_MAGIC = (b"II*\x00", b"MM\x00*")


def _fast_decode(buf: bytes, suffix: str) -> np.ndarray | None:
    """OpenCV decode of a complete single-channel 8/16-bit PNG or a single-channel TIFF; None for
    anything else (the caller falls back to PIL, which gives the canonical values and errors)."""
    if suffix == ".png":
        # IHDR: width, height (big-endian), bit depth, colour type; 0 = greyscale (no palette, no alpha)
        if len(buf) < 45 or not buf.startswith(_PNG_MAGIC) or buf[12:16] != b"IHDR" or not buf.endswith(_PNG_IEND):
            return None
        w, h = struct.unpack(">II", buf[16:24])
        depth, ctype = buf[24], buf[25]
        if ctype != 0 or depth not in (8, 16):
            return None
        want = (h, w), (np.uint8 if depth == 8 else np.uint16)
    elif suffix in (".tif", ".tiff"):
        if not buf[:4] in _TIFF_MAGIC:
            return None
        want = None
    else:
        return None
    import cv2

    try:
        arr = cv2.imdecode(np.frombuffer(buf, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error:
        return None
    if arr is None or arr.ndim != 2:
        return None
    if want is not None and (arr.shape != want[0] or arr.dtype != want[1]):
        return None
    if want is None and arr.dtype not in (np.uint8, np.uint16):
        return None  # signed / float TIFFs: PIL's reading is the reference
    return arr


def read_label_file(path: str | Path, *, check_format: bool = True) -> np.ndarray:
    """Decode a label file to an (H, W) or (H, W, C) array, the same values and dtype as PIL's
    :func:`ovlab.data.files.read_label_map` (``check_format``) or :func:`ovlab.data.files.read_image`.

    Lossless single-channel 8/16-bit PNGs (complete: IHDR first, IEND last) and single-channel
    8/16-bit TIFFs are decoded by OpenCV from one read of the file; everything else (palette or RGB
    PNGs, other suffixes, empty, truncated or mislabelled files) is read by PIL.

    Returns:
        uint8 or uint16 for greyscale PNG/TIFF; otherwise what PIL gives.

    Raises:
        FileNotFoundError: the file is missing.
        CorruptFileError: empty, truncated, not an image, or (``check_format``) another format than
            its suffix, e.g. a JPEG named ``.png`` (names the file; from PIL's reader).
    """
    p = Path(path)
    try:
        buf = p.read_bytes()
    except OSError:
        buf = b""
    arr = _fast_decode(buf, p.suffix.lower()) if buf else None
    if arr is not None:
        return arr
    return read_label_map(p) if check_format else read_image(p)


# ---------------------------------------------------------------------------------- accumulation
def label_lut(num_classes: int, ignore_labels: Sequence[int], size: int = 65536) -> np.ndarray:
    """Ground-truth value → bin offset: ``v·K`` for a class ``v`` < K, ``K·K`` (a spill bin) for an
    ignore label, −1 for any other value. (size,) int32 (int64 when K² + K ≥ 2³¹)."""
    K = int(num_classes)
    dtype = np.int32 if K * K + K < 2**31 else np.int64
    lut = np.full(max(size, K), -1, dtype=dtype)
    lut[:K] = np.arange(K, dtype=dtype) * K
    for v in ignore_labels:
        if 0 <= v < len(lut):
            lut[v] = K * K
    return lut


def _bin_indices(gt: np.ndarray, pred: np.ndarray, lut: np.ndarray, K: int, name: str,
                 out: np.ndarray | None = None) -> np.ndarray:
    """Flat bin ``lut[gt] + pred`` of every pixel (``K·K`` + anything for ignore pixels), checked;
    written into ``out`` (a 1-D slice of ``gt.size``, dtype of ``lut``) when given."""
    if gt.shape != pred.shape:
        raise PairError(f"{name}: prediction size {pred.shape[1]}x{pred.shape[0]} differs from ground truth "
                        f"size {gt.shape[1]}x{gt.shape[0]}")
    if gt.dtype.kind not in "iu":
        raise PairError(f"{name}: ground truth must hold integer class indices, got dtype {gt.dtype}")
    if pred.dtype.kind not in "iu":
        raise PairError(f"{name}: predictions must hold integer class indices, got dtype {pred.dtype}")
    if gt.dtype.kind == "i" or gt.dtype.itemsize > 2 or np.iinfo(gt.dtype).max >= len(lut):
        gmin, gmax = int(gt.min()), int(gt.max())
        if gmin < 0 or gmax >= len(lut):
            bad = np.unique(gt[(gt < 0) | (gt >= len(lut))])[:10].tolist()
            raise PairError(f"{name}: ground-truth values {bad} are neither class indices 0..{K - 1} nor ignore labels")
    # every value is in range here: mode="clip" never clips, and spares the copy that "raise" makes of out
    idx = np.take(lut, gt.reshape(-1), out=out, mode="clip")
    if int(idx.min()) < 0:
        bad = np.unique(gt.reshape(-1)[idx < 0])[:10].tolist()
        raise PairError(f"{name}: ground-truth values {bad} are neither class indices 0..{K - 1} nor ignore labels")
    p = pred.reshape(-1)
    pmax = int(p.max())
    pmin = int(p.min()) if p.dtype.kind == "i" else 0
    if pmax >= K or pmin < 0:
        bad_mask = ((p >= K) | (p < 0)) & (idx < K * K)
        if bad_mask.any():
            bad = np.unique(p[bad_mask])[:10].tolist()
            raise PairError(f"{name}: prediction values {bad} are not class indices 0..{K - 1}")
        p = np.clip(p, 0, K - 1)  # only at ignore pixels, which land in the spill bins
    np.add(idx, p, out=idx, casting="unsafe")
    return idx


def accumulate(conf: np.ndarray, gt: np.ndarray, pred: np.ndarray, lut: np.ndarray, *, name: str = "") -> None:
    """Add one pair into ``conf`` (K, K) int64 in place: one ``np.bincount`` over ``lut[gt] + pred``
    (:class:`BinAccumulator` does the same for many pairs with one bincount per batch of pixels).

    Args:
        gt: (H, W) integer ground truth (class indices or ignore labels).
        pred: (H, W) integer prediction, 0..K−1 (anything at ignore pixels).
        lut: :func:`label_lut` of the benchmark.
        name: the prediction file, for messages.

    Raises:
        PairError: shapes differ; a ground-truth value that is neither a class nor an ignore label;
            a prediction value outside 0..K−1 at a scored pixel (the message lists the values).
    """
    if gt.size == 0:
        if gt.shape != pred.shape:
            _bin_indices(gt, pred, lut, conf.shape[0], name)
        return
    K = conf.shape[0]
    idx = _bin_indices(gt, pred, lut, K, name)
    conf += np.bincount(idx, minlength=K * K + K)[: K * K].reshape(K, K)


class BinAccumulator:
    """The (K, K) confusion matrix of many pairs, counted by one ``np.bincount`` per ``capacity``
    pixels: the per-pair bin indices (``lut[gt] + pred``, checked as :func:`accumulate`) are written
    into a fixed scratch buffer, so the K²-sized work (the bincount's bins, the matrix addition) is
    paid once per buffer, not once per image (at K = 847 it costs more than the pixels of a 512² map).
    Memory is fixed: ``capacity`` × 8 bytes plus two (K, K) int64 arrays.

    Args:
        lut: :func:`label_lut` of the benchmark (its K is ``num_classes``).
        capacity: pixels per bincount (default 2²² ≈ 12 ADE-size maps, 32 MiB).

    Attributes:
        conf: (K, K) int64, rows = ground truth; complete after :meth:`flush`.
    """

    def __init__(self, num_classes: int, lut: np.ndarray, capacity: int = 1 << 22):
        self.K = int(num_classes)
        self.lut = np.ascontiguousarray(lut, dtype=np.intp)
        self.conf = np.zeros((self.K, self.K), dtype=np.int64)
        self._buf = np.empty(max(1, int(capacity)), dtype=np.intp)
        self._n = 0

    def add(self, gt: np.ndarray, pred: np.ndarray, *, name: str = "") -> None:
        """Count one pair (see :func:`accumulate` for the arguments and the ``PairError`` raised)."""
        n = gt.size
        if n == 0 or n > len(self._buf):
            accumulate(self.conf, gt, pred, self.lut, name=name)
            return
        if self._n + n > len(self._buf):
            self.flush()
        _bin_indices(gt, pred, self.lut, self.K, name, out=self._buf[self._n:self._n + n])
        self._n += n

    def flush(self) -> np.ndarray:
        """Count the buffered pixels into :attr:`conf` and return it."""
        if self._n:
            K = self.K
            self.conf += np.bincount(self._buf[: self._n], minlength=K * K + K)[: K * K].reshape(K, K)
            self._n = 0
        return self.conf

    def reset(self) -> None:
        """Zero the matrix and drop the buffered pixels."""
        self.conf[...] = 0
        self._n = 0


# ------------------------------------------------------------------------------- worker processes
@dataclass(frozen=True)
class _Failure:
    """An exception raised in a worker, carried as (class, args, attributes) and rebuilt in the parent
    (exceptions with their own ``__init__``, e.g. ``CorruptFileError(path, reason)``, do not unpickle)."""

    cls: type
    args: tuple
    state: dict

    @classmethod
    def of(cls, exc: BaseException) -> "_Failure":
        f = cls(type(exc), tuple(exc.args), dict(getattr(exc, "__dict__", {})))
        try:
            pickle.dumps(f)
        except Exception:  # an unpicklable attribute or class: keep the message
            f = cls(PairError, (f"{type(exc).__name__}: {exc}",), {})
        return f

    def rebuild(self) -> BaseException:
        exc = self.cls.__new__(self.cls, *self.args)
        exc.args = self.args
        exc.__dict__.update(self.state)
        return exc


@dataclass(frozen=True)
class _Partial:
    """A chunk's matrix as its non-zero entries (flat index, count): small to send between processes."""

    flat: np.ndarray
    counts: np.ndarray
    n: int


_WORKER: tuple[Callable, BinAccumulator] | None = None


def _init_worker(scorer: Callable, num_classes: int, lut: np.ndarray) -> None:
    """Worker process start: its scorer and its accumulator (reused by every chunk it scores)."""
    global _WORKER
    _WORKER = (scorer, BinAccumulator(num_classes, lut))


def _run_chunk(items: Sequence) -> _Partial | _Failure:
    """Score ``items`` into this worker's zeroed accumulator; the chunk's matrix as its non-zero
    entries, or the exception as a :class:`_Failure`."""
    scorer, acc = _WORKER
    acc.reset()
    try:
        for item in items:
            scorer(acc, item)
        conf = acc.flush()
    except Exception as exc:  # noqa: BLE001 - rebuilt and raised in the parent
        return _Failure.of(exc)
    flat = np.flatnonzero(conf)
    return _Partial(flat, conf.reshape(-1)[flat], len(items))


def default_workers() -> int:
    """Decoding processes of ``ovlab eval`` by default: the CPUs this process may use, at most 4
    (1 = in-process)."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        n = os.cpu_count() or 1
    return max(1, min(4, n))


def chunk_size(items: int, workers: int, most: int = 32) -> int:
    """Items per task: about 4 tasks per worker (so the workers finish together), at most ``most``."""
    return max(1, min(most, -(-items // (4 * max(1, workers)))))


def score_items(
    items: Sequence,
    scorer: Callable[[BinAccumulator, object], None],
    num_classes: int,
    lut: np.ndarray,
    *,
    workers: int | None = None,
    chunk: int | None = None,
    progress: bool = True,
    desc: str = "eval",
) -> np.ndarray:
    """The (K, K) int64 confusion matrix of ``items``, each counted by ``scorer(acc, item)``, in
    worker processes.

    Args:
        items: anything picklable, one (ground truth, prediction) pair each.
        scorer: picklable callable that decodes one item and counts it with
            :meth:`BinAccumulator.add`; it raises for a bad item.
        num_classes: K.
        lut: :func:`label_lut` of the benchmark (the accumulators' table).
        workers: decoding processes (default :func:`default_workers`); 0 or 1 = in this process.
        chunk: items per task (default :func:`chunk_size`); each task returns one partial matrix.

    Returns:
        (K, K) int64, rows = ground truth, bit for bit the in-process sum.

    Raises:
        whatever ``scorer`` raises for the first bad item in order, with the same type and message
        whatever ``workers`` is; ``PairError`` when a worker process dies (killed for memory).
    """
    K = int(num_classes)
    workers = default_workers() if workers is None else max(1, int(workers))
    chunk = chunk_size(len(items), workers) if chunk is None else max(1, int(chunk))
    tasks = [items[i:i + chunk] for i in range(0, len(items), chunk)]
    bar = tqdm(total=len(items), desc=desc, unit="img", disable=not progress)
    try:
        if workers == 1 or len(tasks) <= 1:
            acc = BinAccumulator(K, lut)
            for task in tasks:
                for item in task:
                    scorer(acc, item)
                bar.update(len(task))
            return acc.flush()
        conf = np.zeros((K, K), dtype=np.int64)
        flat = conf.reshape(-1)
        # Forked workers inherit the scorer and the table (no re-import, nothing pickled but the items;
        # spawn/forkserver would re-run a user's unguarded script). They must not touch OpenCV's thread
        # pool (cv2.setNumThreads in a child of a parent that used it deadlocks): greyscale PNG/TIFF
        # decoding does not use it. cv2 is imported here, before the fork, not in each child.
        import cv2  # noqa: F401

        ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else None
        pool = ProcessPoolExecutor(max_workers=min(workers, len(tasks)), mp_context=ctx,
                                   initializer=_init_worker, initargs=(scorer, K, lut))
        try:
            todo = iter(tasks)
            pending: deque = deque()
            for task in todo:  # at most 2 chunks per worker in flight: memory flat in len(items)
                pending.append(pool.submit(_run_chunk, task))
                if len(pending) >= 2 * workers:
                    break
            while pending:
                part = pending.popleft().result()
                if isinstance(part, _Failure):
                    raise part.rebuild()
                flat[part.flat] += part.counts
                bar.update(part.n)
                task = next(todo, None)
                if task is not None:
                    pending.append(pool.submit(_run_chunk, task))
        except BrokenProcessPool:
            raise PairError(f"{desc}: a decoding worker process died (out of memory?); "
                            "rerun with --workers 1 to score in one process") from None
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        return conf
    finally:
        bar.close()


# -------------------------------------------------------------------------- (gt, file) pair lists
@dataclass(frozen=True)
class _GtFileScorer:
    load_gt: Callable[[object], np.ndarray]
    pred_decoder: Callable[[np.ndarray, Path], np.ndarray] | None

    def __call__(self, acc: BinAccumulator, item) -> None:
        gt_item, pred_file = item
        gt = self.load_gt(gt_item)
        pred = read_label_file(pred_file)
        if pred.ndim != 2:
            raise PairError(f"{pred_file}: predictions must be single-channel index PNGs, got shape {pred.shape}")
        if self.pred_decoder is not None:
            pred = self.pred_decoder(pred, pred_file)
        acc.add(gt, pred, name=str(pred_file))


def stream_confusion(
    items: Sequence[tuple[object, str | Path]],
    load_gt: Callable[[object], np.ndarray],
    num_classes: int,
    ignore_labels: Sequence[int],
    *,
    pred_decoder: Callable[[np.ndarray, Path], np.ndarray] | None = None,
    workers: int | None = None,
    chunk: int | None = None,
    progress: bool = True,
    desc: str = "eval",
) -> np.ndarray:
    """The (K, K) confusion matrix of every (ground truth, prediction file) pair of ``items``.

    Args:
        items: ``(gt_item, prediction_path)`` pairs; ``load_gt(gt_item)`` decodes the ground truth to an
            (H, W) integer map (e.g. :meth:`ovlab.data.benchmarks.Benchmark.load_gt` on a record).
        load_gt: picklable callable (a bound method of a benchmark is).
        num_classes: K.
        ignore_labels: ground-truth values never counted (each ≥ K).
        pred_decoder: optional picklable ``(raw, path) → indices`` applied to each decoded prediction
            (e.g. a dataset's own label encoding → 0..K−1).
        workers, chunk: see :func:`score_items`.

    Returns:
        (K, K) int64, rows = ground truth.

    Raises:
        PairError: see :func:`accumulate` (the first bad pair in order).
        CorruptFileError, FileNotFoundError: a file cannot be decoded (names it).
    """
    K = int(num_classes)
    lut = label_lut(K, [int(v) for v in ignore_labels])
    return score_items(list(items), _GtFileScorer(load_gt, pred_decoder), K, lut, workers=workers, chunk=chunk,
                       progress=progress, desc=desc)
