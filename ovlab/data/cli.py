"""``ovlab data``: prepare real datasets (``ovlab data prepare``), make the embedded dataset, simulate the real
layouts (``ovlab data simulate``: :mod:`ovlab.data.simulate`), inspect a COCO panoptic root."""

from __future__ import annotations

import json
import sys


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("data", help="datasets: prepare real ones, make the embedded set, inspect a root")
    sub = p.add_subparsers(dest="data_command", metavar="ACTION")
    sub.required = True
    m = sub.add_parser("make-embedded", help="write the synthetic embedded dataset (deterministic from --seed)")
    m.add_argument("--out", default="data/embedded", help="output folder (default: data/embedded)")
    m.add_argument("--seed", type=int, default=0)
    m.set_defaults(func=_make)
    sim = sub.add_parser("simulate", help="write simulated datasets in the real layouts and vocabularies (paper-smoke profile)")
    sim.add_argument("--out", default="datasets", help="the $DETECTRON2_DATASETS root to write (default: datasets)")
    sim.add_argument("--seed", type=int, default=0)
    sim.add_argument("--raw-only", action="store_true", help="the raw layouts only, without running `ovlab data prepare`")
    sim.set_defaults(func=_simulate)
    s = sub.add_parser("summary", help="count images and segments of a COCO panoptic root")
    s.add_argument("root", help="folder with {split}2017/, panoptic_{split}2017/, annotations/")
    s.add_argument("--split", default="val", choices=["train", "val"])
    s.set_defaults(func=_summary)
    from ovlab.data.prepare.cli import add_prepare_parser  # `ovlab data prepare` (argparse only; the work is imported lazily)

    add_prepare_parser(sub)


def _make(args) -> int:
    from ovlab.data.procedural import make_embedded

    summary = make_embedded(args.out, seed=args.seed)
    print(json.dumps(summary, indent=2))
    print(f"ovlab data: wrote the synthetic embedded dataset to {args.out}. "
          "If it is the DVC-tracked copy, run `dvc add data && dvc push` to pin it.")
    return 0


def _simulate(args) -> int:
    from ovlab.data.simulate import make_simulated

    summary = make_simulated(args.out, seed=args.seed, prepare=not args.raw_only)
    print(json.dumps(summary, indent=2))
    print(f"ovlab data: wrote the SIMULATED datasets (real layouts, synthetic scenes) under {args.out}")
    return 0


def _summary(args) -> int:
    from ovlab.data.coco_panoptic import read_coco_panoptic
    from ovlab.data.errors import CorruptFileError, DatasetNotFoundError

    try:
        recs = read_coco_panoptic(args.root, args.split)
    except (DatasetNotFoundError, CorruptFileError) as exc:
        print(f"ovlab data: error: {exc}", file=sys.stderr)
        return 1
    cats = sorted({s.category_index for r in recs for s in r.segments})
    print(json.dumps({"images": len(recs), "segments": sum(len(r.segments) for r in recs),
                      "categories_present": len(cats)}, indent=2))
    return 0
