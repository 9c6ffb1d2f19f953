"""SCAN Contextual Shift (SCAN §3.2, Eq. 4–5): background patches, exact replacement counts, never a
foreground token, every substitute source, and the mask-classifying CLIP on the tiny ViT."""

from __future__ import annotations

import warnings

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from ovlab.clip import vit_features
from ovlab.config.presets import CS_RATIO_PRESETS
from ovlab.scan.contextual_shift import (ContextualShiftCLIP, contextual_shift, patch_background, replaced_count,
                                        shifted_vit_forward)
from ovlab.config.scan import ContextualShiftParams


pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ------------------------------------------------------------------------------- background patches
def test_patch_background_any_foreground_pixel_makes_a_patch_foreground():
    m = torch.zeros(1, 16, 16, dtype=torch.bool)
    m[0, 0, 9] = True                                             # one pixel in patch (row 0, col 1)
    m[0, 15, 15] = True                                           # one pixel in patch (1, 1)
    assert patch_background(m, 8).tolist() == [[True, False, True, False]]
    assert patch_background(torch.zeros(2, 16, 16), 8).all()
    assert not patch_background(torch.ones(1, 16, 16), 8).any()


def test_patch_background_resizes_masks_nearest_first():
    m = torch.zeros(1, 4, 4, dtype=torch.bool)
    m[0, 3, 0] = True                                             # → bottom-left 4×4 block of a 16×16 mask
    bg = patch_background(m, (8, 8), image_size=(16, 16))
    assert bg.tolist() == [[True, True, False, True]]
    with pytest.raises(ValueError, match="multiple"):
        patch_background(torch.zeros(1, 10, 16), 8)


# ---------------------------------------------------------------------------------- the replacement
def _tokens(b, n, c):
    return torch.arange(1, b * n * c + 1, dtype=torch.float32).view(b, n, c)   # all distinct, positive


def test_contextual_shift_hand_case():
    tokens = _tokens(2, 6, 2)
    background = torch.tensor([[1, 1, 0, 1, 1, 0], [0, 0, 0, 0, 0, 1]], dtype=torch.bool)
    sub = torch.tensor([[-1.0, -2.0], [-3.0, -4.0]])
    out = contextual_shift(tokens, background, sub, 0.5, torch.Generator().manual_seed(0))
    replaced = (out != tokens).all(-1)
    assert replaced.sum(1).tolist() == [2, 0]                     # ⌊0.5·4⌋ = 2, ⌊0.5·1⌋ = 0
    assert not (replaced & ~background).any()
    assert (out[0][replaced[0]] == sub[0]).all()
    assert torch.equal(tokens, _tokens(2, 6, 2))                  # input untouched, new tensor
    full = contextual_shift(tokens, background, sub, 1.0, None)
    assert torch.equal((full != tokens).all(-1), background)      # α = 1: all background replaced
    assert torch.equal(contextual_shift(tokens, background, sub, 0.0, None), tokens)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 3), st.integers(1, 40), st.floats(0.0, 1.0), st.integers(0, 2 ** 31 - 1), st.data())
def test_contextual_shift_replaces_exactly_floor_ratio_background_tokens(b, n, ratio, seed, data):
    bits = data.draw(st.lists(st.lists(st.booleans(), min_size=n, max_size=n), min_size=b, max_size=b))
    background = torch.tensor(bits, dtype=torch.bool)
    tokens = _tokens(b, n, 3)
    sub = -torch.ones(b, 3)
    out = contextual_shift(tokens, background, sub, ratio, torch.Generator().manual_seed(seed))
    replaced = (out == -1).all(-1)
    assert not (replaced & ~background).any()                     # never a foreground token
    assert ((out == tokens).all(-1) | replaced).all()             # every other token unchanged
    for i in range(b):
        nb = int(background[i].sum())
        assert int(replaced[i].sum()) == int(nb * ratio)          # ⌊α·|B_b|⌋
    assert torch.equal(replaced_count(background, ratio), replaced.sum(1))


def test_contextual_shift_seeded_and_per_position_substitute():
    tokens = _tokens(1, 30, 2)
    background = torch.ones(1, 30, dtype=torch.bool)
    sub = -_tokens(1, 30, 2)                                      # (B, L, C): one per position
    a = contextual_shift(tokens, background, sub, 0.3, torch.Generator().manual_seed(7))
    b = contextual_shift(tokens, background, sub, 0.3, torch.Generator().manual_seed(7))
    c = contextual_shift(tokens, background, sub, 0.3, torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    rep = (a < 0).all(-1)
    assert int(rep.sum()) == 9 and torch.equal(a[rep], sub[rep])  # the position's own substitute


def test_contextual_shift_gradients_and_errors():
    tokens = torch.randn(1, 4, 2, requires_grad=True)
    sub = torch.randn(1, 2, requires_grad=True)
    out = contextual_shift(tokens, torch.tensor([[True, True, False, False]]), sub, 0.5, None)
    out.sum().backward()
    assert tokens.grad.sum().item() == 3 * 2 and sub.grad.tolist() == [[1.0, 1.0]]
    with pytest.raises(ValueError, match="ratio"):
        contextual_shift(tokens, torch.ones(1, 4, dtype=torch.bool), sub, 1.5, None)
    with pytest.raises(ValueError, match="background"):
        contextual_shift(tokens, torch.ones(1, 3, dtype=torch.bool), sub, 0.5, None)
    with pytest.raises(ValueError, match="substitute"):
        contextual_shift(tokens, torch.ones(1, 4, dtype=torch.bool), torch.zeros(1, 3), 0.5, None)


# -------------------------------------------------------------------------- mask-classifying CLIP
def _inputs(n=3):
    g = torch.Generator().manual_seed(0)
    crops = torch.randn(n, 3, 64, 64, generator=g)
    masks = torch.zeros(n, 64, 64, dtype=torch.bool)
    masks[:, 20:40, 10:30] = True                                  # 3×3 foreground patches of 8×8
    natural = torch.randn(1, 3, 64, 64, generator=g)
    return crops, masks, natural


def _block_inputs(visual, block: int):
    """Capture the input of 1-based block ``block`` on the next forward."""
    seen = []
    handle = visual.transformer.resblocks[block - 1].register_forward_pre_hook(lambda m, a: seen.append(a[0]))
    return seen, handle


def test_ratio_zero_or_source_none_equals_plain_clip(tiny_vit):
    crops, masks, natural = _inputs()
    with torch.no_grad():
        plain = tiny_vit(crops)
        for kwargs in ({"ratio": 0.0, "source": "cls"}, {"ratio": 0.5, "source": "none"}):
            cs = ContextualShiftCLIP(tiny_vit, layers=[1, 2], **kwargs)
            assert torch.equal(cs(crops, masks, natural=natural), plain)
        # the shifted forward itself, with α = 0, is the plain forward too
        bg = patch_background(masks, 8)
        out = shifted_vit_forward(tiny_vit, crops, bg, [0, 1, 2], lambda i, t: t[:, 0], 0.0, None)
        assert torch.equal(out, plain)


def test_cls_source_replaces_background_with_natural_cls_after_block(tiny_vit):
    crops, masks, natural = _inputs(2)
    cs = ContextualShiftCLIP(tiny_vit, layers=[1], ratio=0.5, source="cls")
    seen, handle = _block_inputs(tiny_vit, 2)                      # CS after block 1 = input of block 2
    try:
        with torch.no_grad():
            tiny_vit(crops)
            emb = cs(crops, masks, natural=natural)
    finally:
        handle.remove()
    plain_in, shifted_in = seen[0], seen[-1]                        # (the natural image runs in between)
    cls1 = vit_features(tiny_vit, natural, [1]).cls_tokens[1][0]
    bg = patch_background(masks, 8)                               # 64 patches, 9 foreground
    changed = (plain_in != shifted_in).any(-1)
    assert not changed[:, 0].any()                                # the crop's own [CLS] is kept
    changed = changed[:, 1:]
    assert changed.sum(1).tolist() == [27, 27]                     # ⌊0.5·55⌋
    assert not (changed & ~bg).any()
    assert torch.equal(shifted_in[:, 1:][changed], cls1.expand(54, -1))
    assert emb.shape == (2, 64) and not torch.allclose(emb, tiny_vit(crops))
    again = cs(crops, masks, natural=natural)
    assert torch.equal(emb, again)                                 # seeded: reproducible


def test_full_replacement_after_ln_pre_ignores_the_crop(tiny_vit):
    # an empty mask, α = 1, CS at block 0: every patch token is the natural [CLS] and the crop's
    # [CLS] after ln_pre does not depend on the pixels, so two different crops embed identically
    crops, _, natural = _inputs(2)
    empty = torch.zeros(2, 64, 64, dtype=torch.bool)
    cs = ContextualShiftCLIP(tiny_vit, layers=[0, 2], ratio=1.0, source="cls")
    with torch.no_grad():
        emb = cs(crops, empty, natural=natural)
    assert torch.allclose(emb[0], emb[1], atol=1e-6)
    assert not torch.allclose(tiny_vit(crops)[0], tiny_vit(crops)[1])


def test_cls_source_uses_each_masks_image(tiny_vit):
    crops, masks, _ = _inputs(2)
    naturals = torch.randn(2, 3, 64, 64)
    cs = ContextualShiftCLIP(tiny_vit, layers=[1], ratio=1.0, source="cls")
    with torch.no_grad():
        own = cs(crops, masks, natural=naturals)                   # B = N: identity mapping
        swapped = cs(crops, masks, natural=naturals, image_index=torch.tensor([1, 0]))
        first = cs(crops, masks, natural=naturals[:1])              # B = 1: shared
        explicit = cs(crops, masks, natural=naturals, image_index=torch.tensor([0, 0]))
    assert torch.allclose(first, explicit) and not torch.allclose(own, swapped)
    with pytest.raises(ValueError, match="natural"):
        cs(crops, masks)
    with pytest.raises(ValueError, match="image_index"):
        cs(crops[:1].expand(3, -1, -1, -1), masks[:1].expand(3, -1, -1), natural=naturals)


def test_cls_tokens_come_from_the_original_visual(tiny_vit):
    from ovlab.clip import load_clip

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        other = load_clip("ovlab-tiny-vit", pretrained=None, seed=1).model.visual
    crops, masks, natural = _inputs(2)
    with torch.no_grad():
        own = ContextualShiftCLIP(tiny_vit, layers=[1], ratio=1.0)(crops, masks, natural=natural)
        orig = ContextualShiftCLIP(tiny_vit, layers=[1], ratio=1.0, original_visual=other)(crops, masks,
                                                                                           natural=natural)
    assert not torch.allclose(own, orig, atol=1e-4)


def test_original_source_with_unmasked_equal_to_crops_changes_nothing(tiny_vit):
    crops, masks, _ = _inputs()
    cs = ContextualShiftCLIP(tiny_vit, layers=[1, 2], ratio=1.0, source="original")
    with torch.no_grad():
        same = cs(crops, masks, unmasked=crops)
        other = cs(crops, masks, unmasked=torch.randn_like(crops))
        plain = tiny_vit(crops)
    assert torch.allclose(same, plain, atol=1e-5) and not torch.allclose(other, plain, atol=1e-3)
    with pytest.raises(ValueError, match="unmasked"):
        cs(crops, masks)


def test_noise_source_is_seeded(tiny_vit):
    crops, masks, _ = _inputs()
    cs = ContextualShiftCLIP(tiny_vit, layers=[1], ratio=0.5, source="noise", seed=3)
    with torch.no_grad():
        a, b = cs(crops, masks), cs(crops, masks)
        c = cs(crops, masks, generator=torch.Generator().manual_seed(4))
        plain = tiny_vit(crops)
    assert torch.equal(a, b) and not torch.equal(a, c) and not torch.allclose(a, plain)


def test_learnable_source_trains_its_prompts(tiny_vit):
    crops, masks, _ = _inputs()
    cs = ContextualShiftCLIP(tiny_vit, layers=[1, 2], ratio=0.5, source="learnable")
    assert isinstance(cs.prompts, torch.nn.Parameter) and cs.prompts.shape == (2, 64)
    cs(crops, masks, normalize=True).sum().backward()
    assert cs.prompts.grad is not None and cs.prompts.grad.abs().sum() > 0
    emb = cs(crops, masks, normalize=True).detach()
    assert torch.allclose(emb.norm(dim=-1), torch.ones(3))
    assert ContextualShiftCLIP(tiny_vit, layers=[1], ratio=0.5, source="cls").prompts is None


def test_shifted_clip_errors(tiny_vit):
    with pytest.raises(ValueError, match="source"):
        ContextualShiftCLIP(tiny_vit, layers=[1], ratio=0.1, source="zeros")
    with pytest.raises(ValueError, match="layers"):
        ContextualShiftCLIP(tiny_vit, layers=[4], ratio=0.1)
    with pytest.raises(ValueError, match="ratio"):
        ContextualShiftCLIP(tiny_vit, layers=[1], ratio=-0.1)
    with pytest.raises(TypeError):
        ContextualShiftCLIP(torch.nn.Linear(2, 2), layers=[1], ratio=0.1)


def test_contextual_shift_params_section():
    p = ContextualShiftParams()
    assert p.layers == [1] and p.ratio == 0.15 and p.source == "cls" and p.ratio_for("coco_133") == 0.15
    vitl = ContextualShiftParams(preset="vit-l", layers=[1, 3, 5, 7, 9])
    assert vitl.ratio_for("ade20k_847") == 0.15 and vitl.ratio_for("ade20k_150") == 0.05
    assert vitl.ratio_for("coco_133") == 0.15                      # not in the table: ``ratio``
    assert ContextualShiftParams(enabled=False).ratio_for("ade20k_847") == 0.0
    assert CS_RATIO_PRESETS["vit-b"]["pascal_voc_20"] == 0.10
    with pytest.raises(ValidationError):
        ContextualShiftParams(ratio=1.5)
    with pytest.raises(ValidationError):
        ContextualShiftParams(source="zeros")
