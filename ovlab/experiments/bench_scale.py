"""``ovlab bench scale``: what happens at the scale a lab trains and evaluates on.

1. **COCO-scale training start-up.** :func:`ovlab.data.scale.make_coco_scale` writes a COCO-panoptic
   root with COCO train2017's 118,287 image records and ~1.5 M segments (pixels shared by link). Then
   ``ovlab train`` of the ``tgkd`` section (the embedded model, the repository's params with the data root
   pointed there) runs in a fresh process for one iteration without evaluation: the seconds and the peak
   resident memory of that process bound the start-up before the first iteration (targets: ≤ 60 s,
   ≤ 2 GB).
2. **Data-loader throughput** over those records, ``num_workers`` 0 and 2 (batches/s of the training
   batch sampler with augmentation).
3. **ADE-847-scale evaluation.** ``ovlab eval`` on 2,000 ADE-847-size label maps, and on the first 500 of
   them, each in a fresh process: seconds and peak RSS, of the process and of its largest decoding
   worker. Streaming means both peaks are flat in the number of images (target: each 2,000-image
   peak within 10 % + 50 MB of the 500-image one).

Figures are printed and written to ``--out`` (JSON). ``--images`` shrinks the COCO step for a quick look.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import resource
import tempfile
import time
from pathlib import Path


def _child(target, args, queue) -> None:
    t = time.perf_counter()
    try:
        out = target(*args)
        out["seconds"] = round(time.perf_counter() - t, 2)
    except Exception as exc:  # reported, not raised: the parent prints it
        out = {"error": f"{type(exc).__name__}: {exc}"}
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    # the largest of its finished child processes (e.g. the evaluator's decoding workers)
    out["children_peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)
    queue.put(out)


def in_fresh_process(target, *args) -> dict:
    """Run ``target(*args) -> dict`` in a spawned interpreter; its dict plus ``seconds`` (the call,
    imports included), ``peak_rss_mb`` (the child's max RSS) and ``children_peak_rss_mb`` (the max RSS
    of the largest process the child started and waited for, 0 if none)."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    t = time.perf_counter()
    proc = ctx.Process(target=_child, args=(target, args, queue))
    proc.start()
    out = queue.get()
    proc.join()
    out["process_seconds"] = round(time.perf_counter() - t, 2)
    return out


def _train_one_iteration(repo: str, coco_root: str, out_dir: str) -> dict:
    import io

    from ruamel.yaml import YAML

    from ovlab.config import parse_params
    from ovlab.experiments.registry import task_for
    from ovlab.engine.trainer import train

    yaml = YAML(typ="safe")
    data = yaml.load(io.StringIO((Path(repo) / "params.yaml").read_text()))
    t = data.setdefault("tgkd", {})
    t.setdefault("data", {})["root"] = coco_root
    t.setdefault("train", {}).update({"iterations": 1, "checkpoint_dir": str(Path(out_dir) / "ckpt")})
    t["output"] = str(Path(out_dir) / "run")
    t.setdefault("gkc", {}).setdefault("td", {})["strategy"] = "none"
    params = parse_params(data, source="bench scale", root=repo)
    stage = params.stage("tgkd")
    task = task_for("tgkd")
    stage = task.resolve(stage)
    res = train(stage, task=task, progress=False, evaluate=False)
    return {"iterations": res.iterations}


def _as_is(batch):
    return batch


def _loader_throughput(coco_root: str, workers: int, batches: int) -> dict:
    import torch
    from torch.utils.data import DataLoader

    from ovlab.config.train import AugmentParams
    from ovlab.data.coco_panoptic import read_coco_panoptic
    from ovlab.segmenter.data import IterationBatches

    t = time.perf_counter()
    records = read_coco_panoptic(coco_root, "train")
    t_read = time.perf_counter() - t
    ds = IterationBatches(records, torch.arange(133), batch_size=4, seed=0, augment_params=AugmentParams(),
                          iterations=batches + 2)
    loader = DataLoader(ds, batch_size=None, num_workers=workers, collate_fn=_as_is)
    it = iter(loader)
    next(it)  # worker start-up and the first batch are not throughput
    t = time.perf_counter()
    n = 0
    for _ in range(batches):
        next(it)
        n += 1
    dt = time.perf_counter() - t
    return {"workers": workers, "records": len(records), "read_records_s": round(t_read, 2),
            "batches_per_s": round(n / dt, 2), "images_per_s": round(4 * n / dt, 1)}


def _evaluate(root: str, preds: str) -> dict:
    from ovlab.metrics.evaluate import evaluate_predictions
    from ovlab.metrics.stream import default_workers

    res = evaluate_predictions("ade20k_847", preds, root, sg=True, progress=False)
    return {"images": res.num_images, "workers": default_workers(), "mIoU": round(float(res.summary["mIoU"]), 4)}


def bench_scale(argv: list[str]) -> int:
    """Print and write the scale figures; returns 0 when every target is met, else 1."""
    ap = argparse.ArgumentParser(prog="ovlab bench scale", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=118_287, help="COCO image records")
    ap.add_argument("--eval-images", type=int, default=2000)
    ap.add_argument("--batches", type=int, default=20, help="data-loader batches timed")
    ap.add_argument("--repo", type=Path, default=Path("."), help="the checkout whose params.yaml is used")
    ap.add_argument("--out", type=Path, default=Path("results/bench/scale.json"))
    args = ap.parse_args(argv)
    from ovlab.atomic import write_json
    from ovlab.data.scale import make_ade847_scale, make_coco_scale

    fig: dict = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cpus": os.cpu_count(),
                 "load_average_before": [round(v, 2) for v in os.getloadavg()]}
    with tempfile.TemporaryDirectory(prefix="ovlab-bench-scale-") as tmp:
        tmp = Path(tmp)
        t = time.perf_counter()
        fig["coco"] = make_coco_scale(tmp / "coco", images=args.images)
        fig["coco"]["made_s"] = round(time.perf_counter() - t, 1)
        print(f"COCO-scale root: {fig['coco']['images']} images, {fig['coco']['segments']} segments, "
              f"{fig['coco']['json_bytes'] / 2**20:.0f} MiB JSON")
        fig["train_startup"] = in_fresh_process(_train_one_iteration, str(args.repo.resolve()), str(tmp / "coco"),
                                                str(tmp / "train"))
        print("train start-up (1 iteration, no eval):", json.dumps(fig["train_startup"]))
        fig["loader"] = [in_fresh_process(_loader_throughput, str(tmp / "coco"), w, args.batches) for w in (0, 2)]
        for row in fig["loader"]:
            print("data loader:", json.dumps(row))
        t = time.perf_counter()
        info = make_ade847_scale(tmp / "ade", images=args.eval_images)
        small = make_ade847_scale(tmp / "ade_small", images=max(1, args.eval_images // 4))
        fig["eval_data_made_s"] = round(time.perf_counter() - t, 1)
        fig["eval"] = [in_fresh_process(_evaluate, small["root"], small["predictions"]),
                       in_fresh_process(_evaluate, info["root"], info["predictions"])]
        for row in fig["eval"]:
            print("ovlab eval:", json.dumps(row))
    fig["load_average_after"] = [round(v, 2) for v in os.getloadavg()]
    ts = fig["train_startup"]
    e_small, e_big = fig["eval"]
    fig["targets"] = {
        "startup_le_60s": "error" not in ts and ts["process_seconds"] <= 60,
        "startup_le_2GB": "error" not in ts and ts["peak_rss_mb"] <= 2048,
        "eval_rss_flat": ("error" not in e_small and "error" not in e_big
                          and all(e_big[k] <= 1.1 * e_small[k] + 50 for k in ("peak_rss_mb", "children_peak_rss_mb"))),
    }
    print("targets:", json.dumps(fig["targets"]))
    write_json(args.out, fig)
    return 0 if all(fig["targets"].values()) else 1
