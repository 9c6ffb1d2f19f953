"""``ovlab train``, ``ovlab cost``, ``ovlab evaluate`` and ``ovlab predict`` (the grids: :mod:`ovlab.experiments.grid`)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ovlab.clip.loading import WeightsNotFoundError
from ovlab.config import ParamsError, load_params
from ovlab.config.overrides import add_override_argument, override_argv
from ovlab.data.errors import CorruptFileError, DatasetNotFoundError

ERRORS = (ParamsError, WeightsNotFoundError, DatasetNotFoundError, CorruptFileError, FileNotFoundError, ValueError, KeyError,
          OSError, FloatingPointError)
"""What these commands report as one ``ovlab <command>: error: ...`` line (exit 1) instead of a traceback:
bad params, data, weights, checkpoints, unwritable outputs (OSError), a diverging run (FloatingPointError)."""


def _positive(text: str) -> int:
    """argparse type: an integer ≥ 1."""
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer ≥ 1, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be ≥ 1, got {v}")
    return v


def _error(command: str, exc: BaseException) -> int:
    """Print one error line (rank 0 only under torchrun: one error, not one per rank); exit code 1."""
    if os.environ.get("RANK", "0") == "0":
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        print(f"ovlab {command}: error: {msg}", file=sys.stderr)
    return 1


def add_parser(subparsers) -> None:
    """Register ``train``, ``cost``, ``evaluate`` and ``predict``."""
    p = subparsers.add_parser("train", help="train (or resume) the segmenter of a params section, then evaluate it")
    p.add_argument("--section", required=True, help="params section (e.g. tgkd)")
    p.add_argument("--params", default="params.yaml")
    add_override_argument(p)
    p.add_argument("--no-eval", action="store_true", help="skip the final evaluation")
    p.set_defaults(func=_train)

    p = subparsers.add_parser("cost", help="GKC Table 2: FLOPs, parameters and speed of the single-stage model vs "
                              "the two-stage baseline (tgkd.cost); writes <tgkd.grids.output>/cost.json")
    p.add_argument("--params", default="params.yaml")
    add_override_argument(p)
    p.set_defaults(func=_cost)

    p = subparsers.add_parser("evaluate", help="score a trained checkpoint on a benchmark (mIoU, seen/unseen/harmonic)")
    p.add_argument("--checkpoint", required=True, help="model.pt or last.pt written by ovlab train")
    p.add_argument("--format", default="ovlab", choices=["ovlab", "scan-official", "scan-converted"],
                   help="checkpoint kind: ovlab train's, an official SCAN .pth, or ovlab convert scan's output")
    p.add_argument("--scan-config", default=None, help="official SCAN config YAML (--format scan-official)")
    p.add_argument("--dataset", required=True, help="benchmark name or alias (coco_133, ade20k_150, ...)")
    p.add_argument("--root", "--gt-root", dest="root", default=None, help="benchmark root (default $DETECTRON2_DATASETS)")
    p.add_argument("--resize", default="short_side", choices=["short_side", "none"])
    p.add_argument("--short-side", type=_positive, default=512)
    p.add_argument("--templates", default=None, help="none | photo | vild (default: none; vild for SCAN formats)")
    p.add_argument("--max-images", type=_positive, default=None)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    p.add_argument("--sg-iou", action="store_true", help="also compute SG-IoU (SCAN Eq. 6), as ovlab eval")
    p.add_argument("--association", default=None, help="association map name or JSON (default: the vocabulary's shipped map)")
    p.add_argument("--sg-mode", choices=["code", "pooled"], default="code")
    p.add_argument("--out", "--output", dest="out", default=None,
                   help="JSON summary path (NAME.json); the per-class CSV goes next to it (NAME.csv), as ovlab eval")
    p.set_defaults(func=_evaluate)

    p = subparsers.add_parser("predict", help="segment one image with a free-form class list")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--image", required=True)
    p.add_argument("--classes", required=True, help='comma-separated names, e.g. "cat,remote,couch"; '
                   'synonyms of one class with "|", e.g. "sofa|couch"')
    p.add_argument("--out", "--out-dir", dest="out", default=None,
                   help="output folder (default $OVLAB_PREDICTIONS, else ./predictions, git-ignored in the repo)")
    p.add_argument("--short-side", type=_positive, default=512)
    p.add_argument("--templates", default="none")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    p.set_defaults(func=_predict)


def _train(args) -> int:
    from ovlab.config.resolved import write_resolved
    from ovlab.engine.distributed import relaunch_with_torchrun, under_torchrun
    from ovlab.engine.trainer import train
    from ovlab.experiments.registry import check_evaluation, task_for

    try:
        params = load_params(args.params, args.overrides)
        stage = params.stage(args.section)
        if not hasattr(stage.cfg, "train"):
            raise ValueError(f"--section {args.section}: not a training section (ovlab train trains tgkd, scan or "
                             f"video; the {args.section} stage runs with `dvc repro {args.section}`)")
        gpus = stage.cfg.train.gpus
        if gpus > 1 and not under_torchrun():
            _check_device(stage.base.device, gpus)
            relaunch_with_torchrun(gpus, ["train", "--section", args.section, "--params", args.params]
                                   + override_argv(args.overrides) + (["--no-eval"] if args.no_eval else []))
        task = task_for(stage.name)
        stage = task.resolve(stage)
        if not args.no_eval:
            check_evaluation(stage)  # eval.dataset / eval.root checked before training, not after it
        if os.environ.get("RANK", "0") == "0":
            write_resolved(stage.path(stage.cfg.output) / "params.yaml", stage)
        result = train(stage, task=task, evaluate=not args.no_eval)
    except ERRORS as exc:
        return _error("train", exc)
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
        params = load_params(args.params, args.overrides)
        from ovlab.config.resolved import write_resolved

        c, out = params.tgkd.cost, params.path(params.tgkd.grids.output)
        write_resolved(out / "cost.params.yaml", params.stage("tgkd"))
        result = measure_cost(c.config, c.device, c.size, c.proposals, c.repeats, clip=c.clip, crop_clip=c.crop_clip)
        write_json(out / "cost.json", result)
        print(format_cost(result))
    except ERRORS as exc:
        return _error("cost", exc)
    return 0


def _device(name: str) -> str:
    import torch

    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: torch sees no GPU (use --device cpu or auto)")
    return ("cuda" if torch.cuda.is_available() else "cpu") if name == "auto" else name


def _check_device(device: str, gpus: int) -> None:
    """Before a torchrun re-launch: fail once, here, rather than once per rank."""
    import torch

    if device in ("cuda", "auto") and torch.cuda.device_count() < gpus:
        raise ValueError(f"train.gpus is {gpus} but torch sees {torch.cuda.device_count()} GPU(s) "
                         f"(base.device {device}); set train.gpus to 1 (or fewer) on this machine")


def _evaluate(args) -> int:
    from ovlab.config.train import EvalParams
    from ovlab.data.benchmarks import get_benchmark
    from ovlab.metrics.evaluate import EvaluationError, resolve_association, score_confusion, write_outputs

    from ovlab.experiments.registry import from_checkpoint
    from ovlab.segmenter.evaluate import evaluate_model

    try:
        if args.out and Path(args.out).suffix.lower() != ".json":
            raise EvaluationError(f"--out {args.out}: give a .json path (the per-class CSV is written beside it)")
        bench = get_benchmark(args.dataset)
        amap = resolve_association(bench, args.association) if args.sg_iou else None
        dev = _device(args.device)
        if args.format == "ovlab":
            built = from_checkpoint(args.checkpoint, device=dev)
            model, clip = built.model, built.clip
            settings_for = built.stage.cfg.inference_for if hasattr(model, "set_inference") else None
        else:  # an official SCAN checkpoint, converted (ovlab.scan.task.load_converted)
            from ovlab.experiments.registry import task_for

            conv = task_for("scan").load_converted(args.checkpoint, args.format, config=args.scan_config, device=dev)
            model, clip, settings_for = conv.model, conv.clip, conv.inference_for
        if settings_for is not None:  # SCAN: the benchmark's mask threshold, λ and CS ratio
            model.set_inference(settings_for(args.dataset))
        templates = args.templates or ("none" if args.format == "ovlab" else "vild")
        params = EvalParams(dataset=args.dataset, root=args.root, resize=args.resize, short_side=args.short_side,
                            templates=templates, max_images=args.max_images)
        rep = evaluate_model(model.to(dev), clip, params, device=dev, root=args.root)
        # the same summary, per-class CSV and SG-IoU as `ovlab eval`, plus the seen/unseen split
        summary, table = score_confusion(bench, rep.confusion, rep.num_images, sg=args.sg_iou, association=amap,
                                         sg_mode=args.sg_mode)
        summary.update({k: v for k, v in rep.summary.items() if k not in summary})
        summary["checkpoint"] = str(args.checkpoint)
        novel = {r["index"]: r.get("novel") for r in rep.per_class}
        table = [{**row, "novel": novel.get(row["index"])} for row in table]
        summary = {k: (None if isinstance(v, float) and v != v else v) for k, v in summary.items()}
        for k, v in summary.items():
            if isinstance(v, dict):
                v = ", ".join(f"{kk} {vv:.2f}" if isinstance(vv, float) else f"{kk} {vv}" for kk, vv in v.items())
            print(f"{k:>16}: {v:.2f}" if isinstance(v, float) else f"{k:>16}: {v}")
        if args.out:
            path, csv_path = write_outputs(args.out, summary, table)
            print(f"wrote {path} and {csv_path}")
    except ERRORS as exc:
        return _error("evaluate", exc)
    return 0


def _predict(args) -> int:
    from ovlab.experiments.registry import from_checkpoint
    from ovlab.segmenter.predict import parse_classes, predict_image

    try:
        classes = [", ".join(syns) for syns in parse_classes(args.classes)]
        dev = _device(args.device)
        built = from_checkpoint(args.checkpoint, device=dev)
        res = predict_image(built, args.image, classes, args.out, short_side=args.short_side,
                            templates=args.templates, device=dev)
    except ERRORS as exc:
        return _error("predict", exc)
    print(f"ovlab predict: wrote {res.labels_png}, {res.overlay_png} and {res.legend_csv}")
    print("  " + ", ".join(f"{r.name} {r.area_percent:.1f}%" for r in res.legend))
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m ovlab.experiments.train_cli <train|cost|evaluate|predict> ...``: the same as ``ovlab ...``
    (the DVC stages call this form, which imports only what these commands need)."""
    parser = argparse.ArgumentParser(prog="python -m ovlab.experiments.train_cli")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    add_parser(sub)
    from ovlab.caveats import configure_output

    argv = list(sys.argv[1:] if argv is None else argv)
    configure_output("--verbose" in argv)
    args = parser.parse_args([a for a in argv if a != "--verbose"])
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
