"""Association maps for SG-IoU: which classes count as synonyms or parents ("fathers") of a class.

SCAN (CVPR 2024, §3.3 and Eq. 6) ships its maps as Python dict literals of class *indices*
(SCAN ``scan/evaluation/generalized_sem_seg_evaluation.py``). ovlab keeps them as data keyed by class
*name*, one JSON file per vocabulary,
validated on load::

    {
      "schema": "ovlab.association/1",
      "dataset": "ade20k_150",            # free text
      "categories": "ade20k_150",         # catalog name (ovlab.data.catalog) the names refer to
      "description": "...",
      "synonyms": [["stairway, staircase", "step, stair"], ...],   # undirected groups
      "parents": {"house": ["building"], ...},                    # child -> parents (a DAG)
      "provenance": {"house -> building": "curated: ...", ...}    # optional, free text per edge
    }

SCAN's own maps are shipped pair for pair under an extra key, ``"fathers"``: child name → father
names, exactly the (child, father) pairs of SCAN's evaluator (directed; mutual pairs and cycles are
allowed there, as in SCAN's dicts, and nothing is implied beyond the listed pairs).

**Shipped maps and their names** (``ovlab/metrics/associations/<name>.json``): two families,

- ``scan_<vocabulary>``: SCAN's pairs for ``ade20k_150``, ``ade20k_847`` and ``pascal_context_459``,
  converted from the index dicts of SCAN ``scan/evaluation/generalized_sem_seg_evaluation.py``
  (L20, L23, L26 at commit 097fbbd; ADE-847's duplicate keys resolved last-wins, as Python does)
  by :func:`ovlab.metrics.association_build.scan_maps_from_evaluator`. **The default** for those
  benchmarks: they are the maps behind SCAN's SG-IoU numbers (SCAN Tab. 2);
- ``wordnet_<vocabulary>``: ovlab's WordNet-derived, curated maps (:mod:`ovlab.metrics.association_build`)
  for the same three vocabularies and ``coco_panoptic_133`` (the only map for COCO).

A name is a file stem (``scan_ade20k_847``), a family plus a vocabulary (:func:`resolve_association`:
``"wordnet"`` for ``ade20k_847``), a bare vocabulary (its default map: :func:`default_association_name`)
or a JSON path. Every result that reports SG-IoU records :meth:`AssociationMap.identity` (name, family,
SHA-256 of the sorted name pairs, pair count).

The fathers of a class q are its parents, the other members of its synonym groups and its listed
``fathers``. Errors
(:class:`AssociationError`, naming the entry): unknown class names, duplicate JSON keys, a class
listed as its own father, a name twice in a synonym group, a parent edge inside a synonym group,
and cycles among parent edges.

The index form of SCAN (child index → father index or list) is read by :func:`load_scan_index_map`,
which reproduces Python's last-key-wins behaviour for duplicate keys and warns about them.
"""

from __future__ import annotations

import ast
import hashlib
import json
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from ovlab.data.categories import CategoryList, load_categories

SCHEMA = "ovlab.association/1"
_TOP_KEYS = {"schema", "dataset", "categories", "description", "synonyms", "parents", "provenance", "num_classes",
             "fathers", "family", "origin"}
FAMILIES = ("scan", "wordnet")
"""Families of shipped maps: SCAN's evaluator pairs and ovlab's WordNet-derived maps (module docstring)."""


class AssociationError(ValueError):
    """An association map is invalid; the message names the file and the entry."""


@dataclass(frozen=True)
class AssociationMap:
    """A validated, name-keyed association map over one vocabulary.

    Attributes:
        categories: the vocabulary (its names are the keys).
        synonyms: groups of names that are interchangeable (undirected).
        parents: child name → parent names (directed, acyclic).
        provenance: ``"child -> father"`` or ``"a <-> b"`` → where the relation comes from.
        source: file the map was read from (for messages).
        direct: child name → father names, exact directed pairs (SCAN's maps; cycles allowed).
        name: the map's name (shipped: the file stem, e.g. ``scan_ade20k_847``).
        family: ``scan``, ``wordnet`` or ``None`` (a map of your own).
    """

    categories: CategoryList
    synonyms: tuple[tuple[str, ...], ...] = ()
    parents: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    provenance: Mapping[str, str] = field(default_factory=dict)
    source: str = "<map>"
    direct: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    name: str = "<map>"
    family: str | None = None

    def __post_init__(self):
        _validate(self)

    @property
    def num_classes(self) -> int:
        return len(self.categories)

    def fathers(self) -> dict[str, list[str]]:
        """Class name → father names (parents first, then synonyms), only classes that have some."""
        out: dict[str, list[str]] = {}
        for child, ps in self.parents.items():
            out.setdefault(child, []).extend(ps)
        for child, fs in self.direct.items():
            out.setdefault(child, []).extend(f for f in fs if f not in out[child])
        for group in self.synonyms:
            for a in group:
                for b in group:
                    if a != b and b not in out.setdefault(a, []):
                        out[a].append(b)
        return {k: v for k, v in out.items() if v}

    def index_fathers(self) -> dict[int, list[int]]:
        """Class index → father indices: what :func:`ovlab.metrics.sg_iou` takes."""
        idx = {c.name: c.index for c in self.categories}
        return {idx[k]: [idx[f] for f in v] for k, v in sorted(self.fathers().items(), key=lambda kv: idx[kv[0]])}

    def pairs(self) -> set[tuple[int, int]]:
        """All (child index, father index) pairs."""
        return {(q, f) for q, fs in self.index_fathers().items() for f in fs}

    def name_pairs(self) -> list[tuple[str, str]]:
        """All (child name, father name) pairs, sorted."""
        return sorted((q, f) for q, fs in self.fathers().items() for f in fs)

    @property
    def sha256(self) -> str:
        """Hex SHA-256 of the sorted (child, father) name pairs as compact JSON: equal for two maps
        that credit the same pairs, whatever their file layout (synonym groups, parents, ``fathers``)."""
        text = json.dumps(self.name_pairs(), ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def identity(self) -> dict:
        """What a metrics file records about the map: ``name``, ``family``, ``vocabulary``, ``pairs``
        (count), ``sha256`` (:attr:`sha256`) and ``source`` (the file)."""
        src = Path(self.source)
        shipped = Path(str(resources.files("ovlab.metrics") / "associations"))
        if src.parent == shipped:
            src = Path("ovlab/metrics/associations") / src.name
        return {"name": self.name, "family": self.family, "vocabulary": self.categories.dataset,
                "pairs": len(self.name_pairs()), "sha256": self.sha256, "source": str(src)}

    def to_json(self, dataset: str | None = None, description: str = "") -> dict:
        """The file form (see the module docstring)."""
        doc = {
            "schema": SCHEMA,
            "dataset": dataset or self.categories.dataset,
            "categories": self.categories.dataset,
            **({"family": self.family} if self.family else {}),
            "description": description,
            "synonyms": [list(g) for g in self.synonyms],
            "parents": {k: list(v) for k, v in self.parents.items()},
        }
        if self.direct:
            doc["fathers"] = {k: list(v) for k, v in self.direct.items()}
        if self.provenance:
            doc["provenance"] = dict(self.provenance)
        return doc


def _validate(m: AssociationMap) -> None:
    src = m.source
    known = set(m.categories.names)

    def check(name, where):
        if not isinstance(name, str):
            raise AssociationError(f"{src}: {where}: class names must be strings, got {name!r}")
        if name not in known:
            raise AssociationError(f"{src}: {where}: unknown class name {name!r} (not in catalog {m.categories.dataset!r})")

    group_of: dict[str, set[str]] = {}
    for i, group in enumerate(m.synonyms):
        where = f"synonyms[{i}]"
        if len(group) < 2:
            raise AssociationError(f"{src}: {where}: a synonym group needs at least two names, got {list(group)}")
        for name in group:
            check(name, where)
        dup = sorted({n for n in group if list(group).count(n) > 1})
        if dup:
            raise AssociationError(f"{src}: {where}: self-loop: {dup[0]!r} appears twice in the group")
        for name in group:
            group_of.setdefault(name, set()).update(group)
    for child, ps in m.parents.items():
        where = f"parents[{child!r}]"
        check(child, where)
        if not ps:
            raise AssociationError(f"{src}: {where}: empty parent list")
        for p in ps:
            check(p, where)
            if p == child:
                raise AssociationError(f"{src}: {where}: self-loop: {child!r} is listed as its own parent")
            if p in group_of.get(child, ()):
                raise AssociationError(f"{src}: {where}: {p!r} is both a synonym and a parent of {child!r}")
        dup = sorted({p for p in ps if list(ps).count(p) > 1})
        if dup:
            raise AssociationError(f"{src}: {where}: duplicate parent {dup[0]!r}")
    for child, fs in m.direct.items():
        where = f"fathers[{child!r}]"
        check(child, where)
        if not fs:
            raise AssociationError(f"{src}: {where}: empty father list")
        for f in fs:
            check(f, where)
            if f == child:
                raise AssociationError(f"{src}: {where}: self-loop: {child!r} is listed as its own father")
        dup = sorted({f for f in fs if list(fs).count(f) > 1})
        if dup:
            raise AssociationError(f"{src}: {where}: duplicate father {dup[0]!r}")
    if m.family is not None and m.family not in FAMILIES:
        raise AssociationError(f"{src}: family: {m.family!r} is not one of {', '.join(FAMILIES)}")
    cycle = _find_cycle({k: list(v) for k, v in m.parents.items()})
    if cycle:
        raise AssociationError(f"{src}: parents[{cycle[0]!r}]: cycle {' -> '.join(cycle)} (parent relations must form a DAG; "
                               "list mutual relations under 'synonyms')")


def _find_cycle(graph: dict[str, list[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for p in graph.get(n, []):
            if state.get(p) == 1:
                return stack[stack.index(p):] + [p]
            if p not in state:
                found = visit(p)
                if found:
                    return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state:
            found = visit(n)
            if found:
                return found
    return None


def _no_duplicate_keys(src: str):
    def hook(pairs):
        seen = set()
        for k, _ in pairs:
            if k in seen:
                raise AssociationError(f"{src}: duplicate key {k!r}")
            seen.add(k)
        return dict(pairs)

    return hook


def association_names() -> list[str]:
    """Names of the maps shipped in ``ovlab/metrics/associations`` (file stems: ``scan_ade20k_847``...)."""
    root = resources.files("ovlab.metrics") / "associations"
    return sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".json"))


def default_association_name(vocabulary: str) -> str | None:
    """The default shipped map of a vocabulary (catalog name): SCAN's (``scan_<vocabulary>``) where
    SCAN has one (ADE-150, ADE-847, PC-459: its SG-IoU numbers come from them), else ovlab's
    WordNet-derived one (``wordnet_<vocabulary>``), else ``None``."""
    names = set(association_names())
    for family in FAMILIES:
        if f"{family}_{vocabulary}" in names:
            return f"{family}_{vocabulary}"
    return None


def resolve_association(name: str, vocabulary: str | None = None) -> str:
    """The shipped map name or JSON path that ``name`` stands for.

    Args:
        name: a JSON path; a shipped map name (``scan_ade20k_847``); a family (``scan``,
            ``wordnet``: needs ``vocabulary``); or a bare vocabulary (``ade20k_847``: its default map).
        vocabulary: the benchmark's catalog name, for a family name.

    Raises:
        FileNotFoundError: no shipped map of that name (lists them), or a family without a map for
            the vocabulary.
    """
    if Path(name).suffix:
        return name
    names = association_names()
    if name in FAMILIES:
        if vocabulary is None:
            raise FileNotFoundError(f"association family {name!r} needs a vocabulary (e.g. {name}_ade20k_847)")
        if f"{name}_{vocabulary}" not in names:
            have = [n for n in names if n.startswith(f"{name}_")]
            raise FileNotFoundError(f"no {name!r} association map for {vocabulary!r}; {name} maps: {', '.join(have)}")
        return f"{name}_{vocabulary}"
    if name in names:
        return name
    default = default_association_name(name)
    if default is not None:
        return default
    raise FileNotFoundError(f"no association map named {name!r}; shipped: {', '.join(names)} "
                            f"(or a family: {', '.join(FAMILIES)}, a vocabulary, or a JSON path)")


def association_path(name: str) -> Path:
    """Path of a shipped map (a name :func:`resolve_association` knows) or of a given file."""
    name = resolve_association(str(name))
    p = Path(name)
    if p.suffix:
        return p
    return Path(str(resources.files("ovlab.metrics") / "associations" / f"{name}.json"))


def load_association_map(name_or_path: str | Path, categories: CategoryList | str | None = None, *,
                         vocabulary: str | None = None) -> AssociationMap:
    """Load and validate a name-keyed association map.

    Args:
        name_or_path: a shipped map name (``"scan_ade20k_847"``, ``"wordnet_ade20k_150"``), a family
            (``"scan"`` / ``"wordnet"``, with ``vocabulary``), a vocabulary (its default map:
            ``"ade20k_150"`` → SCAN's) or a JSON file.
        categories: the vocabulary; default: the catalog named in the file's ``categories``.
        vocabulary: the catalog name a family name refers to.

    Raises:
        FileNotFoundError: no such map/file.
        AssociationError: bad JSON, duplicate keys, unknown names, self-loops, cycles... naming
            the file and entry.
    """
    resolved = resolve_association(str(name_or_path), vocabulary)
    p = association_path(resolved)
    src = str(p)
    if not p.is_file():
        raise FileNotFoundError(f"{src}: association map file not found")
    try:
        doc = json.loads(p.read_text(encoding="utf-8"), object_pairs_hook=_no_duplicate_keys(src))
    except json.JSONDecodeError as exc:
        raise AssociationError(f"{src}: invalid JSON at line {exc.lineno}: {exc.msg}") from None
    if not isinstance(doc, dict):
        raise AssociationError(f"{src}: expected a JSON object")
    extra = sorted(set(doc) - _TOP_KEYS)
    if extra:
        raise AssociationError(f"{src}: {extra[0]}: unknown key (allowed: {', '.join(sorted(_TOP_KEYS))})")
    if doc.get("schema", SCHEMA) != SCHEMA:
        raise AssociationError(f"{src}: schema: expected {SCHEMA!r}, got {doc.get('schema')!r}")
    if categories is None:
        if "categories" not in doc:
            raise AssociationError(f"{src}: categories: missing (name of the vocabulary's catalog)")
        categories = doc["categories"]
    cats = load_categories(categories) if isinstance(categories, str) else categories
    if "num_classes" in doc and doc["num_classes"] != len(cats):
        raise AssociationError(f"{src}: num_classes: {doc['num_classes']} but the catalog has {len(cats)} classes")
    syn = doc.get("synonyms", [])
    par = doc.get("parents", {})
    fat = doc.get("fathers", {})
    if not isinstance(syn, list) or not all(isinstance(g, list) for g in syn):
        raise AssociationError(f"{src}: synonyms: expected a list of lists of class names")
    if not isinstance(par, dict) or not all(isinstance(v, list) for v in par.values()):
        raise AssociationError(f"{src}: parents: expected an object {{child name: [parent names]}}")
    if not isinstance(fat, dict) or not all(isinstance(v, list) for v in fat.values()):
        raise AssociationError(f"{src}: fathers: expected an object {{child name: [father names]}}")
    family = doc.get("family")
    if family is not None and not isinstance(family, str):
        raise AssociationError(f"{src}: family: expected a string")
    return AssociationMap(cats, tuple(tuple(g) for g in syn), {k: tuple(v) for k, v in par.items()},
                          dict(doc.get("provenance", {})), src, {k: tuple(v) for k, v in fat.items()},
                          p.stem if not Path(resolved).suffix else src, family)


def load_scan_index_map(source: str | Path | Mapping, num_classes: int | None = None) -> dict[int, list[int]]:
    """Read a SCAN-style index map (child index → father index or list of indices).

    Args:
        source: a ``dict``; or a path to / the text of a Python dict literal (optionally
            ``name = {...}``, as in SCAN's ``generalized_sem_seg_evaluation.py``); or JSON with
            string keys.
        num_classes: when given, indices must lie in 0..K-1.

    Returns:
        ``{child: [fathers]}``. For a key written twice the **last** value wins, as in Python
        (SCAN's ADE-847 map, ``scan/evaluation/generalized_sem_seg_evaluation.py`` L23, has 11 such keys,
        e.g. 63 → 16, not 3).

    Warns:
        UserWarning: listing every duplicated key and the values that were overridden.

    Raises:
        AssociationError: unparsable text, non-integer entries, or indices out of range.
    """
    where = "<dict>"
    if isinstance(source, Mapping):
        items = list(source.items())
    else:
        text = str(source)
        if "{" not in text and Path(text).is_file():
            where = text
            text = Path(text).read_text(encoding="utf-8")
        items = _literal_items(text, where)
    out: dict[int, list[int]] = {}
    dups: dict[int, list] = {}
    for k, v in items:
        try:
            key = int(k)
            vals = [int(x) for x in v] if isinstance(v, (list, tuple)) else [int(v)]
        except (TypeError, ValueError):
            raise AssociationError(f"{where}: entry {k!r}: {v!r} is not an index or a list of indices") from None
        if key in out:
            dups.setdefault(key, [out[key]]).append(vals)
        out[key] = vals
        for idx in [key, *vals]:
            if num_classes is not None and not 0 <= idx < num_classes:
                raise AssociationError(f"{where}: entry {key}: index {idx} outside 0..{num_classes - 1}")
        if key in vals:
            raise AssociationError(f"{where}: entry {key}: self-loop (a class cannot be its own father)")
    if dups:
        shown = "; ".join(f"{k}: {' then '.join(map(str, v))} -> kept {out[k]}" for k, v in sorted(dups.items()))
        warnings.warn(f"{where}: {len(dups)} duplicate keys, the last value wins (Python dict semantics): {shown}", UserWarning, stacklevel=2)
    return out


def _literal_items(text: str, where: str) -> list[tuple]:
    start = text.find("{")
    if start < 0:
        raise AssociationError(f"{where}: no dict literal found")
    try:
        tree = ast.parse(text[start:].strip(), mode="eval")
    except SyntaxError as exc:
        raise AssociationError(f"{where}: cannot parse the dict literal (line {exc.lineno}: {exc.msg})") from None
    if not isinstance(tree.body, ast.Dict):
        raise AssociationError(f"{where}: expected a dict literal")
    items = []
    for k, v in zip(tree.body.keys, tree.body.values):
        try:
            items.append((ast.literal_eval(k), ast.literal_eval(v)))
        except ValueError:
            raise AssociationError(f"{where}: entry {ast.unparse(k)}: not a literal") from None
    return items


def from_index_map(index_map: Mapping[int, list[int]], categories: CategoryList | str, source: str = "<index map>") -> AssociationMap:
    """Turn an index map into a name-keyed :class:`AssociationMap`.

    Mutual relations (q → f and f → q) become synonym groups (connected components of mutual
    edges); one-way relations become parents.

    Raises:
        AssociationError: the parent edges left over contain a cycle (names it).
    """
    cats = load_categories(categories) if isinstance(categories, str) else categories
    names = cats.names
    edges = {(int(q), int(f)) for q, fs in index_map.items() for f in fs}
    mutual = {(q, f) for q, f in edges if (f, q) in edges}
    parent_of: dict[int, int] = {}

    def find(x):
        while parent_of.get(x, x) != x:
            x = parent_of[x]
        return x

    for q, f in mutual:
        parent_of[find(q)] = find(f)
    groups: dict[int, set[int]] = {}
    for q, f in mutual:
        groups.setdefault(find(q), set()).update({q, f})
    synonyms = tuple(tuple(names[i] for i in sorted(g)) for g in sorted(groups.values(), key=min))
    same = {i: find(i) for g in groups.values() for i in g}
    parents: dict[str, list[str]] = {}
    for q, f in sorted(edges - mutual):
        if q in same and f in same and same[q] == same[f]:
            continue  # implied by the synonym group
        parents.setdefault(names[q], []).append(names[f])
    return AssociationMap(cats, synonyms, {k: tuple(v) for k, v in parents.items()}, {}, source)
