"""The ``synonyms`` stage: curate the synonym sets of a vocabulary and write them atomically."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

from ovlab.atomic import write_json, write_text
from ovlab.config.record import write_record
from ovlab.config import StageParams
from ovlab.data.categories import load_categories
from ovlab.data.names import normalize_class_name
from ovlab.vocab.overrides import load_overrides
from ovlab.vocab.synonyms import ClassSynonyms, build_synonyms, synonym_metrics, synonym_table
from ovlab.vocab.wordnet import find_wordnet, load_wordnet


@dataclass
class SynonymsResult:
    """What the stage produced (also written to the files named in the params)."""

    sets: list[ClassSynonyms]
    table: dict[str, list[str]]
    metrics: dict
    wordnet_source: str


def classes_csv(sets: list[ClassSynonyms]) -> str:
    """Per-class table: canonical, raw name, names, senses used, removed by each filter, note."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["canonical", "raw_name", "n_names", "names", "senses", "in_wordnet", "needs_curation",
                "removed_proper_noun", "removed_too_long", "removed_blocklist", "removed_curated", "added", "note"])
    for s in sets:
        w.writerow([s.canonical, s.raw_name, len(s.names), " | ".join(s.names), " ".join(s.senses),
                    s.in_wordnet, s.needs_curation,
                    *(" | ".join(s.removed.get(k, [])) for k in ("proper_noun", "too_long", "blocklist", "curated")),
                    " | ".join(s.added), s.note])
    return buf.getvalue()


def run_synonyms(stage: StageParams, *, write: bool = True) -> SynonymsResult:
    """Run the ``synonyms`` stage (GKC §3.1).

    Args:
        stage: ``base`` + the ``synonyms`` section (:meth:`ovlab.config.Params.stage`).
        write: write the output files (``False``: compute only).

    Reads the category catalog and the curation file named in the ``synonyms`` section, builds the
    synonym sets from WordNet (offline), and writes atomically: ``output`` (``{canonical:
    [names]}``), ``metrics`` (names-per-class statistics) and ``report`` (per-class CSV). The
    curation file is only read.

    Raises:
        WordNetNotFoundError: WordNet is absent (the message gives the remedies).
        CurationError: the curation file is invalid (names the entry).
        FileNotFoundError: unknown category catalog.
    """
    cfg = stage.cfg
    cats = load_categories(stage.path(cfg.categories) if cfg.categories.endswith(".json") else cfg.categories)
    source, _ = find_wordnet(stage.path(stage.base.paths.cache))
    wn = load_wordnet(stage.path(stage.base.paths.cache))
    vocabulary = [normalize_class_name(c.name) for c in cats]
    overrides = load_overrides(stage.path(cfg.overrides), vocabulary=vocabulary, wordnet=wn)
    sets = build_synonyms([c.name for c in cats], wn, cfg, overrides)
    table = synonym_table(sets)
    metrics = synonym_metrics(sets)
    metrics["wordnet_source"] = source
    if write:
        write_json(stage.path(cfg.output), table)
        write_record(stage.path(cfg.metrics), metrics)  # + info.json beside it (ovlab.config.record)
        write_text(stage.path(cfg.report), classes_csv(sets))
    return SynonymsResult(sets=sets, table=table, metrics=metrics, wordnet_source=source)
