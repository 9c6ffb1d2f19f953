"""A typed synonym vocabulary and the per-segment synonym scores, read from the stage outputs.

GKC text diversification (GKC §3.1) needs, for K training classes:

- every name of every class, flattened into one list of N names (the text bank the classifier scores
  against), grouped by class, the canonical name first in each group;
- the name → class map (N,) that GroupAvg / GroupMax reduce over;
- for Random, each training segment's synonym scores (paper Eq. 1), one per name of its class.

Sources: the ``synonyms`` stage writes ``{canonical: [names, canonical first]}``
(``results/synonyms/coco_panoptic_133.json``); the ``synonym_score`` stage writes
``{image_id: {segment_id: {class, category_id, iscrowd, trivial, scores: {name: p}}}}``
(``results/synonym_score/coco_panoptic_133.json``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch


@dataclass(frozen=True)
class SynonymVocabulary:
    """K classes and their N names (GKC TD, §3.1).

    Attributes:
        classes: the K canonical class names, in vocabulary (training-label) order.
        names: the N names, grouped by class in vocabulary order, each group starting with its
            canonical name. A name may appear in two classes' groups (two different name indices).
        name_to_class: (N,) class index of each name.

    Raises:
        ValueError: (at construction) lengths differ, a class has no name, a group does not start
            with the class's canonical name, a group is not contiguous, or a class repeats a name.
    """

    classes: tuple[str, ...]
    names: tuple[str, ...]
    name_to_class: tuple[int, ...]
    _groups: tuple[tuple[int, ...], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        k, n = len(self.classes), len(self.names)
        if len(self.name_to_class) != n:
            raise ValueError(f"name_to_class has {len(self.name_to_class)} entries for {n} names")
        if len(set(self.classes)) != k:
            raise ValueError("class names repeat")
        groups: list[list[int]] = [[] for _ in range(k)]
        for i, c in enumerate(self.name_to_class):
            if not 0 <= c < k:
                raise ValueError(f"name {self.names[i]!r} maps to class {c}, outside [0, {k})")
            if groups[c] and groups[c][-1] != i - 1:
                raise ValueError(f"the names of class {self.classes[c]!r} are not contiguous")
            groups[c].append(i)
        for c, g in enumerate(groups):
            if not g:
                raise ValueError(f"class {self.classes[c]!r} has no name")
            if self.names[g[0]] != self.classes[c]:
                raise ValueError(f"class {self.classes[c]!r}: its first name is {self.names[g[0]]!r}, "
                                 "expected the canonical name")
            own = [self.names[i].lower() for i in g]
            if len(set(own)) != len(own):
                raise ValueError(f"class {self.classes[c]!r} repeats a name: {[self.names[i] for i in g]}")
        object.__setattr__(self, "_groups", tuple(tuple(g) for g in groups))

    @classmethod
    def from_table(cls, table: Mapping[str, Sequence[str]], classes: Sequence[str] | None = None) -> SynonymVocabulary:
        """Build from ``{canonical: [names, canonical first]}``.

        Args:
            table: the ``synonyms`` stage output.
            classes: the training vocabulary's canonical names in label order; ``None`` = the
                table's order. Classes missing from the table raise; extra table entries are ignored.

        Raises:
            ValueError: a class is missing from the table, or see the class docstring.
        """
        order = list(table) if classes is None else list(classes)
        missing = [c for c in order if c not in table]
        if missing:
            raise ValueError(f"no synonym set for classes {missing}")
        names: list[str] = []
        owner: list[int] = []
        for k, c in enumerate(order):
            group = list(table[c])
            names.extend(group)
            owner.extend([k] * len(group))
        return cls(tuple(order), tuple(names), tuple(owner))

    @property
    def num_classes(self) -> int:
        """K."""
        return len(self.classes)

    @property
    def num_names(self) -> int:
        """N."""
        return len(self.names)

    def class_names(self, k: int) -> tuple[int, ...]:
        """Name indices of class ``k`` (canonical first)."""
        return self._groups[k]

    @property
    def canonical_index(self) -> tuple[int, ...]:
        """(K,) name index of each class's canonical name."""
        return tuple(g[0] for g in self._groups)

    def name_to_class_tensor(self, device: torch.device | str | None = None) -> torch.Tensor:
        """(N,) int64 class index of each name."""
        return torch.tensor(self.name_to_class, dtype=torch.long, device=device)

    def canonical_tensor(self, device: torch.device | str | None = None) -> torch.Tensor:
        """(K,) int64 name index of each class's canonical name."""
        return torch.tensor(self.canonical_index, dtype=torch.long, device=device)

    def name_index(self, class_name: str, name: str) -> int:
        """Index in :attr:`names` of ``name`` within the group of class ``class_name``.

        Raises:
            KeyError: unknown class, or the class has no such name.
        """
        try:
            k = self.classes.index(class_name)
        except ValueError:
            raise KeyError(f"unknown class {class_name!r}") from None
        for i in self._groups[k]:
            if self.names[i] == name:
                return i
        raise KeyError(f"class {class_name!r} has no name {name!r} (names: {[self.names[i] for i in self._groups[k]]})")


def load_synonym_vocabulary(path: str | os.PathLike, classes: Sequence[str] | None = None) -> SynonymVocabulary:
    """Read the ``synonyms`` stage output into a :class:`SynonymVocabulary`.

    Args:
        path: ``{canonical: [names, canonical first]}`` JSON (e.g. ``results/synonyms/coco_panoptic_133.json``).
        classes: training vocabulary order (canonical names); ``None`` = the file's order.

    Raises:
        FileNotFoundError: no such file (run the ``synonyms`` stage).
        ValueError: malformed file or inconsistent with ``classes`` (the message names the file).
    """
    from ovlab.data.files import read_json

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: synonym sets not found (run the `synonyms` stage: dvc repro synonyms)")
    table = read_json(path)
    if not isinstance(table, dict) or not all(
        isinstance(v, list) and v and all(isinstance(x, str) for x in v) for v in table.values()
    ):
        raise ValueError(f"{path}: expected {{canonical name: [names, canonical first]}}")
    try:
        return SynonymVocabulary.from_table(table, classes)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None


@dataclass(frozen=True)
class SynonymScores:
    """Per-segment synonym scores (GKC Eq. 1), aligned with a :class:`SynonymVocabulary`.

    Attributes:
        vocab: the vocabulary the scores are aligned to.
        table: ``{(image_id, segment_id): (class index, scores)}`` where ``scores`` has one float
            per name of the class, in the vocabulary's name order.
    """

    vocab: SynonymVocabulary
    table: Mapping[tuple[int, int], tuple[int, tuple[float, ...]]]

    def __len__(self) -> int:
        return len(self.table)

    def __contains__(self, key: tuple[int, int]) -> bool:
        return (int(key[0]), int(key[1])) in self.table

    def get(self, image_id: int, segment_id: int) -> torch.Tensor | None:
        """(J_k,) float32 scores of the segment over its class's names, or ``None`` when unscored."""
        hit = self.table.get((int(image_id), int(segment_id)))
        return None if hit is None else torch.tensor(hit[1], dtype=torch.float32)

    def class_of(self, image_id: int, segment_id: int) -> int:
        """Class index the score file records for the segment.

        Raises:
            KeyError: the segment is not in the table.
        """
        return self.table[(int(image_id), int(segment_id))][0]


def load_synonym_scores(path: str | os.PathLike, vocab: SynonymVocabulary, *,
                        skip_classes: Collection[str] = ()) -> SynonymScores:
    """Read the ``synonym_score`` stage output, aligned with ``vocab``.

    Args:
        path: ``{image_id: {segment_id: {class, scores: {name: p}, ...}}}`` JSON
            (e.g. ``results/synonym_score/coco_panoptic_133.json``).
        vocab: the vocabulary; every segment's class must be in it or in ``skip_classes``, and its
            score names must be exactly the class's names (any order in the file).
        skip_classes: classes whose segments are left out of the table (e.g. the classes outside
            a training vocabulary of seen classes: the stage scores every class, GKC trains on a
            subset). A class in neither ``vocab`` nor ``skip_classes`` still raises.

    Raises:
        FileNotFoundError: no such file (run the ``synonym_score`` stage).
        ValueError: malformed entry, unknown class, names that differ from the vocabulary's, or a
            score that is negative or not finite (the message names file, image and segment).
    """
    from ovlab.data.files import read_json

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: synonym scores not found (run the `synonym_score` stage)")
    raw = read_json(path)
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected {{image_id: {{segment_id: {{class, scores}}}}}}")
    index = {c: k for k, c in enumerate(vocab.classes)}
    skip = set(skip_classes) - set(index)
    table: dict[tuple[int, int], tuple[int, tuple[float, ...]]] = {}
    for image_id, segments in raw.items():
        for segment_id, entry in segments.items():
            where = f"{path}: image {image_id} segment {segment_id}"
            try:
                cls, scores = entry["class"], entry["scores"]
                key = (int(image_id), int(segment_id))
            except (KeyError, TypeError, ValueError):
                raise ValueError(f"{where}: expected integer ids and an entry with 'class' and 'scores'") from None
            if cls in skip:
                continue
            if cls not in index:
                raise ValueError(f"{where}: class {cls!r} is not in the synonym vocabulary")
            k = index[cls]
            own = [vocab.names[i] for i in vocab.class_names(k)]
            if not isinstance(scores, dict) or set(scores) != set(own):
                raise ValueError(f"{where}: score names {sorted(scores) if isinstance(scores, dict) else scores} "
                                 f"differ from the class's names {own}")
            values = tuple(float(scores[n]) for n in own)
            if not all(math.isfinite(v) and v >= 0 for v in values):
                raise ValueError(f"{where}: scores must be finite and >= 0, got {values}")
            table[key] = (k, values)
    return SynonymScores(vocab=vocab, table=table)
