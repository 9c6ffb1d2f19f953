"""``ovlab eval``: score a directory of prediction PNGs from any model against a benchmark.

Predictions are single-channel PNGs named ``<stem>.png`` after the benchmark's GT files (the
image name without extension), holding contiguous class indices 0..K-1 (16-bit PNG for K > 256),
at the ground truth's size. Output: a JSON summary (detectron2 convention, percent) and a
per-class CSV next to it.
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ovlab.atomic import write_json, write_text
from ovlab.data.benchmarks import Benchmark, get_benchmark
from ovlab.data.files import read_image

from ovlab.metrics.association import AssociationMap, association_names, load_association_map
from ovlab.metrics.confusion import ConfusionMatrix
from ovlab.metrics.scores import summarize


class EvaluationError(ValueError):
    """Bad predictions (missing, wrong size, unknown class ids); the message names the file."""


@dataclass
class EvalResult:
    """What :func:`evaluate_predictions` returns.

    Attributes:
        dataset: canonical benchmark name.
        confusion: (K, K) int64, rows = ground truth.
        summary: mIoU / fwIoU / mACC / pACC in percent (plus SG-IoU figures when computed).
        table: per-class rows (index, name, IoU, ACC, SG-IoU, gt_pixels, pred_pixels).
    """

    dataset: str
    num_images: int
    confusion: np.ndarray
    summary: dict
    table: list[dict] = field(default_factory=list)


def default_association(dataset: str) -> str | None:
    """The shipped association map of a benchmark's vocabulary, or None (SG-IoU = mIoU then)."""
    cat = get_benchmark(dataset).catalog
    return cat if cat in association_names() else None


def evaluate_predictions(
    dataset: str | Benchmark,
    pred_dir: str | Path,
    gt_root: str | Path | None = None,
    *,
    sg: bool = False,
    association: str | AssociationMap | None = None,
    sg_mode: str = "code",
    device: str = "cpu",
    progress: bool = True,
) -> EvalResult:
    """Accumulate the confusion matrix of every GT image against ``pred_dir/<stem>.png``.

    Args:
        dataset: benchmark name or alias (see :mod:`ovlab.data.benchmarks`).
        pred_dir: folder of prediction PNGs.
        gt_root: dataset root (default ``$DETECTRON2_DATASETS``).
        sg: also compute SG-IoU (SCAN Eq. 6) with ``association`` (default: the shipped map of
            the vocabulary; none → SG-IoU equals mIoU).
        sg_mode: ``"code"`` or ``"pooled"`` (see :func:`ovlab.metrics.sg_iou`).
        device: where the bincount runs.

    Raises:
        DatasetNotFoundError: no GT under ``gt_root`` (draws the layout).
        EvaluationError: missing predictions (lists them), a prediction whose size differs from
            its GT, or holding ids outside 0..K-1 (names the file).
    """
    bench = get_benchmark(dataset) if isinstance(dataset, str) else dataset
    cats = bench.categories()
    records = bench.records(gt_root)
    pred_dir = Path(pred_dir)
    if not pred_dir.is_dir():
        raise EvaluationError(f"{pred_dir}: prediction folder not found")
    missing = [r.stem for r in records if not (pred_dir / f"{r.stem}.png").is_file()]
    if missing:
        raise EvaluationError(f"{pred_dir}: {len(missing)} of {len(records)} predictions missing, e.g. "
                              + ", ".join(f"{m}.png" for m in missing[:5]))
    cm = ConfusionMatrix(len(cats), ignore_labels=sorted({cats.ignore_label, 255, 65535} - set(range(len(cats)))), device=device)
    for rec in tqdm(records, desc=f"eval {bench.name}", unit="img", disable=not progress):
        gt = bench.load_gt(rec)
        pfile = pred_dir / f"{rec.stem}.png"
        pred = read_image(pfile)
        if pred.ndim != 2:
            raise EvaluationError(f"{pfile}: predictions must be single-channel index PNGs, got shape {pred.shape}")
        if pred.shape != gt.shape:
            raise EvaluationError(f"{pfile}: prediction size {pred.shape[1]}x{pred.shape[0]} differs from ground truth {rec.gt} size {gt.shape[1]}x{gt.shape[0]}")
        try:
            cm.update(gt, pred, name=str(pfile))
        except ValueError as exc:
            raise EvaluationError(str(exc).replace("prediction values", "unknown class ids")) from None
    conf = cm.numpy()
    s = summarize(conf)
    summary = {"dataset": bench.name, "num_images": len(records), "num_classes": len(cats),
               **{k: s[k] for k in ("mIoU", "fwIoU", "mACC", "pACC")}}
    sg_per = None
    if sg:
        amap = association if association is not None else default_association(bench.name)
        if isinstance(amap, str):
            amap = load_association_map(amap)
        fathers = amap.index_fathers() if amap is not None else {}
        sgs = summarize(conf, fathers, sg_mode)
        sg_per = sgs["IoU"]
        summary["sg_iou"] = {"mode": sg_mode, "association": getattr(amap, "source", None),
                             **{k: sgs[k] for k in ("mIoU", "fwIoU", "mACC", "pACC")}}
    G, P = conf.sum(1), conf.sum(0)
    table = []
    for c in cats:
        row = {"index": c.index, "name": c.name, "IoU": _pct(s["IoU"][c.index]), "ACC": _pct(s["ACC"][c.index])}
        if sg_per is not None:
            row["SG-IoU"] = _pct(sg_per[c.index])
        row.update(gt_pixels=int(G[c.index]), pred_pixels=int(P[c.index]))
        table.append(row)
    return EvalResult(bench.name, len(records), conf, summary, table)


def _pct(v: float) -> float | None:
    return None if np.isnan(v) else float(v) * 100


def table_csv(table: list[dict]) -> str:
    """The per-class rows of an evaluation as CSV text (header from the first row's keys)."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(table[0]), lineterminator="\n")
    w.writeheader()
    for row in table:
        w.writerow({k: ("" if v is None else v) for k, v in row.items()})
    return buf.getvalue()


def _json_ready(summary: dict) -> dict:
    def fix(v):
        if isinstance(v, dict):
            return {k: fix(x) for k, x in v.items()}
        if isinstance(v, float) and np.isnan(v):
            return None
        return v

    return fix(summary)


def _cmd(args) -> int:
    try:
        res = evaluate_predictions(args.dataset, args.pred_dir, args.gt_root, sg=args.sg_iou,
                                   association=args.association, sg_mode=args.sg_mode, device=args.device,
                                   progress=not args.quiet)
    except (KeyError, ValueError, FileNotFoundError) as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) else str(exc)
        print(f"ovlab eval: error: {msg}", file=sys.stderr)
        return 2
    out = _json_ready(res.summary)
    line = f"{res.dataset}: {res.num_images} images  mIoU {res.summary['mIoU']:.2f}  fwIoU {res.summary['fwIoU']:.2f}  mACC {res.summary['mACC']:.2f}  pACC {res.summary['pACC']:.2f}"
    if "sg_iou" in res.summary:
        line += f"  SG-IoU {res.summary['sg_iou']['mIoU']:.2f}"
    print(line)
    if args.out:
        path = Path(args.out)
        write_json(path, out)
        write_text(path.with_suffix(".csv"), table_csv(res.table))
        print(f"wrote {path} and {path.with_suffix('.csv')}")
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("eval", help="evaluate a folder of prediction PNGs (mIoU, SG-IoU)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", required=True, help="benchmark name or alias, e.g. ade20k_150, ade20k_full_sem_seg_val")
    p.add_argument("--pred-dir", required=True, help="folder of <stem>.png index maps")
    p.add_argument("--gt-root", default=None, help="dataset root (default $DETECTRON2_DATASETS)")
    p.add_argument("--sg-iou", action="store_true", help="also compute SG-IoU (SCAN Eq. 6)")
    p.add_argument("--association", default=None, help="association map name or JSON (default: the vocabulary's shipped map)")
    p.add_argument("--sg-mode", choices=["code", "pooled"], default="code")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default=None, help="JSON summary path; the per-class CSV goes next to it")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd)
