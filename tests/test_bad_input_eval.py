"""Bad input to ``ovlab eval`` (the bad-input matrix, evaluation part): each case is one clear error
naming the cause and the file, exit code 2, no traceback, and no output file written. Plus the two
label formats on the real ADE-150 samples: the raw annotations scored as predictions are an error
in the index format and give mIoU 100 in the dataset format."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ovlab.data.benchmarks import get_benchmark
from ovlab.experiments.cli import main


@pytest.fixture(scope="module")
def ade_root(shared_data) -> Path:
    root = shared_data / "samples" / "ade20k_150"
    if not root.is_dir():
        pytest.skip(f"real samples not found at {root}")
    return root


@pytest.fixture()
def preds(ade_root, tmp_path) -> Path:
    """Correct index predictions (the GT indices, ignore → 0) for the 3 real ADE-150 samples."""
    b = get_benchmark("ade20k_150")
    out = tmp_path / "pred"
    out.mkdir()
    for rec in b.records(ade_root):
        g = b.load_gt(rec)
        Image.fromarray(np.where(g == 255, 0, g).astype(np.uint8)).save(out / f"{rec.stem}.png")
    return out


def _eval(capsys, pred_dir, root, *extra) -> tuple[int, str]:
    rc = main(["eval", "--dataset", "ade20k_150", "--pred-dir", str(pred_dir), "--root", str(root), "--quiet", *extra])
    cap = capsys.readouterr()
    return rc, cap.err


def _fails(capsys, pred_dir, root, *needles, extra=(), tmp_path=None):
    out = (tmp_path or Path(pred_dir).parent) / "res.json"
    rc, err = _eval(capsys, pred_dir, root, "--out", str(out), *extra)
    assert rc == 2, err
    assert err.startswith("ovlab eval: error: ") and err.count("error:") == 1 and "Traceback" not in err
    for n in needles:
        assert n in err, (n, err)
    assert not out.exists() and not out.with_suffix(".csv").exists()  # nothing half-written
    return err


# --- label formats --------------------------------------------------------------------------------

def test_raw_ade_annotations_are_an_error_in_index_format_and_100_in_dataset_format(ade_root, tmp_path, capsys):
    raw = ade_root / "annotations"
    err = _fails(capsys, raw, ade_root, "ground-truth class + 1", "--pred-format dataset", tmp_path=tmp_path)
    assert "100.0%" in err  # every labelled pixel of the raw file is its GT index + 1
    out = tmp_path / "ok.json"
    rc, _ = _eval(capsys, raw, ade_root, "--pred-format", "dataset", "--sg-iou", "--out", str(out))
    assert rc == 0
    res = json.loads(out.read_text())
    assert res["mIoU"] == 100.0 and res["pACC"] == 100.0 and res["sg_iou"]["mIoU"] == 100.0


def test_index_predictions_read_as_dataset_format_name_the_index_format(preds, ade_root, capsys):
    _fails(capsys, preds, ade_root, "--pred-format index", extra=("--pred-format", "dataset"))


def test_a_value_of_exactly_k_in_index_format_suggests_the_dataset_format(preds, ade_root, capsys):
    f = preds / "ADE_val_00000001.png"
    a = np.array(Image.open(f))
    a[0, 0] = 150
    Image.fromarray(a).save(f)
    _fails(capsys, preds, ade_root, "ADE_val_00000001.png", "unknown class ids [150]", "--pred-format dataset")


# --- dataset root, layout -------------------------------------------------------------------------

def test_missing_dataset_root_draws_the_layout(preds, tmp_path, capsys):
    err = _fails(capsys, preds, tmp_path / "nowhere", "ade20k_150: not found", "Expected layout",
                 "annotations_detectron2/validation")
    assert str(tmp_path / "nowhere") in err


def test_a_root_without_any_known_layout(preds, tmp_path, capsys):
    (tmp_path / "root" / "somethingelse").mkdir(parents=True)
    _fails(capsys, preds, tmp_path / "root", "Expected layout")


def test_gt_values_above_k_in_the_raw_layout_are_an_error_not_dropped(preds, ade_root, tmp_path, capsys):
    root = tmp_path / "ade"
    shutil.copytree(ade_root / "annotations", root / "annotations")
    f = root / "annotations" / "ADE_val_00000002.png"
    a = np.array(Image.open(f))
    a[:5, :5] = 200
    Image.fromarray(a).save(f)
    _fails(capsys, preds, root, "ADE_val_00000002.png", "values [200] above the 150 class ids")


# --- prediction files -----------------------------------------------------------------------------

BAD = "ADE_val_00000002.png"


def test_truncated_png(preds, ade_root, capsys):
    f = preds / BAD
    f.write_bytes(f.read_bytes()[:200])
    _fails(capsys, preds, ade_root, BAD, "cannot decode")


def test_empty_file(preds, ade_root, capsys):
    (preds / BAD).write_bytes(b"")
    _fails(capsys, preds, ade_root, BAD, "empty file")


def test_jpeg_named_png(preds, ade_root, capsys):
    f = preds / BAD
    Image.open(f).convert("L").save(f, format="JPEG", quality=95)
    _fails(capsys, preds, ade_root, BAD, "JPEG data named .png")


def test_rgb_where_one_channel_is_expected(preds, ade_root, capsys):
    f = preds / BAD
    Image.open(f).convert("RGB").save(f)
    _fails(capsys, preds, ade_root, BAD, "single-channel", "(364, 500, 3)")


def test_prediction_of_another_size(preds, ade_root, capsys):
    Image.fromarray(np.zeros((10, 12), np.uint8)).save(preds / BAD)
    _fails(capsys, preds, ade_root, BAD, "prediction size 12x10 differs from ground truth")


def test_label_out_of_range(preds, ade_root, capsys):
    Image.fromarray(np.full((364, 500), 201, np.uint8)).save(preds / BAD)
    _fails(capsys, preds, ade_root, BAD, "unknown class ids [201]")


def test_missing_prediction_files(preds, ade_root, capsys):
    (preds / BAD).unlink()
    _fails(capsys, preds, ade_root, "1 of 3 predictions missing", BAD)


def test_extra_prediction_files(preds, ade_root, capsys):
    shutil.copy(preds / BAD, preds / "ADE_val_00009999.png")
    _fails(capsys, preds, ade_root, "1 prediction files match no ground-truth image", "ADE_val_00009999.png")


def test_missing_prediction_folder(tmp_path, ade_root, capsys):
    _fails(capsys, tmp_path / "nope", ade_root, "prediction folder not found", tmp_path=tmp_path)


def test_out_must_be_json_so_the_csv_cannot_overwrite_it(preds, ade_root, tmp_path, capsys):
    out = tmp_path / "x.csv"
    rc, err = _eval(capsys, preds, ade_root, "--out", str(out))
    assert rc == 2 and "give a .json path" in err and not out.exists()


# --- association maps (SG-IoU) --------------------------------------------------------------------

def test_association_map_of_another_vocabulary(preds, ade_root, capsys):
    _fails(capsys, preds, ade_root, "coco_panoptic_133", "is not the vocabulary of ade20k_150",
           extra=("--sg-iou", "--association", "coco_panoptic_133"))


def _amap(tmp_path, body: str) -> str:
    f = tmp_path / "map.json"
    f.write_text('{"schema": "ovlab.association/1", "categories": "ade20k_150", ' + body + "}")
    return str(f)


@pytest.mark.parametrize("body, needle", [
    ('"parents": {"grass": ["plant"], "grass": ["tree"]}', "duplicate key 'grass'"),
    ('"parents": {"grass": ["plant"], "plant": ["grass"]}', "cycle"),
    ('"parents": {"grass": ["grass"]}', "self-loop"),
    ('"parents": {"grasss": ["plant"]}', "unknown class name 'grasss'"),
    ('"parents": {"grass": ["plant", "plant"]}', "duplicate parent 'plant'"),
])
def test_bad_association_maps(preds, ade_root, tmp_path, capsys, body, needle):
    path = _amap(tmp_path, body)
    _fails(capsys, preds, ade_root, needle, "map.json", extra=("--sg-iou", "--association", path))


# --- old spellings still work ---------------------------------------------------------------------

def test_gt_root_and_output_are_aliases(preds, ade_root, tmp_path, capsys):
    out = tmp_path / "alias.json"
    assert main(["eval", "--dataset", "ade150", "--pred-dir", str(preds), "--gt-root", str(ade_root), "--quiet",
                 "--output", str(out)]) == 0
    assert json.loads(out.read_text())["mIoU"] == 100.0 and out.with_suffix(".csv").is_file()
