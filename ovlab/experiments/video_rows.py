"""Run the video benchmark's GKC Table 3 rows (``video.rows``): ``python -m ovlab.experiments.video_rows --row <name>``."""

from __future__ import annotations

import argparse
import os
import sys

from ovlab.config import ParamsError, StageParams, load_params
from ovlab.video.task import VideoTask, check_init


def row_stage(params, row: str) -> StageParams:
    """The ``video`` stage of one Table 3 row (``video.rows.<row>`` applied; output ``<output>/<row>``).

    Raises:
        ParamsError: unknown row (lists the rows) or an invalid override.
    """
    try:
        cfg = params.video.row(row)
    except (KeyError, ValueError) as exc:
        raise ParamsError(f"{params.source}: video.rows: {exc.args[0]}") from None
    return StageParams(name="video", base=params.base, cfg=cfg, root=params.root, source=params.source)


def run_row(params, row: str, *, progress: bool = True, evaluate: bool = True):
    """Train and score one Table 3 row (:func:`ovlab.engine.trainer.train` with :class:`VideoTask`)."""
    from ovlab.engine.trainer import train

    stage = row_stage(params, row)
    check_init(stage)
    return train(stage, progress=progress, evaluate=evaluate, task=VideoTask())


def main(argv: list[str] | None = None) -> int:
    """``python -m ovlab.experiments.video_rows --row <name> [--params params.yaml]``."""
    from ovlab.experiments.train_cli import ERRORS
    from ovlab.engine.distributed import relaunch_with_torchrun, under_torchrun

    p = argparse.ArgumentParser(prog="python -m ovlab.experiments.video_rows",
                                description="Train and score one GKC Table 3 row of the video benchmark.")
    p.add_argument("--row", required=True, help="a row of video.rows (baseline, kd, kd_td)")
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--no-eval", action="store_true")
    args = p.parse_args(argv)
    try:
        params = load_params(args.params)
        gpus = row_stage(params, args.row).cfg.train.gpus
        if gpus > 1 and not under_torchrun():  # DDP: re-launch this command under torchrun (never returns)
            relaunch_with_torchrun(gpus, sys.argv[1:] if argv is None else argv, module="ovlab.experiments.video_rows")
        result = run_row(params, args.row, evaluate=not args.no_eval)
    except ERRORS as exc:
        print(f"ovlab video: error: {exc}", file=sys.stderr)
        return 1
    if os.environ.get("RANK", "0") != "0":
        return 0
    ev = result.metrics.get("eval", {})
    print(f"ovlab video: row {args.row}: {result.iterations} iterations; wrote {result.output}"
          + (f"; {ev.get('protocol')}: seen {ev.get('seen_miou')}, unseen {ev.get('unseen_miou')}, "
             f"harmonic {ev.get('harmonic')}" if ev else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
