"""``ovlab data prepare`` on the real samples (../shared/data, MANIFEST §2) and on hand-made raw files.

Expected values come from the sources themselves: the pixel areas of the COCO panoptic JSON
(MANIFEST: every ``area`` matches its PNG exactly), the palette counts of the VOC PNGs, and
rectangles of the ADE ``_seg.png`` files checked to hold a single class id (found by scanning
300×300 px blocks of the 2048×1536 / 2200×1650 / 2200×1467 originals, then mapped by the short-side
512 scale and shrunk by a few pixels for the nearest-neighbour border).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ovlab.data.prepare import PREPARED, PrepareError, prepare

pytestmark = pytest.mark.shared


def _tree(root: Path, files: dict[str, Path]) -> Path:
    """A raw layout of symlinks to the sample files (never copies of them in the repo)."""
    for rel, src in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.symlink_to(src)
    return root


def _arr(p: Path) -> np.ndarray:
    with Image.open(p) as im:
        return np.array(im)


# ---- ADE20K-847 from ADE20K_2021_17_01 ------------------------------------------------------------

ADE_FULL = ("ADE_train_00016869", "ADE_train_00016900", "ADE_train_00016964")
# (image, output rows, output cols, 847 index): road (rows 1050-1350, cols 300-600 of the original,
# id 2131), sky (75-225, 1575-1725, id 2420), tree (150-450, 750-1050, id 2855), sidewalk (1050-1350, 450-750, id 2377)
ADE_REGIONS = [
    ("ADE_train_00016869", (350, 450), (100, 200), 4),
    ("ADE_train_00016869", (27, 73), (527, 573), 2),
    ("ADE_train_00016900", (50, 135), (235, 320), 3),
    ("ADE_train_00016964", (370, 465), (160, 258), 8),
]


@pytest.fixture(scope="module")
def ade847(shared_data, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ade847")
    sample = shared_data / "samples" / "ade20k_full"
    raw = _tree(tmp / "raw" / "ADE20K_2021_17_01", {
        f"images/ADE/validation/urban/street/{n}{s}": sample / f"{n}{s}" for n in ADE_FULL for s in (".jpg", "_seg.png")})
    rep = prepare("ade20k_847", raw, tmp / "datasets", workers=2, progress=False)
    return tmp, raw, rep


def test_ade847_sizes_regions_and_classes(ade847):
    tmp, _, rep = ade847
    assert rep.done == 3 and rep.skipped == 0
    out = tmp / "datasets" / "ADE20K_2021_17_01"
    sizes = {n: _arr(out / "annotations_detectron2" / "validation" / f"{n}.tif").shape for n in ADE_FULL}
    # short side 512: 2048x1536 -> 683x512, 2200x1650 -> 683x512 (round(2200/1650*512) = 683), 2200x1467 -> 768x512
    assert sizes == {"ADE_train_00016869": (512, 683), "ADE_train_00016900": (512, 683), "ADE_train_00016964": (512, 768)}
    for n in ADE_FULL:
        img = _arr(out / "images_detectron2" / "validation" / f"{n}.jpg")
        assert img.shape == sizes[n] + (3,)
    for n, (y0, y1), (x0, x1), idx in ADE_REGIONS:
        lab = _arr(out / "annotations_detectron2" / "validation" / f"{n}.tif")
        assert lab.dtype == np.uint16
        region = lab[y0:y1, x0:x1]
        assert int((region == idx).sum()) == (y1 - y0) * (x1 - x0), (n, idx)
    lab = _arr(out / "annotations_detectron2" / "validation" / "ADE_train_00016869.tif")
    present = set(np.unique(lab).tolist())
    # street scene: wall-less; building 1, sky 2, tree 3, road 4, car 14 visibly present; 65535 = unlabelled
    assert {1, 2, 3, 4, 14, 65535} <= present and 0 not in present
    # the unlabelled share survives the nearest-neighbour resize: 2.85 % of the original pixels
    raw_seg = _arr(Path(tmp / "raw" / "ADE20K_2021_17_01" / "images/ADE/validation/urban/street/ADE_train_00016869_seg.png"))
    raw_void = float(((raw_seg[..., 0].astype(int) // 10) * 256 + raw_seg[..., 1] == 0).mean())
    assert abs(float((lab == 65535).mean()) - raw_void) < 0.005


def test_ade847_resume_and_idempotent(ade847):
    tmp, raw, _ = ade847
    out = tmp / "datasets" / "ADE20K_2021_17_01" / "annotations_detectron2" / "validation"
    again = prepare("ade20k_847", raw, tmp / "datasets", progress=False)
    assert (again.done, again.skipped) == (0, 3)
    (out / "ADE_train_00016900.tif").unlink()
    before = (out / "ADE_train_00016869.tif").stat().st_mtime_ns
    resumed = prepare("ade20k_847", raw, tmp / "datasets", progress=False)
    assert (resumed.done, resumed.skipped) == (1, 2)
    assert (out / "ADE_train_00016869.tif").stat().st_mtime_ns == before
    assert not list(out.glob(".*.tmp"))


def test_ade847_eval_reads_prepared_layout(ade847):
    from ovlab.metrics.evaluate import evaluate_predictions

    tmp, _, _ = ade847
    gt_dir = tmp / "datasets" / "ADE20K_2021_17_01" / "annotations_detectron2" / "validation"
    preds = tmp / "preds847"
    preds.mkdir(exist_ok=True)
    n_road = n_sky = 0
    for n in ADE_FULL:
        gt = _arr(gt_dir / f"{n}.tif").astype(np.int64)
        p = np.where(gt == 65535, 0, gt)
        if n == "ADE_train_00016869":  # paint the 100x100 road block as sky
            p[350:450, 100:200] = 2
        n_road += int((gt == 4).sum())
        n_sky += int((gt == 2).sum())
        Image.fromarray(p.astype(np.uint16)).save(preds / f"{n}.png")
    res = evaluate_predictions("ade20k_full_sem_seg_val", preds, tmp / "datasets", progress=False)
    assert res.num_images == 3
    rows = {r["index"]: r for r in res.table}
    assert rows[4]["IoU"] == pytest.approx((n_road - 10000) / n_road * 100)
    assert rows[2]["IoU"] == pytest.approx(n_sky / (n_sky + 10000) * 100)
    assert rows[4]["gt_pixels"] == n_road


# ---- PASCAL VOC 20 / 20b ----------------------------------------------------------------------------

VOC = {"voc_val_1": (1, 26602, 223955, 12612), "voc_val_23": (17, 66027, 188369, 8773), "voc_val_114": (3, 31481, 223473, 8215)}
"""name: (VOC id, its pixels, background pixels, void pixels): the palette counts of MANIFEST §2.4's PNGs."""


@pytest.fixture(scope="module")
def voc(shared_data, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("voc")
    s = shared_data / "samples" / "pascal_voc"
    raw = _tree(tmp / "raw" / "VOC2012", {**{f"SegmentationClass/{n}.png": s / "SegmentationClass" / f"{n}.png" for n in VOC},
                                          **{f"JPEGImages/{n}.png": s / "images" / f"{n}.png" for n in VOC}})
    r20 = prepare("pascal_voc_20", raw, tmp / "datasets", progress=False)
    r20b = prepare("pascal_voc_20b", raw, tmp / "datasets", progress=False)
    return tmp, r20, r20b


def test_voc_20_and_20b_counts(voc):
    tmp, r20, r20b = voc
    assert r20.done == r20b.done == 3
    base = tmp / "datasets" / "VOCdevkit" / "VOC2012"
    for n, (cid, npx, nbg, nvoid) in VOC.items():
        a = _arr(base / "annotations_detectron2" / "val" / f"{n}.png")
        assert dict(zip(*[x.tolist() for x in np.unique(a, return_counts=True)])) == {cid - 1: npx, 255: nbg + nvoid}
        b = _arr(base / "annotations_detectron2_bg" / "val" / f"{n}.png")
        assert dict(zip(*[x.tolist() for x in np.unique(b, return_counts=True)])) == {0: nbg, cid: npx, 255: nvoid}
    # a block inside the aeroplane of voc_val_1 (rows 200-260, cols 160-220 of the 513x513 map)
    a = _arr(base / "annotations_detectron2" / "val" / "voc_val_1.png")
    assert (a[200:260, 160:220] == 0).all() and (a[:40, :40] == 255).all()


def test_voc_eval_reads_prepared_layout(voc, tmp_path):
    from ovlab.metrics.evaluate import evaluate_predictions

    tmp, _, _ = voc
    base = tmp / "datasets" / "VOCdevkit" / "VOC2012"
    for n in VOC:
        b = _arr(base / "annotations_detectron2_bg" / "val" / f"{n}.png")
        Image.fromarray(np.where(b == 255, 0, b).astype(np.uint8)).save(tmp_path / f"{n}.png")
    res = evaluate_predictions("pascal_voc_20b", tmp_path, tmp / "datasets", progress=False)
    assert res.num_images == 3 and res.summary["mIoU"] == pytest.approx(100.0)
    rows = {r["index"]: r for r in res.table}
    assert rows[0]["gt_pixels"] == sum(v[2] for v in VOC.values()) and rows[17]["gt_pixels"] == 66027


# ---- COCO panoptic -> semantic 133 ------------------------------------------------------------------

@pytest.fixture(scope="module")
def coco(shared_data, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("coco")
    s = shared_data / "samples" / "coco_panoptic"
    doc = json.loads((s / "panoptic_val2017_mini.json").read_text())
    raw = tmp / "raw" / "coco"
    _tree(raw, {**{f"val2017/{i['file_name']}": s / "images" / i["file_name"] for i in doc["images"]},
                **{f"panoptic_val2017/{a['file_name']}": s / "panoptic" / a["file_name"] for a in doc["annotations"]},
                "annotations/panoptic_val2017.json": s / "panoptic_val2017_mini.json"})
    captions = {"images": doc["images"], "annotations": [{"id": 1, "image_id": 39769, "caption": "two cats on a pink couch"}]}
    (raw / "annotations" / "captions_val2017.json").write_text(json.dumps(captions))
    rep = prepare("coco_133", raw, tmp / "datasets", progress=False)
    return tmp, doc, rep


def test_coco_133_pixel_counts_equal_the_json_areas(coco):
    from ovlab.data.categories import load_categories

    tmp, doc, rep = coco
    assert rep.done == 3
    index = {c.id: c.index for c in load_categories("coco_panoptic_133")}
    out = tmp / "datasets" / "coco" / "panoptic_semseg_val2017"
    for a in doc["annotations"]:
        sem = _arr(out / a["file_name"])
        want: dict[int, int] = {}
        for seg in a["segments_info"]:
            want[index[seg["category_id"]]] = want.get(index[seg["category_id"]], 0) + seg["area"]
        got = dict(zip(*[x.tolist() for x in np.unique(sem, return_counts=True)]))
        void = sem.size - sum(want.values())
        assert got == {**want, **({255: void} if void else {})}, a["file_name"]
    cats = _arr(out / "000000039769.png")
    assert int((cats == index[17]).sum()) == 53306 + 59627  # the two cats (category id 17)
    # the captions and the panoptic JSON are kept beside, so the prepared root is a full COCO root
    assert json.loads((tmp / "datasets" / "coco" / "annotations" / "captions_val2017.json").read_text())["annotations"][0]["caption"]
    from ovlab.data.coco_panoptic import read_coco_panoptic

    recs = read_coco_panoptic(tmp / "datasets" / "coco", "val")
    assert [r.captions for r in recs if r.image_id == 39769] == [["two cats on a pink couch"]]


def test_coco_133_eval_reads_prepared_layout(coco, tmp_path):
    from ovlab.metrics.evaluate import evaluate_predictions

    tmp, doc, _ = coco
    out = tmp / "datasets" / "coco" / "panoptic_semseg_val2017"
    for a in doc["annotations"]:
        sem = _arr(out / a["file_name"])
        Image.fromarray(np.where(sem == 255, 0, sem).astype(np.uint8)).save(tmp_path / a["file_name"])
    res = evaluate_predictions("coco_2017_val_panoptic_with_sem_seg", tmp_path, tmp / "datasets", progress=False)
    assert res.num_images == 3 and res.summary["mIoU"] == pytest.approx(100.0)


# ---- ADE20K-150 (SceneParsing) ----------------------------------------------------------------------

def test_ade150_minus_one(shared_data, tmp_path):
    s = shared_data / "samples" / "ade20k_150"
    rep = prepare("ade20k_150", s, tmp_path, progress=False)
    out = tmp_path / "ADEChallengeData2016" / "annotations_detectron2" / "validation"
    assert rep.done == 3
    for f in sorted((s / "annotations").glob("*.png")):
        raw = _arr(f).astype(np.int64)
        lab = _arr(out / f.name)
        assert (lab[raw == 0] == 255).all() and (lab[raw > 0] == raw[raw > 0] - 1).all()
    lab = _arr(out / "ADE_val_00000001.png")
    raw = _arr(s / "annotations" / "ADE_val_00000001.png")
    assert int((lab == 2).sum()) == int((raw == 3).sum()) > 0  # sky (id 3 -> index 2)
    assert (tmp_path / "ADEChallengeData2016" / "images" / "validation").is_symlink()


# ---- hand-made raw files: PASCAL Context .mat, Cityscapes labelIds, VIPSeg panomasks ------------------

def test_pascal_context_59_and_459_from_mat(tmp_path):
    from scipy.io import savemat

    raw = tmp_path / "VOC2010"
    (raw / "JPEGImages").mkdir(parents=True)
    (raw / "trainval").mkdir()
    # 0 unlabelled; 2 aeroplane (PC-59 index 0); 9 bag (index 1); 1 accordion (not in the 59)
    label = np.array([[0, 2, 2], [9, 1, 459]], np.uint16)
    savemat(raw / "trainval" / "2008_000002.mat", {"LabelMap": label})
    (raw / "ImageSets" / "Main").mkdir(parents=True)
    (raw / "ImageSets" / "Main" / "val.txt").write_text("2008_000002\n")
    prepare("pascal_context_59", raw, tmp_path / "ds", progress=False)
    prepare("pascal_context_459", raw, tmp_path / "ds", progress=False)
    d = tmp_path / "ds" / "VOCdevkit" / "VOC2010" / "annotations_detectron2"
    assert _arr(d / "pc59_val" / "2008_000002.png").tolist() == [[255, 0, 0], [1, 255, 255]]
    full = _arr(d / "pc459_val" / "2008_000002.tif")
    assert full.dtype == np.uint16 and full.tolist() == [[65535, 1, 1], [8, 0, 458]]


def test_coco_stuff_171_from_stuffthingmaps(tmp_path):
    raw = tmp_path / "coco"
    (raw / "stuffthingmaps" / "val2017").mkdir(parents=True)
    # value = COCO-Stuff id - 1: 0 person (index 0); 11 = id 12, unused by COCO (255); 12 = id 13 stop sign
    # (index 11); 91 = id 92 banner (index 80, the first stuff class); 181 = id 182 wood (170); 255 unlabelled
    Image.fromarray(np.array([[0, 11, 12], [91, 181, 255]], np.uint8)).save(raw / "stuffthingmaps" / "val2017" / "000000000139.png")
    rep = prepare("coco_stuff_171", raw, tmp_path / "ds", progress=False)
    assert rep.done == 1
    out = tmp_path / "ds" / "coco" / "stuffthingmaps_detectron2" / "val2017" / "000000000139.png"
    assert _arr(out).tolist() == [[0, 255, 11], [80, 170, 255]]


def test_cityscapes_train_ids(tmp_path):
    raw = tmp_path / "cityscapes"
    d = raw / "gtFine" / "val" / "frankfurt"
    d.mkdir(parents=True)
    Image.fromarray(np.array([[7, 8, 26], [0, 33, 255]], np.uint8)).save(d / "frankfurt_000000_000294_gtFine_labelIds.png")
    prepare("cityscapes_19", raw, tmp_path / "ds", progress=False)
    out = tmp_path / "ds" / "cityscapes" / "gtFine" / "val" / "frankfurt" / "frankfurt_000000_000294_gtFine_labelTrainIds.png"
    assert _arr(out).tolist() == [[0, 1, 13], [255, 18, 255]]  # road, sidewalk, car; unlabeled; bicycle; void


def test_vipseg_semantic(tmp_path):
    raw = tmp_path / "VIPSeg_720P"
    (raw / "panomasks" / "v1").mkdir(parents=True)
    # 0 void; 1 = stuff id 0 (wall); 6101 = thing id 60 instance 1
    Image.fromarray(np.array([[0, 1], [6101, 6102]], np.uint16)).save(raw / "panomasks" / "v1" / "00000001.png")
    (raw / "train.txt").write_text("v1\n")
    rep = prepare("vipseg", raw, tmp_path / "ds", progress=False)
    assert rep.done == 1
    out = tmp_path / "ds" / "VIPSeg" / "VIPSeg_720P" / "semantic" / "train" / "v1" / "00000001.png"
    assert _arr(out).tolist() == [[255, 0], [60, 60]]


# ---- errors: a missing or bad source is named, nothing half-written is left ------------------------

def test_missing_and_corrupt_sources_are_named(tmp_path):
    raw = tmp_path / "VOC2012"
    (raw / "SegmentationClass").mkdir(parents=True)
    (raw / "ImageSets" / "Segmentation").mkdir(parents=True)
    (raw / "ImageSets" / "Segmentation" / "val.txt").write_text("a\nb\n")
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(raw / "SegmentationClass" / "a.png")
    with pytest.raises(PrepareError, match=r"SegmentationClass/b\.png"):
        prepare("pascal_voc_20", raw, tmp_path / "ds", progress=False)
    (raw / "SegmentationClass" / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    with pytest.raises(PrepareError, match=r"b\.png"):
        prepare("pascal_voc_20", raw, tmp_path / "ds", progress=False)
    out = tmp_path / "ds" / "VOCdevkit" / "VOC2012" / "annotations_detectron2" / "val"
    assert not (out / "b.png").exists() and not list(out.glob(".*"))
    with pytest.raises(PrepareError, match="Expected raw layout"):
        prepare("ade20k_150", tmp_path / "nowhere", tmp_path / "ds", progress=False)


def test_prepared_table_names_every_dataset():
    from ovlab.data.prepare import prepare_names

    assert set(PREPARED) == set(prepare_names())
    assert PREPARED["ade20k_847"]["validation"].images == 2000 and PREPARED["pascal_context_59"]["val"].images == 5105


def test_cli_prepare(shared_data, tmp_path, capsys):
    from ovlab.experiments.cli import main

    s = shared_data / "samples" / "pascal_voc"
    assert main(["data", "prepare", "pascal_voc_20", "--src", str(s), "--dst", str(tmp_path), "--quiet", "--workers", "1"]) == 0
    assert json.loads(capsys.readouterr().out)["done"] == 3
    assert main(["data", "prepare", "pascal_voc_20", "--src", str(tmp_path / "x"), "--dst", str(tmp_path)]) == 1
    assert "SegmentationClass" in capsys.readouterr().err
    shutil.rmtree(tmp_path / "VOCdevkit")
