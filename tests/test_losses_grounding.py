"""GKC grounding loss (GKC §3.3, L_G of Eq. 4) against plain-Python values; caption nouns with the offline tagger."""

from __future__ import annotations

import json
import math
import pickle
import random
import socket

import numpy as np
import pytest
import torch

from ovlab.gkc.grounding import caption_nouns, grounding_distances, grounding_loss, pad_embeddings
from ovlab.vocab import tagger as tagger_mod
from ovlab.vocab.captions import sample_caption


def ce(logits, target):
    return -logits[target] + math.log(sum(math.exp(z) for z in logits))


def softmax(xs):
    m = max(xs)
    e = [math.exp(x - m) for x in xs]
    return [x / sum(e) for x in e]


def unit(v):
    n = math.sqrt(sum(x * x for x in v))
    return [x / n for x in v]


def reference(words, regions, tau):
    """Plain-Python L_G: words[c] = list of word vectors, regions[i] = list of region vectors (no padding)."""
    b = len(words)
    cos = lambda a, e: sum(x * y for x, y in zip(unit(a), unit(e)))  # noqa: E731
    w2r = [[0.0] * b for _ in range(b)]
    r2w = [[0.0] * b for _ in range(b)]
    for c in range(b):
        for i in range(b):
            cs = [[cos(w, e) for e in regions[i]] for w in words[c]]          # [l][r]
            d = [[tau * (1 - x) for x in row] for row in cs]
            acc = 0.0
            for l_, row in enumerate(cs):
                a = softmax([tau * x for x in row])
                acc += sum(a[r] * d[l_][r] for r in range(len(row)))
            w2r[c][i] = acc / len(words[c])
            acc = 0.0
            for r in range(len(regions[i])):
                bcol = softmax([tau * cs[l_][r] for l_ in range(len(words[c]))])
                acc += sum(bcol[l_] * d[l_][r] for l_ in range(len(words[c])))
            r2w[c][i] = acc / len(regions[i])
    terms = []
    for dm in (w2r, r2w):
        terms.append(sum(ce([-dm[c][i] for c in range(b)], i) for i in range(b)) / b)   # image picks caption
        terms.append(sum(ce([-dm[c][i] for i in range(b)], c) for c in range(b)) / b)   # caption picks image
    return sum(terms) / 4


def padded(items, dim):
    m = max(len(x) for x in items)
    x = torch.zeros(len(items), m, dim, dtype=torch.float64)
    mask = torch.zeros(len(items), m, dtype=torch.bool)
    for b, rows in enumerate(items):
        if rows:
            x[b, : len(rows)] = torch.tensor(rows, dtype=torch.float64)
            mask[b, : len(rows)] = True
    return x, mask


def test_one_word_one_region_by_hand():
    # cos: [[1, .6], [0, .8]], τ = 2 -> D = τ(1 − cos) = [[0, .8], [2, .4]] for both directions
    w, wm = padded([[[1.0, 0.0]], [[0.0, 1.0]]], 2)
    e, em = padded([[[1.0, 0.0]], [[0.6, 0.8]]], 2)
    d1, d2 = grounding_distances(w, wm, e, em, 2.0)
    assert d1.tolist() == [pytest.approx([0.0, 0.8]), pytest.approx([2.0, 0.4])]
    assert torch.allclose(d1, d2)
    img = (ce([0.0, -2.0], 0) + ce([-0.8, -0.4], 1)) / 2      # columns: each image picks its caption
    cap = (ce([0.0, -0.8], 0) + ce([-2.0, -0.4], 1)) / 2      # rows: each caption picks its image
    assert float(grounding_loss(w, wm, e, em, 2.0)) == pytest.approx((img + cap) / 2, rel=1e-12)


def test_attention_with_padding_matches_reference():
    words = [[[1.0, 0.2, 0.0], [0.1, 1.0, 0.3]], [[0.3, 0.3, 1.0]], [[0.5, -1.0, 0.2], [1.0, 1.0, 1.0]]]
    regions = [[[0.9, 0.1, 0.0], [0.0, 0.2, 1.0]], [[0.2, 1.0, 0.1]], [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.3, 0.3, 0.3]]]
    w, wm = padded(words, 3)
    e, em = padded(regions, 3)
    w[1, 1] = torch.tensor([5.0, -3.0, 2.0], dtype=torch.float64)   # garbage in padding: must not matter
    e[1, 2] = torch.tensor([-4.0, 1.0, 9.0], dtype=torch.float64)
    tau = 3.0
    assert float(grounding_loss(w, wm, e, em, tau)) == pytest.approx(reference(words, regions, tau), rel=1e-9)


def test_validity_and_drops_samples_or_keeps_them():
    words = [[[1.0, 0.0]], [[0.0, 1.0]], [[0.7, 0.7]]]
    regions = [[[1.0, 0.1]], [[0.2, 1.0]], []]                    # sample 2 has no region
    w, wm = padded(words, 2)
    e, em = padded(regions, 2)
    tau = 2.0
    got = float(grounding_loss(w, wm, e, em, tau, validity="and"))
    assert got == pytest.approx(reference(words[:2], regions[:2], tau), rel=1e-12)
    quirk = grounding_loss(w, wm, e, em, tau, validity="or")
    assert torch.isfinite(quirk) and abs(float(quirk) - got) > 1e-6
    # with OR the empty image's distances come from the zero padding region: cos 0 -> d = τ
    d1, _ = grounding_distances(w, wm, e, em, tau)
    assert d1[:, 2].tolist() == pytest.approx([tau, tau, tau])


def test_degenerate_batches_and_gradients():
    tau = torch.nn.Parameter(torch.tensor(2.0, dtype=torch.float64))
    w, wm = padded([[], []], 2)
    e, em = padded([[[1.0, 0.0]], []], 2)
    w.requires_grad_(True)
    z = grounding_loss(w, wm, e, em, tau)
    assert float(z.detach()) == 0.0
    z.backward()
    assert tau.grad is not None and float(tau.grad) == 0.0
    w1, wm1 = padded([[[1.0, 0.0]], []], 2)
    assert float(grounding_loss(w1, wm1, e, em, 2.0)) == 0.0       # one valid sample: one candidate
    w2, wm2 = padded([[[1.0, 0.0]], [[0.0, 1.0]]], 2)
    e2, em2 = padded([[[1.0, 0.0]], [[0.6, 0.8]]], 2)
    tau.grad = None
    grounding_loss(w2, wm2, e2, em2, tau).backward()
    assert float(tau.grad) != 0.0
    with pytest.raises(ValueError, match="validity"):
        grounding_loss(w2, wm2, e2, em2, 1.0, validity="xor")
    with pytest.raises(ValueError, match="need words"):
        grounding_loss(w2, wm2, e2[:, :, :1], em2, 1.0)


def test_pad_embeddings_subsamples_reproducibly():
    items = [torch.arange(30 * 2, dtype=torch.float32).reshape(30, 2), torch.ones(3, 2), torch.zeros(0, 2)]
    x, mask = pad_embeddings(items, 25, torch.Generator().manual_seed(0))
    assert x.shape == (3, 25, 2) and mask.sum(1).tolist() == [25, 3, 0]
    rows = x[0, :, 0].tolist()
    assert rows == sorted(rows) and len(set(rows)) == 25 and all(r % 2 == 0 for r in rows)
    x2, _ = pad_embeddings(items, 25, torch.Generator().manual_seed(0))
    assert torch.equal(x, x2)
    with pytest.raises(ValueError, match="one D"):
        pad_embeddings([torch.ones(2, 3), torch.ones(2, 4)])


# --------------------------------------------------------------------------- caption nouns / tagger
@pytest.fixture()
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_caption_nouns_offline(no_network):
    caption = "A man riding a horse on a beach"
    assert caption_nouns(caption, random.Random(0), keep_prob=1.0) == ["man", "horse", "beach"]
    assert caption_nouns("Two dogs are playing with a frisbee in the park.", random.Random(0), keep_prob=1.0) == [
        "dogs", "frisbee", "park"]
    assert caption_nouns("A T-shirt", random.Random(0), keep_prob=1.0) == ["T shirt"]   # process_coco_cat
    assert caption_nouns("Is it red?", random.Random(0)) == []


def test_caption_nouns_sampling_is_seeded():
    caption = "A dog, a cat, a man, a woman, a kid and a horse on a sofa in a room."
    all_nouns = caption_nouns(caption, random.Random(0), keep_prob=1.0, max_words=100)
    assert all_nouns == ["dog", "cat", "man", "woman", "kid", "horse", "sofa", "room"]
    for make in (lambda: random.Random(7), lambda: torch.Generator().manual_seed(7), lambda: np.random.default_rng(7)):
        a, b = caption_nouns(caption, make()), caption_nouns(caption, make())
        assert a == b and 1 <= len(a) <= 5
        assert [w for w in all_nouns if w in a] == a                 # a subset, in caption order
    # keep_prob 0: nothing survives the draw -> all nouns kept, then capped at max_words
    capped = caption_nouns(caption, random.Random(1), keep_prob=0.0, max_words=3)
    assert len(capped) == 3 and [w for w in all_nouns if w in capped] == capped
    with pytest.raises(ValueError, match="keep_prob"):
        caption_nouns(caption, random.Random(0), keep_prob=1.5)
    with pytest.raises(TypeError, match="rng"):
        caption_nouns(caption, 42)


def test_sample_caption():
    caps = ["a", "b", "c", "d", "e"]
    picks = {sample_caption(caps, random.Random(s)) for s in range(50)}
    assert picks == set(caps)
    with pytest.raises(ValueError, match="no caption"):
        sample_caption([], random.Random(0))


def test_tagger_assembles_offline_into_a_cache(tmp_path, no_network, monkeypatch):
    root = tagger_mod.assemble_tagger(tmp_path)
    folder = root / tagger_mod.RESOURCE
    for name in tagger_mod.FILES:
        assert (folder / name).is_file() and not (folder / name).is_symlink()
    classes = json.loads((folder / tagger_mod.FILES[2]).read_text())
    assert {"NN", "NNS", "NNP", "NNPS", "VBG", "DT"} <= set(classes) and len(classes) == 45
    stamp = (folder / tagger_mod.MARKER).stat().st_mtime_ns
    tagger_mod.assemble_tagger(tmp_path)                       # idempotent: nothing rewritten
    assert (folder / tagger_mod.MARKER).stat().st_mtime_ns == stamp
    monkeypatch.setattr(tagger_mod, "_nltk_tagger_dir", lambda: None)   # a machine without nltk's tagger data
    assert tagger_mod.find_tagger(tmp_path) == ("assembled", folder)
    import nltk
    from nltk.tag.perceptron import PerceptronTagger

    monkeypatch.setattr(nltk.data, "path", [str(root)])        # only the assembled copy is visible
    tagger = PerceptronTagger(lang="eng")
    tags = dict(tagger.tag(tagger_mod.tokenize("A man riding a horse on a beach")))
    assert tags["man"] == "NN" and tags["horse"] == "NN" and tags["riding"] == "VBG"


def test_tagger_refuses_code_in_the_pickle(tmp_path):
    bad = tmp_path / "evil.pickle"

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    bad.write_bytes(pickle.dumps(Evil()))
    with pytest.raises(tagger_mod.TaggerNotFoundError, match="not a readable"):
        tagger_mod.read_source_model(bad)


def test_tagger_missing_gives_remedies(tmp_path, monkeypatch):
    from importlib import metadata

    def missing(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(tagger_mod, "_nltk_tagger_dir", lambda: None)
    monkeypatch.setattr(metadata, "files", missing)
    with pytest.raises(tagger_mod.TaggerNotFoundError, match="textblob-aptagger") as err:
        tagger_mod.find_tagger(tmp_path)
    assert "averaged_perceptron_tagger_eng" in str(err.value) and "NLTK_DATA" in str(err.value)


def test_tokenize_without_punkt():
    assert tagger_mod.tokenize("Two dogs play. A cat sleeps.") == ["Two", "dogs", "play", ".", "A", "cat", "sleeps", "."]
