"""Uncurated WordNet synonym sets for any class list (the VIPSeg video benchmark's TD; GKC §3.1, §4.4).

The ``synonyms`` stage curates COCO-133 by hand; the video benchmark trains on VIPSeg's 112 base
classes, which have no curated list. Their sets are built the same automatic way, without the
manual step: a raw VIPSeg name is first split into its names (``"ship_or_boat"`` → ``ship``,
``boat``; :func:`ovlab.data.names.split_multi_name`), then each name gets the lemmas of its
**first** WordNet noun sense (WordNet orders senses by frequency; without a curator, the other
senses bring mostly wrong names: "pillar" → "mainstay", "ladder" → "ravel") through
:func:`ovlab.vocab.synonyms.class_synonyms` with the ``synonyms`` stage's default filters (no proper
nouns, at most 3 words, no hypernyms/hyponyms); ``senses="all"`` takes every noun sense, as the
``synonyms`` stage does before curation. The set is the names followed by their lemmas, duplicates
dropped case-insensitively, the first name first (the class's canonical name).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from ovlab.atomic import write_json
from ovlab.config.synonyms import SynonymsParams
from ovlab.data.names import split_multi_name
from ovlab.vocab.overrides import ClassOverride, Overrides


def canonical_name(raw: str) -> str:
    """The canonical (first) name of a raw class label: ``"ship_or_boat"`` → ``"ship"``."""
    return split_multi_name(raw)[0]


def auto_synonym_table(raw_names: Sequence[str], wordnet, params: SynonymsParams | None = None, *,
                       senses: Literal["first", "all"] = "first") -> dict[str, list[str]]:
    """``{canonical: [names, canonical first]}`` for raw class labels (module docstring).

    Args:
        raw_names: the classes in vocabulary order (e.g. VIPSeg's ``"handrail_or_fence"``).
        wordnet: nltk WordNet reader (:func:`ovlab.vocab.load_wordnet`).
        params: filters of the ``synonyms`` stage (default: its defaults).
        senses: ``first`` (the most frequent noun sense of each name) or ``all``.

    Raises:
        ValueError: two classes share a canonical name, or an unknown ``senses``.
    """
    from ovlab.vocab.synonyms import _dedup, class_synonyms

    if senses not in ("first", "all"):
        raise ValueError(f"senses must be 'first' or 'all', got {senses!r}")
    params = params or SynonymsParams()
    table: dict[str, list[str]] = {}
    for raw in raw_names:
        parts = split_multi_name(raw)
        lemmas = []
        for p in parts:
            found = wordnet.synsets(p.replace(" ", "_"), pos="n")
            keep = Overrides(classes={p: ClassOverride(senses=[found[0].name()])}) if senses == "first" and found \
                else Overrides()
            lemmas += class_synonyms(p, p, wordnet, params, keep).names
        key = parts[0]
        if key in table:
            raise ValueError(f"classes collide on the canonical name {key!r}")
        table[key] = _dedup([*parts, *lemmas])
    return table


def cached_auto_synonym_table(raw_names: Sequence[str], cache_dir: str | os.PathLike | None) -> dict[str, list[str]]:
    """:func:`auto_synonym_table` with the WordNet found by :func:`ovlab.vocab.load_wordnet`, kept as
    ``<cache_dir>/auto_synonyms/<hash of the names>.json`` (loading WordNet takes seconds).

    Raises:
        WordNetNotFoundError: WordNet is absent (the message gives the remedies).
    """
    from ovlab.data.files import read_json
    from ovlab.vocab.wordnet import load_wordnet

    key = hashlib.sha256(json.dumps(["first-sense", *raw_names]).encode()).hexdigest()[:16]
    path = Path(cache_dir) / "auto_synonyms" / f"{key}.json" if cache_dir is not None else None
    if path is not None and path.is_file():
        return read_json(path)
    table = auto_synonym_table(raw_names, load_wordnet(cache_dir))
    if path is not None:
        write_json(path, table)
    return table
