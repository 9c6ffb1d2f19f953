"""The embedded dataset: deterministic, seen/unseen split honoured, layouts complete, pinned by DVC."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from ovlab.data import load_categories
from ovlab.data.coco_panoptic import read_coco_panoptic
from ovlab.data.files import read_image
from ovlab.data.procedural import make_embedded


def _md5(p: Path) -> str:
    return hashlib.md5(p.read_bytes()).hexdigest()


def test_same_seed_same_bytes_other_seed_other_data(embedded_root, tmp_path):
    again = tmp_path / "again"
    make_embedded(again, seed=0)
    files = sorted(p.relative_to(embedded_root) for p in embedded_root.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    assert all(_md5(embedded_root / f) == _md5(again / f) for f in files)
    other = tmp_path / "other"
    make_embedded(other, seed=1)
    assert _md5(other / "coco/annotations/panoptic_val2017.json") != _md5(again / "coco/annotations/panoptic_val2017.json")


def test_seen_unseen_split(embedded_root):
    cats = load_categories("coco_panoptic_133")
    novel = {c.index for c in cats.unseen()}
    assert len(novel) == 18
    train = read_coco_panoptic(embedded_root / "coco", "train")
    val = read_coco_panoptic(embedded_root / "coco", "val")
    assert len(train) == 40 and len(val) == 16
    train_classes = {s.category_index for r in train for s in r.segments}
    val_classes = {s.category_index for r in val for s in r.segments}
    assert not train_classes & novel
    assert len(val_classes & novel) >= 3
    assert sum(any(s.category_index in novel for s in r.segments) for r in val) >= len(val) // 2
    assert any(s.isthing for r in train for s in r.segments) and any(not s.isthing for r in train for s in r.segments)


def test_sizes_void_and_captions(embedded_root):
    recs = read_coco_panoptic(embedded_root / "coco", "train")
    for r in recs:
        assert (r.height, r.width) == (128, 160) and max(r.height, r.width) <= 256
        assert len(r.captions) == 5
        sem = r.semantic()
        assert (sem == 255).any()  # the void outlines
    summary = json.loads((embedded_root / "summary.json").read_text())
    assert summary["synthetic"] is True
    assert "SYNTHETIC" in (embedded_root / "README.md").read_text()


def test_vipseg_layout(embedded_root):
    root = embedded_root / "vipseg" / "VIPSeg_720P"
    train = (root / "train.txt").read_text().split()
    val = (root / "val.txt").read_text().split()
    assert len(train) == 4 and len(val) == 2
    cats = load_categories("vipseg_124")
    novel_ids = {c.id for c in cats.unseen()}
    for video in train + val:
        frames = sorted((root / "images" / video).glob("*.jpg"))
        masks = sorted((root / "panomasks" / video).glob("*.png"))
        assert len(frames) >= 8 and [f.stem for f in frames] == [m.stem for m in masks]
        pano = read_image(masks[0])
        assert pano.dtype in (np.uint16, np.int32) and pano.shape == (128, 160)
    def ids_of(video):
        vals = set()
        for m in (root / "panomasks" / video).glob("*.png"):
            v = np.unique(read_image(m))
            vals |= {int(x) // 100 - 1 if x >= 1000 else int(x) - 1 for x in v if x > 0}
        return vals
    with_novel = [v for v in train if ids_of(v) & novel_ids]
    assert len(with_novel) == 2  # half the training videos contain a novel class
    assert all(ids_of(v) & novel_ids for v in val)


def test_pinned_dataset_is_what_the_generator_makes(repo_root, embedded_root):
    """data.dvc pins the output of make_embedded(seed=0): compare with the in-repo DVC remote."""
    import yaml

    out = yaml.safe_load((repo_root / "data.dvc").read_text())["outs"][0]
    md5 = out["md5"]
    store = repo_root / ".dvcstore" / "files" / "md5"
    listing = store / md5[:2] / md5[2:]
    if not listing.is_file():
        pytest.skip("the in-repo DVC remote lacks the pinned listing")
    entries = json.loads(listing.read_text())
    generated = {str(p.relative_to(embedded_root)) for p in embedded_root.rglob("*") if p.is_file()}
    assert {e["relpath"].removeprefix("embedded/") for e in entries} == generated
    for e in entries:
        rel = e["relpath"].removeprefix("embedded/")
        pinned = store / e["md5"][:2] / e["md5"][2:]
        mine = embedded_root / rel
        if rel.endswith(".jpg"):  # JPEG encoders may differ across Pillow builds: compare pixels
            diff = np.abs(read_image(pinned).astype(int) - read_image(mine).astype(int)).mean()
            assert diff < 2.0, rel
        elif rel.endswith(".png"):
            assert (read_image(pinned) == read_image(mine)).all(), rel
        else:
            assert _md5(mine) == e["md5"], rel
