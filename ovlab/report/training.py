"""Tables and plots of a training run (notebook 02): loss curves from DVCLive, metrics, predictions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

#: Headline metrics of a run, in display order.
EVAL_COLUMNS = ("mIoU", "seen_mIoU", "unseen_mIoU", "harmonic_mIoU", "pACC", "mACC", "fwIoU")


def dvclive_frame(dvclive_dir: str | Path) -> pd.DataFrame:
    """Long table ``step, metric, value`` of every ``plots/metrics/**.tsv`` a DVCLive run wrote.

    Raises:
        FileNotFoundError: no DVCLive plots under the folder.
    """
    root = Path(dvclive_dir) / "plots" / "metrics"
    files = sorted(root.rglob("*.tsv"))
    if not files:
        raise FileNotFoundError(f"no DVCLive plots under {root}")
    frames = []
    for f in files:
        df = pd.read_csv(f, sep="\t")
        name = f.relative_to(root).with_suffix("").as_posix()
        frames.append(pd.DataFrame({"step": df["step"], "metric": name, "value": df.iloc[:, -1]}))
    return pd.concat(frames, ignore_index=True)


def loss_curves_plot(frame: pd.DataFrame, ax=None, *, prefix: str = "train/loss"):
    """Seaborn line plot of the loss terms (metrics starting with ``prefix``) against the iteration."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    ax = ax or plt.subplots(figsize=(8, 4))[1]
    data = frame[frame["metric"].str.startswith(prefix)]
    sns.lineplot(data=data, x="step", y="value", hue="metric", ax=ax)
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss (unweighted terms; total = Σ λ·term over all decoder layers)")
    ax.set_yscale("log")
    return ax


def eval_table(metrics: dict) -> pd.DataFrame:
    """One-row table of a run's evaluation: dataset, images, protocol and the headline metrics."""
    ev = metrics.get("eval", {})
    row = {"dataset": ev.get("dataset"), "images": ev.get("num_images"), "protocol": ev.get("protocol"),
           "iterations": metrics.get("iterations")}
    row.update({k: ev.get(k) for k in EVAL_COLUMNS})
    return pd.DataFrame([row])


def per_class_frame(path: str | Path) -> pd.DataFrame:
    """The run's ``per_class.csv`` with a ``split`` column (seen / unseen), classes that count only."""
    df = pd.read_csv(path)
    df["split"] = np.where(df["novel"], "unseen", "seen")
    return df.dropna(subset=["IoU"])


def prediction_panels(built, records, vocab, *, short_side: int, colors=None) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(image, GT colour map, prediction colour map) triples of benchmark records (void = black).

    Both maps carry the region contours (white); the prediction map has the legend of the classes
    it holds (colour, name, area %) to its right (:mod:`ovlab.palette`, as ``ovlab predict``).

    Args:
        built: :class:`ovlab.segmenter.build.Built`.
        records: ``(image (H, W, 3) uint8, gt (H, W) int)`` pairs.
        vocab: the test vocabulary (:class:`ovlab.segmenter.vocabulary.Vocabulary`).
    """
    from ovlab.palette import boundaries, legend_image, legend_rows
    from ovlab.segmenter.evaluate import predict_labels
    from ovlab.segmenter.predict import palette

    colors = palette(len(vocab)) if colors is None else colors
    out = []
    for image, gt in records:
        pred = predict_labels(built.model.eval(), image, vocab, short_side=short_side)
        g = np.zeros((*gt.shape, 3), np.uint8)
        ok = gt < len(vocab)
        g[ok] = colors[gt[ok]]
        g[boundaries(gt)] = 255
        p = colors[pred]
        p[boundaries(pred)] = 255
        leg = legend_image(legend_rows(pred, list(vocab.classes), colors), height=max(p.shape[0], 40))
        panel = np.full((max(p.shape[0], leg.shape[0]), p.shape[1] + leg.shape[1], 3), 255, np.uint8)
        panel[: p.shape[0], : p.shape[1]] = p
        panel[: leg.shape[0], p.shape[1]:] = leg
        out.append((image, g, panel))
    return out


def show_panels(panels, titles=("image", "ground truth", "prediction")):
    """A matplotlib grid of :func:`prediction_panels` (one row per image)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(panels), 3, figsize=(9, 2.6 * len(panels)), squeeze=False)
    for row, triple in zip(axes, panels):
        for ax, img, t in zip(row, triple, titles):
            ax.imshow(img)
            ax.set_title(t)
            ax.axis("off")
    fig.tight_layout()
    return fig
