"""ovlab.clip.loading: tiny configs, untrained determinism, offline failure, local checkpoints."""

from __future__ import annotations

import socket
import time
import warnings

import pytest
import torch

from ovlab.clip import (TINY_MODELS, UNTRAINED_WARNING, WeightsNotFoundError, find_local_weights, load_clip,
                        save_checkpoint)
from ovlab.clip.loading import load_clip_from_params
from ovlab.config import stage_params

torch.set_num_threads(1)


def _untrained(name="ovlab-tiny-vit", seed=0):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_clip(name, None, seed=seed)


@pytest.fixture(scope="module")
def tiny_vit():
    return _untrained("ovlab-tiny-vit")


def test_tiny_configs_are_registered():
    import open_clip

    assert set(TINY_MODELS) <= set(open_clip.list_models())


@pytest.mark.parametrize("name,family,size", [("ovlab-tiny-rn", "resnet", (96, 96)), ("ovlab-tiny-vit", "vit", (64, 64))])
def test_tiny_models_are_small_frozen_and_eval(name, family, size):
    clip = _untrained(name)
    assert clip.family == family and clip.image_size == size
    assert not clip.model.training
    assert all(not p.requires_grad for p in clip.model.parameters())
    assert sum(p.numel() for p in clip.model.parameters()) < 5_000_000
    emb = clip.encode_image(torch.zeros(2, 3, *size))
    assert emb.shape == (2, 64)
    torch.testing.assert_close(emb.norm(dim=-1), torch.ones(2))


def test_untrained_warns_loudly_and_identity_carries_it():
    with pytest.warns(UserWarning, match="UNTRAINED CLIP"):
        clip = load_clip("ovlab-tiny-rn", None, seed=3)
    ident = clip.identity()
    assert ident["untrained"] is True and ident["warning"] == UNTRAINED_WARNING and ident["seed"] == 3


def test_untrained_weights_are_a_function_of_the_seed():
    a, b, c = _untrained(seed=0), _untrained(seed=0), _untrained(seed=1)
    sa, sb, sc = a.model.state_dict(), b.model.state_dict(), c.model.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)
    # the global RNG is left alone
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    _untrained(seed=5)
    assert torch.equal(torch.rand(1), before)


def test_pretrained_is_required():
    with pytest.raises(TypeError):
        load_clip("ovlab-tiny-vit")  # noqa


@pytest.mark.parametrize("name,tag", [("ViT-B-32", "openai"), ("ViT-L-14", "datacomp_xl_s13b_b90k"), ("RN50", "openai")])
def test_named_tag_without_weights_fails_fast_without_network(tmp_path, monkeypatch, name, tag):
    def no_network(*a, **k):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.delenv("OVLAB_ALLOW_DOWNLOAD", raising=False)
    t0 = time.perf_counter()
    with pytest.raises(WeightsNotFoundError) as exc:
        load_clip(name, tag, weights_dir=tmp_path / "w", cache_dir=tmp_path / "c")
    assert time.perf_counter() - t0 < 5.0  # "fast": no download attempt, no retries
    msg = str(exc.value)
    assert f"{name!r}" in msg and tag in msg
    assert str(tmp_path / "w" / name / f"{tag}.safetensors") in msg  # where to put it
    assert "OVLAB_WEIGHTS" in msg and "never downloads" in msg


def test_weights_dir_defaults_to_env(tmp_path, monkeypatch):
    monkeypatch.setenv("OVLAB_WEIGHTS", str(tmp_path))
    monkeypatch.setattr(socket.socket, "connect", lambda *a, **k: (_ for _ in ()).throw(AssertionError("net")))
    with pytest.raises(WeightsNotFoundError, match=str(tmp_path / "RN50" / "openai.safetensors")):
        load_clip("RN50", "openai", cache_dir=tmp_path / "c")


def test_find_local_weights_looks_in_weights_dir_first(tmp_path):
    f = tmp_path / "RN50" / "openai.pt"
    f.parent.mkdir(parents=True)
    f.write_bytes(b"x")
    assert find_local_weights("RN50", "openai", weights_dir=tmp_path, cache_dir=tmp_path / "c") == f
    assert find_local_weights("RN50", "yfcc15m", weights_dir=tmp_path, cache_dir=tmp_path / "c") is None
    # open_clip's URL cache (file name of the tag's URL)
    url_file = tmp_path / "c" / "RN50.pt"
    url_file.parent.mkdir()
    url_file.write_bytes(b"x")
    assert find_local_weights("RN50", "openai", weights_dir=tmp_path / "none", cache_dir=tmp_path / "c") == url_file


def test_unknown_tag_and_missing_path(tmp_path):
    with pytest.raises(WeightsNotFoundError, match="known tags: openai"):
        load_clip("RN50", "no-such-tag")
    with pytest.raises(WeightsNotFoundError, match="checkpoint file not found"):
        load_clip("ovlab-tiny-vit", str(tmp_path / "missing.pt"))
    with pytest.raises(RuntimeError, match="unknown open_clip model"):
        load_clip("no-such-model", None)


@pytest.mark.parametrize("name", ["ovlab-tiny-rn", "ovlab-tiny-vit"])
def test_local_checkpoint_round_trip_gives_identical_outputs(tmp_path, name):
    src = _untrained(name, seed=7)
    path = save_checkpoint(src, tmp_path / f"{name}.pt")
    back = load_clip(name, str(path))
    assert not back.untrained and back.checkpoint == path and back.identity()["checkpoint"] == str(path)
    assert "warning" not in back.identity()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 3, *src.image_size, generator=g)
    assert torch.equal(src.encode_image(x), back.encode_image(x))
    texts = ["a photo of a cat", "wall"]
    assert torch.equal(src.encode_text(texts), back.encode_text(texts))
    assert back.logit_scale == src.logit_scale


def test_params_need_an_explicit_null_for_untrained(tmp_path):
    st = stage_params("synonym_score", {"seed": 0}, {"clip": {"model": "ovlab-tiny-vit"}}, root=tmp_path)
    with pytest.raises(ValueError, match=r"synonym_score.clip.pretrained: missing"):
        load_clip_from_params(st.cfg.clip, st)
    st = stage_params("synonym_score", {"seed": 4}, {"clip": {"model": "ovlab-tiny-vit", "pretrained": None}},
                      root=tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clip = load_clip_from_params(st.cfg.clip, st)
    assert clip.untrained and clip.seed == 4


def test_params_checkpoint_path_is_relative_to_root(tmp_path, tiny_vit):
    save_checkpoint(tiny_vit, tmp_path / "w" / "tiny.pt")
    st = stage_params("synonym_score", {"seed": 0},
                      {"clip": {"model": "ovlab-tiny-vit", "pretrained": "w/tiny.pt"}}, root=tmp_path)
    clip = load_clip_from_params(st.cfg.clip, st)
    assert clip.checkpoint == tmp_path / "w" / "tiny.pt"
