"""Segment one image with a free-form class list and write a label PNG and a coloured overlay."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ovlab.atomic import write_bytes
from ovlab.data.files import read_image

from ovlab.segmenter.evaluate import predict_labels
from ovlab.segmenter.vocabulary import build_vocabulary


@dataclass
class PredictResult:
    """Paths written and the per-class pixel share (percent) of the prediction."""

    labels_png: Path
    overlay_png: Path
    shares: dict[str, float]


def palette(k: int, seed: int = 0) -> np.ndarray:
    """(k, 3) uint8 distinct-ish colours (golden-ratio hues, fixed)."""
    import colorsys

    return np.array([[int(255 * c) for c in colorsys.hsv_to_rgb((i * 0.618034 + seed * 0.1) % 1.0, 0.75, 0.95)]
                     for i in range(k)], dtype=np.uint8)


def overlay(image: np.ndarray, labels: np.ndarray, colors: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend class colours over the image: (H, W, 3) uint8."""
    return (image.astype(np.float32) * (1 - alpha) + colors[labels].astype(np.float32) * alpha).round().astype(np.uint8)


def _png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def predict_image(built, image_path, classes: list[str], out_dir, *, short_side: int = 512, templates: str = "none",
                  device="cpu") -> PredictResult:
    """Predict ``image_path`` over ``classes`` and write ``<stem>_labels.png`` (class indices in the
    order given; 16-bit when more than 256 classes) and ``<stem>_overlay.png``.

    Args:
        built: :class:`ovlab.segmenter.build.Built` (a trained model).
        classes: K free-form names (a name may hold synonyms as ``"sofa, couch"``).

    Raises:
        ValueError: empty class list.
        CorruptFileError / FileNotFoundError: unreadable image.
    """
    classes = [c.strip() for c in classes if c.strip()]
    if not classes:
        raise ValueError("the class list is empty")
    image = read_image(Path(image_path), "RGB")
    vocab = build_vocabulary(built.clip, classes, templates=templates)
    labels = predict_labels(built.model.to(device).eval(), image, vocab, short_side=short_side, device=device)
    out = Path(out_dir)
    stem = Path(image_path).stem
    lab_png = write_bytes(out / f"{stem}_labels.png", _png(labels.astype(np.uint16 if len(classes) > 256 else np.uint8)))
    ov_png = write_bytes(out / f"{stem}_overlay.png", _png(overlay(image, labels, palette(len(classes)))))
    counts = np.bincount(labels.ravel(), minlength=len(classes)) / labels.size * 100
    return PredictResult(lab_png, ov_png, {c: round(float(s), 2) for c, s in zip(classes, counts)})
