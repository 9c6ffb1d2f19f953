"""``ovlab bench clip``: speed of the CLIP toolkit with the tiny embedded models.

Times, per tiny model (median of ``--repeat`` runs, after one warm-up): a forward of a batch of
``--batch`` crops at the model size, the masked crops δ(I, M) of ``--batch`` masks of a 256×256
image, a text bank of the 133 COCO-panoptic names with no template and with the 14 ViLD templates,
and the dense features (ResNet levels + spatial tokens / ViT tokens at every block). Target
(issue 4): a forward of 32 crops well under a second on one CPU thread.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import torch


def _time(fn, repeat: int) -> float:
    fn()
    ts = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def bench_clip(argv: list[str]) -> int:
    """Run the benchmark and print one line per measurement; returns 0."""
    from ovlab.data.categories import load_categories
    from ovlab.data.names import normalize_class_name
    from ovlab.clip import build_text_bank, load_clip, masked_crops, resnet_features, vit_features

    p = argparse.ArgumentParser(prog="ovlab bench clip", description=__doc__)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    names = [normalize_class_name(c.name) for c in load_categories("coco_panoptic_133")]
    g = torch.Generator().manual_seed(0)
    image = (torch.rand(256, 256, 3, generator=g) * 255).to(torch.uint8)
    masks = torch.rand(a.batch, 256, 256, generator=g) > 0.7
    print(f"ovlab bench clip: batch {a.batch}, {a.threads} thread(s), median of {a.repeat}")
    for model in ("ovlab-tiny-rn", "ovlab-tiny-vit"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t = time.perf_counter()
            clip = load_clip(model, None, seed=0)
            t_load = time.perf_counter() - t
        x = torch.randn(a.batch, 3, *clip.image_size, generator=g)
        rows = {
            "load (untrained)": t_load,
            f"encode_image ×{a.batch}": _time(lambda: clip.encode_image(x), a.repeat),
            f"masked_crops ×{a.batch}": _time(lambda: masked_crops(image, masks, size=clip.image_size), a.repeat),
            "text bank 133 names, no template": _time(lambda: build_text_bank(clip, names, "none"), 1),
            "text bank 133 names, 14 ViLD templates": _time(lambda: build_text_bank(clip, names, "vild"), 1),
        }
        if clip.family == "resnet":
            rows[f"resnet_features ×{a.batch}"] = _time(lambda: resnet_features(clip.model.visual, x), a.repeat)
        else:
            blocks = list(range(1, len(clip.model.visual.transformer.resblocks) + 1))
            rows[f"vit_features ×{a.batch}, all blocks"] = _time(lambda: vit_features(clip.model.visual, x, blocks), a.repeat)
        for k, v in rows.items():
            print(f"  {model:15s} {k:40s} {1000 * v:9.1f} ms")
    return 0
