"""``ovlab convert scan``: an official SCAN checkpoint → an ovlab checkpoint (:mod:`ovlab.scan.convert`),
and loading either kind for evaluation (``ovlab evaluate --format scan-official | scan-converted``).

    ovlab convert scan --checkpoint SCAN.pth [--clip CS_FINETUNED_CLIP.pt] [--config scan_vitL.yaml] --out model.pt

Every official key is consumed or listed as ignored with its reason (printed, and stored in the
checkpoint under ``ignored``); an unknown key or a shape mismatch stops the conversion with an error
naming the key. The architecture is inferred from the shapes (+ the official config for heads, SIM
blocks and σ, CS layers and thresholds; default: yongliu20/SCAN ``configs/scan_vitL.yaml``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch

from ovlab.atomic import write_with
from ovlab.scan.task import ConvertedModel, load_converted  # noqa: F401 - re-exported: the loading lives with the task

FORMATS = ("ovlab", "scan-official", "scan-converted")
"""Checkpoint formats ``ovlab evaluate --format`` reads: an ``ovlab train`` checkpoint, an official
SCAN ``.pth`` (converted on the fly), or the output of ``ovlab convert scan``."""


def convert_scan(checkpoint: str | os.PathLike, out: str | os.PathLike, *, clip: str | None = None,
                 config: str | None = None) -> dict:
    """Convert and write (atomically); returns the checkpoint dict.

    Raises:
        FileNotFoundError, ConversionError: see :func:`load_converted`.
    """
    from ovlab.scan.convert import convert_scan_state_dict, load_official_checkpoint, merge_clip_checkpoint, read_official_config

    conv = convert_scan_state_dict(load_official_checkpoint(checkpoint), read_official_config(config))
    if clip is not None:
        merge_clip_checkpoint(conv, clip)
    ck = conv.checkpoint()
    ck["source"] = {"checkpoint": str(checkpoint), "clip": None if clip is None else str(clip),
                    "config": None if config is None else str(config)}
    write_with(Path(out), lambda fh: torch.save(ck, fh))
    return ck


def add_parser(subparsers) -> None:
    """Register ``convert`` (sub-command ``scan``)."""
    p = subparsers.add_parser("convert", help="convert an official checkpoint into an ovlab checkpoint (SCAN)")
    sub = p.add_subparsers(dest="what", metavar="WHAT")
    sub.required = True
    s = sub.add_parser("scan", help="official SCAN .pth (yongliu20/SCAN) → ovlab checkpoint")
    s.add_argument("--checkpoint", required=True, help="the released SCAN checkpoint (detectron2 {'model': ...})")
    s.add_argument("--clip", default=None, help="the CS fine-tuned CLIP file to merge as the mask-classifying CLIP")
    s.add_argument("--config", default=None, help="the official config YAML (default: configs/scan_vitL.yaml values)")
    s.add_argument("--out", required=True, help="the ovlab checkpoint to write (model.pt)")
    s.set_defaults(func=_convert_scan)


def _convert_scan(args) -> int:
    from ovlab.scan.convert import ConversionError

    try:
        ck = convert_scan(args.checkpoint, args.out, clip=args.clip, config=args.config)
    except (FileNotFoundError, ConversionError, ValueError) as exc:
        print(f"ovlab convert scan: {exc}", file=sys.stderr)
        return 2
    a = ck["architecture"]
    print(f"consumed {len(ck['consumed'])} official keys, ignored {len(ck['ignored'])}:")
    reasons: dict[str, int] = {}
    for reason in ck["ignored"].values():
        reasons[reason] = reasons.get(reason, 0) + 1
    for reason, n in sorted(reasons.items()):
        print(f"  {n:4d} × {reason}")
    print(f"architecture: Swin embed {a['swin']['embed_dim']} depths {a['swin']['depths']} window "
          f"{a['swin']['window_size']}; decoder {a['decoder_layers']} layers × {a['num_queries']} queries; "
          f"CLIP ViT width {a['clip']['vision_cfg']['width']} × {a['clip']['vision_cfg']['layers']}; D {a['embed_dim']}")
    print(f"wrote {args.out}")
    return 0
