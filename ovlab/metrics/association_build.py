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
3. **Consistency** (``consistent_with`` in the overrides, :func:`mirror_shared_pairs`): the ADE-847
   map holds exactly the ADE-150 map's pairs between class names both vocabularies have.

These are the ``wordnet_<vocabulary>.json`` maps, the named alternative. SCAN's own maps
(``scan_<vocabulary>.json``, the default for ADE-150, ADE-847 and PC-459) are not built but converted,
pair for pair, from SCAN's evaluator (:func:`scan_maps_from_evaluator`).

Regenerate the WordNet files with ``python -m ovlab.metrics.association_build`` and SCAN's with
``--scan-evaluator <copy of SCAN's generalized_sem_seg_evaluation.py>``.
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
    allowed = {"max_depth", "block_fathers", "remove", "add_parents", "add_synonyms", "note", "consistent_with"}
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
    """Candidates for ``vocab`` minus ``remove`` plus the curated additions, validated; then, with
    ``consistent_with: <vocabulary>``, made identical to that vocabulary's map on the pairs of class
    names both vocabularies have (:func:`mirror_shared_pairs`; ADE-847 follows ADE-150, whose map
    holds SCAN's curated pairs).

    Raises:
        AssociationError: an override names an unknown class, removes a relation that is not a
            candidate, or the result is invalid (cycle, self-loop...).
    """
    built = _build_own(vocab, wn, overrides)
    other = (overrides.get(vocab) or {}).get("consistent_with")
    if other:
        built = mirror_shared_pairs(built, build_association_map(other, wn, overrides))
    return built


def mirror_shared_pairs(m: AssociationMap, ref: AssociationMap) -> AssociationMap:
    """``m`` with every relation between two class names that ``ref``'s vocabulary also has replaced
    by ``ref``'s relations between them, so the two maps credit the same pairs there.

    Synonym groups of ``m`` with two or more shared names and the mirrored pairs become exact
    ``fathers`` pairs; other groups and parent edges are kept.
    """
    shared = set(m.categories.names) & set(ref.categories.names)
    both = lambda a, b: a in shared and b in shared  # noqa: E731
    groups, direct, prov = [], {}, dict(m.provenance)
    for g in m.synonyms:
        if sum(n in shared for n in g) < 2:
            groups.append(g)
            continue
        for a in g:
            for b in g:
                if a != b and not both(a, b):
                    direct.setdefault(a, []).append(b)
    parents = {k: tuple(p for p in v if not both(k, p)) for k, v in m.parents.items()}
    parents = {k: v for k, v in parents.items() if v}
    for k in list(prov):
        a, _, b = k.replace(" <-> ", " -> ").partition(" -> ")
        if both(a, b):
            del prov[k]
    for a, fs in ref.fathers().items():
        for b in fs:
            if both(a, b):
                direct.setdefault(a, []).append(b)
                prov[f"{a} -> {b}"] = f"mirrored from {ref.categories.dataset} (consistent_with)"
    for k, v in m.direct.items():
        direct.setdefault(k, []).extend(f for f in v if not both(k, f))
    order = {n: i for i, n in enumerate(m.categories.names)}
    direct = {k: tuple(dict.fromkeys(v)) for k, v in sorted(direct.items(), key=lambda kv: order[kv[0]]) if v}
    return AssociationMap(m.categories, tuple(groups), parents, prov, m.source, direct, m.name, m.family)


def _build_own(vocab: str, wn, overrides: dict) -> AssociationMap:
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
    return AssociationMap(cats, groups, parents, prov, f"build:{vocab}", name=f"wordnet_{vocab}", family="wordnet")


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


SCAN_EVALUATOR = "scan/evaluation/generalized_sem_seg_evaluation.py"
SCAN_COMMIT = "097fbbdaf7789ac6d2da44533e95521e73fd7c4f"
SCAN_MAP_HEADERS = {"ADE-150": "ade20k_150", "ADE-847": "ade20k_847", "pc-459": "pascal_context_459"}
"""The comment line above each ``father_class`` dict of SCAN's evaluator → the vocabulary it indexes
(SCAN registers ADE-847 and PC-459 in the orders of ``scan/data/datasets/register_ade20k_full.py``
and ``register_pascal_context.py``, ADE-150 in detectron2's; ovlab's catalogs use the same orders)."""


def scan_maps_from_evaluator(text: str, where: str = SCAN_EVALUATOR) -> dict[str, tuple[AssociationMap, dict]]:
    """SCAN's three SG-IoU maps, pair for pair, from the text of its evaluator (SCAN Eq. 6 and §3.3;
    SCAN ``scan/evaluation/generalized_sem_seg_evaluation.py`` L20, L23, L26).

    Each ``father_class = {...}`` line (commented out or not) under a ``# ADE-150`` / ``# ADE-847`` /
    ``# pc-459`` header is read with :func:`ovlab.metrics.association.load_scan_index_map` (duplicate
    keys: the last value wins, as when Python runs the file) and its indices turned into the
    vocabulary's class names. The result keeps exactly SCAN's directed pairs (``fathers``).

    Returns:
        ``{vocabulary: (map, origin)}``; ``origin`` names the repository, commit, file, line and the
        duplicate keys that were resolved.

    Raises:
        AssociationError: a header without a dict below it, or an index outside the vocabulary.
    """
    import warnings

    from ovlab.metrics.association import load_scan_index_map

    lines = text.splitlines()
    out: dict[str, tuple[AssociationMap, dict]] = {}
    for i, line in enumerate(lines):
        vocab = SCAN_MAP_HEADERS.get(line.strip().lstrip("#").strip())
        if vocab is None:
            continue
        j = next((k for k in range(i + 1, min(i + 4, len(lines))) if "father_class" in lines[k] and "{" in lines[k]), None)
        if j is None:
            raise AssociationError(f"{where}: L{i + 1}: header {line.strip()!r} has no father_class dict below it")
        cats = load_categories(vocab)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            index_map = load_scan_index_map(lines[j].lstrip("# "), len(cats))
        names = cats.names
        direct = {names[q]: tuple(names[f] for f in fs) for q, fs in sorted(index_map.items())}
        m = AssociationMap(cats, direct=direct, source=f"{where} L{j + 1}", name=f"scan_{vocab}", family="scan")
        origin = {"repository": "yongliu20/SCAN", "commit": SCAN_COMMIT, "file": SCAN_EVALUATOR, "line": j + 1,
                  "active_in_evaluator": not lines[j].lstrip().startswith("#"),
                  "duplicate_keys": [str(w.message).split(": ", 1)[-1] for w in caught]}
        out[vocab] = (m, origin)
    return out


def write_scan_maps(evaluator: str | Path, out_dir: str | Path) -> list[Path]:
    """Write ``scan_<vocabulary>.json`` for every map of SCAN's evaluator file (a local copy of
    yongliu20/SCAN ``scan/evaluation/generalized_sem_seg_evaluation.py``)."""
    import json

    written = []
    for vocab, (m, origin) in scan_maps_from_evaluator(Path(evaluator).read_text(encoding="utf-8")).items():
        doc = m.to_json(vocab, f"SCAN's SG-IoU association map for {vocab}: exactly the child -> father pairs of "
                                f"SCAN's evaluator ({SCAN_EVALUATOR} L{origin['line']}, commit {SCAN_COMMIT[:7]}), "
                                f"indices turned into class names. The default map for this benchmark.")
        doc["origin"] = origin
        p = Path(out_dir) / f"scan_{vocab}.json"
        write_text(p, json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
        written.append(p)
    return written


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
    ap.add_argument("--scan-evaluator", default=None,
                    help="also write scan_<vocab>.json from a copy of SCAN's generalized_sem_seg_evaluation.py")
    args = ap.parse_args(argv)
    if args.scan_evaluator:
        for p in write_scan_maps(args.scan_evaluator, args.out_dir):
            print(f"wrote {p}")
    wn = load_wordnet()
    ov = load_overrides()
    for vocab in args.vocab:
        m = build_association_map(vocab, wn, ov)
        doc = m.to_json(vocab, DESCRIPTIONS.get(vocab, ""))
        write_text(Path(args.out_dir) / f"wordnet_{vocab}.json", json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
        print(f"{vocab}: {len(m.synonyms)} synonym groups, {sum(map(len, m.parents.values()))} parent edges, {sum(map(len, m.direct.values()))} exact pairs, {len(m.pairs())} (q, f) pairs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
