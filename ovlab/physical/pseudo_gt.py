"""Pseudo ground truth of the physical structure s_gt for L^p (physically guided paper §3.1, §4.3 and
Tab. 4): Canny edges, label boundaries of the semantic GT (EdgeGT), SIFT keypoints and SuperPoint
keypoints (:mod:`ovlab.physical.superpoint`), rendered as (H, W) maps in [0, 1].

All of them are computed on the augmented crop, after the geometric transforms (reference spec §7.2),
by :func:`structure_target`. The paper gives no thresholds, radii or dilation: the defaults are the
reference spec's [INFER] choices and are parameters (``physical.structure``).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

STRUCTURE_SOURCES = ("canny", "edge_gt", "sift", "superpoint")


def _to_uint8_rgb(image) -> np.ndarray:
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu()
        if image.dim() == 3 and image.shape[0] == 3:
            image = image.permute(1, 2, 0)
        arr = image.numpy()
        if arr.dtype != np.uint8:
            arr = np.clip(np.rint(arr * 255.0), 0, 255).astype(np.uint8)
        return np.ascontiguousarray(arr)
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {arr.dtype}")
    return np.ascontiguousarray(arr)


def canny_edges(image, low: float = 100.0, high: float = 200.0, blur: int = 3) -> np.ndarray:
    """Canny edges of the grayscale image (Canny 1986; OpenCV ``cv2.Canny``).

    Args:
        image: (H, W, 3) uint8 RGB, or a (3, H, W) float tensor in [0, 1].
        low, high: hysteresis thresholds on the 0–255 gradient scale [100, 200, INFER].
        blur: side of the Gaussian pre-blur kernel (odd; 0 = none) [3, INFER].

    Returns:
        (H, W) bool.
    """
    import cv2

    gray = cv2.cvtColor(_to_uint8_rgb(image), cv2.COLOR_RGB2GRAY)
    if blur:
        if blur % 2 == 0:
            raise ValueError(f"canny blur kernel must be odd, got {blur}")
        gray = cv2.GaussianBlur(gray, (blur, blur), 0)
    return cv2.Canny(gray, float(low), float(high)) > 0


def edge_gt(labels, ignore_index: int = 255, dilation: int = 0):
    """EdgeGT: boundaries of the semantic label map (Tab. 4 "EdgeGT").

    A pixel is an edge when it is valid (not ``ignore_index``) and one of its 4-neighbours holds
    another valid label. ``dilation`` > 0 grows the edges by that many pixels (a (2d+1)² square);
    ignore pixels are never edges, before or after the dilation.

    Args:
        labels: (H, W) int (numpy array or tensor).
        ignore_index: the unlabelled value.
        dilation: pixels ≥ 0 [reference spec: 1, INFER].

    Returns:
        (H, W) bool, numpy when ``labels`` is numpy, else a tensor on its device.

    Raises:
        ValueError: not 2-D, or a negative dilation.
    """
    as_numpy = not isinstance(labels, torch.Tensor)
    lab = torch.from_numpy(np.asarray(labels).astype(np.int64)) if as_numpy else labels.long()
    if lab.dim() != 2:
        raise ValueError(f"edge_gt: labels must be (H, W), got shape {tuple(lab.shape)}")
    if dilation < 0:
        raise ValueError(f"edge_gt: dilation must be ≥ 0, got {dilation}")
    valid = lab != ignore_index
    edge = torch.zeros_like(valid)
    # vertical neighbours
    diff = valid[1:] & valid[:-1] & (lab[1:] != lab[:-1])
    edge[1:] |= diff
    edge[:-1] |= diff
    diff = valid[:, 1:] & valid[:, :-1] & (lab[:, 1:] != lab[:, :-1])
    edge[:, 1:] |= diff
    edge[:, :-1] |= diff
    if dilation:
        k = 2 * int(dilation) + 1
        edge = F.max_pool2d(edge[None, None].float(), k, stride=1, padding=int(dilation))[0, 0] > 0
    edge &= valid
    return edge.numpy() if as_numpy else edge


def render_points(points: np.ndarray, shape: tuple[int, int], radius: float = 2.0, mode: str = "disc") -> np.ndarray:
    """Render keypoints as a structure map.

    Args:
        points: (N, 2) float (x, y) pixel coordinates.
        shape: (H, W).
        radius: disc radius, or the Gaussian σ, in pixels [2, INFER].
        mode: ``disc`` (1 inside the disc, else 0) or ``gaussian`` (max over points of
            exp(−d²/2σ²)).

    Returns:
        (H, W) float32 in [0, 1].
    """
    h, w = shape
    out = np.zeros((h, w), np.float32)
    if len(points) == 0:
        return out
    if mode not in ("disc", "gaussian"):
        raise ValueError(f"render mode must be 'disc' or 'gaussian', got {mode!r}")
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    reach = radius if mode == "disc" else 3 * radius
    for x, y in np.asarray(points, np.float32):
        x0, x1 = int(max(0, np.floor(x - reach))), int(min(w, np.ceil(x + reach) + 1))
        y0, y1 = int(max(0, np.floor(y - reach))), int(min(h, np.ceil(y + reach) + 1))
        if x0 >= x1 or y0 >= y1:
            continue
        d2 = (xx[y0:y1, x0:x1] - x) ** 2 + (yy[y0:y1, x0:x1] - y) ** 2
        v = (d2 <= radius ** 2).astype(np.float32) if mode == "disc" else np.exp(-d2 / (2 * radius ** 2))
        np.maximum(out[y0:y1, x0:x1], v, out=out[y0:y1, x0:x1])
    return out


def sift_keypoints(image, max_keypoints: int = 0) -> np.ndarray:
    """SIFT keypoint locations (Lowe 2004; OpenCV ``cv2.SIFT_create`` with default parameters).

    Args:
        image: (H, W, 3) uint8 RGB or (3, H, W) float tensor in [0, 1].
        max_keypoints: OpenCV ``nfeatures`` (0 = all).

    Returns:
        (N, 2) float32 (x, y).
    """
    import cv2

    gray = cv2.cvtColor(_to_uint8_rgb(image), cv2.COLOR_RGB2GRAY)
    kps = cv2.SIFT_create(nfeatures=int(max_keypoints)).detect(gray, None)
    return np.array([k.pt for k in kps], np.float32).reshape(-1, 2)


def structure_target(source: str, image: torch.Tensor, labels: torch.Tensor, params, *, superpoint=None,
                     ignore_index: int = 255) -> torch.Tensor:
    """s_gt of one augmented crop.

    Args:
        source: one of :data:`STRUCTURE_SOURCES`.
        image: (3, H, W) float in [0, 1] (the crop after the geometric transforms).
        labels: (H, W) int64 semantic labels of the crop (``ignore_index`` = unlabelled / padding).
        params: :class:`ovlab.config.physical.StructureParams` (thresholds, radius, dilation).
        superpoint: a :class:`ovlab.physical.superpoint.SuperPoint` (``source == "superpoint"``).

    Returns:
        (H, W) float32 in [0, 1].

    Raises:
        ValueError: unknown source, or ``superpoint`` missing for the SuperPoint source.
    """
    h, w = labels.shape
    if source == "canny":
        m = canny_edges(image, params.canny_low, params.canny_high, params.canny_blur)
        return torch.from_numpy(m.astype(np.float32))
    if source == "edge_gt":
        return edge_gt(labels.cpu(), ignore_index, params.edge_dilation).float()
    if source == "sift":
        pts = sift_keypoints(image, params.sift_max_keypoints)
    elif source == "superpoint":
        if superpoint is None:
            raise ValueError("structure source 'superpoint' needs a SuperPoint network (structure.superpoint_checkpoint)")
        pts = superpoint.keypoints(image)
    else:
        raise ValueError(f"structure source must be one of {STRUCTURE_SOURCES}, got {source!r}")
    return torch.from_numpy(render_points(pts, (h, w), params.keypoint_radius, params.keypoint_render))
