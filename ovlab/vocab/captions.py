"""Caption nouns for GKC's grounding loss (GKC §3.3; GKC ``detr_panoptic_caption_syn_kd_dataset_mapper.py``
L333–363).

Per image: pick one caption at random; tokenise and POS-tag it; keep tokens tagged NN, NNS, NNP or
NNPS; keep each with probability ``keep_prob`` (all of them when none survives); when more than
``max_words`` remain, keep a random ``max_words`` of them; normalise each like a class name
(GKC ``process_coco_cat``). Each noun is then encoded on its own, without a template.

Randomness comes from the ``rng`` argument: a ``random.Random``, a ``numpy.random.Generator`` or
a ``torch.Generator`` (CPU); the same seed gives the same nouns.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from ovlab.data.names import normalize_class_name
from ovlab.vocab.tagger import NOUN_TAGS, pos_tag, tokenize


def _uniform(rng, n: int) -> list[float]:
    """n floats in [0, 1) from any supported generator."""
    if isinstance(rng, random.Random):
        return [rng.random() for _ in range(n)]
    try:
        import torch

        if isinstance(rng, torch.Generator):
            return torch.rand(n, generator=rng, dtype=torch.float64).tolist()
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    import numpy as np

    if isinstance(rng, np.random.Generator):
        return rng.random(n).tolist()
    raise TypeError(f"rng must be random.Random, numpy.random.Generator or torch.Generator, got {type(rng).__name__}")


def _choose(rng, n: int, k: int) -> list[int]:
    """k distinct indices of range(n), in increasing order (a random k-subset)."""
    keys = _uniform(rng, n)
    return sorted(sorted(range(n), key=lambda i: keys[i])[:k])


def sample_caption(captions: Sequence[str], rng) -> str:
    """One of an image's captions, uniformly (GKC picks one of the 5 COCO captions).

    Raises:
        ValueError: no caption.
    """
    if not captions:
        raise ValueError("the image has no caption")
    return captions[min(int(_uniform(rng, 1)[0] * len(captions)), len(captions) - 1)]


def caption_nouns(caption: str, rng, keep_prob: float = 0.75, max_words: int = 5) -> list[str]:
    """GKC's grounding words of one caption (GKC §3.3), in caption order.

    Args:
        caption: the caption text.
        rng: ``random.Random`` | ``numpy.random.Generator`` | ``torch.Generator``.
        keep_prob: probability of keeping each noun (one uniform draw per noun); when none is kept,
            all nouns are kept.
        max_words: cap; a random subset of this size is kept (in caption order) when more remain.

    Returns:
        the nouns, normalised like class names (``"t-shirt"`` → ``"t shirt"``), duplicates kept;
        ``[]`` when the caption has no noun.

    Raises:
        ValueError: ``keep_prob`` outside [0, 1] or ``max_words < 1``.
        TaggerNotFoundError: no POS tagger can be found or assembled offline (see :mod:`.tagger`).
        TypeError: unsupported ``rng``.
    """
    if not 0.0 <= keep_prob <= 1.0:
        raise ValueError(f"keep_prob must be in [0, 1], got {keep_prob}")
    if max_words < 1:
        raise ValueError(f"max_words must be >= 1, got {max_words}")
    nouns = []
    for word, tag in pos_tag(tokenize(caption)):
        if tag in NOUN_TAGS:
            try:
                nouns.append(normalize_class_name(word))
            except ValueError:  # a token made only of dashes
                continue
    if not nouns:
        return []
    draws = _uniform(rng, len(nouns))
    kept = [w for w, u in zip(nouns, draws) if u < keep_prob] or nouns
    if len(kept) > max_words:
        kept = [kept[i] for i in _choose(rng, len(kept), max_words)]
    return kept
