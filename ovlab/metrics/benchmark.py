"""``ovlab bench eval``: scoring a prediction folder end to end, ovlab vs detectron2's path.

Both read the same files: ``--images`` (default 2,000) ADE-847-size pairs (short side 512, 847
classes; prepared uint16 TIFF ground truth, uint16 PNG predictions) made by
:func:`ovlab.data.scale.make_ade847_scale`.

* detectron2's ``SemSegEvaluator.process`` path, one process: per image, PIL decode of both files to
  int64 arrays, ignore → K, ``np.bincount((K+1)·pred + gt, minlength=(K+1)²)`` added to a
  (K+1)² matrix; then the summary.
* ovlab: :func:`ovlab.metrics.evaluate.evaluate_predictions` with SG-IoU on (the default association
  map of ADE-847): parallel decoding workers, numpy accumulation, streaming (:mod:`ovlab.metrics.stream`).

It checks both give the same confusion matrix, prints the throughput of each and the ratio (issue
target: ≥ 2× on 2 cores, SG-IoU on), and writes the figures to ``--out`` as JSON.
"""

from __future__ import annotations

import argparse
import json
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
    ap.add_argument("--workers", type=int, default=None, help="ovlab's decoding processes (default: the CPUs)")
    ap.add_argument("--data", type=Path, default=None, help="reuse a folder made by a previous run")
    ap.add_argument("--out", type=Path, default=Path("results/bench/eval.json"))
    args = ap.parse_args(argv)

    from ovlab.atomic import write_json
    from ovlab.data.scale import make_ade847_scale
    from ovlab.metrics.evaluate import evaluate_predictions

    tmp = None
    if args.data is None:
        tmp = tempfile.TemporaryDirectory(prefix="ovlab-bench-eval-")
        args.data = Path(tmp.name)
    t = time.perf_counter()
    info = make_ade847_scale(args.data, images=args.images)
    t_make = time.perf_counter() - t
    root, preds = Path(info["root"]), Path(info["predictions"])
    gt_files = sorted((root / "annotations_detectron2" / "validation").glob("*.tif"))[: args.images]
    pred_files = [preds / f"{g.stem}.png" for g in gt_files]

    t = time.perf_counter()
    c_d2 = detectron2_path(gt_files, pred_files, 847)
    t_d2 = time.perf_counter() - t
    t = time.perf_counter()
    res = evaluate_predictions("ade20k_847", preds, root, sg=True, progress=False)
    t_ours = time.perf_counter() - t
    same = bool(np.array_equal(c_d2, res.confusion))
    n = len(gt_files)
    figures = {
        "images": n, "num_classes": 847, "sg_iou": True, "identical_confusion": same,
        "detectron2_path_s": round(t_d2, 2), "ovlab_s": round(t_ours, 2),
        "detectron2_images_per_s": round(n / t_d2, 1), "ovlab_images_per_s": round(n / t_ours, 1),
        "ratio": round(t_d2 / t_ours, 2), "data_made_s": round(t_make, 1),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    print(f"ovlab bench eval: {n} ADE-847-size pairs (847 classes, SG-IoU on)")
    print(f"  detectron2 SemSegEvaluator path (PIL + per-image np.bincount, 1 process): "
          f"{n / t_d2:7.1f} img/s ({t_d2:.1f} s)")
    print(f"  ovlab eval (parallel decode, numpy accumulation, streaming):               "
          f"{n / t_ours:7.1f} img/s ({t_ours:.1f} s)")
    print(f"  ratio {t_d2 / t_ours:.2f}x (target >= 2x); identical confusion matrices: {same}")
    write_json(args.out, figures)
    print(json.dumps(figures))
    if tmp is not None:
        tmp.cleanup()
    return 0 if same else 1
