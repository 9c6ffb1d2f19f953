"""``ovlab bench eval``: scoring a prediction folder end to end, ovlab vs detectron2's path.

Both read the same files: ``--images`` (default 2,000) ADE-847-size pairs (short side 512, 847
classes; prepared uint16 TIFF ground truth, uint16 PNG predictions) made by
:func:`ovlab.data.scale.make_ade847_scale`.

* detectron2's ``SemSegEvaluator.process`` path, one process: per image, PIL decode of both files to
  int64 arrays, ignore → K, ``np.bincount((K+1)·pred + gt, minlength=(K+1)²)`` added to a
  (K+1)² matrix; then the summary.
* ovlab: :func:`ovlab.metrics.evaluate.evaluate_predictions` with SG-IoU on (the default association
  map of ADE-847): ``--workers`` decoding processes (default: the CPUs, at most 4), OpenCV decoding,
  one bincount per 2²² pixels, streaming (:mod:`ovlab.metrics.stream`); and, for reference, the same
  in one process (``workers=1``; ``--no-in-process`` skips it).

It checks that all give the same confusion matrix (bit for bit), prints the throughput of each, the
speed-up over detectron2's path (issue 19 target: ≥ 2× on 2 cores, SG-IoU on) and the load average
of the machine (a shared machine's figures move with it), and writes the figures to ``--out`` as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np


def detectron2_path(gt_files: list[Path], pred_files: list[Path], num_classes: int, ignore: int = 65535) -> np.ndarray:
    """detectron2 ``SemSegEvaluator.process`` accumulation on files: (K, K) int64, rows = ground truth."""
    from PIL import Image

    K = num_classes
    conf = np.zeros((K + 1, K + 1), dtype=np.int64)
    for g_file, p_file in zip(gt_files, pred_files):
        with Image.open(p_file) as im:
            pred = np.array(im, dtype=np.int64)
        with Image.open(g_file) as im:
            gt = np.array(im, dtype=np.int64)
        gt[gt == ignore] = K
        conf += np.bincount((K + 1) * pred.reshape(-1) + gt.reshape(-1), minlength=(K + 1) ** 2).reshape(K + 1, K + 1)
    return conf[:K, :K].T.copy()  # detectron2 stores rows = prediction


def bench_eval(argv: list[str]) -> int:
    """Print and write the end-to-end throughputs; returns 0, or 1 when the matrices differ."""
    ap = argparse.ArgumentParser(prog="ovlab bench eval", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--workers", type=int, default=None,
                    help="ovlab's decoding processes (default: the CPUs, at most 4)")
    ap.add_argument("--no-in-process", action="store_true", help="skip the one-process ovlab run")
    ap.add_argument("--data", type=Path, default=None, help="reuse a folder made by a previous run")
    ap.add_argument("--out", type=Path, default=Path("results/bench/eval.json"))
    args = ap.parse_args(argv)

    from ovlab.atomic import write_json
    from ovlab.data.scale import make_ade847_scale
    from ovlab.metrics.evaluate import evaluate_predictions
    from ovlab.metrics.stream import default_workers

    workers = default_workers() if args.workers is None else max(1, args.workers)
    tmp = None
    if args.data is None:
        tmp = tempfile.TemporaryDirectory(prefix="ovlab-bench-eval-")
        args.data = Path(tmp.name)
    load_before = os.getloadavg()
    t = time.perf_counter()
    info = make_ade847_scale(args.data, images=args.images)
    t_make = time.perf_counter() - t
    root, preds = Path(info["root"]), Path(info["predictions"])
    gt_files = sorted((root / "annotations_detectron2" / "validation").glob("*.tif"))[: args.images]
    pred_files = [preds / f"{g.stem}.png" for g in gt_files]
    n = len(gt_files)

    t = time.perf_counter()
    c_d2 = detectron2_path(gt_files, pred_files, 847)
    t_d2 = time.perf_counter() - t
    t = time.perf_counter()
    res = evaluate_predictions("ade20k_847", preds, root, sg=True, progress=False, workers=workers)
    t_ours = time.perf_counter() - t
    same = bool(np.array_equal(c_d2, res.confusion))
    t_one = None
    if not args.no_in_process and workers > 1:
        t = time.perf_counter()
        one = evaluate_predictions("ade20k_847", preds, root, sg=True, progress=False, workers=1)
        t_one = time.perf_counter() - t
        same = same and bool(np.array_equal(one.confusion, res.confusion))
    load_after = os.getloadavg()
    figures = {
        "images": n, "num_classes": 847, "sg_iou": True, "workers": workers, "cpus": os.cpu_count(),
        "identical_confusion": same,
        "detectron2_path_s": round(t_d2, 2), "ovlab_s": round(t_ours, 2),
        "detectron2_images_per_s": round(n / t_d2, 1), "ovlab_images_per_s": round(n / t_ours, 1),
        "ratio": round(t_d2 / t_ours, 2),
        "ovlab_one_process_s": None if t_one is None else round(t_one, 2),
        "ratio_one_process": None if t_one is None else round(t_d2 / t_one, 2),
        "data_made_s": round(t_make, 1),
        "load_average_before": [round(v, 2) for v in load_before],
        "load_average_after": [round(v, 2) for v in load_after],
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    print(f"ovlab bench eval: {n} ADE-847-size pairs (847 classes, SG-IoU on), {os.cpu_count()} CPUs, "
          f"load average {load_before[0]:.2f} before, {load_after[0]:.2f} after")
    print(f"  detectron2 SemSegEvaluator path (PIL + per-image np.bincount, 1 process): "
          f"{n / t_d2:7.1f} img/s ({t_d2:.1f} s)")
    print(f"  ovlab eval, {workers} decoding workers:                                    "
          f"{n / t_ours:7.1f} img/s ({t_ours:.1f} s)")
    if t_one is not None:
        print(f"  ovlab eval, 1 process:                                                 "
              f"{n / t_one:7.1f} img/s ({t_one:.1f} s)")
    print(f"  speed-up {t_d2 / t_ours:.2f}x (target >= 2x)"
          + (f", {t_d2 / t_one:.2f}x in one process" if t_one is not None else "")
          + f"; identical confusion matrices: {same}")
    write_json(args.out, figures)
    print(json.dumps(figures))
    if tmp is not None:
        tmp.cleanup()
    return 0 if same else 1
