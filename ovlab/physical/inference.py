"""Test-time prediction of the physically guided segmenter: whole-image or CAT-Seg's sliding window
(the paper's evaluation, CAT-Seg ``eval.sh`` ``TEST.SLIDING_WINDOW=True``; cvlab-kaist/CAT-Seg
``cat_seg/cat_seg_model.py`` ``inference_sliding_window``).

Sliding window: the image is resized to ``out_res`` × ``out_res``, cut into ``kernel`` × ``kernel``
windows with stride ⌊kernel·(1 − overlap)⌋, plus one global view (the whole image resized to the
kernel); the windows' σ(logits), averaged where they overlap, are averaged with the global view's and
resized to the image size.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ovlab.segmenter.evaluate import predict_labels


@torch.no_grad()
def sliding_window_scores(model, image: torch.Tensor, text: torch.Tensor, class_index: torch.Tensor, num_classes: int,
                          *, kernel: int, overlap: float = 0.333, out_res: int | None = None) -> torch.Tensor:
    """Class probabilities of one image by sliding windows.

    Args:
        model: :class:`ovlab.physical.model.PhysicalSegmenter` in eval mode.
        image: (1, 3, H, W) in [0, 1].
        text, class_index, num_classes: the test vocabulary.
        kernel: window side in pixels [384]. overlap: window overlap fraction [0.333].
        out_res: side of the square the image is resized to first [640]; ``None`` = ``kernel``·5/3.

    Returns:
        (1, K, H, W) probabilities.

    Raises:
        ValueError: ``out_res`` smaller than ``kernel``, or ``overlap`` outside [0, 1).
    """
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"sliding-window overlap must be in [0, 1), got {overlap}")
    res = int(out_res) if out_res is not None else int(round(kernel * 5 / 3))
    if res < kernel:
        raise ValueError(f"sliding-window out_res {res} is smaller than the window {kernel}")
    stride = max(1, int(kernel * (1 - overlap)))
    h, w = image.shape[-2:]
    big = F.interpolate(image, size=(res, res), mode="bilinear", align_corners=False)
    cols = F.unfold(big, kernel_size=kernel, stride=stride)                     # (1, 3·k·k, L)
    n = cols.shape[-1]
    windows = cols[0].t().reshape(n, 3, kernel, kernel)
    glob = F.interpolate(image, size=(kernel, kernel), mode="bilinear", align_corners=False)
    batch = torch.cat([windows, glob])
    probs = []
    for i in range(batch.shape[0]):
        probs.append(model.segment(batch[i:i + 1], text, class_index, num_classes))
    probs = torch.cat(probs)                                                     # (L + 1, K, k, k)
    k = probs.shape[1]
    tiles = probs[:-1].reshape(n, k * kernel * kernel).t()[None]               # (1, K·k·k, L)
    summed = F.fold(tiles, (res, res), kernel_size=kernel, stride=stride)
    count = F.fold(F.unfold(torch.ones(1, 1, res, res, device=image.device), kernel, stride=stride), (res, res),
                   kernel_size=kernel, stride=stride)
    local = summed / count.clamp_min(1.0)
    glob_p = F.interpolate(probs[-1:], size=(res, res), mode="bilinear", align_corners=False)
    out = torch.where(count > 0, (local + glob_p) / 2, glob_p)  # pixels no window reaches: the global view
    return F.interpolate(out, size=(h, w), mode="bilinear", align_corners=False)


def predict_physical(model, image: np.ndarray, vocab, params, device) -> np.ndarray:
    """(H, W) class indices of one image under ``params`` (:class:`ovlab.config.physical.PhysicalEvalParams`):
    sliding windows when ``params.sliding_window``, else the whole-image protocol of
    :func:`ovlab.segmenter.evaluate.predict_labels` (short side resized, padded, upsampled)."""
    if not params.sliding_window:
        return predict_labels(model, image, vocab, resize=params.resize, short_side=params.short_side,
                              max_size=params.max_size, device=device)
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float()[None].to(device) / 255.0
    scores = sliding_window_scores(model, x, vocab.text.to(device), vocab.class_index.to(device), len(vocab),
                                   kernel=params.window, overlap=params.overlap, out_res=params.window_resolution)
    return scores[0].argmax(0).cpu().numpy()
