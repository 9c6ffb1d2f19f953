"""``ovlab eval`` on the real ADE-150 samples (own labels → 100; shifted copy → hand-computed)."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ovlab.experiments.cli import main
from ovlab.data.benchmarks import get_benchmark


@pytest.fixture(scope="module")
def ade_root():
    root = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "samples" / "ade20k_150"
    if not root.is_dir():
        pytest.skip(f"real samples not found at {root}")
    return root


def _write_preds(ade_root, out: Path, shift: int = 0):
    b = get_benchmark("ade20k_150")
    gts = {}
    out.mkdir(exist_ok=True)
    for rec in b.records(ade_root):
        g = b.load_gt(rec)
        p = np.where(g == 255, 0, g)
        if shift:
            p = np.roll(p, shift, axis=1)
        Image.fromarray(p.astype(np.uint8)).save(out / f"{rec.stem}.png")
        gts[rec.stem] = (g, p)
    return gts


def _reference_miou(pairs):
    """Independent mask-based IoU over all images (detectron2 convention)."""
    inter, gt_n, pr_n = {}, {}, {}
    for g, p in pairs.values():
        v = g != 255
        for c in set(np.unique(g[v])) | set(np.unique(p[v])):
            gm, pm = (g == c) & v, (p == c) & v
            inter[c] = inter.get(c, 0) + int((gm & pm).sum())
            gt_n[c] = gt_n.get(c, 0) + int(gm.sum())
            pr_n[c] = pr_n.get(c, 0) + int(pm.sum())
    ious = [inter[c] / (gt_n[c] + pr_n[c] - inter[c]) for c in inter]
    return 100 * float(np.mean(ious))


def test_own_labels_give_100(ade_root, tmp_path, capsys):
    _write_preds(ade_root, tmp_path / "pred")
    out = tmp_path / "res.json"
    rc = main(["eval", "--dataset", "ade20k_sem_seg_val", "--pred-dir", str(tmp_path / "pred"), "--gt-root", str(ade_root),
               "--sg-iou", "--out", str(out), "--quiet"])
    assert rc == 0
    res = json.loads(out.read_text())
    assert res["mIoU"] == 100.0 and res["pACC"] == 100.0 and res["sg_iou"]["mIoU"] == 100.0
    assert res["num_images"] == 3
    rows = list(csv.DictReader(out.with_suffix(".csv").open()))
    assert len(rows) == 150 and rows[2]["name"] == "sky" and float(rows[2]["IoU"]) == 100.0
    assert rows[5]["IoU"] == ""  # ceiling: absent from GT and prediction


def test_shifted_copy_gives_hand_computed_value(ade_root, tmp_path):
    pairs = _write_preds(ade_root, tmp_path / "pred", shift=7)
    out = tmp_path / "res.json"
    assert main(["eval", "--dataset", "ade20k_150", "--pred-dir", str(tmp_path / "pred"), "--gt-root", str(ade_root),
                 "--out", str(out), "--quiet"]) == 0
    res = json.loads(out.read_text())
    ref = _reference_miou(pairs)
    assert 40 < ref < 99
    assert res["mIoU"] == pytest.approx(ref, abs=1e-9)


def test_clear_errors_name_the_file(ade_root, tmp_path, capsys):
    pred = tmp_path / "pred"
    _write_preds(ade_root, pred)
    bad = pred / "ADE_val_00000002.png"
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(bad)
    assert main(["eval", "--dataset", "ade20k_150", "--pred-dir", str(pred), "--gt-root", str(ade_root), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "ovlab eval: error:" in err and "ADE_val_00000002.png" in err and "differs" in err
    Image.fromarray(np.full((364, 500), 200, np.uint8)).save(bad)
    assert main(["eval", "--dataset", "ade20k_150", "--pred-dir", str(pred), "--gt-root", str(ade_root), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "ADE_val_00000002.png" in err and "unknown class ids [200]" in err
    bad.unlink()
    assert main(["eval", "--dataset", "ade20k_150", "--pred-dir", str(pred), "--gt-root", str(ade_root), "--quiet"]) == 2
    assert "1 of 3 predictions missing, e.g. ADE_val_00000002.png" in capsys.readouterr().err
    assert main(["eval", "--dataset", "nope", "--pred-dir", str(pred), "--quiet"]) == 2
    assert "unknown dataset 'nope'" in capsys.readouterr().err


def _reference_confusion(pairs, K=150):
    """(K, K) rows = GT by np.add.at over every non-ignored pixel (independent of ovlab's counting)."""
    conf = np.zeros((K, K), np.int64)
    for g, p in pairs.values():
        v = g != 255
        np.add.at(conf, (g[v], p[v]), 1)
    return conf


def test_workers_give_the_same_matrix_bit_for_bit(ade_root, tmp_path):
    from ovlab.metrics.evaluate import evaluate_predictions

    pairs = _write_preds(ade_root, tmp_path / "pred", shift=5)
    ref = _reference_confusion(pairs)
    assert ref.sum() > 100_000 and np.trace(ref) < ref.sum()  # real, imperfect predictions
    res = {w: evaluate_predictions("ade20k_150", tmp_path / "pred", ade_root, sg=True, progress=False, workers=w)
           for w in (0, 1, 2, 3)}
    for w, r in res.items():
        assert np.array_equal(r.confusion, ref), w
        assert r.summary == res[0].summary
    dev = evaluate_predictions("ade20k_150", tmp_path / "pred", ade_root, progress=False, device="cpu:0")
    assert np.array_equal(dev.confusion, ref)  # the torch ConfusionMatrix path (one process)


def test_an_error_in_a_worker_is_the_evaluation_error_naming_the_file(ade_root, tmp_path, capsys):
    from ovlab.data.errors import CorruptFileError
    from ovlab.metrics.evaluate import EvaluationError, evaluate_predictions

    pred = tmp_path / "pred"
    _write_preds(ade_root, pred)
    bad = pred / "ADE_val_00000002.png"
    Image.fromarray(np.full((364, 500), 200, np.uint8)).save(bad)
    msgs = []
    for w in (0, 2):
        with pytest.raises(EvaluationError) as info:
            evaluate_predictions("ade20k_150", pred, ade_root, progress=False, workers=w)
        msgs.append(str(info.value))
    assert msgs[0] == msgs[1] and msgs[1].startswith(str(bad)) and "unknown class ids [200]" in msgs[1]
    bad.write_bytes(bad.read_bytes()[:100])
    with pytest.raises(CorruptFileError, match="ADE_val_00000002.png: cannot decode") as info:
        evaluate_predictions("ade20k_150", pred, ade_root, progress=False, workers=2)
    assert info.value.path == bad
    rc = main(["eval", "--dataset", "ade20k_150", "--pred-dir", str(pred), "--root", str(ade_root), "--quiet",
               "--workers", "2"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("error:") == 1 and "Traceback" not in err and "ADE_val_00000002.png" in err
    with pytest.raises(SystemExit) as exit_info:  # argparse's usage error
        main(["eval", "--dataset", "ade20k_150", "--pred-dir", str(pred), "--workers", "-1"])
    assert exit_info.value.code == 2 and "--workers must be a whole number ≥ 0, got '-1'" in capsys.readouterr().err
