"""Benchmark readers on the real samples in ../shared/data (MANIFEST §2) and on crafted layouts."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ovlab.data import DatasetNotFoundError
from ovlab.data.benchmarks import benchmark_names, get_benchmark


@pytest.fixture(scope="module")
def samples():
    root = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "samples"
    if not root.is_dir():
        pytest.skip(f"real samples not found at {root}")
    return root


def _present(bench, rec):
    g = bench.load_gt(rec)
    cats = bench.categories()
    return {cats[i].name for i in np.unique(g) if i < len(cats)}, g


def test_aliases_resolve_to_one_canonical_name():
    assert get_benchmark("ade20k_sem_seg_val").name == "ade20k_150"
    assert get_benchmark("ade20k_full_sem_seg_val").name == "ade20k_847"
    assert get_benchmark("context_459_test_sem_seg").name == "pascal_context_459"
    assert get_benchmark("voc_2012_test_background_sem_seg").name == "pascal_voc_20b"
    assert len(benchmark_names()) == 8
    with pytest.raises(KeyError, match="unknown dataset 'nope'"):
        get_benchmark("nope")


def test_ade150_samples_show_the_manifest_classes(samples):
    b = get_benchmark("ade20k_150")
    recs = b.records(samples / "ade20k_150")
    assert [r.stem for r in recs] == ["ADE_val_00000001", "ADE_val_00000002", "ADE_val_00000003"]
    assert all(r.image is not None and r.image.suffix == ".jpg" for r in recs)
    names = [_present(b, r)[0] for r in recs]
    assert names[0] == {"wall", "building", "sky", "tree", "road, route", "grass", "plant"}
    assert {"earth, ground", "plant"} <= names[1]
    assert {"sidewalk, pavement", "car", "signboard, sign", "bus", "street lamp", "escalator, moving staircase, moving stairway", "van"} <= names[2]
    g = _present(b, recs[0])[1]
    raw = np.array(Image.open(recs[0].gt))
    assert g.dtype == np.int64 and g.shape == raw.shape == (512, 683)
    np.testing.assert_array_equal(g[raw == 0], 255)
    np.testing.assert_array_equal(g[raw == 3], 2)  # id 3 sky -> index 2


def test_ade_full_samples_decode_to_classes_named_in_their_json(samples):
    b = get_benchmark("ade20k_847")
    recs = b.records(samples / "ade20k_full")
    assert len(recs) == 3
    for r in recs:
        present, g = _present(b, r)
        assert g.shape == np.array(Image.open(r.image)).shape[:2]
        ignored = np.mean(g == 65535)
        assert 0.01 < ignored < 0.13  # MANIFEST: 2-12 % unlabelled or outside the 847
        objects = json.loads(Path(r.gt.with_name(r.stem + ".json")).read_text())["annotation"]["object"]
        raw_names = {o["name"] for o in objects}
        # every decoded class shares a name with an annotated object of that image
        cats = {c.name: c for c in b.categories()}
        for name in present:
            syn = set(cats[name].extra["synonyms"])
            assert any(s in n for s in syn for n in raw_names) or name in raw_names, name
        assert {"building, edifice", "tree"} <= present


def test_voc_samples_20_and_20b(samples):
    v20, v20b = get_benchmark("pascal_voc_20"), get_benchmark("pascal_voc_20b")
    expected = {"voc_val_1": "aeroplane", "voc_val_23": "sheep", "voc_val_114": "bird"}
    for rec in v20.records(samples / "pascal_voc"):
        assert rec.image is not None
        assert _present(v20, rec)[0] == {expected[rec.stem]}
    for rec in v20b.records(samples / "pascal_voc"):
        names, g = _present(v20b, rec)
        assert names == {"background", expected[rec.stem]}
        raw = np.array(Image.open(rec.gt))
        np.testing.assert_array_equal(g[raw == 255], 255)
        np.testing.assert_array_equal(g[raw == 0], 0)


def test_prepared_layout_under_detectron2_root(tmp_path):
    d = tmp_path / "ADE20K_2021_17_01" / "annotations_detectron2" / "validation"
    d.mkdir(parents=True)
    Image.fromarray(np.array([[0, 846], [65535, 5]], dtype=np.uint16)).save(d / "ADE_val_00000001.tif")
    b = get_benchmark("ade847")
    (rec,) = b.records(tmp_path)
    np.testing.assert_array_equal(b.load_gt(rec), [[0, 846], [65535, 5]])


def test_missing_dataset_draws_the_layout(tmp_path):
    with pytest.raises(DatasetNotFoundError, match=r"ADEChallengeData2016/annotations_detectron2/validation/<stem>\.png"):
        get_benchmark("ade20k_150").records(tmp_path)
