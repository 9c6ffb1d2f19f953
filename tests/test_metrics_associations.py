"""Association maps: shipped files, validators, SCAN index-form loader (SCAN §3.3)."""

import json
import warnings

import numpy as np
import pytest

from ovlab.data.categories import load_categories
from ovlab.metrics import (
    AssociationError,
    association_names,
    from_index_map,
    load_association_map,
    load_scan_index_map,
    sg_iou,
)

# SCAN's ADE-150 map (SCAN scan/evaluation/generalized_sem_seg_evaluation.py L20; child -> father,
# detectron2 indices), incl. 59 <-> 121
SCAN_ADE150 = """ade150_map = {25: 1, 26: 21, 9: 17, 11: 6, 30: 31, 19: 31, 35: 10, 45: 10, 48: 1, 52: 6, 54: 6,
56: 15, 33: 15, 59: 121, 53: 121, 60: 21, 62: 55, 63: 58, 64: 15, 66: 17, 68: 16, 69: 19, 75: 31,
79: 25, 91: 6, 85: 82, 36: 82, 87: 82, 99: 45, 110: 19, 121: 59, 128: 21, 113: 21}"""


def test_shipped_maps_load_and_cover_the_three_vocabularies():
    names = set(association_names())
    for name, k in [("ade20k_150", 150), ("ade20k_847", 847), ("pascal_context_459", 459)]:
        assert {f"scan_{name}", f"wordnet_{name}"} <= names
        for m in (load_association_map(name), load_association_map(f"wordnet_{name}")):
            assert m.num_classes == k and len(m.pairs()) > 20


def test_ade150_map_contains_every_scan_pair():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scan = load_scan_index_map(SCAN_ADE150, 150)
    assert len(scan) == 33
    ours = load_association_map("ade20k_150").pairs()
    missing = {(q, f) for q, fs in scan.items() for f in fs} - ours
    assert not missing
    names = load_categories("ade20k_150").names
    assert (names.index("house"), names.index("building")) in ours


def test_scan_duplicate_keys_last_wins_and_warns(tmp_path):
    text = "fathers = {63: 3, 16: [1], 63: 16, 316: [5], 316: [714, 751]}"
    with pytest.warns(UserWarning, match=r"2 duplicate keys.*63: \[3\] then \[16\] -> kept \[16\]"):
        m = load_scan_index_map(text)
    assert m[63] == [16] and m[316] == [714, 751]
    f = tmp_path / "scan.py"
    f.write_text(text)
    with pytest.warns(UserWarning, match=str(f)):
        assert load_scan_index_map(f)[63] == [16]
    with pytest.raises(AssociationError, match="index 900 outside"):
        load_scan_index_map({1: 900}, 847)
    with pytest.raises(AssociationError, match="entry 4: self-loop"):
        load_scan_index_map({4: [4]})


def test_from_index_map_makes_mutual_pairs_synonyms_and_keeps_pairs():
    scan = load_scan_index_map(SCAN_ADE150, 150)
    m = from_index_map(scan, "ade20k_150")
    assert m.synonyms == (("stairway, staircase", "step, stair"),)
    assert m.pairs() == {(q, f) for q, fs in scan.items() for f in fs}
    c = np.random.default_rng(0).integers(0, 5, (150, 150))
    np.testing.assert_allclose(sg_iou(c, m), sg_iou(c, scan))


def _write(tmp_path, doc, raw=None):
    p = tmp_path / "bad.json"
    p.write_text(raw if raw is not None else json.dumps(doc))
    return p


@pytest.mark.parametrize(
    "doc, message",
    [
        ({"categories": "ade20k_150", "parents": {"hosue": ["building"]}}, r"parents\['hosue'\]: unknown class name 'hosue'"),
        ({"categories": "ade20k_150", "parents": {"house": ["biulding"]}}, r"parents\['house'\]: unknown class name 'biulding'"),
        ({"categories": "ade20k_150", "parents": {"house": ["house"]}}, r"parents\['house'\]: self-loop"),
        ({"categories": "ade20k_150", "synonyms": [["sea", "sea"]]}, r"synonyms\[0\]: self-loop: 'sea'"),
        (
            {"categories": "ade20k_150", "parents": {"house": ["building"], "building": ["skyscraper"], "skyscraper": ["house"]}},
            r"parents\['building'\]: cycle building -> skyscraper -> house -> building",
        ),
        ({"categories": "ade20k_150", "synonyms": [["sea", "water"]], "parents": {"sea": ["water"]}}, r"parents\['sea'\]: 'water' is both a synonym and a parent"),
        ({"categories": "ade20k_150", "parnets": {}}, r"parnets: unknown key"),
        ({"categories": "ade20k_150", "num_classes": 151}, r"num_classes: 151"),
    ],
)
def test_validators_reject_crafted_bad_maps(tmp_path, doc, message):
    p = _write(tmp_path, doc)
    with pytest.raises(AssociationError, match=message) as exc:
        load_association_map(p)
    assert str(p) in str(exc.value)


def test_duplicate_json_keys_are_rejected(tmp_path):
    raw = '{"categories": "ade20k_150", "parents": {"house": ["building"], "house": ["skyscraper"]}}'
    with pytest.raises(AssociationError, match="duplicate key 'house'"):
        load_association_map(_write(tmp_path, None, raw))


def test_shipped_files_are_what_the_builder_makes():
    from ovlab.metrics.association_build import build_association_map, load_overrides
    from ovlab.vocab import load_wordnet

    wn, ov = load_wordnet(), load_overrides()
    for name in ("ade20k_150", "ade20k_847", "pascal_context_459"):
        built = build_association_map(name, wn, ov)
        shipped = load_association_map(f"wordnet_{name}")       # the WordNet family (SCAN's maps are the default)
        assert built.pairs() == shipped.pairs()
