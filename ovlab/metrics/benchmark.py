"""``ovlab bench eval``: our confusion engine vs the per-image numpy ``bincount`` path.

detectron2's ``SemSegEvaluator`` and SCAN's evaluator accumulate per image
``np.bincount((K+1)·pred + gt, minlength=(K+1)²)`` into a (K+1)² matrix. We time that path and
:class:`~ovlab.metrics.ConfusionMatrix` (torch ``bincount`` over a batch of maps) on the same
847-class 512×512 label maps in the same run, check both give the same matrix, and time the
SG-IoU summary on top of the plain summary. Targets (issue 3): ≥ 3× the numpy path; SG-IoU adding
≤ 5 % to the evaluation.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from ovlab.metrics.association import load_association_map
from ovlab.metrics.confusion import ConfusionMatrix
from ovlab.metrics.scores import summarize


def _numpy_path(gts, preds, K):
    conf = np.zeros((K + 1, K + 1), dtype=np.int64)
    for g, p in zip(gts, preds):
        g = g.astype(np.int64)
        g[g == 65535] = K
        conf += np.bincount((K + 1) * p.reshape(-1).astype(np.int64) + g.reshape(-1), minlength=(K + 1) ** 2).reshape(K + 1, K + 1)
    return conf


def _ours(gts, preds, K, batch, device):
    cm = ConfusionMatrix(K, device=device)
    for i in range(0, len(gts), batch):
        cm.update(torch.from_numpy(np.stack(gts[i:i + batch])), torch.from_numpy(np.stack(preds[i:i + batch])))
    if cm.device.type == "cuda":
        torch.cuda.synchronize()
    return cm.numpy()


def bench_eval(argv: list[str]) -> int:
    """Print the speed ratio (ours vs numpy) and the SG-IoU overhead; return 0."""
    ap = argparse.ArgumentParser(prog="ovlab bench eval", description=__doc__)
    ap.add_argument("--images", type=int, default=32)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    K = 847
    rng = np.random.default_rng(0)
    gts, preds = [], []
    for _ in range(args.images):  # blocky maps with 10 % ignore and 30 % errors
        g = rng.integers(0, K, (args.size // 16, args.size // 16)).repeat(16, 0).repeat(16, 1).astype(np.uint16)
        g[rng.random(g.shape) < 0.1] = 65535
        p = np.where(rng.random(g.shape) < 0.3, rng.integers(0, K, g.shape), np.where(g == 65535, 0, g)).astype(np.uint16)
        gts.append(g)
        preds.append(p)
    fathers = load_association_map("ade20k_847").index_fathers()

    def best(fn):
        times = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            out = fn()
            times.append(time.perf_counter() - t)
        return min(times), out

    t_np, c_np = best(lambda: _numpy_path(gts, preds, K))
    t_ours, c_ours = best(lambda: _ours(gts, preds, K, args.batch, args.device))
    if not np.array_equal(c_np[:K, :K].T, c_ours):
        raise AssertionError("engine and numpy path disagree")
    t_plain, _ = best(lambda: summarize(c_ours))
    t_sg, _ = best(lambda: (summarize(c_ours), summarize(c_ours, fathers)))
    overhead = (t_sg - t_plain) / (t_ours + t_plain)
    n = args.images
    print(f"ovlab bench eval: {n} label maps {args.size}x{args.size}, K={K}, device={args.device}, threads={args.threads}")
    print(f"  numpy per-image bincount (detectron2/SCAN path): {t_np * 1e3 / n:8.2f} ms/img")
    print(f"  ovlab ConfusionMatrix (torch, batch {args.batch}):        {t_ours * 1e3 / n:8.2f} ms/img")
    print(f"  speed ratio: {t_np / t_ours:.2f}x  (target >= 3x)")
    print(f"  SG-IoU summary: {(t_sg - t_plain) * 1e3:.2f} ms over {len(fathers)} classes with fathers; "
          f"overhead on the whole evaluation: {overhead * 100:.2f} %  (target <= 5 %)")
    return 0
