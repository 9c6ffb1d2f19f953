"""The optional detectron2 integration: its framework-free parts always, detectron2 itself when importable.

detectron2 is not on PyPI and cannot be installed on the CI machines; the tests that need it skip
with that reason. The names, metadata and the evaluator's maths are plain functions tested here
by hand-computed values.
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from ovlab.integrations.catalog import dataset_dicts, metadata, registered_names
from ovlab.integrations.sg_evaluation import SGAccumulator, fathers_by_name

REPO = Path(__file__).resolve().parents[1]
HAS_D2 = importlib.util.find_spec("detectron2") is not None
NO_D2 = "detectron2 is not installed (it is not on PyPI: pip install 'git+https://github.com/facebookresearch/detectron2.git')"


def _ade150_names() -> list[str]:
    from ovlab.data.categories import load_categories

    return load_categories("ade20k_150").names


def test_aliases_of_the_other_repositories():
    names = registered_names()
    assert names["ade20k_full_sem_seg_val"] == "ade20k_847"
    assert names["pcontext_full_sem_seg_val"] == "pascal_context_459"
    assert names["pcontext_sem_seg_val"] == "pascal_context_59"
    assert names["ade20k_sem_seg_val"] == "ade20k_150"
    assert names["voc_2012_test_background_sem_seg"] == "pascal_voc_20b"
    assert names["ade20k_847"] == "ade20k_847"


def test_metadata_fields_san_and_catseg_read(tmp_path):
    m = metadata("pcontext_full_sem_seg_val", tmp_path / "nothing")
    assert m["evaluator_type"] == "sem_seg" and m["ignore_label"] == 65535 and len(m["stuff_classes"]) == 459
    assert "sem_seg_root" not in m  # not found: no roots
    m = metadata("pascal_voc_20b", tmp_path)
    assert m["stuff_classes"][:2] == ["background", "aeroplane"] and m["ignore_label"] == 255
    assert m["stuff_dataset_id_to_contiguous_id"][0] == 0 and len(m["stuff_classes"]) == 21


@pytest.mark.shared
def test_metadata_and_dicts_of_a_prepared_layout(shared_data, tmp_path):
    from ovlab.data.prepare import prepare

    prepare("pascal_voc_20", shared_data / "samples" / "pascal_voc", tmp_path, progress=False)
    m = metadata("voc_sem_seg_val", tmp_path)
    assert m["sem_seg_root"] == str(tmp_path / "VOCdevkit" / "VOC2012" / "annotations_detectron2" / "val")
    assert m["ovlab_gt_decoder"] == "identity" and m["image_root"].endswith("JPEGImages")
    d = dataset_dicts("voc_sem_seg_val", tmp_path)
    assert [r["image_id"] for r in d] == ["voc_val_1", "voc_val_114", "voc_val_23"]
    assert all(Path(r["file_name"]).is_file() and Path(r["sem_seg_file_name"]).is_file() for r in d)


def test_sg_iou_and_seen_unseen_by_hand():
    """GT: 100 px grass, 100 px plant; prediction: grass → 50 grass + 50 plant, plant → plant.

    Confusion C[grass, grass] = 50, C[grass, plant] = 50, C[plant, plant] = 100.
    IoU grass = 50 / (100 + 50 − 50) = 0.5; plant = 100 / (100 + 150 − 100) = 2/3 → mIoU 58.33.
    SCAN's map gives grass the father plant: β = (C[g, p] + C[p, p]) / P_p = 150 / 150 = 1,
    TP'_grass = 50 + 50 = 100 → SG-IoU grass = 100 / 100 = 1; plant unchanged → SG-mIoU 83.33.
    grass unseen: seen (plant) 66.67, unseen 50, harmonic 2·66.67·50 / 116.67 = 57.14.
    """
    names = _ade150_names()
    g, p = names.index("grass"), names.index("plant")
    acc = SGAccumulator(names, 255, association="scan_ade20k_150", unseen=["grass"])
    gt = np.array([[g] * 100 + [p] * 100 + [255] * 20])
    pred = np.array([[g] * 50 + [p] * 50 + [p] * 100 + [0] * 20])
    acc.add(gt, pred)
    r = acc.summary()
    assert r["mIoU"] == pytest.approx((50 + 200 / 3) / 2)
    assert r["IoU-grass"] == pytest.approx(50.0) and r["IoU-plant"] == pytest.approx(200 / 3)
    assert r["SG-IoU-grass"] == pytest.approx(100.0) and r["SG-mIoU"] == pytest.approx((100 + 200 / 3) / 2)
    assert r["mIoU-seen"] == pytest.approx(200 / 3) and r["mIoU-unseen"] == pytest.approx(50.0)
    assert r["hIoU"] == pytest.approx(2 * (200 / 3) * 50 / (200 / 3 + 50))
    # a second worker's identical matrix doubles the counts and leaves the ratios unchanged
    acc.merge(acc.confusion)
    assert int(acc.confusion[g, p]) == 100 and acc.summary()["SG-mIoU"] == pytest.approx(r["SG-mIoU"])


def test_association_is_matched_by_name_not_position():
    names = _ade150_names()
    rev = names[::-1]
    fathers = fathers_by_name(rev, "scan_ade20k_150")
    assert fathers[rev.index("grass")] == [rev.index("plant")]
    with pytest.raises(ValueError, match="not in the evaluated vocabulary"):
        fathers_by_name(["cat", "dog"], "scan_ade20k_150")


def test_the_core_never_imports_detectron2():
    offenders = []
    for f in sorted((REPO / "ovlab").rglob("*.py")):
        if f == REPO / "ovlab" / "integrations" / "detectron2.py":
            continue
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            mods = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            if any(m == "detectron2" or m.startswith("detectron2.") for m in mods):
                offenders.append(str(f.relative_to(REPO)))
    assert offenders == []


def test_module_says_how_to_install_detectron2_when_absent():
    if HAS_D2:
        pytest.skip("detectron2 is installed here")
    with pytest.raises(ImportError, match="not on PyPI"):
        import ovlab.integrations.detectron2  # noqa: F401


@pytest.mark.skipif(not HAS_D2, reason=NO_D2)
@pytest.mark.shared
def test_register_and_evaluate_with_detectron2(shared_data, tmp_path):
    import torch
    from detectron2.data import DatasetCatalog, MetadataCatalog

    from ovlab.data.prepare import prepare
    from ovlab.integrations.detectron2 import SGIoUEvaluator, register_all

    prepare("pascal_voc_20b", shared_data / "samples" / "pascal_voc", tmp_path, progress=False)
    register_all(tmp_path, overwrite=True)
    name = "voc_2012_test_background_sem_seg"
    assert MetadataCatalog.get(name).evaluator_type == "sem_seg"
    dicts = DatasetCatalog.get(name)
    ev = SGIoUEvaluator(name, distributed=False)
    ev.reset()
    from PIL import Image

    for d in dicts:
        gt = np.array(Image.open(d["sem_seg_file_name"])).astype(np.int64)
        scores = torch.nn.functional.one_hot(torch.as_tensor(np.where(gt == 255, 0, gt)), 21).permute(2, 0, 1).float()
        ev.process([d], [{"sem_seg": scores}])
    res = ev.evaluate()["sem_seg"]
    assert res["mIoU"] == pytest.approx(100.0)
