"""The ``ovlab data prepare`` action (registered by :mod:`ovlab.data.cli`); imports the work lazily."""

from __future__ import annotations

import argparse
import json
import os
import sys

NAMES = ("coco_133", "coco_stuff_171", "ade20k_150", "ade20k_847", "pascal_context_59", "pascal_context_459",
         "pascal_voc_20", "pascal_voc_20b", "cityscapes_19", "vipseg")


def add_prepare_parser(sub) -> None:
    """Add ``prepare`` to the ``ovlab data`` actions."""
    p = sub.add_parser(
        "prepare", help="make the standard prepared layout of a dataset from its raw download",
        description="Write the layout Mask2Former/SAN/CAT-Seg prepare (and ovlab reads) under --dst "
                    "($DETECTRON2_DATASETS). Resumable and idempotent: finished files are skipped. "
                    "Unchanged images are symlinked (--link). See docs/real_data.md.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dataset", choices=NAMES)
    p.add_argument("--src", required=True, help="the raw dataset folder (e.g. ADE20K_2021_17_01, coco, VOCdevkit/VOC2012)")
    p.add_argument("--dst", default=os.environ.get("DETECTRON2_DATASETS", "datasets"),
                   help="datasets root the prepared folder goes under (default $DETECTRON2_DATASETS or datasets)")
    p.add_argument("--splits", nargs="+", default=None, help="only these splits (e.g. validation, val)")
    p.add_argument("--split", default=None, help="the split of a flat folder without split lists (default val/validation)")
    p.add_argument("--workers", type=int, default=max(1, min(8, os.cpu_count() or 1)), help="processes (default: CPUs, at most 8)")
    p.add_argument("--link", choices=["symlink", "copy", "none"], default="symlink", help="how unchanged images reach --dst")
    p.add_argument("--overwrite", action="store_true", help="redo finished files")
    p.add_argument("--labels", default=None, help="PASCAL Context: the folder of the .mat label files (default <src>/trainval)")
    p.add_argument("--short-side", type=int, default=None, help="ADE-847: resize target of the short side (default 512; 0 = keep)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_main)


def _main(args) -> int:
    from ovlab.data.prepare import PrepareError, prepare

    opts = dict(splits=args.splits, workers=args.workers, link=args.link, overwrite=args.overwrite, progress=not args.quiet)
    if args.split and args.dataset not in ("coco_133", "coco_stuff_171", "ade20k_847", "cityscapes_19", "vipseg"):
        opts["split"] = args.split
    if args.labels and args.dataset.startswith("pascal_context"):
        opts["labels"] = args.labels
    if args.short_side is not None and args.dataset == "ade20k_847":
        opts["short_side"] = args.short_side
    try:
        rep = prepare(args.dataset, args.src, args.dst, **opts)
    except (PrepareError, KeyError) as exc:
        print(f"ovlab data prepare: error: {exc.args[0] if isinstance(exc, KeyError) else exc}", file=sys.stderr)
        return 1
    print(json.dumps(rep.as_dict(), indent=2))
    return 0
