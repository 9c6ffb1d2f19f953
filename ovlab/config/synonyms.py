"""``synonyms`` section: WordNet synonym curation (GKC §3.1).

The official steps survive only in GKC ``ipython_commanc.py``.
"""

from __future__ import annotations

from pydantic import Field

from ovlab.config.schema import Section


class WordNetExpansion(Section):
    """Which WordNet relations add names besides the lemmas of the class's noun senses."""

    hypernyms: bool = False
    hyponyms: bool = False


class SynonymFilters(Section):
    """Automatic noise filters, applied before the manual overrides.

    Attributes:
        proper_nouns: drop lemmas that WordNet writes capitalised (``Rock``, ``Boston``).
        max_words: drop lemmas of more than this many words (``rock and roll`` has 3).
        blocklist: names dropped from every class, on top of the curated file's blocklist.
    """

    proper_nouns: bool = True
    max_words: int = Field(3, ge=1)
    blocklist: list[str] = []


class SynonymsParams(Section):
    """Parameters of the ``synonyms`` stage.

    Attributes:
        categories: a catalog name shipped in :mod:`ovlab.data.catalog` (e.g. ``coco_panoptic_133``)
            or a path to a category JSON in the same format.
        overrides: the curated YAML (kept in git; the stage reads it and never writes it).
        output: the synonym sets, ``{canonical name: [names, canonical first]}``.
        metrics: names-per-class statistics (a DVC metrics file).
        report: per-class table with what each filter removed (CSV).
    """

    categories: str = "coco_panoptic_133"
    overrides: str = "ovlab/vocab/curation/coco_panoptic_133.yaml"
    wordnet: WordNetExpansion = WordNetExpansion()
    filters: SynonymFilters = SynonymFilters()
    output: str = "results/synonyms/coco_panoptic_133.json"
    metrics: str = "results/synonyms/metrics.json"
    report: str = "results/synonyms/classes.csv"
