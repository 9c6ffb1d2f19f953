"""SCAN Semantic Integration Module: the frequency map, LFE (Eq. 1), cross-attention (Eq. 2), γ·[CLS] and
the encoder (Eq. 3); SCAN §3.1. Expected numbers are written by hand from the equations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from ovlab.config.scan import SimParams
from ovlab.scan.sim import (LowFrequencyEnhancement, SemanticIntegrationModule, clip_sim_inputs,
                              frequency_filter)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ------------------------------------------------------------------------------------ frequency map
def test_frequency_filter_hand_values_16x16():
    f = frequency_filter(16, 16, 9)
    assert f.shape == (16, 16) and f.dtype == torch.float32
    assert f[8, 8].item() == 0.0                                   # array centre = highest frequencies
    # DC (0, 0): 1 − exp(−(8² + 8²)/(2·9²)) = 1 − exp(−128/162) = 0.546211 ("only 0.55")
    assert f[0, 0].item() == pytest.approx(0.546211, abs=1e-6)
    # corner (15, 15): distance (7, 7): 1 − exp(−98/162) = 0.453892
    assert f[15, 15].item() == pytest.approx(0.453892, abs=1e-6)
    # σ = 3 keeps DC almost fully: 1 − exp(−128/18) = 0.999184
    assert frequency_filter(16, 16, 3)[0, 0].item() == pytest.approx(0.999184, abs=1e-6)


def test_frequency_filter_odd_and_rectangular_grids():
    f = frequency_filter(5, 5, 1.0)
    assert f[2, 2].item() == 0.0
    assert f[0, 0].item() == pytest.approx(0.981684, abs=1e-6)      # 1 − exp(−8/2)
    assert f[2, 3].item() == pytest.approx(0.393469, abs=1e-6)      # 1 − exp(−1/2)
    g = frequency_filter(4, 6, 2.0)
    assert g.shape == (4, 6)
    assert g[2, 3].item() == 0.0                                    # centre (⌊4/2⌋, ⌊6/2⌋)
    assert g[0, 3].item() == pytest.approx(1 - math.exp(-4 / 8), abs=1e-6)


def test_frequency_filter_rejects_bad_input():
    with pytest.raises(ValueError, match="sigma"):
        frequency_filter(4, 4, 0.0)
    with pytest.raises(ValueError, match="grid"):
        frequency_filter(0, 4, 1.0)


# ---------------------------------------------------------------------------------------------- LFE
def _identity_lfe(channels: int, variant: str) -> LowFrequencyEnhancement:
    lfe = LowFrequencyEnhancement(channels, variant)
    with torch.no_grad():
        for conv in (lfe.conv1, lfe.conv2):
            if conv is not None:
                conv.weight.copy_(torch.eye(2 * channels).view(2 * channels, 2 * channels, 1, 1))
                conv.bias.zero_()
    return lfe


@pytest.mark.parametrize("variant", ["code", "paper"])
def test_lfe_suppresses_pure_high_frequency_and_keeps_residual(variant):
    # the checkerboard (−1)^(x+y) on 8×8 has all its energy at the Nyquist bin (4, 4), where 1 − g = 0
    yy, xx = torch.meshgrid(torch.arange(8), torch.arange(8), indexing="ij")
    checker = ((-1.0) ** (yy + xx)).float()
    x = torch.stack([checker, 3.0 * checker])[None]                # (1, 2, 8, 8)
    lfe = LowFrequencyEnhancement(2, variant)
    torch.nn.init.normal_(lfe.conv1.weight)                       # any weights; zero biases
    with torch.no_grad():
        lfe.conv1.bias.zero_()
        if lfe.conv2 is not None:
            lfe.conv2.bias.zero_()
    out = lfe(x, sigma=3.0)
    assert torch.allclose(out, x, atol=1e-5)                       # filtered branch is 0: Out = X


@pytest.mark.parametrize("variant", ["code", "paper"])
def test_lfe_constant_input_hand_value(variant):
    # X ≡ c: FFT has c·64 at DC only; 1 − g_DC = 1 − exp(−32/18) = 0.830987 (8×8, σ = 3);
    # identity convs; IFFT gives c·0.830987 everywhere; Out = c·(1 + 0.830987) = c·1.830987
    x = torch.full((1, 3, 8, 8), 2.0)
    out = _identity_lfe(3, variant)(x, sigma=3.0)
    assert torch.allclose(out, torch.full_like(x, 2.0 * 1.830987), atol=1e-5)


def test_lfe_matches_numpy_reference_of_eq1():
    torch.manual_seed(0)
    c, h, w, sigma = 3, 6, 6, 2.0
    lfe = LowFrequencyEnhancement(c, "code")
    x = torch.randn(2, c, h, w)
    out = lfe(x, sigma).detach().numpy()
    xn = x.numpy().astype(np.float64)
    u = np.arange(h)[:, None] - h // 2
    v = np.arange(w)[None, :] - w // 2
    y = np.fft.fft2(xn) * (1 - np.exp(-(u ** 2 + v ** 2) / (2 * sigma ** 2)))
    z = np.concatenate([y.real, y.imag], axis=1)                   # (B, 2C, h, w)
    w1, b1 = lfe.conv1.weight.detach().numpy()[:, :, 0, 0], lfe.conv1.bias.detach().numpy()
    w2, b2 = lfe.conv2.weight.detach().numpy()[:, :, 0, 0], lfe.conv2.bias.detach().numpy()
    z = np.maximum(np.einsum("oc,bchw->bohw", w1, z) + b1[:, None, None], 0)
    z = np.einsum("oc,bchw->bohw", w2, z) + b2[:, None, None]
    ref = xn + np.fft.ifft2(z[:, :c] + 1j * z[:, c:]).real
    assert np.allclose(out, ref, atol=1e-4)


def test_lfe_variants_and_errors():
    assert LowFrequencyEnhancement(4, "code").conv2 is not None
    assert LowFrequencyEnhancement(4, "paper").conv2 is None
    with pytest.raises(ValueError, match="variant"):
        LowFrequencyEnhancement(4, "fancy")
    with pytest.raises(ValueError, match="expects"):
        LowFrequencyEnhancement(4)(torch.zeros(1, 3, 4, 4), 1.0)


# ---------------------------------------------------------------------------------------------- SIM
def test_gamma_starts_at_point_one_and_is_learnable():
    sim = SemanticIntegrationModule(16, 16, [2.0], heads=2, encoder_ff=32)
    assert isinstance(sim.gamma, torch.nn.Parameter) and sim.gamma.requires_grad
    assert sim.gamma.shape == (1,) and sim.gamma.item() == pytest.approx(0.1)


def test_cls_only_eq3_hand_value():
    # no spatial branch, no encoder: F = F_N + γ·ĉ with ĉ = c/|c|; c = (3, 4) → ĉ = (0.6, 0.8)
    sim = SemanticIntegrationModule(2, 2, [], heads=1, use_spatial=False, encoder_layers=0).eval()
    fn = torch.tensor([[[1.0, 1.0], [0.0, -1.0]]])
    out = sim(fn, cls_embedding=torch.tensor([[3.0, 4.0]]))
    assert torch.allclose(out, torch.tensor([[[1.06, 1.08], [0.06, -0.92]]]))
    raw = SemanticIntegrationModule(2, 2, [], heads=1, use_spatial=False, encoder_layers=0, normalize_cls=False)
    out = raw.eval()(fn, cls_embedding=torch.tensor([[3.0, 4.0]]))
    assert torch.allclose(out, torch.tensor([[[1.3, 1.4], [0.3, -0.6]]]))


def test_cross_attention_single_memory_token_hand_value():
    # one memory token: attention weight 1, so MHA(E, M, M) = W_o (W_v m + b_v) + b_o for every query
    torch.manual_seed(0)
    sim = SemanticIntegrationModule(4, 4, [1.0], heads=2, cross_attention_layers=1, encoder_layers=0,
                                    use_cls=False).eval()
    mha = sim.cross_attention.attn[0]
    e = torch.randn(1, 3, 4)
    m = torch.randn(1, 1, 4)
    wv, bv = mha.in_proj_weight[8:], mha.in_proj_bias[8:]
    expected = e + (m @ wv.T + bv) @ mha.out_proj.weight.T + mha.out_proj.bias
    assert torch.allclose(sim(e, memory=m), expected, atol=1e-6)
    literal = SemanticIntegrationModule(4, 4, [1.0], heads=2, cross_attention_layers=1, encoder_layers=0,
                                        use_cls=False, cross_attention_residual=False).eval()
    literal.load_state_dict(sim.state_dict())
    assert torch.allclose(literal(e, memory=m), expected - e, atol=1e-6)   # Eq. 2 without residual


def test_two_cross_attention_layers_norm_between_not_after():
    # one memory token: layer l adds a_l = W_o,l (W_v,l m + b_v,l) + b_o,l to every query;
    # E1 = LN(E + a_1) (unit weight, zero bias), E2 = E1 + a_2 (no LN after the last layer)
    torch.manual_seed(5)
    sim = SemanticIntegrationModule(4, 4, [1.0], heads=2, cross_attention_layers=2, encoder_layers=0,
                                    use_cls=False).eval()
    e, m = torch.randn(1, 3, 4), torch.randn(1, 1, 4)

    def add(mha):
        return (m @ mha.in_proj_weight[8:].T + mha.in_proj_bias[8:]) @ mha.out_proj.weight.T + mha.out_proj.bias

    e1 = e + add(sim.cross_attention.attn[0])
    e1 = (e1 - e1.mean(-1, keepdim=True)) / torch.sqrt(e1.var(-1, unbiased=False, keepdim=True) + 1e-5)
    assert torch.allclose(sim(e, memory=m), e1 + add(sim.cross_attention.attn[1]), atol=1e-5)


def test_cross_attention_stack_layer_norms():
    sim = SemanticIntegrationModule(4, 8, [1.0], heads=2)
    assert len(sim.cross_attention.attn) == 5 and len(sim.cross_attention.norms) == 4   # LN after all but last
    one = SemanticIntegrationModule(4, 8, [1.0], heads=2, cross_attention_layers=1)
    assert len(one.cross_attention.attn) == 1 and len(one.cross_attention.norms) == 0


def test_memory_concatenates_layers_then_projects():
    torch.manual_seed(1)
    sim = SemanticIntegrationModule(3, 4, [1.0, 2.0], heads=2, lfe="none").eval()
    a, b = torch.randn(2, 3, 2, 2), torch.randn(2, 3, 1, 3)
    mem = sim.memory([a, b])
    assert mem.shape == (2, 4 + 3, 4)
    tokens = torch.cat([a.flatten(2).transpose(1, 2), b.flatten(2).transpose(1, 2)], dim=1)  # layer-major
    l1, l2 = sim.memory_proj                                       # two linears, no activation
    assert torch.allclose(mem, (tokens @ l1.weight.T + l1.bias) @ l2.weight.T + l2.bias, atol=1e-6)


def test_memory_applies_lfe_per_layer_sigma():
    torch.manual_seed(2)
    sim = SemanticIntegrationModule(3, 4, [1.0, 5.0], heads=2).eval()
    a, b = torch.randn(1, 3, 4, 4), torch.randn(1, 3, 4, 4)
    lfe = sim.lfe[0]                                               # shared
    tokens = torch.cat([lfe(a, 1.0).flatten(2).transpose(1, 2), lfe(b, 5.0).flatten(2).transpose(1, 2)], 1)
    assert torch.allclose(sim.memory([a, b]), sim.memory_proj(tokens), atol=1e-6)
    per_layer = SemanticIntegrationModule(3, 4, [1.0, 5.0], heads=2, shared_lfe=False)
    assert len(per_layer.lfe) == 2 and len(sim.lfe) == 1
    assert SemanticIntegrationModule(3, 4, [1.0], heads=2, lfe="none").lfe is None
    with pytest.raises(ValueError, match="sigmas"):
        sim.memory([a])


def test_code_encoder_processes_each_query_alone():
    torch.manual_seed(3)
    sim = SemanticIntegrationModule(4, 8, [1.0], heads=2, encoder_ff=16).eval()
    q, mem, cls = torch.randn(2, 5, 8), torch.randn(2, 6, 8), torch.randn(2, 8)
    with torch.no_grad():
        full = sim(q, cls_embedding=cls, memory=mem)
        first = sim(q[:, :1], cls_embedding=cls, memory=mem)
    assert full.shape == (2, 5, 8)
    assert torch.allclose(full[:, :1], first, atol=1e-5)           # no query interaction anywhere
    inter = SemanticIntegrationModule(4, 8, [1.0], heads=2, encoder_ff=16, query_interaction=True).eval()
    inter.load_state_dict(sim.state_dict())
    with torch.no_grad():
        f2 = inter(q, cls_embedding=cls, memory=mem)
        o2 = inter(q[:, :1], cls_embedding=cls, memory=mem)
    assert not torch.allclose(f2[:, :1], o2, atol=1e-4)            # the encoder mixes queries


def test_sim_end_to_end_on_tiny_vit_with_gradients(tiny_vit):
    torch.manual_seed(4)
    params = SimParams()
    sim = SemanticIntegrationModule.from_params(params, clip_width=64, dim=64)
    images = torch.randn(2, 3, 96, 96)
    spatial, emb = sim.clip_inputs(tiny_vit, images)
    assert [tuple(s.shape) for s in spatial] == [(2, 64, 8, 8)] * 3 and emb.shape == (2, 64)
    out = sim(torch.randn(2, 7, 64), spatial, emb)
    assert out.shape == (2, 7, 64) and torch.isfinite(out).all()
    out.square().mean().backward()
    assert sim.gamma.grad is not None and sim.lfe[0].conv1.weight.grad is not None


def test_clip_sim_inputs_are_vit_features_after_nearest_resize(tiny_vit):
    from ovlab.clip import vit_features

    images = torch.randn(1, 3, 32, 32)
    spatial, emb = clip_sim_inputs(tiny_vit, images, [3, 1])
    ref = vit_features(tiny_vit, torch.nn.functional.interpolate(images, size=(64, 64), mode="nearest"), [1, 3])
    assert torch.equal(spatial[0], ref.patch_tokens[3]) and torch.equal(spatial[1], ref.patch_tokens[1])
    assert torch.equal(emb, ref.embedding)


def test_sim_errors():
    with pytest.raises(ValueError, match="lfe"):
        SemanticIntegrationModule(4, 8, [1.0], heads=2, lfe="wavelet")
    with pytest.raises(ValueError, match="divide"):
        SemanticIntegrationModule(4, 6, [1.0], heads=4)
    with pytest.raises(ValueError, match="layers"):
        SemanticIntegrationModule(4, 8, [1.0], heads=2, layers=[1, 2])
    sim = SemanticIntegrationModule(4, 8, [1.0], heads=2)
    with pytest.raises(ValueError, match="cls_embedding"):
        sim(torch.zeros(1, 2, 8), memory=torch.zeros(1, 3, 8))
    with pytest.raises(ValueError, match="queries"):
        sim(torch.zeros(1, 2, 4), memory=torch.zeros(1, 3, 8))


def test_sim_params_section():
    p = SimParams()
    assert p.layers == [1, 2, 3] and len(p.sigmas) == 3 and p.lfe == "code" and not p.query_interaction
    paper = SimParams(layers=[12, 18, 24], sigmas=[9, 7, 3], encoder_ff=2048)
    assert paper.sigmas == [9.0, 7.0, 3.0]
    with pytest.raises(ValidationError, match="one value per layer"):
        SimParams(layers=[1, 2], sigmas=[1.0])
    with pytest.raises(ValidationError):
        SimParams(lfe="fft")
