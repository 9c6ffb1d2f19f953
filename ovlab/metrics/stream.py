"""Scoring a folder of prediction files end to end: decode in parallel worker processes, accumulate
with numpy, stream (memory flat in the number of images).

What a user waits for in ``ovlab eval`` is decoding and I/O, not the accumulation (~1.5 ms per
ADE-847 map). So each worker process decodes its chunk of (ground truth, prediction) pairs and
accumulates a partial (K, K) matrix; the parent only sums partial matrices (one per chunk). Results
are exactly the single-process ones (integer sums commute). ``ovlab bench eval`` measures it against
detectron2's ``SemSegEvaluator.process`` path (PIL decode + per-image ``np.bincount``, one process).

Convention: ``confusion[i, j]`` = pixels of ground truth ``i`` predicted ``j`` (rows = ground truth),
ignore pixels of the ground truth never counted, as :class:`ovlab.metrics.ConfusionMatrix`.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ovlab.data.files import read_label_map


class PairError(ValueError):
    """A (ground truth, prediction) pair that cannot be scored; the message names the file."""


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


def accumulate(conf: np.ndarray, gt: np.ndarray, pred: np.ndarray, lut: np.ndarray, *, name: str = "") -> None:
    """Add one pair into ``conf`` (K, K) int64 in place.

    Args:
        gt: (H, W) integer ground truth (class indices or ignore labels).
        pred: (H, W) integer prediction, 0..K−1 (anything at ignore pixels).
        lut: :func:`label_lut` of the benchmark.
        name: the prediction file, for messages.

    Raises:
        PairError: shapes differ; a ground-truth value that is neither a class nor an ignore label;
            a prediction value outside 0..K−1 at a scored pixel (the message lists the values).
    """
    K = conf.shape[0]
    if gt.shape != pred.shape:
        raise PairError(f"{name}: prediction size {pred.shape[1]}x{pred.shape[0]} differs from ground truth "
                        f"size {gt.shape[1]}x{gt.shape[0]}")
    if gt.size == 0:
        return
    gmin, gmax = int(gt.min()), int(gt.max())
    if gmin < 0 or gmax >= len(lut):
        bad = np.unique(gt[(gt < 0) | (gt >= len(lut))])[:10].tolist()
        raise PairError(f"{name}: ground-truth values {bad} are neither class indices 0..{K - 1} nor ignore labels")
    idx = lut[gt]
    if int(idx.min()) < 0:
        bad = np.unique(gt[idx < 0])[:10].tolist()
        raise PairError(f"{name}: ground-truth values {bad} are neither class indices 0..{K - 1} nor ignore labels")
    if pred.dtype.kind not in "iu":
        raise PairError(f"{name}: predictions must hold integer class indices, got dtype {pred.dtype}")
    pmax = int(pred.max())
    pmin = int(pred.min()) if pred.dtype.kind == "i" else 0
    if pmax >= K or pmin < 0:
        bad_mask = ((pred >= K) | (pred < 0)) & (idx < K * K)
        if bad_mask.any():
            bad = np.unique(pred[bad_mask])[:10].tolist()
            raise PairError(f"{name}: prediction values {bad} are not class indices 0..{K - 1}")
        pred = np.clip(pred, 0, K - 1)  # only at ignore pixels, which land in the spill bins
    idx += pred.astype(idx.dtype, copy=False)
    conf += np.bincount(idx.ravel(), minlength=K * K + K)[: K * K].reshape(K, K)


def _score_chunk(args) -> tuple[np.ndarray, int]:
    load_gt, items, K, ignore, pred_decoder = args
    conf = np.zeros((K, K), dtype=np.int64)
    lut = label_lut(K, ignore)
    for gt_item, pred_file in items:
        gt = load_gt(gt_item)
        pred = read_label_map(pred_file)
        if pred.ndim != 2:
            raise PairError(f"{pred_file}: predictions must be single-channel index PNGs, got shape {pred.shape}")
        if pred_decoder is not None:
            pred = pred_decoder(pred, pred_file)
        accumulate(conf, gt, pred, lut, name=str(pred_file))
    return conf, len(items)


def default_workers() -> int:
    """Worker processes for decoding: the CPUs this process may use, at most 8 (1 = in-process)."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        n = os.cpu_count() or 1
    return max(1, min(8, n))


def stream_confusion(
    items: Sequence[tuple[object, str | Path]],
    load_gt: Callable[[object], np.ndarray],
    num_classes: int,
    ignore_labels: Sequence[int],
    *,
    pred_decoder: Callable[[np.ndarray, Path], np.ndarray] | None = None,
    workers: int | None = None,
    chunk: int = 16,
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
        workers: decoding processes (default :func:`default_workers`); 1 decodes in this process.
        chunk: pairs per task (each task returns one partial matrix).

    Returns:
        (K, K) int64, rows = ground truth.

    Raises:
        PairError: see :func:`accumulate` (the first bad pair in order of completion).
        CorruptFileError, FileNotFoundError: a file cannot be decoded (names it).
    """
    K = int(num_classes)
    ignore = tuple(int(v) for v in ignore_labels)
    workers = default_workers() if workers is None else max(1, int(workers))
    tasks = [(load_gt, list(items[i:i + chunk]), K, ignore, pred_decoder) for i in range(0, len(items), chunk)]
    conf = np.zeros((K, K), dtype=np.int64)
    bar = tqdm(total=len(items), desc=desc, unit="img", disable=not progress)
    try:
        if workers == 1 or len(tasks) <= 1:
            for task in tasks:
                part, n = _score_chunk(task)
                conf += part
                bar.update(n)
            return conf
        ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else None
        with ProcessPoolExecutor(max_workers=min(workers, len(tasks)), mp_context=ctx) as pool:
            for part, n in pool.map(_score_chunk, tasks):
                conf += part
                bar.update(n)
        return conf
    finally:
        bar.close()
