"""Build the shipped association maps: WordNet candidates + a curated overrides file.

SCAN "manually determine[s] hierarchical relations among various categories" (§3.3) and did not
publish how (its supplementary material, which describes the maps, was not available to us). ovlab
makes the construction reproducible:

1. **Candidates from WordNet** (:func:`wordnet_candidates`), between names of the *same* vocabulary.
   Each class contributes the first (most frequent) noun sense of its first (head) name; the other
   names of a comma list are often rare senses ("puff" → a person) and only serve name matching.
   - *synonym*: two classes share that sense, or have the same head name;
   - *parent*: a sense of class ``f`` is a hypernym (or instance hypernym) of a sense of class ``q``
     within ``max_depth`` steps. Mutual hypernymy becomes a synonym pair.
2. **Curated overrides** (``associations/overrides.yaml``, kept in git, read never written): per
   vocabulary, ``block_fathers`` (classes too general to credit as a parent: "structure",
   "container"...), ``remove`` candidates that are wrong for the pixels the classes label (homographs,
   over-general parents), ``add_parents`` / ``add_synonyms`` that WordNet misses — for ADE-150 these
   are the 33 pairs SCAN ships (SCAN ``scan/evaluation/generalized_sem_seg_evaluation.py`` L20), so the
   ADE-150 map contains SCAN's.

Regenerate the files with ``python -m ovlab.metrics.association_build``.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import yaml

from ovlab.atomic import write_text
from ovlab.data.categories import CategoryList, load_categories

from ovlab.metrics.association import AssociationError, AssociationMap

MAPPED_VOCABULARIES = ("ade20k_150", "ade20k_847", "pascal_context_459", "coco_panoptic_133")


@dataclass(frozen=True)
class Candidate:
    """One derived relation. ``relation`` is ``"synonym"`` or ``"parent"`` (child → father)."""

    child: str
    father: str
    relation: str
    evidence: str


def class_terms(cat) -> list[str]:
    """The names a class answers to: its ``synonyms`` field, else the comma-split name."""
    syn = cat.extra.get("synonyms") or [s.strip() for s in cat.name.split(",")]
    return [s for s in syn if s]


def _senses(wn, term: str):
    s = wn.synsets(term.replace(" ", "_"), pos="n")
    return s[:1]


def wordnet_candidates(categories: CategoryList, wn, max_depth: int = 3) -> list[Candidate]:
    """Synonym and hypernym relations between classes of one vocabulary (see module docstring).

    Args:
        categories: the vocabulary.
        wn: an nltk WordNet reader (:func:`ovlab.vocab.load_wordnet`).
        max_depth: hypernym steps searched upwards from each sense.

    Returns:
        Candidates sorted by (child index, father index); each pair appears once
        (synonyms as (lower index, higher index)).
    """
    cats = list(categories)
    senses = {c.name: set(_senses(wn, class_terms(c)[0])) for c in cats}
    heads = {c.name: class_terms(c)[0].lower() for c in cats}
    by_sense: dict = {}
    for c in cats:
        for s in senses[c.name]:
            by_sense.setdefault(s, set()).add(c.name)
    order = {c.name: c.index for c in cats}
    rel: dict[tuple[str, str], Candidate] = {}
    for a in cats:
        for b in cats:
            if b.index <= a.index:
                continue
            shared = senses[a.name] & senses[b.name]
            common = {heads[a.name]} & {heads[b.name]}
            if shared or common:
                ev = f"shared sense {sorted(s.name() for s in shared)[0]}" if shared else f"shared name {sorted(common)[0]!r}"
                rel[(a.name, b.name)] = Candidate(a.name, b.name, "synonym", ev)
    for c in cats:
        frontier = {(s, s) for s in senses[c.name]}
        for depth in range(1, max_depth + 1):
            nxt = set()
            for start, s in frontier:
                for h in s.hypernyms() + s.instance_hypernyms():
                    nxt.add((start, h))
                    for f in by_sense.get(h, ()):
                        if f == c.name:
                            continue
                        key = tuple(sorted((c.name, f), key=order.get))
                        if key in rel and rel[key].relation == "synonym":
                            continue
                        if (f, c.name) in rel:  # mutual hypernymy -> synonyms
                            rel.pop((f, c.name))
                            rel[key] = Candidate(key[0], key[1], "synonym", "mutual hypernyms")
                            continue
                        rel.setdefault((c.name, f), Candidate(c.name, f, "parent", f"{start.name()} -> {h.name()} ({depth} step{'s' if depth > 1 else ''})"))
            frontier = nxt
    return sorted(rel.values(), key=lambda x: (order[x.child], order[x.father]))


def load_overrides(path: str | Path | None = None) -> dict:
    """Read ``overrides.yaml`` (schema in its header)."""
    p = Path(path) if path else Path(str(resources.files("ovlab.metrics") / "associations" / "overrides.yaml"))
    doc = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    if not isinstance(doc, dict):
        raise AssociationError(f"{p}: expected a mapping of vocabulary name -> overrides")
    allowed = {"max_depth", "block_fathers", "remove", "add_parents", "add_synonyms", "note"}
    for vocab, ov in doc.items():
        extra = set(ov or {}) - allowed
        if extra:
            raise AssociationError(f"{p}: {vocab}.{sorted(extra)[0]}: unknown key (allowed: {', '.join(sorted(allowed))})")
        for key in ("remove", "add_parents", "add_synonyms"):
            for i, entry in enumerate((ov or {}).get(key, []) or []):
                if not (isinstance(entry, list) and len(entry) == 3 and all(isinstance(x, str) for x in entry)):
                    raise AssociationError(f"{p}: {vocab}.{key}[{i}]: expected [name, name, reason], got {entry!r}")
    return doc


def build_association_map(vocab: str, wn, overrides: dict) -> AssociationMap:
    """Candidates for ``vocab`` minus ``remove`` plus the curated additions, validated.

    Raises:
        AssociationError: an override names an unknown class, removes a relation that is not a
            candidate, or the result is invalid (cycle, self-loop...).
    """
    cats = load_categories(vocab)
    ov = overrides.get(vocab) or {}
    cands = wordnet_candidates(cats, wn, int(ov.get("max_depth", 3)))
    known = set(cats.names)
    for key in ("remove", "add_parents", "add_synonyms"):
        for a, b, _ in ov.get(key, []) or []:
            for n in (a, b):
                if n not in known:
                    raise AssociationError(f"overrides.yaml: {vocab}.{key}: [{a!r}, {b!r}]: unknown class name {n!r}")
    blocked = set(ov.get("block_fathers", []) or [])
    for n in sorted(blocked - known):
        raise AssociationError(f"overrides.yaml: {vocab}.block_fathers: unknown class name {n!r}")
    cands = [c for c in cands if not (c.relation == "parent" and c.father in blocked)]
    removed = {frozenset((a, b)) for a, b, _ in ov.get("remove", []) or []}
    present = {frozenset((c.child, c.father)) for c in cands}
    stale = [sorted(r) for r in removed if r not in present]
    if stale:
        raise AssociationError(f"overrides.yaml: {vocab}.remove: {stale[0]} is not a WordNet candidate (stale entry)")
    syn_pairs: list[tuple[str, str, str]] = []
    parents: dict[str, list[str]] = {}
    prov: dict[str, str] = {}
    for c in cands:
        if frozenset((c.child, c.father)) in removed:
            continue
        if c.relation == "synonym":
            syn_pairs.append((c.child, c.father, f"wordnet: {c.evidence}"))
        else:
            parents.setdefault(c.child, []).append(c.father)
            prov[f"{c.child} -> {c.father}"] = f"wordnet: {c.evidence}"
    for a, b, why in ov.get("add_synonyms", []) or []:
        parents.get(a, []).count(b) and parents[a].remove(b)
        parents.get(b, []).count(a) and parents[b].remove(a)
        syn_pairs.append((a, b, f"curated: {why}"))
    for a, b, why in ov.get("add_parents", []) or []:
        if b not in parents.setdefault(a, []):
            parents[a].append(b)
        prov[f"{a} -> {b}"] = f"curated: {why}"
    groups = _merge_groups(syn_pairs, cats)
    for a, b, why in syn_pairs:
        prov[f"{a} <-> {b}"] = why
    gid = {n: i for i, g in enumerate(groups) for n in g}
    parents = {k: [p for p in v if not (k in gid and gid.get(p) == gid[k])] for k, v in parents.items()}
    order = {n: i for i, n in enumerate(cats.names)}
    parents = {k: tuple(v) for k, v in sorted(parents.items(), key=lambda kv: order[kv[0]]) if v}
    return AssociationMap(cats, groups, parents, prov, f"build:{vocab}")


def _merge_groups(pairs, cats) -> tuple[tuple[str, ...], ...]:
    order = {n: i for i, n in enumerate(cats.names)}
    root: dict[str, str] = {}

    def find(x):
        while root.get(x, x) != x:
            x = root[x]
        return x

    for a, b, _ in pairs:
        root[find(a)] = find(b)
    groups: dict[str, set[str]] = {}
    for a, b, _ in pairs:
        groups.setdefault(find(a), set()).update({a, b})
    return tuple(tuple(sorted(g, key=order.get)) for g in sorted(groups.values(), key=lambda g: min(order[n] for n in g)))


DESCRIPTIONS = {
    "ade20k_150": "SG-IoU association map for ADE20K-150 (detectron2 order). Contains the 33 child->father pairs "
                  "SCAN ships for ADE-150 (SCAN scan/evaluation/generalized_sem_seg_evaluation.py L20) "
                  "plus WordNet-derived relations kept after curation.",
    "ade20k_847": "SG-IoU association map for ADE20K-847 (Mask2Former order), WordNet-derived and curated by ovlab "
                  "(SCAN's own 847 map is index-only; load it with load_scan_index_map).",
    "pascal_context_459": "SG-IoU association map for PASCAL Context-459, WordNet-derived and curated by ovlab.",
    "coco_panoptic_133": "SG-IoU association map for COCO panoptic 133 (contiguous order), WordNet-derived and curated by "
                         "ovlab (SCAN ships no COCO map; edges mirror SCAN's ADE-150 ones where the concepts match).",
}


def main(argv=None) -> int:
    """Regenerate ``ovlab/metrics/associations/<vocab>.json`` from WordNet + overrides."""
    import json

    from ovlab.vocab import load_wordnet

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("vocab", nargs="*", default=list(MAPPED_VOCABULARIES))
    ap.add_argument("--out-dir", default=str(resources.files("ovlab.metrics") / "associations"))
    args = ap.parse_args(argv)
    wn = load_wordnet()
    ov = load_overrides()
    for vocab in args.vocab:
        m = build_association_map(vocab, wn, ov)
        doc = m.to_json(vocab, DESCRIPTIONS.get(vocab, ""))
        write_text(Path(args.out_dir) / f"{vocab}.json", json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
        print(f"{vocab}: {len(m.synonyms)} synonym groups, {sum(map(len, m.parents.values()))} parent edges, {len(m.pairs())} (q, f) pairs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
