"""SG-IoU association maps (issue 14, defect 10 / deliverable 5): SCAN's own pairs as the default for
its benchmarks, ovlab's WordNet maps as a named alternative (wrong senses removed, ADE-150 and
ADE-847 consistent), the map recorded (name + hash) in every SG-IoU result, and SG-IoU on a small
ADE-847 case with SCAN's map against hand-computed values."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from PIL import Image

from ovlab.data.categories import load_categories
from ovlab.metrics import summarize
from ovlab.metrics.association import (
    AssociationMap,
    default_association_name,
    load_association_map,
    resolve_association,
)

# Pinned: a change to a shipped SCAN map (one pair more or less) changes these.
SCAN_SHA256 = {"ade20k_150": "8741e2f89e21ecc0380ee7358245cbee51a190337eab29f2b59432cdfe6b53e0",
               "ade20k_847": "9b5c3645c6401d8a29b3638992d2e42b79e743e1166ff8e295b534a8aceb14fc",
               "pascal_context_459": "623211afd6ba7ff160d0f406a789dc9eaecff26920ff40ffa9b92dada80b13ff"}


# ------------------------------------------------------------------------- which map, by name
def test_scan_maps_are_the_default_for_scans_benchmarks():
    for vocab, pairs in (("ade20k_150", 33), ("ade20k_847", 356), ("pascal_context_459", 142)):
        assert default_association_name(vocab) == f"scan_{vocab}"
        m = load_association_map(vocab)                       # a bare vocabulary = its default map
        ident = m.identity()
        assert (ident["name"], ident["family"], ident["pairs"]) == (f"scan_{vocab}", "scan", pairs)
        assert ident["sha256"] == SCAN_SHA256[vocab]
        assert ident["source"] == f"ovlab/metrics/associations/scan_{vocab}.json"
    assert default_association_name("coco_panoptic_133") == "wordnet_coco_panoptic_133"  # SCAN has no COCO map
    assert default_association_name("pascal_context_59") is None
    assert resolve_association("wordnet", "ade20k_847") == "wordnet_ade20k_847"
    assert resolve_association("scan", "ade20k_150") == "scan_ade20k_150"
    with pytest.raises(FileNotFoundError, match="no 'scan' association map for 'coco_panoptic_133'"):
        resolve_association("scan", "coco_panoptic_133")
    with pytest.raises(FileNotFoundError, match="no association map named 'nope'"):
        load_association_map("nope")


def test_scan_847_map_keeps_scans_pairs_and_last_duplicate():
    m = load_association_map("scan_ade20k_847").fathers()
    # SCAN L23 writes 63: 3 and later 63: 16; Python keeps the last: palm -> plant, not tree
    assert m["palm, palm tree"] == ["plant, flora, plant life"]
    assert m["armchair"] == ["chair", "seat"] and m["chair"] == ["seat"]          # 29: [18, 34], 18: 34
    assert "seat" not in m                                                       # 34 is no child in SCAN's map
    with open(load_association_map("scan_ade20k_847").source, encoding="utf-8") as fh:
        doc = json.load(fh)
    assert doc["origin"]["line"] == 23 and doc["origin"]["commit"].startswith("097fbbd")
    assert "11 duplicate keys" in doc["origin"]["duplicate_keys"][0]


def test_hash_is_over_the_sorted_name_pairs():
    cats = load_categories("ade20k_847")
    a = AssociationMap(cats, synonyms=(("chair", "seat"),))
    b = AssociationMap(cats, direct={"seat": ("chair",), "chair": ("seat",)})
    text = json.dumps([["chair", "seat"], ["seat", "chair"]], separators=(",", ":"))
    assert a.sha256 == b.sha256 == hashlib.sha256(text.encode()).hexdigest()


# ----------------------------------------------------------------------- the WordNet alternative
WRONG_SENSES = [("carousel", "conveyer belt, conveyor belt, conveyer, conveyor, transporter"), ("carousel", "belt"),
                ("vending machine", "slot machine, coin machine"), ("ear", "organ"), ("ladder", "stairs, steps"),
                ("ladder", "stairway, staircase"), ("scissors", "cutlery"), ("candle, taper, wax light", "lamp"),
                ("coffin", "box")]


def test_wordnet_847_has_no_wrong_senses_and_agrees_with_150():
    w847, w150 = load_association_map("wordnet_ade20k_847"), load_association_map("wordnet_ade20k_150")
    assert w847.family == "wordnet" and w847.name == "wordnet_ade20k_847"
    pairs = set(w847.name_pairs())
    assert not [p for p in WRONG_SENSES if p in pairs or p[::-1] in pairs]
    shared = set(w847.categories.names) & set(w150.categories.names)
    on_shared = lambda m: {(a, b) for a, b in m.name_pairs() if a in shared and b in shared}  # noqa: E731
    assert on_shared(w847) == on_shared(w150) and len(on_shared(w150)) > 20
    assert ("river", "water") in on_shared(w847)                  # SCAN's ADE-150 pair carried over


# -------------------------------------------------------------- SG-IoU on ADE-847, by hand
# Ground truth (rows) x prediction pixel counts, ADE-847 indices:
#   63 palm -> [16 plant] (SCAN keeps the last of 63: 3 / 63: 16), 29 armchair -> [18 chair, 34 seat],
#   18 chair -> [34 seat]; 16, 3, 34 have no fathers.
CASE = {(63, 63): 60, (63, 16): 30, (63, 3): 10, (16, 16): 50, (16, 63): 10, (3, 3): 40,
        (29, 29): 20, (29, 18): 20, (29, 34): 10, (18, 18): 30, (34, 34): 25, (34, 18): 5}
# P (column sums): 63: 70, 16: 80, 3: 50, 29: 20, 18: 55, 34: 35; G: 100, 60, 40, 50, 30, 30.
# IoU = TP / (G + P - TP): 60/110, 50/90, 40/50, 20/50, 30/55, 25/40.
# SG-IoU (SCAN's evaluator, beta_f = (C[q,f] + C[f,f]) / P_f):
#   palm:     60 + (30+50)/80 * 30 = 90           -> 90/110   (with 63 -> 3: 60 + 1 * 10 = 70 -> 70/110)
#   armchair: 20 + (20+30)/55 * 20 + (10+25)/35 * 10 = 30 + 200/11 -> (30 + 200/11)/50
#   chair:    30 + beta * 0 = 30 -> 30/55; the others as IoU.
SG = {63: 90 / 110, 16: 50 / 90, 3: 40 / 50, 29: (30 + 200 / 11) / 50, 18: 30 / 55, 34: 25 / 40}
IOU = {63: 60 / 110, 16: 50 / 90, 3: 40 / 50, 29: 20 / 50, 18: 30 / 55, 34: 25 / 40}


def _confusion():
    c = np.zeros((847, 847), dtype=np.int64)
    for (g, p), n in CASE.items():
        c[g, p] = n
    return c


def test_sg_iou_on_ade847_with_scans_map_by_hand():
    s = summarize(_confusion(), load_association_map("ade20k_847"), "code")
    for k, v in SG.items():
        assert s["IoU"][k] == pytest.approx(v)
    assert s["mIoU"] == pytest.approx(100 * sum(SG.values()) / 6)          # 71.797...
    assert summarize(_confusion())["mIoU"] == pytest.approx(100 * sum(IOU.values()) / 6)   # 57.858...
    # the first of SCAN's duplicate keys (63 -> 3 tree) would give palm 70/110: the map keeps the last
    assert s["IoU"][63] != pytest.approx(70 / 110)


def _ade847_case(root, preds):
    """One 10 x 35 ADE-847 image in the Mask2Former prepared layout holding the pixel counts of CASE."""
    gt_dir = root / "ADE20K_2021_17_01" / "annotations_detectron2" / "validation"
    gt_dir.mkdir(parents=True)
    preds.mkdir()
    g, p = [], []
    for (gi, pi), n in CASE.items():
        g += [gi] * n
        p += [pi] * n
    g += [65535] * (350 - len(g))                    # ignored pixels, whatever is predicted there
    p += [5] * (350 - len(p))
    Image.fromarray(np.array(g, dtype=np.uint16).reshape(10, 35)).save(gt_dir / "x.tif")
    Image.fromarray(np.array(p, dtype=np.uint16).reshape(10, 35)).save(preds / "x.png")


def test_ovlab_eval_sg_iou_on_ade847_uses_scans_map_and_records_it(tmp_path, capsys):
    from ovlab.experiments.cli import main

    _ade847_case(tmp_path / "data", tmp_path / "preds")
    out = tmp_path / "a847.json"
    args = ["eval", "--dataset", "a-847", "--pred-dir", str(tmp_path / "preds"), "--gt-root", str(tmp_path / "data"),
            "--sg-iou", "--quiet", "--out", str(out)]
    assert main(args) == 0
    doc = json.loads(out.read_text())
    assert doc["mIoU"] == pytest.approx(100 * sum(IOU.values()) / 6)
    assert doc["sg_iou"]["mIoU"] == pytest.approx(100 * sum(SG.values()) / 6)
    assoc = doc["sg_iou"]["association"]
    assert (assoc["name"], assoc["family"], assoc["pairs"]) == ("scan_ade20k_847", "scan", 356)
    assert assoc["sha256"] == SCAN_SHA256["ade20k_847"]
    assert main(args[:-2] + ["--association", "wordnet", "--out", str(out)]) == 0      # the named alternative
    assert json.loads(out.read_text())["sg_iou"]["association"]["name"] == "wordnet_ade20k_847"
    capsys.readouterr()
