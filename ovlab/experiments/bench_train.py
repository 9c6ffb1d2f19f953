"""``ovlab bench train``: peak memory and iterations/s of a training step, embedded vs paper configuration.

Each configuration runs in its own process (so peak memory is its own): the model is built with
untrained weights (architecture only: nothing is downloaded), and ``--iterations`` full training
steps (forward, Hungarian matching, losses on every decoder prediction, backward, AdamW) run on
random images with random segment masks at the configuration's crop size, after one warm-up step.
Peak memory is the process's max RSS on CPU and ``torch.cuda.max_memory_allocated`` on GPU.

``ovlab bench overfit`` runs the learning check of :mod:`.overfit` and prints its figures.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import time
import warnings

import torch

from ovlab.config.bench import CONFIGS

def _random_batch(batch: int, size: int, segments: int = 6, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(batch, 3, size, size, generator=g)
    labels, masks = [], []
    for _ in range(batch):
        cls = torch.randint(0, 50, (segments,), generator=g)
        owner = torch.randint(0, segments, (size // 16, size // 16), generator=g)
        owner = owner.repeat_interleave(16, 0).repeat_interleave(16, 1)
        labels.append(cls)
        masks.append(torch.stack([owner == k for k in range(segments)]))
    return images, labels, masks


def _measure(name: str, batch: int, iterations: int, device: str, threads: int, queue) -> None:
    warnings.filterwarnings("ignore")
    torch.set_num_threads(threads)
    from ovlab.clip.loading import load_clip
    from ovlab.config.segmenter import LossParams, ModelParams
    from ovlab.segmenter.criterion import SetCriterion
    from ovlab.segmenter.model import build_segmenter

    cfg = CONFIGS[name]
    clip = load_clip(cfg["clip"], None)
    dim = int(clip.model.text_projection.shape[1])
    torch.manual_seed(0)
    model = build_segmenter(ModelParams(**cfg["model"]), dim, clip).to(device).train()
    crit = SetCriterion(LossParams(**cfg["loss"]))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    text = torch.nn.functional.normalize(torch.randn(50, dim), dim=-1).to(device)
    images, labels, masks = _random_batch(batch, cfg["crop"])
    images, labels, masks = images.to(device), [x.to(device) for x in labels], [m.to(device) for m in masks]
    amp = device == "cuda"

    def step():
        with torch.autocast(device_type=device, enabled=amp):
            preds = model(images, text)
        loss = crit(preds, labels, masks).total()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    for _ in range(iterations):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    dt = time.perf_counter() - t
    peak = (torch.cuda.max_memory_allocated() / 2**20 if device == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    queue.put({"config": name, "device": device, "crop": cfg["crop"], "batch": batch,
               "params_M": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
               "it_per_s": round(iterations / dt, 4), "images_per_s": round(iterations * batch / dt, 3),
               "peak_memory_MiB": round(peak, 1), "memory_kind": "cuda max allocated" if device == "cuda" else "max RSS"})


def bench_train(argv: list[str]) -> int:
    """Print one JSON line per configuration; returns 0."""
    p = argparse.ArgumentParser(prog="ovlab bench train", description=__doc__)
    p.add_argument("--configs", default="embedded,paper")
    p.add_argument("--iterations", type=int, default=3)
    p.add_argument("--batch", type=int, default=None, help="override each configuration's batch")
    p.add_argument("--device", default="auto", choices=["cpu", "cuda", "auto"])
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    a = p.parse_args(argv)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if a.device == "auto" else a.device
    ctx = mp.get_context("spawn")
    for name in a.configs.split(","):
        if name not in CONFIGS:
            p.error(f"unknown configuration {name!r} (known: {', '.join(CONFIGS)})")
        q = ctx.Queue()
        proc = ctx.Process(target=_measure, args=(name, a.batch or CONFIGS[name]["batch"], a.iterations, device,
                                                   a.threads, q))
        proc.start()
        proc.join()
        print(json.dumps(q.get() if proc.exitcode == 0 else {"config": name, "error": f"exit code {proc.exitcode}"}))
    return 0


def bench_overfit(argv: list[str]) -> int:
    """Run the overfit check of :mod:`.overfit` and print its figures; returns 0."""
    import tempfile

    from ovlab.experiments.overfit import overfit_coco_samples

    p = argparse.ArgumentParser(prog="ovlab bench overfit", description=__doc__)
    p.add_argument("--root", default="../shared/data/samples/coco_panoptic")
    p.add_argument("--iterations", type=int, default=300)
    p.add_argument("--images", type=int, default=2)
    a = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        res = overfit_coco_samples(a.root, tmp, iterations=a.iterations, max_images=a.images, progress=True)
    print(json.dumps(res.__dict__))
    return 0
