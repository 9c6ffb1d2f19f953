"""Swin backbones from timm with Mask2Former's res2–res5 (``ovlab.segmenter.swin``): the shifted-window
mask, the window-padding order switch, local weights, the config path."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from ovlab.clip.loading import WeightsNotFoundError
from ovlab.segmenter.swin import SWIN_VARIANTS, SwinBackbone, shifted_window_mask

FIXTURE = Path(__file__).resolve().parents[1].parent / "shared" / "parity" / "scan_tiny"
TINY = dict(embed_dim=12, depths=[2, 2, 2, 2], num_heads=[1, 2, 4, 8], window_size=6)


def test_shifted_window_mask_by_hand():
    """4×4 map, window 2, shift 1: regions rows {0..1}, {2}, {3} × the same columns; window (0, 0)
    lies in region 0 only (no mask), window (1, 1) straddles 4 regions."""
    m = shifted_window_mask(4, 4, 2, 1)
    assert m.shape == (4, 4, 4)
    assert torch.equal(m[0], torch.zeros(4, 4))
    # window (1, 1) covers pixels (2,2) (2,3) (3,2) (3,3): regions 4, 5, 7, 8 -> all different
    want = torch.full((4, 4), -100.0)
    want.fill_diagonal_(0.0)
    assert torch.equal(m[3], want)
    # window (0, 1) covers (0,2) (0,3) (1,2) (1,3): regions 1, 2, 1, 2
    same = torch.tensor([[0, -100, 0, -100], [-100, 0, -100, 0], [0, -100, 0, -100], [-100, 0, -100, 0]]).float()
    assert torch.equal(m[1], same)


def _pair(seed=0):
    torch.manual_seed(seed)
    a = SwinBackbone(embed_dim=12, depths=[2, 2], num_heads=[1, 2], window_size=6, window_padding="mask2former")
    b = SwinBackbone(embed_dim=12, depths=[2, 2], num_heads=[1, 2], window_size=6, window_padding="timm")
    b.load_state_dict(a.state_dict())
    return a.eval(), b.eval()


def test_window_padding_orders_agree_without_padding_and_differ_with_it():
    """Window 6, shift 3. At 48×48 (res2 12×12, res3 6×6: multiples of the window) pad-then-shift =
    shift-then-pad. At 40×40 (res2 10×10, padding 2) the orders differ: in Mask2Former's the last
    real row (9) shares a shifted window with the two padded rows, in timm's with real rows 0 and 1."""
    a, b = _pair()
    x = torch.randn(1, 3, 48, 48)
    with torch.no_grad():
        for fa, fb in zip(a(x), b(x)):
            assert torch.allclose(fa, fb, atol=1e-5)
        y = torch.randn(1, 3, 40, 40)
        assert (a(y)[0] - b(y)[0]).abs().max() > 1e-3


def test_res2_to_res5_strides_and_channels():
    torch.manual_seed(0)
    m = SwinBackbone(**TINY).eval()
    with torch.no_grad():
        out = m(torch.randn(1, 3, 64, 96))
    assert m.channels == [12, 24, 48, 96]
    assert [tuple(o.shape[1:]) for o in out] == [(12, 16, 24), (24, 8, 12), (48, 4, 6), (96, 2, 3)]


def test_variants_are_swin_t_s_b():
    assert SWIN_VARIANTS["swin-t"].depths == (2, 2, 6, 2) and SWIN_VARIANTS["swin-t"].embed_dim == 96
    assert SWIN_VARIANTS["swin-s"].depths == (2, 2, 18, 2)
    b = SWIN_VARIANTS["swin-b"]
    assert (b.embed_dim, b.num_heads, b.window_size, b.pretrain_img_size) == (128, (4, 8, 16, 32), 12, 384)


def test_local_weights_in_microsoft_names_load(tmp_path):
    """A checkpoint in the original Swin layout (``layers.i.downsample`` at the end of stage i, a
    ``model`` key, the ``relative_position_index`` buffers) loads through timm's filter."""
    torch.manual_seed(1)
    src = SwinBackbone(**TINY)
    sd = {}
    for k, v in src.swin.state_dict().items():
        for i in (1, 2, 3):                                    # timm layers.i.downsample -> layers.{i-1}.downsample
            k = k.replace(f"layers.{i}.downsample", f"layers.{i - 1}.downsample")
        sd[k] = v
    sd["head.weight"] = torch.zeros(5, 96)
    path = tmp_path / "swin.pth"
    torch.save({"model": sd}, path)
    torch.manual_seed(2)
    dst = SwinBackbone(**TINY, weights=path)
    for k, v in src.swin.state_dict().items():
        assert torch.equal(v, dst.swin.state_dict()[k]), k
    with pytest.raises(WeightsNotFoundError, match="nothing is downloaded"):
        SwinBackbone(**TINY, weights=tmp_path / "absent.pth")


def test_build_backbone_kind_swin():
    from ovlab.config.segmenter import ModelParams
    from ovlab.segmenter.model import build_backbone

    p = ModelParams(backbone={"kind": "swin", "swin": "swin-t"})
    m = build_backbone(p)
    assert isinstance(m, SwinBackbone) and m.channels == [96, 192, 384, 768]
    assert m.swin.layers[0].blocks[0].window_size == (7, 7) and m.window_padding == "mask2former"


@pytest.mark.skipif(not (FIXTURE / "state_dict.pt").is_file(), reason="SCAN parity fixture absent")
def test_official_swin_needs_mask2former_padding():
    """The fixture's official Swin outputs (img0: 128×128 padded input, res2 32×32 with window 6)
    are reproduced with ``mask2former`` padding and not with timm's."""
    from timm.models.swin_transformer import checkpoint_filter_fn

    sd = torch.load(FIXTURE / "state_dict.pt", weights_only=False)["model"]
    img = torch.load(FIXTURE / "inputs.pt", weights_only=False)["images"][0]
    want = torch.load(FIXTURE / "outputs.pt", weights_only=False)["img0.backbone.res2"]
    bb = {k[len("backbone."):]: v for k, v in sd.items() if k.startswith("backbone.")}
    mean = torch.tensor([123.675, 116.28, 103.53]).view(3, 1, 1)
    std = torch.tensor([58.395, 57.12, 57.375]).view(3, 1, 1)
    x = F.pad((img.float() - mean) / std, (0, 0, 0, 28))[None]                     # 100 -> 128 rows, 0 after normalising
    got = {}
    for padding in ("mask2former", "timm"):
        m = SwinBackbone(**TINY, window_padding=padding).eval()
        m.swin.load_state_dict(checkpoint_filter_fn({k: v for k, v in bb.items() if not k.startswith("norm")}, m.swin),
                               strict=False)
        m.norms.load_state_dict({k[len("norm"):]: v for k, v in bb.items() if k.startswith("norm")})
        with torch.no_grad():
            got[padding] = m(x)[0]
    assert torch.allclose(got["mask2former"], want, atol=1e-4, rtol=1e-4)
    assert (got["timm"] - want).abs().max() > 1e-3
