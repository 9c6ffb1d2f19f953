"""SuperPoint keypoints (DeTone, Malisiewicz & Rabinovich, CVPR-W 2018, §3 and Fig. 3) for the SuperPoint
pseudo ground truth of L^p (physically guided paper Tab. 4).

The network is the paper's VGG-style shared encoder (four stages of two 3×3 convolutions, 64-64-128-128
channels, max-pooled to 1/8) and the interest-point decoder (3×3 conv to 256, 1×1 conv to 65 = 8×8 cells
+ a dustbin, channel softmax, dustbin dropped, depth-to-space to full resolution), followed by
non-maximum suppression and a confidence threshold. The layer names (``conv1a`` … ``convPb``,
``convDa``, ``convDb``) are those of the released ``superpoint_v1.pth``, so that file loads as is.

Weights are never downloaded: :func:`load_superpoint` reads a local checkpoint and fails with a clear
message when it is absent; ``checkpoint=None`` (written explicitly, embedded profile only) builds an
untrained network whose keypoints are meaningless.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class SuperPointNotFoundError(FileNotFoundError):
    """The SuperPoint checkpoint is not on disk (the message says where it was looked for)."""


class SuperPoint(nn.Module):
    """SuperPoint encoder + interest-point (and descriptor) heads.

    Args:
        threshold: detection confidence threshold [0.015, the released demo's default].
        nms_radius: NMS radius in pixels [4].
        border: keypoints closer than this to the border are dropped [4].
    """

    def __init__(self, threshold: float = 0.015, nms_radius: int = 4, border: int = 4):
        super().__init__()
        c1, c2, c3, c4, c5, d1 = 64, 64, 128, 128, 256, 256
        conv = lambda i, o, k=3: nn.Conv2d(i, o, k, padding=k // 2)  # noqa: E731
        self.conv1a, self.conv1b = conv(1, c1), conv(c1, c1)
        self.conv2a, self.conv2b = conv(c1, c2), conv(c2, c2)
        self.conv3a, self.conv3b = conv(c2, c3), conv(c3, c3)
        self.conv4a, self.conv4b = conv(c3, c4), conv(c4, c4)
        self.convPa, self.convPb = conv(c4, c5), conv(c5, 65, 1)
        self.convDa, self.convDb = conv(c4, c5), conv(c5, d1, 1)
        self.threshold, self.nms_radius, self.border = float(threshold), int(nms_radius), int(border)

    def heatmap(self, gray: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W) grayscale in [0, 1], H and W multiples of 8 → (B, H, W) interest-point probability."""
        x = gray
        for a, b in ((self.conv1a, self.conv1b), (self.conv2a, self.conv2b), (self.conv3a, self.conv3b)):
            x = F.max_pool2d(F.relu(b(F.relu(a(x)))), 2)
        x = F.relu(self.conv4b(F.relu(self.conv4a(x))))
        semi = self.convPb(F.relu(self.convPa(x)))                    # (B, 65, H/8, W/8)
        prob = semi.softmax(1)[:, :-1]                                # dustbin dropped
        return F.pixel_shuffle(prob, 8)[:, 0]                          # (B, H, W)

    @torch.no_grad()
    def keypoints(self, image: torch.Tensor) -> np.ndarray:
        """Keypoints of one image.

        Args:
            image: (3, H, W) float RGB in [0, 1]; H, W are cropped to multiples of 8.

        Returns:
            (N, 2) float32 (x, y).
        """
        w_rgb = torch.tensor([0.299, 0.587, 0.114], dtype=image.dtype, device=image.device)
        gray = (image * w_rgb[:, None, None]).sum(0)
        h, w = (gray.shape[0] // 8) * 8, (gray.shape[1] // 8) * 8
        p = next(self.parameters())
        heat = self.heatmap(gray[:h, :w][None, None].to(p.device, p.dtype))[0]
        r = self.nms_radius
        peak = heat == F.max_pool2d(heat[None, None], 2 * r + 1, stride=1, padding=r)[0, 0]
        keep = peak & (heat >= self.threshold)
        if self.border:
            b = self.border
            keep[:b] = False
            keep[-b:] = False
            keep[:, :b] = False
            keep[:, -b:] = False
        ys, xs = torch.nonzero(keep, as_tuple=True)
        return torch.stack([xs, ys], 1).float().cpu().numpy().reshape(-1, 2)


def load_superpoint(checkpoint: str | os.PathLike | None, *, threshold: float = 0.015, nms_radius: int = 4,
                    seed: int = 0) -> SuperPoint:
    """The SuperPoint network, in eval mode, frozen.

    Args:
        checkpoint: a local ``superpoint_v1.pth`` (Magic Leap's release, a plain state dict) or
            ``None`` for an untrained network (random weights from ``seed``; warns).

    Raises:
        SuperPointNotFoundError: the file does not exist (nothing is downloaded).
        RuntimeError: the file is not a SuperPoint state dict.
    """
    torch.manual_seed(seed)
    net = SuperPoint(threshold, nms_radius)
    if checkpoint is None:
        warnings.warn("SuperPoint: no checkpoint (structure.superpoint_checkpoint: null): an UNTRAINED network; "
                      "its keypoints are meaningless", UserWarning, stacklevel=2)
    else:
        path = Path(os.path.expanduser(str(checkpoint)))
        if not path.is_file():
            raise SuperPointNotFoundError(
                f"{path}: SuperPoint checkpoint not found. Put Magic Leap's superpoint_v1.pth "
                "(github.com/magicleap/SuperPointPretrainedNetwork, weights/superpoint_v1.pth) there, or set "
                "physical.structure.superpoint_checkpoint; nothing is downloaded")
        state = torch.load(path, map_location="cpu", weights_only=True)
        state = state.get("state_dict", state) if isinstance(state, dict) else state
        net.load_state_dict(state)
    return net.eval().requires_grad_(False)
