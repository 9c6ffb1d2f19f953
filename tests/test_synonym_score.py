"""GKC synonym score (GKC Eq. 1): the formula by hand, and the stage on the real COCO samples."""

from __future__ import annotations

import json
import math
import warnings

import pytest
import torch

from ovlab.clip import encode_names, load_clip, masked_crops
from ovlab.experiments.synonym_score import run_synonym_score, segments_frame
from ovlab.gkc.synonym_score import crop_settings, synonym_score
from ovlab.config import stage_params
from ovlab.data.categories import load_categories
from ovlab.data.names import normalize_class_name

torch.set_num_threads(1)
MULTI = {"cat": ["cat", "house cat", "true cat"], "couch": ["couch", "sofa"],
         "person": ["person", "individual", "someone"], "horse": ["horse", "equus caballus"]}


def test_formula_by_hand():
    img = torch.tensor([[2.0, 0.0], [0.0, 5.0]])
    txt = torch.tensor([[1.0, 0.0], [0.0, 3.0], [1.0, 1.0]])
    # cosines row 0: [1, 0, 1/√2]; row 1: [0, 1, 1/√2]; temperature 0.5 -> logits ×2
    p = synonym_score(img, txt, 0.5)
    e = [math.exp(2.0), 1.0, math.exp(2 / math.sqrt(2))]
    torch.testing.assert_close(p[0], torch.tensor(e) / sum(e))
    torch.testing.assert_close(p.sum(-1), torch.ones(2))
    # GKC: temperature 0.01 = CLIP's 100 · cos
    p = synonym_score(img[:1], txt[:2], 0.01)
    torch.testing.assert_close(p[0], torch.softmax(torch.tensor([100.0, 0.0]), 0))
    with pytest.raises(ValueError):
        synonym_score(img, txt, 0.0)


@pytest.fixture()
def synonyms_file(tmp_path):
    table = {normalize_class_name(c.name): [normalize_class_name(c.name)] for c in load_categories("coco_panoptic_133")}
    table.update(MULTI)
    p = tmp_path / "synonyms.json"
    p.write_text(json.dumps(table))
    return p


def _stage(tmp_path, shared_data, synonyms_file, **over):
    section = {
        "synonyms": str(synonyms_file),
        "data": {"root": str(shared_data / "samples" / "coco_panoptic"), "split": "val", "image_dir": "images",
                 "panoptic_dir": "panoptic", "panoptic_json": "panoptic_val2017_mini.json"},
        "clip": {"model": "ovlab-tiny-vit", "pretrained": None},
        "output": "out/scores.json", "metrics": "out/metrics.json", "table": "out/segments.csv",
    }
    section.update(over)
    return stage_params("synonym_score", {"seed": 0, "paths": {"cache": "cache"}}, section, root=tmp_path)


def _run(stage, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return run_synonym_score(stage, progress=False, **kw)


def test_stage_on_real_coco_samples(tmp_path, shared_data, synonyms_file, coco_samples):
    stage = _stage(tmp_path, shared_data, synonyms_file)
    res = _run(stage)
    out = json.loads((tmp_path / "out" / "scores.json").read_text())
    # keyed by image id then segment id; every segment of every image is there
    assert set(out) == {str(r.image_id) for r in coco_samples}
    for r in coco_samples:
        assert set(out[str(r.image_id)]) == {str(s.id) for s in r.segments}
    n_trivial = 0
    for segs in out.values():
        for s in segs.values():
            names = MULTI.get(s["class"], [s["class"]])
            assert list(s["scores"]) == names
            assert sum(s["scores"].values()) == pytest.approx(1.0, abs=1e-6)
            if len(names) == 1:
                n_trivial += 1
                assert s["trivial"] and s["scores"] == {s["class"]: 1.0}
    from ovlab.config.record import read_record

    m = read_record(tmp_path / "out" / "metrics.json")  # metrics.json + info.json (caveat, warning)
    assert m["n_trivial"] == n_trivial and m["n_scored"] == m["n_segments"] - n_trivial > 0
    assert m["clip"]["untrained"] is True and "UNTRAINED CLIP" in m["clip"]["warning"]
    assert "UNTRAINED CLIP" in m["caveat"] and m["synthetic"] is True
    assert m["temperature"] == pytest.approx(1 / res.clip.logit_scale)
    frame = segments_frame(res.scores, _table(synonyms_file))
    assert len(frame) == m["n_segments"]
    assert (tmp_path / "out" / "segments.csv").read_text().startswith("image_id,segment_id,class,name")


def _table(path):
    return json.loads(path.read_text())


def test_one_segment_by_hand(tmp_path, shared_data, synonyms_file, coco_samples):
    """Re-derive one score from the toolkit's pieces: crop -> image embedding, prompt -> text, softmax."""
    stage = _stage(tmp_path, shared_data, synonyms_file, temperature=0.05)
    res = _run(stage)
    rec = next(r for r in coco_samples if any(s.category_id == 17 for s in r.segments))  # COCO id 17 = cat
    k, seg = next((k, s) for k, s in enumerate(rec.segments) if s.category_id == 17)  # a cat
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clip = load_clip("ovlab-tiny-vit", None, seed=0)
    crops, _ = masked_crops(rec.image(), rec.masks()[k:k + 1], **crop_settings(stage.cfg, clip))
    img = clip.encode_image(crops)
    txt = encode_names(clip, MULTI["cat"], ["a photo of {}"])
    expected = torch.softmax((img @ txt.T)[0] / 0.05, 0)
    got = torch.tensor(list(res.scores[str(rec.image_id)][str(seg.id)]["scores"].values()))
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


def test_same_seed_same_bytes_and_resume_from_cache(tmp_path, shared_data, synonyms_file):
    stage = _stage(tmp_path, shared_data, synonyms_file, crop="bbox")
    _run(stage)
    first = (tmp_path / "out" / "scores.json").read_bytes()
    metrics = (tmp_path / "out" / "metrics.json").read_bytes()
    cached = sorted((tmp_path / "cache" / "synonym_score").glob("*/*.json"))
    assert len(cached) == 3
    cached[0].unlink()                             # as if interrupted after two images
    _run(stage)
    assert (tmp_path / "out" / "scores.json").read_bytes() == first
    assert (tmp_path / "out" / "metrics.json").read_bytes() == metrics
    # a fresh cache gives the same bytes too
    other = _stage(tmp_path / "again", shared_data, synonyms_file, crop="bbox")
    _run(other)
    assert (tmp_path / "again" / "out" / "scores.json").read_bytes() == first


def test_crop_variants_differ_and_cache_is_keyed_by_them(tmp_path, shared_data, synonyms_file):
    a = _run(_stage(tmp_path, shared_data, synonyms_file, crop="mask")).scores
    b = _run(_stage(tmp_path, shared_data, synonyms_file, crop="bbox")).scores
    assert a != b
    assert len(list((tmp_path / "cache" / "synonym_score").iterdir())) == 2


def test_errors_name_the_problem(tmp_path, shared_data, synonyms_file):
    table = _table(synonyms_file)
    del table["cat"]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(table))
    with pytest.raises(ValueError, match=r"bad.json: no synonym set for class 'cat'"):
        _run(_stage(tmp_path, shared_data, bad))
    with pytest.raises(ValueError, match="placeholder"):
        _run(_stage(tmp_path, shared_data, synonyms_file, prompt="a photo"))
