"""ovlab.clip.crops: bbox, fill, expand, resize modes of δ(I, M) on hand-made images."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ovlab.clip import mask_bbox, masked_crops
from ovlab.clip.crops import CLIP_MEAN, CLIP_STD, expand_bbox


def _image():
    # 6×6 RGB, channel c at (y, x) = 10·y + x + 100·c
    y, x = np.mgrid[0:6, 0:6]
    return np.stack([10 * y + x + 100 * c for c in range(3)], axis=-1).astype(np.uint8)


def _mask(cells):
    m = np.zeros((6, 6), dtype=bool)
    for y, x in cells:
        m[y, x] = True
    return m


def test_mask_bbox_exclusive_and_gkc_quirk():
    m = _mask([(1, 2), (3, 4)])
    assert mask_bbox(m) == (2, 1, 5, 4)
    assert mask_bbox(m, exclusive_max_quirk=True) == (2, 1, 4, 3)
    assert mask_bbox(_mask([(0, 0)]), exclusive_max_quirk=True) == (0, 0, 1, 1)
    with pytest.raises(ValueError, match="empty"):
        mask_bbox(np.zeros((3, 3), bool))


def test_expand_bbox_about_centre_and_clipped():
    assert expand_bbox((2, 2, 4, 4), 2.0, 6, 6) == (1, 1, 5, 5)
    assert expand_bbox((0, 0, 2, 2), 3.0, 6, 6) == (0, 0, 4, 4)


def test_crop_at_native_size_is_the_region_with_mean_fill():
    img = _image()
    m = _mask([(1, 1), (1, 2), (2, 1)])              # L shape: bbox rows 1-2, cols 1-2; (2, 2) is outside
    crops, boxes = masked_crops(img, m[None], size=2, fill="mean", normalize=False)
    assert boxes.tolist() == [[1, 1, 3, 3]]
    got = crops[0] * 255
    for c in range(3):
        assert got[c, 0, 0] == pytest.approx(11 + 100 * c)
        assert got[c, 0, 1] == pytest.approx(12 + 100 * c)
        assert got[c, 1, 0] == pytest.approx(21 + 100 * c)
        assert got[c, 1, 1] == pytest.approx(CLIP_MEAN[c] * 255, rel=1e-5)   # filled
    # normalised: the mean-filled pixel is exactly 0 in every channel
    norm, _ = masked_crops(img, m[None], size=2, fill="mean")
    torch.testing.assert_close(norm[0, :, 1, 1], torch.zeros(3), atol=1e-6, rtol=0)
    torch.testing.assert_close(norm[0, 0, 0, 0], torch.tensor((11 / 255 - CLIP_MEAN[0]) / CLIP_STD[0]))


def test_grey_and_no_fill():
    img = _image()
    m = _mask([(1, 1), (1, 2), (2, 1)])
    grey, _ = masked_crops(img, m[None], size=2, fill="grey", normalize=False)
    torch.testing.assert_close(grey[0, :, 1, 1] * 255, torch.full((3,), 128.0))
    raw, _ = masked_crops(img, m[None], size=2, fill="none", normalize=False)
    torch.testing.assert_close(raw[0, :, 1, 1] * 255, torch.tensor([22.0, 122.0, 222.0]))


def test_stretch_ignores_aspect_and_shortest_centre_crops():
    img = _image()
    m = np.zeros((6, 6), bool)
    m[2:4, 0:6] = True                               # a 2×6 strip
    stretch, _ = masked_crops(img, m[None], size=(2, 6), fill="none", normalize=False)
    torch.testing.assert_close(stretch[0, 0] * 255, torch.tensor(img[2:4, :, 0], dtype=torch.float32))
    short, _ = masked_crops(img, m[None], size=2, fill="none", resize="shortest", normalize=False)
    # short side already 2: no scaling, centre crop of columns 2..3
    torch.testing.assert_close(short[0, 0] * 255, torch.tensor(img[2:4, 2:4, 0], dtype=torch.float32))
    big, _ = masked_crops(img, m[None], size=8, fill="none", normalize=False)
    assert big.shape == (1, 3, 8, 8)


def test_batched_and_errors():
    img = torch.from_numpy(_image()).permute(2, 0, 1)  # (3, H, W) accepted too
    masks = np.stack([_mask([(0, 0)]), _mask([(5, 5), (4, 4)])])
    crops, boxes = masked_crops(img, masks, size=4)
    assert crops.shape == (2, 3, 4, 4) and boxes.tolist() == [[0, 0, 1, 1], [4, 4, 6, 6]]
    with pytest.raises(ValueError, match="mask 1 is empty"):
        masked_crops(img, np.stack([masks[0], np.zeros((6, 6), bool)]))
    with pytest.raises(ValueError, match="fill"):
        masked_crops(img, masks, fill="black")
    with pytest.raises(ValueError, match=r"\(M, H, W\)"):
        masked_crops(img, masks[:, :5])
