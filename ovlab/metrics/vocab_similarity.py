"""Vocabulary similarity between an evaluation and a training vocabulary (physically guided OVS
paper, Table 1; the values there are CAT-Seg's: VOC 0.91, PC-59 0.86, PC-459 0.70, A-150 0.73,
A-847 0.57 against COCO-Stuff).

The paper says only "Hausdorff distance and cosine similarity based on CLIP text encoder".
[INFER] Default (``"directed-mean"``): for each evaluation class, the cosine similarity of its
text embedding to the nearest training class, averaged over the evaluation classes — the
average-linkage (modified) Hausdorff form in similarity space. ``"directed-min"`` is the strict
Hausdorff form (min over evaluation classes of the max similarity), and ``"symmetric-mean"``
averages the two directed means.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

Encoder = Callable[[Sequence[str]], torch.Tensor]


def default_text_encoder(model: str = "ViT-B-32", pretrained: str = "openai", templates: str = "none") -> Encoder:
    """CLIP text embeddings through :mod:`ovlab.clip` (imported here, at call time; weights local only).

    Raises:
        WeightsNotFoundError: the CLIP weights are not on disk (the message says where to put them).
    """
    from ovlab.clip import encode_names, load_clip

    clip = load_clip(model, pretrained)
    return lambda names: encode_names(clip, names, templates)


def vocabulary_similarity(eval_names: Sequence[str], train_names: Sequence[str], encoder: Encoder | None = None,
                          mode: str = "directed-mean") -> float:
    """Similarity in [-1, 1] of ``eval_names`` to ``train_names``.

    Args:
        eval_names: the evaluation vocabulary (N names).
        train_names: the training vocabulary (M names).
        encoder: names → (len, D) L2-normalised float tensor (any encoder; default CLIP text).
        mode: ``"directed-mean"``, ``"directed-min"`` or ``"symmetric-mean"`` (module docstring).

    Raises:
        ValueError: empty vocabulary, unknown mode, or embeddings that are not L2-normalised.
    """
    if not eval_names or not train_names:
        raise ValueError("both vocabularies must be non-empty")
    enc = encoder or default_text_encoder()
    a, b = enc(list(eval_names)).float(), enc(list(train_names)).float()
    for name, e, n in (("eval", a, len(eval_names)), ("train", b, len(train_names))):
        if e.ndim != 2 or e.shape[0] != n:
            raise ValueError(f"encoder returned shape {tuple(e.shape)} for {n} {name} names, expected ({n}, D)")
        if not torch.allclose(e.norm(dim=1), torch.ones(n), atol=1e-3):
            raise ValueError(f"{name} embeddings are not L2-normalised")
    sim = a @ b.T  # (N, M) cosine similarities
    if mode == "directed-mean":
        return float(sim.max(dim=1).values.mean())
    if mode == "directed-min":
        return float(sim.max(dim=1).values.min())
    if mode == "symmetric-mean":
        return float((sim.max(dim=1).values.mean() + sim.max(dim=0).values.mean()) / 2)
    raise ValueError(f"unknown mode {mode!r} (directed-mean, directed-min, symmetric-mean)")


def _names(spec: str) -> list[str]:
    """A vocabulary given as a catalog name (``ade20k_150``), a JSON category file, or a comma list."""
    from ovlab.data.categories import catalog_names, load_categories
    from ovlab.data.names import normalize_class_name

    if spec in catalog_names() or spec.endswith(".json"):
        return [normalize_class_name(c.name) for c in load_categories(spec)]
    import difflib
    import re

    close = difflib.get_close_matches(spec, catalog_names(), n=1, cutoff=0.6)
    if "," not in spec and (close or re.search(r"[_\d]", spec)):
        # a mistyped catalog name (ade20k_15) must not be scored as a one-class vocabulary
        raise ValueError(f"{spec!r} is neither a shipped catalog ({', '.join(catalog_names())}) nor a .json file"
                         + (f"; did you mean {close[0]!r}?" if close else "")
                         + f" (a one-class vocabulary is written with a comma: {spec.strip() + ','!r})")
    parts = [n.strip() for n in spec.split(",")]
    if parts and not parts[-1]:
        parts = parts[:-1]  # one trailing comma: "cat,"
    if not any(parts):
        raise ValueError(f"empty vocabulary {spec!r}")
    if any(not n for n in parts):
        raise ValueError(f"vocabulary {spec!r}: empty class name (two commas in a row?)")
    dup = sorted({n for n in parts if parts.count(n) > 1})
    if dup:
        raise ValueError(f"vocabulary {spec!r}: {', '.join(map(repr, dup))} given twice")
    return parts


def add_parser(subparsers) -> None:
    """Register ``ovlab vocab-sim``."""
    p = subparsers.add_parser(
        "vocab-sim", help="similarity of an evaluation vocabulary to a training vocabulary (phys.-guided Tab. 1)")
    p.add_argument("--eval", required=True, dest="eval_vocab",
                   help="catalog name (e.g. ade20k_150), category JSON, or comma-separated names")
    p.add_argument("--train", required=True, dest="train_vocab", help="same forms; e.g. coco_stuff_171")
    p.add_argument("--mode", default="directed-mean", choices=["directed-mean", "directed-min", "symmetric-mean"])
    p.add_argument("--model", default="ViT-B-32", help="open_clip model of the text encoder")
    p.add_argument("--pretrained", default="openai", help="its weights (a tag found on disk, or a file path)")
    p.set_defaults(func=_main)


def _main(args) -> int:
    import sys

    from ovlab.clip.loading import WeightsNotFoundError

    try:
        a, b = _names(args.eval_vocab), _names(args.train_vocab)
        sim = vocabulary_similarity(a, b, default_text_encoder(args.model, args.pretrained), mode=args.mode)
    except (ValueError, FileNotFoundError, WeightsNotFoundError) as exc:
        print(f"ovlab vocab-sim: error: {exc}", file=sys.stderr)
        return 1
    print(f"{args.mode} similarity of {args.eval_vocab} ({len(a)} names) to {args.train_vocab} ({len(b)} names): {sim:.4f}")
    return 0
