"""Synonym sets per training class from WordNet, with noise filters and manual overrides.

GKC §3.1 (and GKC ``ipython_commanc.py``, the release's only trace of it): the names of a class are
the lemmas of the WordNet noun senses of its
normalised name, optionally widened by direct hypernyms/hyponyms, then filtered (proper nouns,
long multi-word lemmas, a blocklist) and manually curated. The canonical name always comes first.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from ovlab.config import SynonymsParams
from ovlab.vocab.overrides import Overrides


@dataclass
class ClassSynonyms:
    """The curated names of one class and how they were obtained.

    Attributes:
        canonical: the normalised class name (first of ``names``).
        raw_name: the dataset's raw name (``"rock-merged"``).
        names: final names, canonical first, no duplicates.
        senses: WordNet synsets used (all noun senses, or the curated subset).
        candidates: names WordNet proposed before filtering, in order.
        removed: filter → names it removed (``proper_noun``, ``too_long``, ``blocklist``, ``curated``).
        added: names the curation file added.
        in_wordnet: the canonical name has at least one WordNet noun sense.
        needs_curation: not in WordNet and no curation entry: only the canonical name is kept,
            listed for a human to curate.
        note: the curation file's note.
        curated: the curation file has an entry for this class.
    """

    canonical: str
    raw_name: str
    names: list[str]
    senses: list[str] = field(default_factory=list)
    candidates: list[str] = field(default_factory=list)
    removed: dict[str, list[str]] = field(default_factory=dict)
    added: list[str] = field(default_factory=list)
    in_wordnet: bool = True
    needs_curation: bool = False
    note: str = ""
    curated: bool = False

    def as_dict(self) -> dict:
        return asdict(self)


FILTERS = ("proper_noun", "too_long", "blocklist", "curated")


def _lemma_text(lemma_name: str) -> str:
    return lemma_name.replace("_", " ")


def _dedup(seq):
    """Order-preserving de-duplication, case-insensitive (the first spelling wins)."""
    seen, out = set(), []
    for x in seq:
        if x.lower() not in seen:
            seen.add(x.lower())
            out.append(x)
    return out


def class_synonyms(
    raw_name: str,
    canonical: str,
    wordnet,
    params: SynonymsParams,
    overrides: Overrides,
) -> ClassSynonyms:
    """Build the synonym set of one class.

    Order of operations: candidate lemmas of the selected noun senses (senses in WordNet order,
    lemmas in synset order, ``_`` → space), then direct hypernym and hyponym lemmas when enabled;
    filters ``proper_noun`` (capitalised lemma), ``too_long`` (more than ``filters.max_words``
    words), ``blocklist`` (params + curation file), ``curated`` (the class's ``remove`` list);
    then the class's ``add`` list (unfiltered); canonical name first, duplicates dropped
    case-insensitively (the first spelling wins).

    The curation file is reviewed for the default expansion (no hypernyms/hyponyms): turning
    those on adds names no one has reviewed.

    Args:
        raw_name: dataset name, e.g. ``"rock-merged"``.
        canonical: its normalised form, e.g. ``"rock"``.
        wordnet: nltk WordNet reader (:func:`ovlab.vocab.load_wordnet`).
        params: the ``synonyms`` params section.
        overrides: the validated curation file.
    """
    entry = overrides.classes.get(canonical)
    all_senses = wordnet.synsets(canonical.replace(" ", "_"), pos="n")
    if entry is not None and entry.senses is not None:
        wanted = set(entry.senses)
        senses = [s for s in all_senses if s.name() in wanted]
    else:
        senses = list(all_senses)
    candidates: list[str] = []
    for s in senses:
        candidates.extend(_lemma_text(lem.name()) for lem in s.lemmas())
    if params.wordnet.hypernyms:
        for s in senses:
            for h in s.hypernyms():
                candidates.extend(_lemma_text(lem.name()) for lem in h.lemmas())
    if params.wordnet.hyponyms:
        for s in senses:
            for h in s.hyponyms():
                candidates.extend(_lemma_text(lem.name()) for lem in h.lemmas())
    candidates = _dedup(candidates)

    blocklist = {b.lower() for b in [*params.filters.blocklist, *overrides.blocklist]}
    curated_remove = {r.lower() for r in (entry.remove if entry else [])}
    removed: dict[str, list[str]] = {k: [] for k in FILTERS}
    kept = []
    for name in candidates:
        if name.lower() == canonical.lower():  # the class's own name ("Frisbee" for "frisbee") is no removal
            continue
        if params.filters.proper_nouns and name[:1].isupper():
            removed["proper_noun"].append(name)
        elif len(name.split()) > params.filters.max_words:
            removed["too_long"].append(name)
        elif name.lower() in blocklist:
            removed["blocklist"].append(name)
        elif name.lower() in curated_remove:
            removed["curated"].append(name)
        else:
            kept.append(name)
    added = list(entry.add) if entry else []
    names = _dedup([canonical, *kept, *added])
    return ClassSynonyms(
        canonical=canonical,
        raw_name=raw_name,
        names=names,
        senses=[s.name() for s in senses],
        candidates=candidates,
        removed=removed,
        added=added,
        in_wordnet=bool(all_senses),
        needs_curation=not all_senses and entry is None,
        note=entry.note if entry else "",
        curated=entry is not None,
    )


def build_synonyms(raw_names: list[str], wordnet, params: SynonymsParams, overrides: Overrides) -> list[ClassSynonyms]:
    """Synonym sets of a whole vocabulary, in the vocabulary's order.

    Args:
        raw_names: dataset class names in training order.

    Raises:
        ValueError: two raw names normalise to the same canonical name.
    """
    from ovlab.data.names import normalize_class_name

    canon = [normalize_class_name(n) for n in raw_names]
    dup = sorted({c for c in canon if canon.count(c) > 1})
    if dup:
        raise ValueError(f"class names collide after normalisation: {dup}")
    return [class_synonyms(r, c, wordnet, params, overrides) for r, c in zip(raw_names, canon)]


def synonym_table(sets: list[ClassSynonyms]) -> dict[str, list[str]]:
    """The stage's output: ``{canonical name: [names, canonical first]}`` in vocabulary order."""
    return {s.canonical: list(s.names) for s in sets}


def synonym_metrics(sets: list[ClassSynonyms]) -> dict:
    """Names-per-class statistics (the stage's DVC metrics).

    Returns:
        ``classes``, ``names_total``, ``names_per_class_mean`` (float), ``names_per_class_max``,
        ``single_name_classes``, ``not_in_wordnet``, ``needs_curation``, ``curated_classes``
        (classes with an entry in the curation file) and
        ``removed_<filter>`` counts.
    """
    n = len(sets)
    counts = [len(s.names) for s in sets]
    out = {
        "classes": n,
        "names_total": int(sum(counts)),
        "names_per_class_mean": round(sum(counts) / n, 4) if n else 0.0,
        "names_per_class_max": max(counts, default=0),
        "single_name_classes": sum(c == 1 for c in counts),
        "not_in_wordnet": sum(not s.in_wordnet for s in sets),
        "needs_curation": sum(s.needs_curation for s in sets),
        "curated_classes": sum(s.curated for s in sets),
    }
    for f in FILTERS:
        out[f"removed_{f}"] = sum(len(s.removed.get(f, [])) for s in sets)
    return out
