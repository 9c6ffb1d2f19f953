"""ovlab.clip.text: template ensembling, multi-name max over logits, the disk cache (hand-computed cases)."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from ovlab.clip import TEMPLATE_SETS, VILD_TEMPLATES, build_text_bank, encode_names, load_clip, resolve_templates


class StubClip:
    """A ClipModel stand-in whose text encoder is a lookup table (so results are computable by hand)."""

    name = "stub"
    quick_gelu = False

    def __init__(self, table):
        self.table = table
        self.calls = 0

    def weights_key(self):
        return "stub-weights"

    def encode_text(self, texts, *, normalize=True, batch_size=256):
        self.calls += 1
        e = torch.tensor([self.table[t] for t in texts], dtype=torch.float32)
        return e / e.norm(dim=-1, keepdim=True) if normalize else e


def test_template_sets():
    assert len(VILD_TEMPLATES) == 14 and VILD_TEMPLATES[0] == "a photo of a {}."
    assert resolve_templates("none") == ["{}"]
    assert resolve_templates("vild") == list(VILD_TEMPLATES)
    assert resolve_templates("a {} here") == ["a {} here"]
    assert set(TEMPLATE_SETS) == {"none", "photo", "vild"}
    with pytest.raises(ValueError, match="placeholder"):
        resolve_templates(["no placeholder"])


def test_ensemble_normalises_each_template_then_the_mean():
    # template 1 gives (3, 0) -> (1, 0); template 2 gives (0, 10) -> (0, 1); mean (0.5, 0.5) -> (1, 1)/sqrt 2.
    # Without per-template normalisation the answer would lean to (0.29, 0.96).
    clip = StubClip({"A cat": [3.0, 0.0], "B cat": [0.0, 10.0]})
    e = encode_names(clip, ["cat"], ["A {}", "B {}"])
    torch.testing.assert_close(e, torch.tensor([[1 / math.sqrt(2), 1 / math.sqrt(2)]]))


def test_multi_name_classes_take_the_max_over_their_names():
    clip = StubClip({"wall": [1.0, 0.0], "brick wall": [0.0, 1.0], "bag": [-1.0, 0.0], "package": [0.6, 0.8]})
    bank = build_text_bank(clip, ["wall, brick wall", "bag_or_package"], "none")
    assert bank.names == ["wall", "brick wall", "bag", "package"]
    assert bank.class_index.tolist() == [0, 0, 1, 1]
    img = torch.tensor([[2.0, 0.0], [0.0, 1.0]])       # directions (1, 0) and (0, 1)
    # cos with names: row 0: [1, 0, -1, 0.6]; row 1: [0, 1, 0, 0.8]; scale 10 then max per class
    torch.testing.assert_close(bank.name_logits(img, 10.0), torch.tensor([[10.0, 0.0, -10.0, 6.0], [0.0, 10.0, 0.0, 8.0]]))
    torch.testing.assert_close(bank.logits(img, 10.0), torch.tensor([[10.0, 6.0], [10.0, 8.0]]))
    assert bank.class_names(1) == ["bag", "package"]


def test_lists_are_taken_verbatim_and_strings_can_stay_whole():
    clip = StubClip({"a, b": [1.0, 0.0], "x": [0.0, 1.0], "y z": [1.0, 1.0]})
    bank = build_text_bank(clip, ["a, b", ["x", "y z"]], split_multi=False)
    assert bank.names == ["a, b", "x", "y z"] and bank.class_index.tolist() == [0, 1, 1]


def test_cache_is_keyed_by_model_weights_templates_and_names(tmp_path):
    table = {"cat": [1.0, 0.0], "dog": [0.0, 1.0], "a cat": [1.0, 1.0], "a dog": [1.0, -1.0]}
    clip = StubClip(table)
    b1 = build_text_bank(clip, ["cat", "dog"], cache_dir=tmp_path)
    n = clip.calls
    b2 = build_text_bank(clip, ["cat", "dog"], cache_dir=tmp_path)
    assert clip.calls == n and torch.equal(b1.embeddings, b2.embeddings)  # read from the cache
    build_text_bank(clip, ["cat", "dog"], "a {}", cache_dir=tmp_path)      # other templates: encoded
    assert clip.calls == n + 1
    build_text_bank(clip, ["dog", "cat"], cache_dir=tmp_path)             # other names: encoded
    assert clip.calls == n + 2
    clip.weights_key = lambda: "other-weights"
    build_text_bank(clip, ["cat", "dog"], cache_dir=tmp_path)             # other weights: encoded
    assert clip.calls == n + 3
    assert len(list((tmp_path / "text_bank").glob("*.pt"))) == 4


def test_real_tiny_model_bank_matches_its_text_encoder():
    torch.set_num_threads(1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clip = load_clip("ovlab-tiny-vit", None, seed=0)
    bank = build_text_bank(clip, ["cat", "wall, brick wall"], "photo")
    ref = clip.encode_text(["a photo of a cat.", "a photo of a wall.", "a photo of a brick wall."])
    torch.testing.assert_close(bank.embeddings, ref)
