"""Segment one image with a free-form class list and write readable outputs: a palette label PNG,
an overlay with region contours and a legend of the classes present, and the legend as CSV."""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from ovlab.atomic import write_bytes, write_text
from ovlab.data.files import read_rgb
from ovlab.palette import LegendRow, class_colors, label_png, overlay_with_legend
from ovlab.palette import overlay as _overlay

from ovlab.segmenter.evaluate import predict_labels
from ovlab.segmenter.vocabulary import build_vocabulary


MIN_SHORT_SIDE = 64
"""The smallest test resolution ``predict`` accepts (stride 32 → 2×2 features)."""


def default_output_dir() -> Path:
    """Where ``ovlab predict`` writes by default: ``$OVLAB_PREDICTIONS``, else ``predictions/`` in
    the current folder (git-ignored in the ovlab repository)."""
    return Path(os.environ.get("OVLAB_PREDICTIONS", "predictions"))


@dataclass
class PredictResult:
    """Paths written, the per-class pixel share (percent) and the legend of the classes present."""

    labels_png: Path
    overlay_png: Path
    shares: dict[str, float]
    legend: list[LegendRow] = field(default_factory=list)
    legend_csv: Path | None = None


def palette(k: int, seed: int = 0) -> np.ndarray:
    """(k, 3) uint8 class colours (:func:`ovlab.palette.class_colors`)."""
    return class_colors(k, seed)


def overlay(image: np.ndarray, labels: np.ndarray, colors: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend class colours over the image and draw the region contours: (H, W, 3) uint8."""
    return _overlay(image, labels, colors, alpha)


def parse_classes(text: str) -> list[list[str]]:
    """Parse a ``--classes`` list: classes separated by ``,``, synonyms of one class by ``|``
    (``"cat,remote control,sofa|couch"``).

    Returns:
        one list of names per class, in the order given.

    Raises:
        ValueError: an empty list, an empty class or synonym (``"a,,b"``, ``"a||b"``, a trailing
            comma), or a name given twice (``"cat,cat"``; a class index would be ambiguous).
    """
    parts = text.split(",")
    if not text.strip():
        raise ValueError("--classes: the class list is empty")
    out, seen = [], {}
    for i, part in enumerate(parts):
        syns = [s.strip() for s in part.split("|")]
        if not part.strip():
            raise ValueError(f"--classes {text!r}: class {i + 1} is empty (two commas in a row or a trailing comma?)")
        if any(not s for s in syns):
            raise ValueError(f"--classes {text!r}: class {i + 1} ({part.strip()!r}) has an empty synonym "
                             "(two '|' in a row or a trailing '|'?)")
        for s in syns:
            key = " ".join(s.lower().split())
            if key in seen:
                raise ValueError(f"--classes {text!r}: {s!r} is given twice (classes {seen[key] + 1} and {i + 1}); "
                                 "each name may name one class only")
            seen[key] = i
        out.append(syns)
    return out


def legend_csv_text(rows: list[LegendRow]) -> str:
    """The legend as CSV: index, name, colour (#rrggbb), area_percent."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["index", "name", "color", "area_percent"])
    for r in rows:
        w.writerow([r.index, r.name, "#%02x%02x%02x" % r.color, f"{r.area_percent:.2f}"])
    return buf.getvalue()


def _png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def predict_image(built, image_path, classes: list[str], out_dir=None, *, short_side: int = 512,
                  templates: str = "none", device="cpu") -> PredictResult:
    """Predict ``image_path`` over ``classes`` and write, into ``out_dir`` (default
    :func:`default_output_dir`):

    - ``<stem>_labels.png``: the class indices in the order given, as a palette PNG (viewers show
      the class colours; 16-bit greyscale over 256 classes);
    - ``<stem>_overlay.png``: the image with the class colours blended in, 1-px region contours,
      and a legend of the classes present (colour, name, area %) to the right;
    - ``<stem>_legend.csv``: that legend (index, name, colour, area %).

    Any input mode is accepted (greyscale, RGBA, palette, 16-bit; :func:`ovlab.data.files.read_rgb`).

    Args:
        built: :class:`ovlab.segmenter.build.Built` (a trained model).
        classes: K free-form names (a name may hold synonyms as ``"sofa, couch"``).
        short_side: test resolution, ≥ :data:`MIN_SHORT_SIDE` (the stride-32 features need 2×2 pixels
            for the decoder's GroupNorm).

    Raises:
        ValueError: empty class list, ``short_side`` < :data:`MIN_SHORT_SIDE`.
        CorruptFileError / FileNotFoundError: unreadable image (names the file).
        OutputNotWritableError: ``out_dir`` cannot be written.
    """
    classes = [c.strip() for c in classes if c.strip()]
    if not classes:
        raise ValueError("the class list is empty")
    if short_side < MIN_SHORT_SIDE:
        raise ValueError(f"--short-side {short_side}: must be ≥ {MIN_SHORT_SIDE} (the model's stride-32 features "
                         "need at least 2×2 pixels)")
    image = read_rgb(Path(image_path))
    vocab = build_vocabulary(built.clip, classes, templates=templates)
    labels = predict_labels(built.model.to(device).eval(), image, vocab, short_side=short_side, device=device)
    out = Path(out_dir) if out_dir is not None else default_output_dir()
    stem = Path(image_path).stem
    colors = class_colors(len(classes))
    names = [c.split(",")[0].strip() for c in classes]
    picture, rows = overlay_with_legend(image, labels, names, colors)
    lab_png = write_bytes(out / f"{stem}_labels.png", label_png(labels, colors))
    ov_png = write_bytes(out / f"{stem}_overlay.png", _png(picture))
    leg_csv = write_text(out / f"{stem}_legend.csv", legend_csv_text(rows))
    counts = np.bincount(labels.ravel(), minlength=len(classes)) / labels.size * 100
    return PredictResult(lab_png, ov_png, {c: round(float(s), 2) for c, s in zip(classes, counts)}, rows, leg_csv)
