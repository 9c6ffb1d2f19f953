"""Backbones of the segmenter: res2–res5 feature maps (strides 4/8/16/32).

- :class:`ClipResNetTrunk`: the visual tower of a CLIP ModifiedResNet (RN50 / RN101 / the tiny
  ``ovlab-tiny-rn``) without its attention pool (GKC ``VISION_FEATURE='queryClass'``; GKC ``mask2former/clip_models.py``);
  its BatchNorm layers are trained (``FREEZE_AT=0``, plain BN).
- :class:`TorchvisionResNetTrunk`: an ImageNet ResNet-50/101 (GKC Tab. 7b), weights from a local
  file when given (nothing is downloaded).
- :class:`SmallConvTrunk`: a small randomly initialised CNN (``kind: tiny``) for the embedded
  profile of models whose CLIP is a ViT (SCAN), where no CLIP ResNet trunk exists.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

import torch
from torch import nn

from ovlab.clip.loading import WeightsNotFoundError

STRIDES = (4, 8, 16, 32)


class _Trunk(nn.Module):
    """A stem followed by the four residual stages; ``forward`` returns the four stage outputs."""

    stem: nn.Module
    layers: nn.ModuleList

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(images)
        out = []
        for layer in self.layers:
            x = layer(x)
            out.append(x)
        return out


class ClipResNetTrunk(_Trunk):
    """The stem and res2..res5 of an open_clip ``ModifiedResNet`` (a trainable copy).

    Args:
        visual: ``clip.model.visual`` of a ResNet CLIP; it is deep-copied, so training does not
            change the (frozen) CLIP used for text or as a teacher.

    Raises:
        TypeError: ``visual`` is not a ModifiedResNet.

    Shapes: ``forward`` (B, 3, H, W) normalised → list of 4 maps (B, C_i, H/s_i, W/s_i), s = 4, 8, 16, 32
    (RN50: C = 256, 512, 1024, 2048).
    """

    def __init__(self, visual: nn.Module):
        super().__init__()
        from open_clip.modified_resnet import ModifiedResNet

        if not isinstance(visual, ModifiedResNet):
            raise TypeError(f"ClipResNetTrunk needs an open_clip ModifiedResNet, got {type(visual).__name__}")
        v = copy.deepcopy(visual)
        self.stem = nn.Sequential(v.conv1, v.bn1, v.act1, v.conv2, v.bn2, v.act2, v.conv3, v.bn3, v.act3, v.avgpool)
        self.layers = nn.ModuleList([v.layer1, v.layer2, v.layer3, v.layer4])
        self.channels = [int(layer[-1].bn3.num_features) for layer in self.layers]
        for p in self.parameters():
            p.requires_grad_(True)


class TorchvisionResNetTrunk(_Trunk):
    """torchvision ResNet-50/101 res2..res5 (ImageNet backbones of GKC Tab. 7b).

    Args:
        depth: 50 or 101.
        weights: a local ``.pth`` state dict (torchvision key names) or ``None`` for random init.

    Raises:
        ValueError: another depth.
        WeightsNotFoundError: ``weights`` names a file that does not exist.
    """

    def __init__(self, depth: int = 50, weights: str | os.PathLike | None = None):
        super().__init__()
        import torchvision

        if depth not in (50, 101):
            raise ValueError(f"ImageNet ResNet depth must be 50 or 101, got {depth}")
        net = getattr(torchvision.models, f"resnet{depth}")(weights=None)
        if weights is not None:
            path = Path(weights).expanduser()
            if not path.is_file():
                raise WeightsNotFoundError(
                    f"ImageNet ResNet-{depth} weights not found at {path}. Download torchvision's "
                    f"resnet{depth} checkpoint on a machine with internet and put it there (nothing is downloaded here).")
            net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        self.stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
        self.layers = nn.ModuleList([net.layer1, net.layer2, net.layer3, net.layer4])
        self.channels = [256, 512, 1024, 2048]


class SmallConvTrunk(_Trunk):
    """A small plain CNN with res2..res5-like outputs (embedded profile; random init from the torch seed).

    Stem: two 3×3 conv–BN–ReLU with stride 2 (stride 4); then four stages of one 3×3 conv–BN–ReLU,
    the first with stride 1 and the others with stride 2.

    Args:
        width: channels of the first stage; the stages have width·(1, 2, 4, 8).

    Shapes: ``forward`` (B, 3, H, W) → 4 maps (B, C_i, H/s_i, W/s_i), s = 4, 8, 16, 32.
    """

    def __init__(self, width: int = 16):
        super().__init__()

        def block(cin: int, cout: int, stride: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout),
                                 nn.ReLU(inplace=True))

        self.channels = [width, 2 * width, 4 * width, 8 * width]
        self.stem = nn.Sequential(block(3, width, 2), block(width, width, 2))
        self.layers = nn.ModuleList([block(width, width, 1)] + [block(self.channels[i - 1], self.channels[i], 2)
                                                                  for i in range(1, 4)])
