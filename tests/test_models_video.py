"""The video model (GKC §3.4): the image segmenter run on clips as Video Mask2Former does.

Value checks: a one-frame clip is exactly the image model; T identical frames without the temporal
embedding give the image model's masks in every frame (each memory token repeated T times leaves
every attention output unchanged, so any mis-ordering of the stacked memory against the masked
attention's mask would show); queries see every frame; an image checkpoint initialises every
weight.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from ovlab.config.segmenter import ModelParams
from ovlab.video import model as video_module
from ovlab.segmenter.model import build_segmenter
from ovlab.video.model import NEW_KEYS, VideoPrediction, VideoSegmenter, temporal_position_embedding

TINY = dict(hidden_dim=32, mask_dim=32, num_queries=8, decoder_layers=2, encoder_layers=1, heads=4, ffn_dim=64,
            encoder_ffn_dim=64)


@pytest.fixture(scope="module")
def models():
    from ovlab.clip import load_clip

    torch.set_num_threads(1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clip = load_clip("ovlab-tiny-rn", pretrained=None)
    torch.manual_seed(0)
    image = build_segmenter(ModelParams(**TINY), 64, clip).eval()
    return image, VideoSegmenter.from_image(image).eval(), clip


def _text(m=5, d=64, seed=1):
    return torch.nn.functional.normalize(torch.randn(m, d, generator=torch.Generator().manual_seed(seed)), dim=-1)


def test_one_frame_clip_is_exactly_the_image_model(models):
    image, video, _ = models
    x = torch.rand(2, 3, 64, 96, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        a, b = image(x, _text()), video(x[:, None], _text())
    assert len(a) == len(b) == TINY["decoder_layers"] + 1
    for pa, pb in zip(a, b):
        assert isinstance(pb, VideoPrediction) and pb.masks.shape == (2, 8, 1, 16, 24)
        assert torch.equal(pa.masks, pb.masks[:, :, 0])
        assert torch.equal(pa.logits, pb.logits) and torch.equal(pa.embedding, pb.embedding)
    with torch.no_grad():  # a 4-D input is a batch of one-frame clips, returned image-shaped
        c = video(x, _text())
    assert torch.equal(c[-1].masks, a[-1].masks)
    assert torch.equal(video.segment(x, _text(), torch.arange(5), 5), image.segment(x, _text(), torch.arange(5), 5))


def test_identical_frames_without_temporal_term_repeat_the_image_masks(models, monkeypatch):
    image, video, _ = models
    monkeypatch.setattr(video_module, "temporal_position_embedding",
                        lambda t, d, **kw: torch.zeros(t, d, dtype=kw.get("dtype", torch.float32)))
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        a = image(x, _text())[-1]
        b = video(x[:, None].expand(1, 3, 3, 64, 64).contiguous(), _text())[-1]
    for t in range(3):
        torch.testing.assert_close(b.masks[:, :, t], a.masks, atol=2e-4, rtol=1e-4)
    torch.testing.assert_close(b.logits, a.logits, atol=2e-4, rtol=1e-4)


def test_queries_attend_to_every_frame(models):
    _, video, _ = models
    g = torch.Generator().manual_seed(5)
    clip = torch.rand(1, 2, 3, 64, 64, generator=g)
    other = clip.clone()
    other[:, 1] = torch.rand(3, 64, 64, generator=g)
    with torch.no_grad():
        a, b = video(clip, _text())[-1], video(other, _text())[-1]
    assert not torch.allclose(a.masks[:, :, 0], b.masks[:, :, 0])  # frame 0's tubes depend on frame 1
    assert not torch.allclose(a.logits, b.logits)  # one class per query per clip
    with torch.no_grad():  # the frame order matters through the temporal embedding
        c = video(clip.flip(1), _text())[-1]
    assert not torch.allclose(c.masks.flip(2), a.masks)


def test_temporal_embedding_values():
    assert torch.equal(temporal_position_embedding(1, 8), torch.zeros(1, 8))
    e = temporal_position_embedding(2, 4, temperature=10000.0)
    # z = 2π(t − 1/2)/2 = ∓π/2; channel pair 0: ω = 1; pair 1: ω = 100
    z = torch.tensor([-math.pi / 2, math.pi / 2])
    expected = torch.stack([z.sin(), 1 - z.cos(), (z / 100).sin(), 1 - (z / 100).cos()], 1)
    torch.testing.assert_close(e, expected)
    assert temporal_position_embedding(5, 6).shape == (5, 6)
    with pytest.raises(ValueError):
        temporal_position_embedding(2, 5)


def test_shapes_stacking_segment_and_gradients(models):
    image, _, _ = models
    video = VideoSegmenter.from_image(image).train()
    clip = torch.rand(2, 3, 3, 64, 96)
    preds = video(clip, _text())
    final = preds[-1]
    assert final.masks.shape == (2, 8, 3, 16, 24) and final.logits.shape == (2, 8, 6)
    st = final.stacked()
    assert st.masks.shape == (2, 8, 48, 24) and torch.equal(st.masks[:, :, 16:32], final.masks[:, :, 1])
    sum(p.masks.sum() + p.logits.sum() for p in preds).backward()
    assert image.head.transformer.decoder.layers[0].cross_attn.in_proj_weight.grad is not None
    video.eval()
    seg = video.segment(clip, _text(7), torch.tensor([0, 0, 1, 2, 2, 2, 3]), 4, size=(32, 48))
    assert seg.shape == (2, 3, 4, 32, 48) and bool((seg >= 0).all())
    with pytest.raises(ValueError, match="multiple of 32"):
        video(torch.rand(1, 2, 3, 60, 64))
    with pytest.raises(ValueError, match="B, T, 3, H, W"):
        video(torch.rand(3, 64, 64))
    image.zero_grad(set_to_none=True)


def test_image_checkpoint_initialises_every_weight(models):
    image, _, clip = models
    assert NEW_KEYS == ()
    torch.manual_seed(1)
    fresh = VideoSegmenter.from_image(build_segmenter(ModelParams(**TINY), 64, clip))
    res = fresh.load_image_weights(image.state_dict())
    assert list(res.missing_keys) == [] and list(res.unexpected_keys) == []
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), image.state_dict().values()))
    partial = {k: v for k, v in image.state_dict().items() if not k.startswith("head.transformer.decoder.layers.0.")}
    with pytest.raises(ValueError, match="lacks"):
        fresh.load_image_weights(partial)
    bigger = build_segmenter(ModelParams(**{**TINY, "hidden_dim": 64, "mask_dim": 64}), 64, clip)
    with pytest.raises(RuntimeError, match="size mismatch"):
        fresh.load_image_weights(bigger.state_dict())


def test_on_real_camvid_frames(models, shared_data):
    from ovlab.data.files import read_image
    from ovlab.data.video_clips import videos_from_flat_folder
    from ovlab.segmenter.evaluate import prepare_image

    image, video, _ = models
    v = videos_from_flat_folder(shared_data / "samples" / "camvid_video" / "images")[0]
    frames = [prepare_image(read_image(f.image_path, "RGB"), "short_side", 64, 2560)[0] for f in v.frames[:3]]
    clip = torch.cat(frames)[None]  # (1, 3, 3, 64, W)
    with torch.no_grad():
        one = video(clip[:, :1], _text())[-1]
        ref = image(clip[:, 0], _text())[-1]
        three = video(clip, _text())[-1]
    assert torch.equal(one.masks[:, :, 0], ref.masks)
    assert three.masks.shape[2] == 3 and np.isfinite(three.masks.numpy()).all()
