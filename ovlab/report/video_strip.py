"""A per-frame strip of a video model's predictions on one clip (notebook 05; GKC §4.4).

Rows: the frames, the ground truth, the prediction; one column per frame. The clip is segmented as
one space-time volume (:func:`ovlab.video.evaluate.predict_clip`) with a VIPSeg split's own
vocabulary (``val``: all 124 names, the generalized protocol); colours are per class (void / ignored
pixels black), and each frame's title says which unseen classes its ground truth holds.
"""

from __future__ import annotations

import numpy as np


def clip_strip(built, split, *, video: int = 0, max_frames: int = 8, resize: str = "short_side",
               short_side: int = 512, max_size: int = 2560, templates: str = "none", cache_dir=None) -> dict:
    """Predict one clip and colour it.

    Args:
        built: :class:`ovlab.segmenter.build.Built` of a video model (``from_checkpoint`` of a row's ``model.pt``).
        split: a :class:`ovlab.data.vipseg_splits.VipsegSplit` (its vocabulary is the test vocabulary).
        video: which video of the split; max_frames: the clip is its first ``max_frames`` frames.

    Returns:
        ``{"video", "frames" (T, H, W, 3) uint8, "gt" / "pred" (T, H, W, 3) uint8 colour maps,
        "names" (T,) frame names, "unseen" (T,) lists of unseen class names in each frame's GT}``.

    Raises:
        IndexError: the split has no such video.
    """
    from ovlab.data.video_clips import ClipWindow
    from ovlab.data.vipseg_splits import VipsegClips
    from ovlab.segmenter.predict import palette
    from ovlab.video.evaluate import predict_clip
    from ovlab.segmenter.vocabulary import build_vocabulary

    v = split.videos[video]
    t = min(max_frames, len(v))
    sample = VipsegClips(split, [(video, ClipWindow(tuple(range(t)), (True,) * t))])[0]
    vocab = build_vocabulary(built.clip, split.class_names, list(split.class_ids), templates=templates,
                             cache_dir=cache_dir)
    pred = predict_clip(built.model.eval(), sample.images, vocab, resize=resize, short_side=short_side,
                        max_size=max_size)
    colors = palette(split.num_classes)
    gt = np.zeros((*sample.semantic.shape, 3), np.uint8)
    ok = sample.semantic < split.num_classes
    gt[ok] = colors[sample.semantic[ok]]
    by_id = split.categories.by_id()
    unseen = []
    for f in range(t):
        present = np.unique(sample.semantic[f][ok[f]])
        unseen.append([by_id[split.class_ids[k]].name for k in present if by_id[split.class_ids[k]].novel])
    return {"video": v.name, "frames": sample.images, "gt": gt, "pred": colors[pred], "names": sample.frame_names,
            "unseen": unseen}


def show_strip(strip: dict, rows=("frames", "gt", "pred"), titles=("frame", "ground truth", "prediction")):
    """A matplotlib grid of :func:`clip_strip`: one row per kind, one column per frame."""
    import matplotlib.pyplot as plt

    t = len(strip["names"])
    fig, axes = plt.subplots(len(rows), t, figsize=(2.2 * t, 2.0 * len(rows)), squeeze=False)
    for r, (key, title) in enumerate(zip(rows, titles)):
        for f in range(t):
            ax = axes[r][f]
            ax.imshow(strip[key][f])
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                extra = f"\nunseen: {', '.join(strip['unseen'][f])}" if strip["unseen"][f] else ""
                ax.set_title(f"{strip['names'][f]}{extra}", fontsize=7)
            if f == 0:
                ax.set_ylabel(title)
    fig.suptitle(f"{strip['video']}: per-frame predictions of one space-time clip", fontsize=9)
    fig.tight_layout()
    return fig
