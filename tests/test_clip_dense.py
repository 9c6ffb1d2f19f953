"""ovlab.clip.dense: attention pool (global / spatial / masked), mask pooling, ResNet and ViT features.

The attention-pool tests use hand-built pools whose outputs can be written down by hand.
"""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from open_clip.modified_resnet import AttentionPool2d

from ovlab.clip import attention_pool, load_clip, mask_pool, masked_attention_pool, resnet_features, vit_features
from ovlab.clip.dense import resize_masks

torch.set_num_threads(1)


def _pool(q_bias=(0.0, 0.0), k_identity=False):
    """1-head pool on a 2×2 grid, C = 2: zero positional embedding, v = c_proj = identity, q = q_bias."""
    pool = AttentionPool2d(spacial_dim=2, embed_dim=2, num_heads=1, output_dim=2)
    with torch.no_grad():
        pool.positional_embedding.zero_()
        for lin in (pool.q_proj, pool.k_proj, pool.v_proj, pool.c_proj):
            lin.weight.zero_()
            lin.bias.zero_()
        pool.v_proj.weight.copy_(torch.eye(2))
        pool.c_proj.weight.copy_(torch.eye(2))
        pool.q_proj.bias.copy_(torch.tensor(q_bias))
        if k_identity:
            pool.k_proj.weight.copy_(torch.eye(2))
    return pool.eval()


# x[b=0]: channel 0 = [[1, 2], [3, 4]], channel 1 = [[0, 0], [0, 8]]
X = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]], [[0.0, 0.0], [0.0, 8.0]]]])


def test_uniform_attention_pool_outputs_the_mean_everywhere():
    # q = k-weights = 0: every query attends uniformly to the 5 tokens {mean, x1..x4}; their mean is mean(x)
    g, s = attention_pool(_pool(), X)
    torch.testing.assert_close(g, torch.tensor([[2.5, 2.0]]))
    torch.testing.assert_close(s, torch.tensor([2.5, 2.0]).view(1, 2, 1, 1).expand(1, 2, 2, 2))


def test_attention_pool_with_peaked_scores_matches_the_softmax_by_hand():
    # q = (1, 0) for every token, k = token: score_j = token_j[0] / sqrt(2); out = sum softmax(score)_j token_j
    pool = _pool(q_bias=(1.0, 0.0), k_identity=True)
    tokens = torch.tensor([[2.5, 2.0], [1.0, 0.0], [2.0, 0.0], [3.0, 0.0], [4.0, 8.0]])  # mean token first
    w = torch.softmax(tokens[:, 0] / math.sqrt(2), dim=0)
    expected = (w[:, None] * tokens).sum(0)
    g, s = attention_pool(pool, X)
    torch.testing.assert_close(g[0], expected)
    torch.testing.assert_close(s[0, :, 1, 1], expected)
    torch.testing.assert_close(g, pool(X))  # the global token is open_clip's own forward


def test_masked_attention_pool_averages_the_region():
    # uniform attention over {masked mean, masked tokens}: the masked mean
    masks = torch.zeros(1, 2, 4, 4, dtype=torch.bool)
    masks[0, 0, :2, :] = True          # top row of the 2×2 grid: cells (0,0), (0,1)
    masks[0, 1, 3, 3] = True           # one pixel of cell (1,1) is enough to include the cell
    out = masked_attention_pool(_pool(), X, masks)
    torch.testing.assert_close(out, torch.tensor([[[1.5, 0.0], [4.0, 8.0]]]))


def test_masked_attention_pool_full_mask_is_the_global_token_and_empty_mask_raises():
    torch.manual_seed(0)
    pool = AttentionPool2d(spacial_dim=3, embed_dim=8, num_heads=2, output_dim=4).eval()
    x = torch.randn(2, 8, 3, 3)
    g, _ = attention_pool(pool, x)
    full = torch.ones(2, 1, 3, 3, dtype=torch.bool)
    torch.testing.assert_close(masked_attention_pool(pool, x, full)[:, 0], g)
    with pytest.raises(ValueError, match="mask 1 of image 0 is empty"):
        masked_attention_pool(pool, x, torch.stack([full[0, 0], torch.zeros(3, 3, dtype=torch.bool)])[None].expand(2, 2, 3, 3))


def test_mask_pool_area_binary_nearest():
    tokens = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).view(1, 1, 2, 2)
    m = torch.zeros(1, 2, 4, 4, dtype=torch.bool)
    m[0, 0, :2, :2] = True            # all of cell (0,0)
    m[0, 0, :2, 2] = True             # half of cell (0,1)
    # area: weights 1 and 0.5 -> (1·1 + 0.5·2) / 1.5
    pooled, valid = mask_pool(tokens, m, mode="area")
    torch.testing.assert_close(pooled[0, 0, 0], torch.tensor(4.0 / 3.0))
    assert valid.tolist() == [[True, False]] and pooled[0, 1].abs().sum() == 0
    pooled, _ = mask_pool(tokens, m, mode="binary")          # any pixel: (1 + 2) / 2
    torch.testing.assert_close(pooled[0, 0, 0], torch.tensor(1.5))
    pooled, _ = mask_pool(tokens, m, mode="nearest")         # samples pixels (0,0),(0,2),(2,0),(2,2)
    torch.testing.assert_close(pooled[0, 0, 0], torch.tensor(1.5))
    torch.testing.assert_close(resize_masks(m, (2, 2))[0, 0], torch.tensor([[1.0, 0.5], [0.0, 0.0]]))
    with pytest.raises(ValueError, match="mode"):
        mask_pool(tokens, m, mode="bilinear")


def _clip(name):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_clip(name, None, seed=0)


def test_resnet_features_levels_and_tokens():
    clip = _clip("ovlab-tiny-rn")
    x = torch.randn(2, 3, 96, 96, generator=torch.Generator().manual_seed(1))
    f = resnet_features(clip.model.visual, x)
    assert [t.shape for t in (f.res2, f.res3, f.res4, f.res5)] == [
        (2, 32, 24, 24), (2, 64, 12, 12), (2, 128, 6, 6), (2, 256, 3, 3)]
    assert f.spatial_tokens.shape == (2, 64, 3, 3)
    torch.testing.assert_close(f.global_token, clip.encode_image(x, normalize=False), rtol=1e-5, atol=1e-6)
    # masked pool over the full grid = global token
    full = torch.ones(2, 1, 96, 96, dtype=torch.bool)
    torch.testing.assert_close(masked_attention_pool(clip.model.visual.attnpool, f.res5, full)[:, 0], f.global_token,
                               rtol=1e-5, atol=1e-6)
    # a larger input resizes the positional embedding: 128 px -> 4×4 tokens
    f2 = resnet_features(clip.model.visual, torch.randn(1, 3, 128, 128))
    assert f2.spatial_tokens.shape == (1, 64, 4, 4)
    with pytest.raises(TypeError):
        resnet_features(_clip("ovlab-tiny-vit").model.visual, x)


def test_vit_features_match_open_clip_and_the_final_embedding():
    clip = _clip("ovlab-tiny-vit")
    v = clip.model.visual
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    f = vit_features(v, x, blocks=[0, 1, 3])
    assert set(f.patch_tokens) == {0, 1, 3} and f.patch_tokens[1].shape == (2, 64, 8, 8)
    torch.testing.assert_close(f.embedding, clip.encode_image(x, normalize=False))
    # block i (1-based) = open_clip's intermediate with 0-based index i - 1
    ref = v.forward_intermediates(x, indices=[0, 2], output_extra_tokens=True)
    torch.testing.assert_close(f.patch_tokens[1], ref["image_intermediates"][0])
    torch.testing.assert_close(f.patch_tokens[3], ref["image_intermediates"][1])
    torch.testing.assert_close(f.cls_tokens[3], ref["image_intermediates_prefix"][1][:, 0])
    # final block's [CLS] -> ln_post -> proj is the embedding
    torch.testing.assert_close(v.ln_post(f.cls_tokens[3]) @ v.proj, f.embedding)
    torch.testing.assert_close(f.cls_tokens[0], v._embeds(x)[:, 0])
    with pytest.raises(ValueError, match="outside 0..3"):
        vit_features(v, x, blocks=[4])
    with pytest.raises(ValueError, match="expects"):
        vit_features(v, torch.randn(1, 3, 96, 96))


def test_vit_patch_tokens_mask_pool():
    clip = _clip("ovlab-tiny-vit")
    x = torch.randn(1, 3, 64, 64)
    f = vit_features(clip.model.visual, x, blocks=[2])
    mask = torch.zeros(1, 1, 64, 64, dtype=torch.bool)
    mask[..., :8, :16] = True                     # exactly patches (0,0) and (0,1)
    pooled, valid = mask_pool(f.patch_tokens[2], mask)
    torch.testing.assert_close(pooled[0, 0], f.patch_tokens[2][0, :, 0, :2].mean(-1))
    assert valid.all()
