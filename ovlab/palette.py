"""Class colours and readable label pictures: palette PNGs, overlays with contours, legends.

One colour per class index (:func:`class_colors`), used by ``ovlab predict`` and the report
panels, so a class has the same colour in every picture. Drawing uses Pillow only.
"""

from __future__ import annotations

import colorsys
import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont


def class_colors(k: int, seed: int = 0) -> np.ndarray:
    """(k, 3) uint8 colours, distinct for neighbouring indices (golden-ratio hues, fixed).

    The same index always gets the same colour, whatever ``k``.
    """
    return np.array([[int(255 * c) for c in colorsys.hsv_to_rgb((i * 0.618034 + seed * 0.1) % 1.0, 0.75, 0.95)]
                     for i in range(k)], dtype=np.uint8).reshape(k, 3)


def label_png(labels: np.ndarray, colors: np.ndarray) -> bytes:
    """Encode an (H, W) class-index map as PNG bytes.

    Up to 256 classes: an 8-bit *palette* PNG (mode ``P``): the pixel values are the class
    indices (what ``ovlab eval`` reads) and image viewers show the class colours. Over 256
    classes: a 16-bit greyscale PNG of the indices (PNG palettes hold at most 256 entries).

    Raises:
        ValueError: an index outside ``0..len(colors)-1``.
    """
    labels = np.asarray(labels)
    k = len(colors)
    if labels.size and (int(labels.min()) < 0 or int(labels.max()) >= k):
        raise ValueError(f"label values {int(labels.min())}..{int(labels.max())} outside 0..{k - 1}")
    buf = io.BytesIO()
    if k <= 256:
        im = Image.fromarray(labels.astype(np.uint8), mode="P")
        pal = np.zeros((256, 3), np.uint8)
        pal[:k] = colors
        im.putpalette(pal.reshape(-1).tolist())
    else:
        im = Image.fromarray(labels.astype(np.uint16))
    im.save(buf, format="PNG")
    return buf.getvalue()


def boundaries(labels: np.ndarray) -> np.ndarray:
    """(H, W) bool: pixels whose right or lower neighbour has another label (1-px contours)."""
    lab = np.asarray(labels)
    edge = np.zeros(lab.shape, bool)
    edge[:, :-1] |= lab[:, :-1] != lab[:, 1:]
    edge[:-1, :] |= lab[:-1, :] != lab[1:, :]
    return edge


def overlay(image: np.ndarray, labels: np.ndarray, colors: np.ndarray, alpha: float = 0.5,
            contour: tuple[int, int, int] | None = (255, 255, 255)) -> np.ndarray:
    """Blend class colours over ``image`` and draw the region contours.

    Args:
        image: (H, W, 3) uint8.
        labels: (H, W) indices into ``colors``.
        colors: (K, 3) uint8.
        alpha: weight of the class colour.
        contour: colour of the 1-px region boundaries, or None for none.

    Returns:
        (H, W, 3) uint8.
    """
    out = (image.astype(np.float32) * (1 - alpha) + colors[labels].astype(np.float32) * alpha).round().astype(np.uint8)
    if contour is not None:
        out[boundaries(labels)] = contour
    return out


@dataclass(frozen=True)
class LegendRow:
    """One class present in a prediction: index, name, colour and share of the pixels (percent)."""

    index: int
    name: str
    color: tuple[int, int, int]
    area_percent: float


def legend_rows(labels: np.ndarray, names: list[str], colors: np.ndarray) -> list[LegendRow]:
    """The classes present in ``labels``, largest area first (ties by index)."""
    counts = np.bincount(np.asarray(labels).ravel(), minlength=len(names))[: len(names)]
    total = max(int(counts.sum()), 1)
    rows = [LegendRow(i, names[i], tuple(int(v) for v in colors[i]), 100.0 * int(n) / total)
            for i, n in enumerate(counts) if n > 0]
    return sorted(rows, key=lambda r: (-r.area_percent, r.index))


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def legend_image(rows: list[LegendRow], height: int | None = None, font_size: int = 14) -> np.ndarray:
    """Draw a legend panel: a colour swatch, the class name and its area % per row.

    Args:
        rows: from :func:`legend_rows`.
        height: panel height in pixels (default: just tall enough); rows that do not fit are
            summarised in a last "+N more" line.

    Returns:
        (H, W, 3) uint8, white background.
    """
    font = _font(font_size)
    line = font_size + 6
    texts = [f"{r.name}  {r.area_percent:.1f}%" for r in rows]
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    width = 12 + line + max([int(probe.textlength(t, font=font)) for t in texts] + [60]) + 8
    need = 8 + line * max(len(rows), 1)
    h = max(need if height is None else height, line + 8)
    fit = len(rows) if need <= h else max((h - 8) // line - 1, 0)
    im = Image.new("RGB", (width, h), (255, 255, 255))
    d = ImageDraw.Draw(im)
    for j, (r, t) in enumerate(zip(rows[:fit], texts[:fit])):
        y = 4 + j * line
        d.rectangle([6, y + 2, 6 + font_size, y + 2 + font_size], fill=r.color, outline=(0, 0, 0))
        d.text((12 + line, y + 2), t, fill=(0, 0, 0), font=font)
    if fit < len(rows):
        d.text((12 + line, 4 + fit * line + 2), f"+{len(rows) - fit} more", fill=(0, 0, 0), font=font)
    if not rows:
        d.text((8, 6), "(no class)", fill=(0, 0, 0), font=font)
    return np.array(im)


def overlay_with_legend(image: np.ndarray, labels: np.ndarray, names: list[str], colors: np.ndarray,
                        alpha: float = 0.5) -> tuple[np.ndarray, list[LegendRow]]:
    """The overlay of :func:`overlay` with the legend of the present classes to its right.

    The overlay keeps the image's pixel grid (columns ``0..W-1``); the legend panel is appended
    on the right, at least as tall as its rows (a small image is padded below with white).

    Returns:
        ((max(H, legend height), W + legend width, 3) uint8, the legend rows).
    """
    rows = legend_rows(labels, names, colors)
    ov = overlay(image, labels, colors, alpha)
    leg = legend_image(rows, height=max(ov.shape[0], 0) if ov.shape[0] >= 40 else None)
    h = max(ov.shape[0], leg.shape[0])
    out = np.full((h, ov.shape[1] + leg.shape[1], 3), 255, np.uint8)
    out[: ov.shape[0], : ov.shape[1]] = ov
    out[: leg.shape[0], ov.shape[1]:] = leg
    return out, rows
