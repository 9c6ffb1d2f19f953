"""Vocabularies of the segmenter: class names → CLIP text embeddings (frozen text encoder; GKC §3, Fig. 2)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ovlab.clip.text import TextBank, build_text_bank


@dataclass
class Vocabulary:
    """K classes, their M names and the names' text embeddings.

    Attributes:
        classes: K class labels.
        bank: :class:`ovlab.clip.TextBank` (names, ``class_index`` (M,), embeddings (M, D)).
        dataset_index: (K,) the dataset's contiguous category index of each class (training
            vocabularies are a subset of the dataset's categories).
    """

    classes: list[str]
    bank: TextBank
    dataset_index: list[int]

    @property
    def text(self) -> torch.Tensor:
        """(M, D) unit-norm name embeddings."""
        return self.bank.embeddings

    @property
    def class_index(self) -> torch.Tensor:
        """(M,) int64 class of each name."""
        return self.bank.class_index

    def __len__(self) -> int:
        return len(self.classes)

    def label_lut(self, num_dataset_classes: int) -> torch.Tensor:
        """(num_dataset_classes,) int64: dataset index → vocabulary index, −1 when not in the vocabulary."""
        lut = torch.full((num_dataset_classes,), -1, dtype=torch.int64)
        for k, d in enumerate(self.dataset_index):
            lut[d] = k
        return lut


def build_vocabulary(clip, names: list[str], dataset_index: list[int] | None = None, *,
                     templates: str = "none", cache_dir=None, name_encoding: str = "split") -> Vocabulary:
    """Encode class names (multi-name classes split on ``,`` / ``_or_``; max over names at inference).

    Args:
        clip: :class:`ovlab.clip.ClipModel`.
        names: K class names as the dataset writes them.
        dataset_index: (K,) dataset indices; default 0..K-1.
        templates: ``none`` (GKC training), ``photo`` or ``vild``.
        cache_dir: text-bank cache folder.
        name_encoding: ``split`` (max over names) or ``whole`` (SCAN: the whole string;
            :data:`ovlab.clip.text.NAME_ENCODINGS`).
    """
    bank = build_text_bank(clip, names, templates, cache_dir=cache_dir, name_encoding=name_encoding)
    return Vocabulary(list(names), bank, list(range(len(names))) if dataset_index is None else list(dataset_index))


def training_vocabulary(clip, categories, which: str, *, templates: str = "none", cache_dir=None,
                        name_encoding: str = "split") -> Vocabulary:
    """The training classes of a :class:`ovlab.data.categories.CategoryList`: ``seen`` or ``all``.

    Raises:
        ValueError: ``which`` is neither, or the list marks no seen class.
    """
    if which not in ("seen", "all"):
        raise ValueError(f"vocabulary must be 'seen' or 'all', got {which!r}")
    cats = list(categories) if which == "all" else [c for c in categories if not c.novel]
    if not cats:
        raise ValueError(f"{categories.dataset}: no seen class")
    index = [c.index for c in cats]
    return build_vocabulary(clip, [c.name for c in cats], index, templates=templates, cache_dir=cache_dir,
                            name_encoding=name_encoding)
