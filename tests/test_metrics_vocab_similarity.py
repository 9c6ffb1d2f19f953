"""Vocabulary similarity with a hand-built encoder (physically guided paper, Table 1)."""

import math

import pytest
import torch

from ovlab.metrics.vocab_similarity import vocabulary_similarity

VEC = {"cat": [1, 0, 0], "dog": [0, 1, 0], "kitten": [1, 1, 0], "car": [0, 0, 1]}


def enc(names):
    return torch.nn.functional.normalize(torch.tensor([VEC[n] for n in names], dtype=torch.float32), dim=1)


def test_hand_computed_values():
    s = 1 / math.sqrt(2)
    # eval: kitten -> best cat or dog (s); car -> best 0 ; mean = s/2
    assert vocabulary_similarity(["kitten", "car"], ["cat", "dog"], enc) == pytest.approx(s / 2)
    assert vocabulary_similarity(["kitten", "car"], ["cat", "dog"], enc, "directed-min") == pytest.approx(0.0)
    # reverse direction: cat -> kitten s, dog -> kitten s => s; symmetric = (s/2 + s)/2
    assert vocabulary_similarity(["kitten", "car"], ["cat", "dog"], enc, "symmetric-mean") == pytest.approx(0.75 * s)
    assert vocabulary_similarity(["cat", "dog"], ["cat", "dog", "car"], enc) == pytest.approx(1.0)


def test_errors():
    with pytest.raises(ValueError, match="non-empty"):
        vocabulary_similarity([], ["cat"], enc)
    with pytest.raises(ValueError, match="not L2-normalised"):
        vocabulary_similarity(["cat"], ["dog"], lambda n: torch.ones(len(n), 3))
    with pytest.raises(ValueError, match="unknown mode"):
        vocabulary_similarity(["cat"], ["dog"], enc, "max")


def test_cli_identical_vocabularies_score_one(tmp_path, capsys):
    """`ovlab vocab-sim` end to end with a tiny CLIP checkpoint: a vocabulary is fully similar to itself."""
    from ovlab.experiments.cli import main
    from ovlab.clip import load_clip
    from ovlab.clip.loading import save_checkpoint

    ckpt = tmp_path / "tiny.pt"
    with pytest.warns(UserWarning):
        save_checkpoint(load_clip("ovlab-tiny-vit", pretrained=None), ckpt)
    args = ["vocab-sim", "--eval", "cat,dog", "--train", "dog,cat,car", "--model", "ovlab-tiny-vit",
            "--pretrained", str(ckpt)]
    assert main(args) == 0
    assert capsys.readouterr().out.strip().endswith("1.0000")
    assert main(["vocab-sim", "--eval", "cat", "--train", "cat", "--model", "ovlab-tiny-vit",
                 "--pretrained", str(tmp_path / "missing.pt")]) == 1
    assert "not found" in capsys.readouterr().err
