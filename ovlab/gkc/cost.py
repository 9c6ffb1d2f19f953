"""``ovlab bench cost``: FLOPs, parameters and throughput, single-stage GKC vs two-stage (GKC Tab. 2).

Both models share the backbone and run in the same process on the same input (one random
``size``×``size`` image, batch 1, ``torch.inference_mode``):

- **single-stage** (GKC): :meth:`Segmenter.segment` — backbone, pixel decoder, masked-attention
  decoder, text classifier and Mask2Former semantic inference;
- **two-stage** (Simbaseline-style, :class:`ovlab.gkc.two_stage.TwoStageSegmenter`): the same
  segmenter, then ``proposals`` masked crops → the CLIP image encoder at its input size →
  cosine with the text embeddings → geometric ensemble → semantic inference.

Weights are untrained (architecture only; nothing is downloaded): cost does not depend on them.
Text embeddings are random unit vectors for ``classes`` classes (both methods encode the
vocabulary once, offline), so the text tower is in neither count. The two-stage model binarises
its masks at threshold 0 here so that every proposal yields a crop whatever the untrained masks
look like (a crop's cost does not depend on its content); ``crops_encoded`` records the count.

FLOPs come from :class:`torch.utils.flop_counter.FlopCounterMode`: matmuls, convolutions and
attention, 2 FLOPs per multiply–add (fvcore / detectron2, which GKC's Tab. 2 likely used, count 1
per multiply–add, so absolute GFLOPs here are about 2× theirs; the ratio is unaffected). Elementwise
ops, ``grid_sample`` (deformable attention sampling) and resizing are not counted. Parameters:
the segmenter's (its backbone is a copy of the CLIP visual trunk) and, for the two-stage model,
plus the whole CLIP image encoder. Throughput: ``warmup`` untimed forwards of each model, then
``repeats`` (default 5) timed rounds, each one forward of the single-stage model then one of the
two-stage model (CUDA synchronised), so that a change of the machine's load hits both alike. The
speed ratio is the median over rounds of (two-stage seconds / single-stage seconds), printed with its
spread (min, max, interquartile range); a model's images/s is 1 / its median seconds. One repeat on a
loaded machine is not a figure (issue 19 measured 12.4× from 3 quiet repeats, 3.5× from one loaded).

Backbone: any CLIP ResNet (``RN50``, ``RN101``, ``RN50x4``..., or the tiny ``ovlab-tiny-rn*``): the
segmenter's trunk is a copy of its visual tower, and the two-stage crops go through the same CLIP
unless ``crop_clip`` names another (Simbaseline classifies its crops with a ViT-B/16, which may be
given here). GKC Tab. 2 is "measured on the backbone of ResNet101", so the paper profile measures
``RN101``; the JSON records the CLIP of each model and the trunk's blocks per stage (RN50 3-4-6-3,
RN101 3-4-23-3).

Paper targets (GKC Tab. 2, R101, V100): FLOPs ratio single/two-stage ≈ 151.44 / 1165.07 = 0.13;
throughput ratio 8.04 / 2.32 ≈ 3.5 on GPU (issue #6 asks ≥ 4× on CPU).
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections.abc import Callable, Sequence

import torch

FLOPS_TARGET = 0.13
SPEED_TARGET = 4.0
#: GKC Tab. 2 (ResNet-101 backbone, V100): GFLOPs, params M, FPS.
PAPER_TABLE2 = {
    "Simbaseline": {"GFLOPs": 1165.07, "params_M": 89.76, "images_per_s": 2.32},
    "ZegFormer": {"GFLOPs": 1127.86, "params_M": 63.90, "images_per_s": 5.39},
    "GKC": {"GFLOPs": 151.44, "params_M": 40.51, "images_per_s": 8.04},
}


def count_flops(fn: Callable, *args, **kwargs) -> int:
    """FLOPs of one call ``fn(*args, **kwargs)`` under ``torch.inference_mode`` (2 per multiply–add).

    Counted by :class:`torch.utils.flop_counter.FlopCounterMode` (matmul, conv, attention; e.g. a
    Linear(in, out) on N rows = 2·N·in·out, bias not counted).
    """
    from torch.utils.flop_counter import FlopCounterMode

    mode = FlopCounterMode(display=False)
    with torch.inference_mode(), mode:
        fn(*args, **kwargs)
    return int(mode.get_total_flops())


def count_parameters(*modules: torch.nn.Module) -> int:
    """Distinct parameters (by identity) of the modules together, trainable or frozen."""
    seen: dict[int, int] = {}
    for m in modules:
        for p in m.parameters():
            seen[id(p)] = p.numel()
    return sum(seen.values())


def throughput(fn: Callable, *, repeats: int, warmup: int = 1, device: str = "cpu") -> float:
    """Images per second of ``fn()`` (one image per call): ``warmup`` untimed calls, ``repeats`` timed.

    Raises:
        ValueError: repeats < 1 or warmup < 0.
    """
    if repeats < 1 or warmup < 0:
        raise ValueError(f"need repeats ≥ 1 and warmup ≥ 0, got {repeats}, {warmup}")
    sync = torch.cuda.synchronize if str(device).startswith("cuda") else (lambda: None)
    with torch.inference_mode():
        for _ in range(warmup):
            fn()
        sync()
        t = time.perf_counter()
        for _ in range(repeats):
            fn()
        sync()
    return repeats / (time.perf_counter() - t)


def time_calls(fns: Sequence[Callable], *, repeats: int, warmup: int = 1, device: str = "cpu") -> list[list[float]]:
    """Seconds of each call of each of ``fns`` (one image per call), interleaved: ``warmup`` untimed
    calls of each, then ``repeats`` rounds of one timed call of each in turn (CUDA synchronised).

    Returns:
        ``[[seconds of fns[0] per round], [seconds of fns[1] per round], ...]``.

    Raises:
        ValueError: repeats < 1 or warmup < 0.
    """
    if repeats < 1 or warmup < 0:
        raise ValueError(f"need repeats ≥ 1 and warmup ≥ 0, got {repeats}, {warmup}")
    sync = torch.cuda.synchronize if str(device).startswith("cuda") else (lambda: None)
    out: list[list[float]] = [[] for _ in fns]
    with torch.inference_mode():
        for fn in fns:
            for _ in range(warmup):
                fn()
        sync()
        for _ in range(repeats):
            for fn, times in zip(fns, out):
                t = time.perf_counter()
                fn()
                sync()
                times.append(time.perf_counter() - t)
    return out


def spread(values: Sequence[float]) -> dict:
    """``{n, median, min, max, q1, q3, iqr}`` of ``values`` (quartiles by linear interpolation,
    numpy's default ``percentile`` rule).

    Raises:
        ValueError: no values.
    """
    if len(values) == 0:
        raise ValueError("spread of no values")
    import numpy as np

    v = np.asarray(values, dtype=np.float64)
    q1, med, q3 = (float(x) for x in np.percentile(v, [25, 50, 75]))
    return {"n": int(v.size), "median": med, "min": float(v.min()), "max": float(v.max()),
            "q1": q1, "q3": q3, "iqr": q3 - q1}


def timing_summary(single_s: Sequence[float], two_s: Sequence[float]) -> dict:
    """The speed figures of paired timings (round ``r``: ``single_s[r]`` and ``two_s[r]`` seconds).

    Returns:
        ``{"single": spread of its seconds, "two": spread of its seconds, "single_images_per_s":
        1 / median, "two_images_per_s": 1 / median, "speed_ratio": spread of two_s[r] / single_s[r]}``.

    Raises:
        ValueError: the lists differ in length or are empty, or a time is not > 0.
    """
    if len(single_s) != len(two_s) or not single_s:
        raise ValueError(f"need as many single- as two-stage timings (≥ 1), got {len(single_s)} and {len(two_s)}")
    if min(min(single_s), min(two_s)) <= 0:
        raise ValueError("timings must be > 0 seconds")
    one, two = spread(single_s), spread(two_s)
    return {"single": one, "two": two, "single_images_per_s": 1.0 / one["median"],
            "two_images_per_s": 1.0 / two["median"],
            "speed_ratio": spread([b / a for a, b in zip(single_s, two_s)])}


def cost_ratios(single: dict, two: dict, speed_ratio: float | None = None) -> dict:
    """FLOPs ratio = single / two-stage FLOPs; speed ratio = single / two-stage images/s (or the
    given one, e.g. the median of paired rounds from :func:`timing_summary`); targets met.

    Args:
        single, two: rows with ``GFLOPs`` and ``images_per_s``.

    Returns:
        ``{flops_ratio, speed_ratio, flops_target, speed_target, flops_target_met, speed_target_met}``.
    """
    fr = single["GFLOPs"] / two["GFLOPs"]
    sr = single["images_per_s"] / two["images_per_s"] if speed_ratio is None else float(speed_ratio)
    return {"flops_ratio": fr, "speed_ratio": sr, "flops_target": FLOPS_TARGET, "speed_target": SPEED_TARGET,
            "flops_target_met": bool(fr <= FLOPS_TARGET), "speed_target_met": bool(sr >= SPEED_TARGET)}


def _random_vocabulary(classes: int, dim: int, seed: int = 0):
    from ovlab.clip.text import TextBank

    from ovlab.segmenter.vocabulary import Vocabulary

    g = torch.Generator().manual_seed(seed)
    emb = torch.nn.functional.normalize(torch.randn(classes, dim, generator=g), dim=-1)
    names = [f"class {i}" for i in range(classes)]
    bank = TextBank(names, names, torch.arange(classes), emb, ["{}"])
    return Vocabulary(names, bank, list(range(classes)))


def backbone_summary(clip_name: str, visual) -> dict:
    """``{"clip", "kind", "blocks_per_stage", "trunk_params_M"}`` of a CLIP ResNet visual tower (the
    segmenter's trunk: stem + res2–res5, no attention pool; GKC ``mask2former/clip_models.py``).

    Raises:
        ValueError: ``visual`` is not an open_clip ``ModifiedResNet`` (GKC's segmenter needs a CLIP ResNet).
    """
    from open_clip.modified_resnet import ModifiedResNet

    if not isinstance(visual, ModifiedResNet):
        raise ValueError(f"GKC's segmenter trunk is a CLIP ResNet (RN50, RN101, RN50x4, ...); {clip_name} is a "
                         f"{type(visual).__name__}: give a ResNet CLIP (a ViT CLIP may classify the crops: crop_clip)")
    stages = [visual.layer1, visual.layer2, visual.layer3, visual.layer4]
    trunk = sum(p.numel() for n, p in visual.named_parameters() if not n.startswith("attnpool."))
    return {"clip": clip_name, "kind": "CLIP ModifiedResNet", "blocks_per_stage": [len(s) for s in stages],
            "trunk_params_M": trunk / 1e6}


def measure_cost(config: str = "embedded", device: str = "cpu", size: int = 512, proposals: int | None = None,
                 repeats: int = 5, *, clip: str | None = None, crop_clip: str | None = None, classes: int = 133,
                 warmup: int = 1) -> dict:
    """Cost of the single-stage GKC segmenter and the two-stage baseline, same backbone and input.

    Args:
        config: ``embedded`` (tiny CLIP RN, tiny model) or ``paper`` (CLIP RN50, 100 queries, 9
            decoder layers, hidden 256): :data:`ovlab.config.bench.CONFIGS`.
        device: ``cpu`` or ``cuda``.
        size: input side in pixels (a multiple of 32).
        proposals: crops of the two-stage model (top-k queries); default = the model's query count.
        repeats, warmup: timed rounds (one forward of each model, interleaved) / untimed forwards per model.
        clip: the CLIP ResNet of the segmenter's backbone (and of the crops unless ``crop_clip``),
            e.g. ``RN101`` as GKC Tab. 2; default the config's (``tgkd.clip.model`` of the profile).
        crop_clip: the CLIP that classifies the two-stage crops (any architecture, e.g. Simbaseline's
            ``ViT-B-16``); default ``clip``.
        classes: vocabulary size K.

    Returns:
        ``{config, device, size, clip, crop_clip, backbone, queries, proposals, crops_encoded, classes,
        repeats, warmup, threads, models: [single row, two-stage row], flops_ratio, speed_ratio,
        flops_target, speed_target, flops_target_met, speed_target_met, speed_ratio_spread, paper_table2,
        flop_convention}``; a row is ``{model, clip, GFLOPs, params_M, images_per_s, seconds}``
        (images/s = 1 / median seconds; ``seconds`` and ``speed_ratio_spread`` are :func:`spread`s; the
        speed ratio is the median of the paired rounds); ``backbone`` is :func:`backbone_summary`.

    Raises:
        ValueError: unknown config, size not a multiple of 32, proposals outside 1..queries, a
            ``clip`` that is not a CLIP ResNet.
    """
    from ovlab.clip.loading import load_clip
    from ovlab.config.segmenter import ModelParams
    from ovlab.config.two_stage import TwoStageParams
    from ovlab.segmenter.model import build_segmenter
    from ovlab.gkc.two_stage import TwoStageSegmenter

    from ovlab.config.bench import CONFIGS
    from ovlab.segmenter.build import clip_embed_dim

    if config not in CONFIGS:
        raise ValueError(f"unknown configuration {config!r} (known: {', '.join(CONFIGS)})")
    if size % 32:
        raise ValueError(f"size must be a multiple of 32, got {size}")
    cfg = CONFIGS[config]
    name = clip or cfg["clip"]
    params = ModelParams(**cfg["model"])
    q = params.num_queries
    n = q if proposals is None else proposals
    if not 1 <= n <= q:
        raise ValueError(f"proposals must be in 1..{q} (the {config} model has {q} queries), got {n}")
    crop_name = crop_clip or name
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clip_model = load_clip(name, None, device=device)
        crops_model = clip_model if crop_name == name else load_clip(crop_name, None, device=device)
    backbone = backbone_summary(name, clip_model.model.visual)
    if clip_embed_dim(crops_model) != clip_embed_dim(clip_model):
        raise ValueError(f"crop_clip {crop_name} embeds in {clip_embed_dim(crops_model)} dimensions, the segmenter's "
                         f"{name} in {clip_embed_dim(clip_model)}: they must share the text space")
    torch.manual_seed(0)
    segmenter = build_segmenter(params, clip_embed_dim(clip_model), clip_model).to(device).eval()
    vocab = _random_vocabulary(classes, clip_embed_dim(clip_model))
    text, class_index = vocab.text.to(device), vocab.class_index.to(device)
    two = TwoStageSegmenter(segmenter, crops_model, TwoStageParams(top_k=n, mask_threshold=0.0, batch_size=n))
    x = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0)).to(device)

    def single():
        return segmenter.segment(x, text, class_index, classes)

    last = {}

    def two_stage():
        last["out"] = two.segment(x, vocab, vocab)
        return last["out"]

    models = (("single-stage (GKC)", single, (segmenter,), name),
              (f"two-stage ({n} crops)", two_stage, (segmenter, crops_model.model.visual), f"{name} + {crop_name} crops"))
    flops = [count_flops(fn) for _, fn, _, _ in models]
    times = time_calls([fn for _, fn, _, _ in models], repeats=repeats, warmup=warmup, device=device)
    timing = timing_summary(*times)
    rows = []
    for (label, _, modules, used), f, key in zip(models, flops, ("single", "two")):
        rows.append({"model": label, "clip": used, "GFLOPs": f / 1e9, "params_M": count_parameters(*modules) / 1e6,
                     "images_per_s": timing[f"{key}_images_per_s"], "seconds": timing[key]})
    crops = int(last["out"].valid.sum())
    return {
        "config": config, "device": device, "size": size, "clip": name, "crop_clip": crop_name,
        "backbone": backbone, "clip_input": list(crops_model.image_size),
        "queries": q, "proposals": n, "crops_encoded": crops, "classes": classes, "repeats": repeats,
        "warmup": warmup, "threads": torch.get_num_threads(), "models": rows,
        **cost_ratios(rows[0], rows[1], speed_ratio=timing["speed_ratio"]["median"]),
        "speed_ratio_spread": timing["speed_ratio"], "timings_s": {"single": times[0], "two": times[1]},
        "load_average": _load_average(), "paper_table2": PAPER_TABLE2,
        "flop_convention": "torch FlopCounterMode, 2 FLOPs per multiply-add (fvcore/GKC count 1)",
        "untrained": True,
    }


def _load_average() -> list[float] | None:
    import os

    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:  # pragma: no cover - not available on this platform
        return None


def format_cost(result: dict) -> str:
    """The printed table (model, GFLOPs, params M, median images/s, min–max ms per image) and the two
    ratios against the targets, the speed ratio as median with its spread over the repeats."""
    crops = f", crops {result['crop_clip']}" if result.get("crop_clip", result["clip"]) != result["clip"] else ""
    load = result.get("load_average")
    lines = [f"ovlab bench cost: config {result['config']} (backbone CLIP {result['clip']}{crops}), {result['device']}, "
             f"{result['size']}x{result['size']}, {result['proposals']} proposals, {result['classes']} classes, "
             f"{result['repeats']} repeats, {result['threads']} threads"
             + (f", load average {load[0]:.2f}" if load else ""),
             f"{'model':<26}{'GFLOPs':>12}{'params M':>11}{'images/s':>11}{'ms (median, min-max)':>26}"]
    for r in result["models"]:
        sec = r.get("seconds")
        ms = (f"{1e3 * sec['median']:.1f}, {1e3 * sec['min']:.1f}-{1e3 * sec['max']:.1f}" if sec else "")
        lines.append(f"{r['model']:<26}{r['GFLOPs']:>12.2f}{r['params_M']:>11.2f}{r['images_per_s']:>11.3f}{ms:>26}")
    ok = {True: "met", False: "NOT met"}
    lines.append(f"FLOPs ratio single/two-stage = {result['flops_ratio']:.3f} "
                 f"(target ≤ {result['flops_target']}: {ok[result['flops_target_met']]})")
    sp = result.get("speed_ratio_spread")
    spread_text = (f" (median of {sp['n']} rounds; min {sp['min']:.2f}, max {sp['max']:.2f}, "
                   f"IQR {sp['q1']:.2f}-{sp['q3']:.2f})" if sp else "")
    lines.append(f"speed ratio single/two-stage = {result['speed_ratio']:.2f}x{spread_text} "
                 f"(target ≥ {result['speed_target']}x: {ok[result['speed_target_met']]})")
    return "\n".join(lines)


def bench_cost(argv: list[str]) -> int:
    """``ovlab bench cost [--config embedded|paper] [--device cpu|cuda] [--size 512] [--proposals N]
    [--repeats N] [--warmup N] [--clip RN101] [--crop-clip ViT-B-16] [--classes K] [--threads T]
    [--json PATH]``; returns 0."""
    from ovlab.atomic import write_json

    p = argparse.ArgumentParser(prog="ovlab bench cost", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="embedded", choices=["embedded", "paper"])
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--proposals", type=int, default=None, help="crops of the two-stage model (default: all queries)")
    p.add_argument("--repeats", type=int, default=5, help="timed rounds (one forward of each model); ≥ 5 for a "
                   "figure: the median and spread are printed")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--clip", default=None, help="backbone CLIP ResNet (e.g. RN101, as GKC Tab. 2); default the config's")
    p.add_argument("--crop-clip", default=None, help="CLIP of the two-stage crops (e.g. ViT-B-16); default --clip")
    p.add_argument("--classes", type=int, default=133)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", default=None, help="write the results here (atomic)")
    a = p.parse_args(argv)
    if a.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: no CUDA device available")
    if a.threads:
        torch.set_num_threads(a.threads)
    try:
        result = measure_cost(a.config, a.device, a.size, a.proposals, a.repeats, clip=a.clip, crop_clip=a.crop_clip,
                              classes=a.classes, warmup=a.warmup)
    except ValueError as exc:
        p.error(str(exc))
    print(format_cost(result))
    if a.json:
        write_json(a.json, result)
    return 0
