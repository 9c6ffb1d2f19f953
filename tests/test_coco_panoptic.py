"""COCO panoptic reader on the real samples and on the procedural set; bad input is named."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from ovlab.data import CorruptFileError, DatasetNotFoundError, load_categories
from ovlab.data.coco_panoptic import read_coco_panoptic
from ovlab.data.files import id_to_rgb, read_image, rgb_to_id

# Expected per image (MANIFEST: 2 cats, couch, 2 remotes, blanket; a rugby match; horse riders):
# segment count and exactly the classes present.
EXPECTED = {
    39769: (6, {"cat", "couch", "remote", "blanket"}),
    142238: (18, {"person", "sports ball", "grass-merged", "sky-other-merged", "tree-merged"}),
    439180: (32, {"person", "horse", "truck", "gravel", "sky-other-merged", "tree-merged", "grass-merged"}),
}


def test_real_samples_segments_and_classes(coco_samples):
    cats = load_categories("coco_panoptic_133")
    assert [r.image_id for r in coco_samples] == sorted(EXPECTED)
    for r in coco_samples:
        n, names = EXPECTED[r.image_id]
        assert len(r.segments) == n
        present = {cats[s.category_index].name for s in r.segments}
        assert present == names, (r.image_id, present)


def test_real_sample_masks_match_json_areas(coco_samples):
    r = next(r for r in coco_samples if r.image_id == 39769)
    masks = r.masks()
    assert masks.shape == (6, 480, 640) and masks.dtype == bool
    assert [int(m.sum()) for m in masks] == [s.area for s in r.segments]
    assert not (masks.sum(0) > 1).any()  # segments do not overlap
    sem = r.semantic()
    cat_idx = load_categories("coco_panoptic_133").by_name()["cat"].index
    assert cat_idx == 15
    assert int((sem == cat_idx).sum()) == sum(s.area for s in r.segments if s.category_index == cat_idx)
    assert int((sem == 255).sum()) == 480 * 640 - sum(s.area for s in r.segments)
    assert r.image().shape == (480, 640, 3)
    assert sum(s.category_index == cat_idx for s in r.segments) == 2  # two cats
    assert {s.isthing for s in r.segments if s.category_index in (15, 65)} == {True}  # cat, remote: things


def test_rgb_id_roundtrip():
    ids = np.array([[0, 1, 256], [65536, 3937500, 256**3 - 1]])
    assert (rgb_to_id(id_to_rgb(ids)) == ids).all()
    assert rgb_to_id(np.array([[[1, 2, 3]]], dtype=np.uint8))[0, 0] == 1 + 2 * 256 + 3 * 65536


def test_procedural_set_reads_back(embedded_root):
    recs = read_coco_panoptic(embedded_root / "coco", "val")
    assert len(recs) == 16
    for r in recs[:4]:
        masks = r.masks()
        assert [int(m.sum()) for m in masks] == [s.area for s in r.segments]
        sem_file = read_image(embedded_root / "coco/panoptic_semseg_val2017" / r.panoptic_path.name)
        assert (sem_file == r.semantic()).all()
        assert len(r.captions) == 5


def test_missing_root_shows_the_layout(tmp_path):
    with pytest.raises(DatasetNotFoundError) as err:
        read_coco_panoptic(tmp_path / "coco", "train")
    msg = str(err.value)
    assert "panoptic_train2017/" in msg and "annotations/panoptic_train2017.json" in msg
    (tmp_path / "coco" / "train2017").mkdir(parents=True)
    with pytest.raises(DatasetNotFoundError, match="panoptic_train2017"):
        read_coco_panoptic(tmp_path / "coco", "train")


@pytest.fixture()
def copy_of_val(embedded_root, tmp_path):
    root = tmp_path / "coco"
    shutil.copytree(embedded_root / "coco", root)
    return root


def test_truncated_png_is_named(copy_of_val):
    recs = read_coco_panoptic(copy_of_val, "val")
    png = recs[0].panoptic_path
    png.write_bytes(png.read_bytes()[:200])
    with pytest.raises(CorruptFileError) as err:
        recs[0].masks()
    assert str(png) in str(err.value)


def test_corrupt_json_is_named(copy_of_val):
    j = copy_of_val / "annotations/panoptic_val2017.json"
    j.write_text(j.read_text()[:-40])
    with pytest.raises(CorruptFileError) as err:
        read_coco_panoptic(copy_of_val, "val")
    assert str(j) in str(err.value) and "invalid JSON" in str(err.value)


def test_unknown_category_and_missing_image_are_named(copy_of_val):
    j = copy_of_val / "annotations/panoptic_val2017.json"
    doc = json.loads(j.read_text())
    doc["annotations"][0]["segments_info"][0]["category_id"] = 999
    j.write_text(json.dumps(doc))
    with pytest.raises(CorruptFileError, match="unknown category id 999"):
        read_coco_panoptic(copy_of_val, "val")
    doc["annotations"][0]["segments_info"][0]["category_id"] = 1
    j.write_text(json.dumps(doc))
    (copy_of_val / "val2017" / doc["images"][0]["file_name"]).unlink()
    with pytest.raises(CorruptFileError, match="is missing"):
        read_coco_panoptic(copy_of_val, "val")


def _as_tuples(recs):
    return [(r.image_id, r.image_path.name, r.panoptic_path.name, r.height, r.width, r.captions,
             [(s.id, s.category_id, s.category_index, s.isthing, s.bbox, s.area, s.iscrowd) for s in r.segments])
            for r in recs]


def test_streamed_read_is_json_load_in_any_key_order(copy_of_val):
    """The streamed reader (ijson) gives what the json.load reader gave, whatever the order of the
    top-level keys and the bbox number types (whole, fractional, negative zero)."""
    j = copy_of_val / "annotations/panoptic_val2017.json"
    doc = json.loads(j.read_text())
    seg = doc["annotations"][0]["segments_info"][0]
    seg["bbox"] = [3, 2.5, -0.0, 17]
    j.write_text(json.dumps(doc))
    before = _as_tuples(read_coco_panoptic(copy_of_val, "val"))
    got = {r[0]: r for r in before}[doc["annotations"][0]["image_id"]]
    bbox = [s for s in got[6] if s[0] == seg["id"]][0][4]
    assert bbox == (3.0, 2.5, 0.0, 17.0) and all(type(v) is float for v in bbox)
    assert str(bbox[2]) == "-0.0"  # the sign json.load keeps
    reordered = {k: doc[k] for k in reversed(list(doc))}  # annotations before images
    j.write_text(json.dumps(reordered))
    assert _as_tuples(read_coco_panoptic(copy_of_val, "val")) == before
    assert len(before) == len(doc["annotations"])


def test_not_utf8_and_missing_keys_are_named(copy_of_val):
    j = copy_of_val / "annotations/panoptic_val2017.json"
    doc = json.loads(j.read_text())
    j.write_bytes(b'{"images": [{"file_name": "\xff\xfe"}]}')
    with pytest.raises(CorruptFileError, match="not UTF-8") as err:
        read_coco_panoptic(copy_of_val, "val")
    assert str(j) in str(err.value)
    j.write_text(json.dumps({"images": doc["images"]}))
    with pytest.raises(CorruptFileError, match="needs 'images' and 'annotations'"):
        read_coco_panoptic(copy_of_val, "val")
    j.write_text(json.dumps({"images": doc["images"], "annotations": {}}))
    with pytest.raises(CorruptFileError, match="'annotations' is a dict"):
        read_coco_panoptic(copy_of_val, "val")
