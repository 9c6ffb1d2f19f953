"""``ovlab eval``: score a directory of prediction PNGs from any model against a benchmark.

Predictions are single-channel PNGs named ``<stem>.png`` after the benchmark's GT files (the
image name without extension), at the ground truth's size, one per GT image (a missing or an
extra file is an error). Their values are read in one of two label formats (``--pred-format``):

- ``index`` (default): contiguous class indices 0..K-1 (16-bit PNG for K > 256), the order of
  the benchmark's catalog — what ``ovlab predict`` and detectron2's ``sem_seg`` write;
- ``dataset``: the benchmark's own encoding, e.g. raw ADE20K's 1..150 with 0 = "other",
  VOC's 1..20, Cityscapes' ``labelIds`` (decoded like the benchmark's raw ground truth). A
  pixel with no class in that encoding (ADE's 0) where the ground truth has one is an error.

Predictions whose values do not fit the chosen format — values ≥ K, or the tell-tale of the
other format (most pixels equal to the ground truth's index + 1) — are an error that names the
format to use, never a silent mIoU 0.

Files are decoded (OpenCV for greyscale PNG/TIFF, PIL otherwise) and counted in ``--workers``
processes (default: the CPUs, at most 4; 0 or 1 = one process), streaming: the confusion matrix and
every error are the same whatever the count (:mod:`ovlab.metrics.stream`); torch is not imported.

Output (``--out NAME.json``): the JSON summary (detectron2 convention, percent; SG-IoU with
``--sg-iou``) and the per-class CSV beside it (``NAME.csv``), the same files as ``ovlab evaluate``.
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
from ovlab.data.benchmarks.decoders import DECODERS
from ovlab.data.benchmarks.spec import Record
from ovlab.data.errors import CorruptFileError
from ovlab.metrics.association import AssociationMap, default_association_name, load_association_map
from ovlab.metrics.scores import summarize
from ovlab.metrics.stream import (BinAccumulator, PairError, default_workers, label_lut, read_label_file,
                                 score_items)


class EvaluationError(ValueError):
    """Bad predictions (missing, extra, wrong size, unknown class ids, values that do not fit the
    label format); the message names the file and the cause."""


PRED_FORMATS = ("index", "dataset")


def dataset_decoder(bench: Benchmark) -> str:
    """Name of the decoder of a benchmark's own label encoding: that of its first layout that is
    not already contiguous indices (``identity``); ``identity`` when it has none (COCO-133)."""
    return next((lay.decoder for lay in bench.layouts if lay.decoder != "identity"), "identity")


def _shift_share(conf: np.ndarray, offset: int) -> float:
    """Share of counted pixels whose prediction is the GT index + ``offset`` (rows = GT)."""
    total = conf.sum()
    if total == 0:
        return 0.0
    K = conf.shape[0]
    if offset > 0:
        hit = np.trace(conf[: K - offset, offset:])
    else:
        hit = np.trace(conf[-offset:, : K + offset])
    return float(hit) / float(total)


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
    return default_association_name(get_benchmark(dataset).catalog)  # SCAN's map for ADE-150/847, PC-459


def load_gt_fast(bench: Benchmark, record: Record) -> np.ndarray:
    """:meth:`Benchmark.load_gt` with the file read by :func:`ovlab.metrics.stream.read_label_file`
    (OpenCV for greyscale PNG/TIFF) and, for prepared maps (decoder ``identity``), no int64 copy:
    (H, W) uint8/uint16 there, int64 otherwise; the same values and errors as ``load_gt``.

    Raises:
        CorruptFileError: the file cannot be decoded or has the wrong shape (names the file).
    """
    if type(bench).load_gt is not Benchmark.load_gt:  # a benchmark with its own reading
        return bench.load_gt(record)
    raw = read_label_file(record.gt, check_format=False)
    if record.layout.decoder == "identity" and raw.ndim == 2 and raw.dtype.kind in "iu":
        return raw
    try:
        return DECODERS[record.layout.decoder](raw, bench.categories())
    except ValueError as exc:
        raise CorruptFileError(record.gt, str(exc)) from None


@dataclass(frozen=True)
class _PredictionScorer:
    """Decode, check and accumulate one (GT record, ``pred_dir/<stem>.png``) pair; picklable, so it runs
    in :func:`ovlab.metrics.stream.score_items`'s worker processes. Errors are the
    :class:`EvaluationError` / ``CorruptFileError`` of the file, raised where it is read."""

    bench: Benchmark
    pred_dir: Path
    pred_format: str

    def pair(self, rec: Record) -> tuple[np.ndarray, np.ndarray, Path]:
        """(gt, pred, prediction file) of a record, checked (see :func:`evaluate_predictions`)."""
        bench, cats = self.bench, self.bench.categories()
        K = len(cats)
        gt = load_gt_fast(bench, rec)
        pfile = self.pred_dir / f"{rec.stem}.png"
        pred = read_label_file(pfile)
        if pred.ndim != 2:
            raise EvaluationError(f"{pfile}: predictions must be single-channel label PNGs (mode L, P or I;16), "
                                  f"got shape {pred.shape}")
        if pred.shape != gt.shape:
            raise EvaluationError(f"{pfile}: prediction size {pred.shape[1]}x{pred.shape[0]} differs from ground truth {rec.gt} size {gt.shape[1]}x{gt.shape[0]}")
        if self.pred_format == "dataset":
            raw_max = int(pred.max(initial=0))
            try:
                dec = DECODERS[dataset_decoder(bench)](pred, cats)
            except ValueError as exc:
                raise EvaluationError(f"{pfile}: {exc}") from None
            lost = (dec == cats.ignore_label) & (gt != cats.ignore_label)
            if lost.any():
                vals = sorted(set(np.unique(pred[lost]).tolist()))[:10]
                raise EvaluationError(
                    f"{pfile}: {int(lost.sum())} pixels hold values {vals} that name no class of {bench.name} in its "
                    f"own encoding (--pred-format dataset, max value {raw_max}) where the ground truth has a class"
                    + (f"; values 0..{K - 1} look like class indices: use --pred-format index" if raw_max < K else ""))
            pred = np.where(gt == cats.ignore_label, 0, dec)
        return gt, pred, pfile

    def class_error(self, msg: str, pred: np.ndarray) -> EvaluationError:
        """The error of a label outside the benchmark's classes (from the accumulation), with the format hint."""
        K = len(self.bench.categories())
        msg = msg.replace("prediction values", "unknown class ids") + f" (--pred-format {self.pred_format})"
        if self.pred_format == "index" and int(pred.max(initial=0)) == K:
            msg += (f"; a maximum of exactly K = {K} suggests the benchmark's own 1..{K} encoding: "
                    "use --pred-format dataset")
        return EvaluationError(msg)

    def __call__(self, acc: BinAccumulator, rec: Record) -> None:
        gt, pred, pfile = self.pair(rec)
        try:
            acc.add(gt, pred, name=str(pfile))
        except PairError as exc:
            raise self.class_error(str(exc), pred) from None


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
    pred_format: str = "index",
    workers: int | None = None,
) -> EvalResult:
    """Accumulate the confusion matrix of every GT image against ``pred_dir/<stem>.png``.

    Files are decoded and accumulated in ``workers`` processes (:func:`ovlab.metrics.stream.score_items`:
    at most two chunks per worker in flight, so memory is flat in the number of images); the matrix
    and every error are the same whatever ``workers`` is (an error names the first bad file in order).

    Args:
        dataset: benchmark name or alias (see :mod:`ovlab.data.benchmarks`).
        pred_dir: folder of prediction PNGs.
        gt_root: dataset root (default ``$DETECTRON2_DATASETS``).
        sg: also compute SG-IoU (SCAN Eq. 6) with ``association`` (default: the shipped map of
            the vocabulary; none → SG-IoU equals mIoU).
        sg_mode: ``"code"`` or ``"pooled"`` (see :func:`ovlab.metrics.sg_iou`).
        device: where the bincount runs: ``cpu`` (numpy, in ``workers`` processes) or a torch device
            such as ``cuda`` (:class:`ovlab.metrics.ConfusionMatrix`, one process).
        workers: decoding processes (default :func:`ovlab.metrics.stream.default_workers`: the CPUs,
            at most 4); 0 or 1 = in this process.
        pred_format: ``"index"`` (0..K-1) or ``"dataset"`` (the benchmark's own encoding, decoded
            by :func:`dataset_decoder`; e.g. ADE-150's 1..150 with 0 = other).

    Raises:
        DatasetNotFoundError: no GT under ``gt_root`` (draws the layout).
        EvaluationError: missing or extra predictions (lists them), a prediction whose size
            differs from its GT, that is not single-channel, holds values outside the format, or
            fits the other format (names the file and the ``--pred-format`` to use); an
            association map of another vocabulary.
        CorruptFileError: an empty, truncated or JPEG-compressed prediction or GT file (names it).
    """
    if pred_format not in PRED_FORMATS:
        raise EvaluationError(f"pred_format must be one of {', '.join(PRED_FORMATS)}, got {pred_format!r}")
    bench = get_benchmark(dataset) if isinstance(dataset, str) else dataset
    cats = bench.categories()
    amap = resolve_association(bench, association) if sg else None
    records = bench.records(gt_root)
    pred_dir = Path(pred_dir)
    if not pred_dir.is_dir():
        raise EvaluationError(f"{pred_dir}: prediction folder not found")
    missing = [r.stem for r in records if not (pred_dir / f"{r.stem}.png").is_file()]
    if missing:
        raise EvaluationError(f"{pred_dir}: {len(missing)} of {len(records)} predictions missing, e.g. "
                              + ", ".join(f"{m}.png" for m in missing[:5]))
    stems = {r.stem for r in records}
    extra = sorted(f.name for f in pred_dir.glob("*.png") if f.stem not in stems)
    if extra:
        raise EvaluationError(f"{pred_dir}: {len(extra)} prediction files match no ground-truth image of {bench.name} "
                              f"under {gt_root or '$DETECTRON2_DATASETS'} (wrong dataset or split?), e.g. " + ", ".join(extra[:5]))
    K = len(cats)
    ignore = sorted({cats.ignore_label, 255, 65535} - set(range(K)))
    scorer = _PredictionScorer(bench, pred_dir, pred_format)
    other = "dataset" if pred_format == "index" else "index"
    desc = f"eval {bench.name}"
    if str(device) == "cpu":
        conf = score_items(records, scorer, K, label_lut(K, ignore), workers=default_workers() if workers is None else workers,
                           progress=progress, desc=desc)
    else:
        from ovlab.metrics.confusion import ConfusionMatrix

        cm = ConfusionMatrix(K, ignore_labels=ignore, device=device)
        for rec in tqdm(records, desc=desc, unit="img", disable=not progress):
            gt, pred, pfile = scorer.pair(rec)
            try:
                cm.update(gt, pred, name=str(pfile))
            except ValueError as exc:
                raise scorer.class_error(str(exc), pred) from None
        conf = cm.numpy()
    if conf.sum() > 0 and len(records) and not np.trace(conf) * 2 > conf.sum():
        off = 1 if pred_format == "index" else -1
        share = _shift_share(conf, off)
        if share > 0.5:
            raise EvaluationError(
                f"{pred_dir}: in {100 * share:.1f}% of the pixels the prediction is the ground-truth class "
                f"{'+' if off > 0 else '-'} 1: the files look like the {other} format "
                f"({'the benchmark' + chr(39) + 's own 1..K encoding' if other == 'dataset' else 'indices 0..K-1'}), "
                f"not {pred_format}; use --pred-format {other}")
    summary, table = score_confusion(bench, conf, len(records), sg=sg, association=amap, sg_mode=sg_mode)
    return EvalResult(bench.name, len(records), conf, summary, table)


def resolve_association(bench: Benchmark, association: str | Path | AssociationMap | None) -> AssociationMap | None:
    """The association map for SG-IoU on ``bench``: the given one (name, JSON path or map) or the
    vocabulary's shipped map (None when there is none).

    Raises:
        EvaluationError: the map is over another vocabulary than the benchmark's.
        AssociationError / FileNotFoundError: see :func:`ovlab.metrics.association.load_association_map`.
    """
    cats = bench.categories()
    amap = association if association is not None else default_association(bench.name)
    if isinstance(amap, (str, Path)):
        amap = load_association_map(amap, vocabulary=bench.catalog)  # a family name (scan | wordnet) works too
    if amap is not None and [c.name for c in amap.categories] != [c.name for c in cats]:
        raise EvaluationError(f"association map {getattr(amap, 'source', '?')}: its vocabulary "
                              f"{amap.categories.dataset!r} ({len(amap.categories)} classes) is not the vocabulary of "
                              f"{bench.name} ({bench.catalog!r}, {len(cats)} classes)")
    return amap


def score_confusion(bench: Benchmark, conf: np.ndarray, num_images: int, *, sg: bool = False,
                    association: AssociationMap | None = None, sg_mode: str = "code") -> tuple[dict, list[dict]]:
    """The summary and per-class table of a (K, K) confusion matrix (rows = GT) on ``bench``:
    mIoU, fwIoU, mACC, pACC (percent, detectron2 convention) and, with ``sg``, SG-IoU (SCAN Eq. 6)
    over ``association`` (None: SG-IoU = mIoU). What ``ovlab eval`` and ``ovlab evaluate`` write.

    Returns:
        ``(summary, rows)``; rows hold index, name, IoU, ACC, [SG-IoU], gt_pixels, pred_pixels.
    """
    cats = bench.categories()
    s = summarize(conf)
    summary = {"dataset": bench.name, "num_images": num_images, "num_classes": len(cats),
               **{k: s[k] for k in ("mIoU", "fwIoU", "mACC", "pACC")}}
    sg_per = None
    if sg:
        fathers = association.index_fathers() if association is not None else {}
        sgs = summarize(conf, fathers, sg_mode)
        sg_per = sgs["IoU"]
        summary["sg_iou"] = {"mode": sg_mode, "association": association.identity() if association is not None else None,
                             **{k: sgs[k] for k in ("mIoU", "fwIoU", "mACC", "pACC")}}
    G, P = conf.sum(1), conf.sum(0)
    table = []
    for c in cats:
        row = {"index": c.index, "name": c.name, "IoU": _pct(s["IoU"][c.index]), "ACC": _pct(s["ACC"][c.index])}
        if sg_per is not None:
            row["SG-IoU"] = _pct(sg_per[c.index])
        row.update(gt_pixels=int(G[c.index]), pred_pixels=int(P[c.index]))
        table.append(row)
    return summary, table


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


def write_outputs(out: str | Path, summary: dict, table: list[dict]) -> tuple[Path, Path]:
    """Write an evaluation's JSON summary to ``out`` and its per-class CSV beside it
    (``<out stem>.csv``); the files ``ovlab eval`` and ``ovlab evaluate`` both write.

    Raises:
        EvaluationError: ``out`` does not end in ``.json`` (the CSV would overwrite it).
        OutputNotWritableError: the folder cannot be written.
    """
    path = Path(out)
    if path.suffix.lower() != ".json":
        raise EvaluationError(f"--out {out}: give a .json path (the per-class CSV is written beside it as "
                              f"{path.with_suffix('.csv').name})")
    write_json(path, _json_ready(summary))
    csv_path = write_text(path.with_suffix(".csv"), table_csv(table))
    return path, csv_path


def _cmd(args) -> int:
    from ovlab.atomic import OutputNotWritableError

    try:
        if args.out and Path(args.out).suffix.lower() != ".json":
            raise EvaluationError(f"--out {args.out}: give a .json path (the per-class CSV is written beside it)")
        res = evaluate_predictions(args.dataset, args.pred_dir, args.root, sg=args.sg_iou,
                                   association=args.association, sg_mode=args.sg_mode, device=args.device,
                                   progress=not args.quiet, pred_format=args.pred_format, workers=args.workers)
        line = (f"{res.dataset}: {res.num_images} images  mIoU {res.summary['mIoU']:.2f}  fwIoU {res.summary['fwIoU']:.2f}"
                f"  mACC {res.summary['mACC']:.2f}  pACC {res.summary['pACC']:.2f}")
        if "sg_iou" in res.summary:
            line += f"  SG-IoU {res.summary['sg_iou']['mIoU']:.2f}"
        print(line)
        if args.out:
            path, csv_path = write_outputs(args.out, res.summary, res.table)
            print(f"wrote {path} and {csv_path}")
    except (KeyError, ValueError, OSError) as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) else str(exc)
        print(f"ovlab eval: error: {msg}", file=sys.stderr)
        return 2
    return 0


def _workers_arg(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = -1
    if n < 0:
        raise argparse.ArgumentTypeError(f"--workers must be a whole number ≥ 0, got {text!r}")
    return n


def add_parser(sub) -> None:
    p = sub.add_parser("eval", help="evaluate a folder of prediction PNGs (mIoU, SG-IoU)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", required=True, help="benchmark name or alias, e.g. ade20k_150, ade20k_full_sem_seg_val")
    p.add_argument("--pred-dir", required=True, help="folder of <stem>.png label maps")
    p.add_argument("--pred-format", choices=PRED_FORMATS, default="index",
                   help="index: class indices 0..K-1 (default); dataset: the benchmark's own encoding (ADE: 1..150, 0 = other)")
    p.add_argument("--root", "--gt-root", dest="root", default=None,
                   help="dataset root (default $DETECTRON2_DATASETS; --gt-root is the old spelling)")
    p.add_argument("--sg-iou", action="store_true", help="also compute SG-IoU (SCAN Eq. 6)")
    p.add_argument("--association", default=None,
                   help="SG-IoU association map: a family (scan | wordnet), a shipped map (scan_ade20k_847, wordnet_ade20k_847, "
                        "...) or a JSON path; default: SCAN's map for ADE-150/847 and PC-459, else the WordNet one")
    p.add_argument("--sg-mode", choices=["code", "pooled"], default="code")
    p.add_argument("--device", default="cpu", help="cpu (numpy, parallel decoding) or a torch device, e.g. cuda")
    p.add_argument("--workers", type=_workers_arg, default=None,
                   help="decoding processes (default: the CPUs, at most 4; 0 or 1 = in this process)")
    p.add_argument("--out", "--output", dest="out", default=None,
                   help="JSON summary path (NAME.json); the per-class CSV goes next to it (NAME.csv)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd)
