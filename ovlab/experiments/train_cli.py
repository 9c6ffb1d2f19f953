"""``ovlab train``, ``ovlab cost``, ``ovlab evaluate`` and ``ovlab predict`` (the grids: :mod:`ovlab.experiments.grid`)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ovlab.clip.loading import WeightsNotFoundError
from ovlab.config import ParamsError, load_params
from ovlab.data.errors import CorruptFileError, DatasetNotFoundError

ERRORS = (ParamsError, WeightsNotFoundError, DatasetNotFoundError, CorruptFileError, FileNotFoundError, ValueError, KeyError)


def add_parser(subparsers) -> None:
    """Register ``train``, ``cost``, ``evaluate`` and ``predict``."""
    p = subparsers.add_parser("train", help="train (or resume) the segmenter of a params section, then evaluate it")
    p.add_argument("--section", required=True, help="params section (e.g. tgkd)")
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--no-eval", action="store_true", help="skip the final evaluation")
    p.set_defaults(func=_train)

    p = subparsers.add_parser("cost", help="GKC Table 2: FLOPs, parameters and speed of the single-stage model vs "
                              "the two-stage baseline (tgkd.cost); writes <tgkd.grids.output>/cost.json")
    p.add_argument("--params", default="params.yaml")
    p.set_defaults(func=_cost)

    p = subparsers.add_parser("evaluate", help="score a trained checkpoint on a benchmark (mIoU, seen/unseen/harmonic)")
    p.add_argument("--checkpoint", required=True, help="model.pt or last.pt written by ovlab train")
    p.add_argument("--dataset", required=True, help="benchmark name or alias (coco_133, ade20k_150, ...)")
    p.add_argument("--root", default=None, help="benchmark root (default $DETECTRON2_DATASETS)")
    p.add_argument("--resize", default="short_side", choices=["short_side", "none"])
    p.add_argument("--short-side", type=int, default=512)
    p.add_argument("--templates", default="none", help="none | photo | vild")
    p.add_argument("--max-images", type=int, default=None)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    p.add_argument("--output", default=None, help="write the summary JSON here")
    p.set_defaults(func=_evaluate)

    p = subparsers.add_parser("predict", help="segment one image with a free-form class list")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--image", required=True)
    p.add_argument("--classes", required=True, help='comma-separated names, e.g. "cat,remote,couch"; '
                   'synonyms of one class with "|", e.g. "sofa|couch"')
    p.add_argument("--out-dir", default="predictions")
    p.add_argument("--short-side", type=int, default=512)
    p.add_argument("--templates", default="none")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    p.set_defaults(func=_predict)


def _train(args) -> int:
    from ovlab.config.resolved import write_resolved
    from ovlab.engine.distributed import relaunch_with_torchrun, under_torchrun
    from ovlab.engine.trainer import train
    from ovlab.experiments.registry import task_for

    try:
        params = load_params(args.params)
        stage = params.stage(args.section)
        gpus = stage.cfg.train.gpus
        if gpus > 1 and not under_torchrun():
            relaunch_with_torchrun(gpus, ["train", "--section", args.section, "--params", args.params]
                                   + (["--no-eval"] if args.no_eval else []))
        task = task_for(stage.name)
        stage = task.resolve(stage)
        if os.environ.get("RANK", "0") == "0":
            write_resolved(stage.path(stage.cfg.output) / "params.yaml", stage)
        result = train(stage, task=task, evaluate=not args.no_eval)
    except ERRORS as exc:
        print(f"ovlab train: error: {exc}", file=sys.stderr)
        return 1
    if os.environ.get("RANK", "0") != "0":
        return 0
    ev = result.metrics.get("eval", {})
    print(f"ovlab train: {result.iterations} iterations; wrote {result.output}"
          + (f"; {ev.get('dataset')} mIoU {ev.get('mIoU')}" if ev else ""))
    return 0


def _cost(args) -> int:
    from ovlab.atomic import write_json
    from ovlab.gkc.cost import format_cost, measure_cost

    try:
        params = load_params(args.params)
        from ovlab.config.resolved import write_resolved

        c, out = params.tgkd.cost, params.path(params.tgkd.grids.output)
        write_resolved(out / "cost.params.yaml", params.stage("tgkd"))
        result = measure_cost(c.config, c.device, c.size, c.proposals, c.repeats)
        write_json(out / "cost.json", result)
        print(format_cost(result))
    except ERRORS as exc:
        print(f"ovlab cost: error: {exc}", file=sys.stderr)
        return 1
    return 0


def _device(name: str) -> str:
    import torch

    return ("cuda" if torch.cuda.is_available() else "cpu") if name == "auto" else name


def _evaluate(args) -> int:
    from ovlab.atomic import write_json
    from ovlab.config.train import EvalParams

    from ovlab.experiments.registry import from_checkpoint
    from ovlab.segmenter.evaluate import evaluate_model

    try:
        dev = _device(args.device)
        built = from_checkpoint(args.checkpoint, device=dev)
        if hasattr(built.model, "set_inference"):  # SCAN: the benchmark's mask threshold, λ and CS ratio
            built.model.set_inference(built.stage.cfg.inference_for(args.dataset))
        params = EvalParams(dataset=args.dataset, root=args.root, resize=args.resize, short_side=args.short_side,
                            templates=args.templates, max_images=args.max_images)
        rep = evaluate_model(built.model.to(dev), built.clip, params, device=dev, root=args.root)
    except ERRORS as exc:
        print(f"ovlab evaluate: error: {exc}", file=sys.stderr)
        return 1
    summary = {"dataset": rep.dataset, "num_images": rep.num_images, "checkpoint": str(args.checkpoint),
               **{k: (None if isinstance(v, float) and v != v else v) for k, v in rep.summary.items()}}
    for k, v in summary.items():
        print(f"{k:>16}: {v:.2f}" if isinstance(v, float) else f"{k:>16}: {v}")
    if args.output:
        write_json(Path(args.output), summary)
    return 0


def _predict(args) -> int:
    from ovlab.experiments.registry import from_checkpoint
    from ovlab.segmenter.predict import predict_image

    try:
        dev = _device(args.device)
        built = from_checkpoint(args.checkpoint, device=dev)
        classes = [", ".join(c.split("|")) for c in args.classes.split(",")]
        res = predict_image(built, args.image, classes, args.out_dir, short_side=args.short_side,
                            templates=args.templates, device=dev)
    except ERRORS as exc:
        print(f"ovlab predict: error: {exc}", file=sys.stderr)
        return 1
    top = sorted(res.shares.items(), key=lambda kv: -kv[1])
    print(f"ovlab predict: wrote {res.labels_png} and {res.overlay_png}")
    print("  " + ", ".join(f"{c} {s:.1f}%" for c, s in top if s > 0))
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m ovlab.experiments.train_cli <train|cost|evaluate|predict> ...``: the same as ``ovlab ...``
    (the DVC stages call this form, which imports only what these commands need)."""
    parser = argparse.ArgumentParser(prog="python -m ovlab.experiments.train_cli")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    add_parser(sub)
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
