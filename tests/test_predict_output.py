"""Readable predictions: palette label PNG, overlay with contours and a legend (name, colour, area %),
``--classes`` parsing, any input mode (1×1, 4000×3000, greyscale, RGBA, palette, 16-bit) and the
errors of ``ovlab predict``."""

from __future__ import annotations

import csv
import os
import stat

import numpy as np
import pytest
from PIL import Image

from ovlab.data.files import read_rgb
from ovlab.palette import boundaries, class_colors, label_png, legend_rows, overlay, overlay_with_legend
from ovlab.segmenter.predict import parse_classes


# --- pictures, by hand ----------------------------------------------------------------------------

LAB = np.array([[0, 0, 1],
                [0, 2, 1]])


def test_label_png_is_a_palette_png_holding_the_indices(tmp_path):
    colors = class_colors(3)
    f = tmp_path / "l.png"
    f.write_bytes(label_png(LAB, colors))
    im = Image.open(f)
    assert im.mode == "P" and np.array_equal(np.array(im), LAB)
    assert np.array_equal(np.array(im.convert("RGB")), colors[LAB])  # viewers show the class colours
    with pytest.raises(ValueError, match="outside 0..2"):
        label_png(LAB + 1, colors)


def test_more_than_256_classes_give_a_16_bit_png(tmp_path):
    lab = np.array([[0, 300]])
    f = tmp_path / "l.png"
    f.write_bytes(label_png(lab, class_colors(301)))
    assert np.array_equal(np.array(Image.open(f)), lab)


def test_boundaries_by_hand():
    # a pixel is on a contour when its right or lower neighbour has another label
    assert boundaries(LAB).tolist() == [[False, True, False],
                                        [True, True, False]]


def test_overlay_blends_and_draws_contours():
    img = np.full((2, 3, 3), 100, np.uint8)
    colors = np.array([[0, 0, 0], [200, 200, 200], [50, 0, 100]], np.uint8)
    out = overlay(img, LAB, colors, alpha=0.5, contour=(255, 0, 0))
    assert out[0, 0].tolist() == [50, 50, 50]       # (100 + 0) / 2, interior
    assert out[1, 2].tolist() == [150, 150, 150]    # (100 + 200) / 2, interior
    assert out[0, 1].tolist() == [255, 0, 0]        # contour


def test_legend_lists_present_classes_largest_first_with_area_percent():
    rows = legend_rows(LAB, ["wall", "cat", "dog", "absent"], class_colors(4))
    assert [(r.name, round(r.area_percent, 4)) for r in rows] == [("wall", 50.0), ("cat", 33.3333), ("dog", 16.6667)]
    assert rows[1].color == tuple(class_colors(4)[1])


def test_overlay_with_legend_keeps_the_image_grid():
    img = np.zeros((60, 80, 3), np.uint8)
    lab = np.zeros((60, 80), np.int64)
    lab[:, 40:] = 1
    pic, rows = overlay_with_legend(img, lab, ["sky", "grass"], class_colors(2))
    assert pic.shape[0] == 60 and pic.shape[1] > 80
    assert np.array_equal(pic[:, :80], overlay(img, lab, class_colors(2)))
    swatch = pic[8:12, 80 + 8:80 + 12]  # first legend row: the largest class's colour (a tie: index 0)
    assert (swatch == class_colors(2)[0]).all(axis=-1).all()
    assert [r.name for r in rows] == ["sky", "grass"]


# --- --classes ------------------------------------------------------------------------------------

def test_parse_classes():
    assert parse_classes("cat, remote control ,sofa|couch") == [["cat"], ["remote control"], ["sofa", "couch"]]


@pytest.mark.parametrize("text, needle", [
    ("", "empty"), (" , ", "class 1 is empty"), ("a,,b", "class 2 is empty"), ("a,b,", "class 3 is empty"),
    ("a||b", "empty synonym"), ("a|", "empty synonym"), ("cat,cat", "'cat' is given twice"),
    ("sofa|couch,Couch", "given twice"),
])
def test_bad_class_lists(text, needle):
    with pytest.raises(ValueError, match=needle):
        parse_classes(text)


# --- input modes ----------------------------------------------------------------------------------

def test_read_rgb_of_every_mode(tmp_path):
    g16 = (np.arange(12, dtype=np.uint16).reshape(3, 4) * 5000)
    Image.fromarray(g16).save(tmp_path / "g16.png")
    got = read_rgb(tmp_path / "g16.png")
    assert got.shape == (3, 4, 3) and got[..., 0].tolist() == np.round(g16 / 257).astype(np.uint8).tolist()
    Image.fromarray(np.array([[0, 255]], np.uint8)).save(tmp_path / "g.png")
    assert read_rgb(tmp_path / "g.png").tolist() == [[[0, 0, 0], [255, 255, 255]]]
    Image.fromarray(np.array([[[10, 20, 30, 255], [200, 100, 50, 0]]], np.uint8)).save(tmp_path / "a.png")
    assert read_rgb(tmp_path / "a.png").tolist() == [[[10, 20, 30], [0, 0, 0]]]  # alpha over black
    pal = Image.fromarray(np.array([[0, 1]], np.uint8), mode="P")
    pal.putpalette([7, 8, 9, 250, 251, 252] + [0] * 762)
    pal.save(tmp_path / "p.png")
    assert read_rgb(tmp_path / "p.png").tolist() == [[[7, 8, 9], [250, 251, 252]]]


@pytest.mark.parametrize("kind", ["1x1", "grey", "rgba", "16bit", "4000x3000"])
def test_predict_any_input_image(tiny_run, tmp_path, capsys, kind):
    from ovlab.experiments.cli import main

    _, res = tiny_run
    rng = np.random.default_rng(0)
    arr = {"1x1": np.array([[[120, 30, 200]]], np.uint8),
           "grey": rng.integers(0, 256, (50, 70), dtype=np.uint8),
           "rgba": rng.integers(0, 256, (50, 70, 4), dtype=np.uint8),
           "16bit": rng.integers(0, 65536, (50, 70), dtype=np.uint16),
           "4000x3000": np.zeros((3000, 4000, 3), np.uint8)}[kind]
    image = tmp_path / f"{kind}.png"
    Image.fromarray(arr).save(image)
    out = tmp_path / "out"
    rc = main(["predict", "--checkpoint", str(res.output / "model.pt"), "--image", str(image),
               "--classes", "sky,grass|lawn,person", "--out", str(out), "--short-side", "64"])
    assert rc == 0, capsys.readouterr().err
    labels = Image.open(out / f"{kind}_labels.png")
    assert labels.mode == "P" and labels.size == (arr.shape[1], arr.shape[0])
    assert set(np.unique(np.array(labels))) <= {0, 1, 2}
    pic = Image.open(out / f"{kind}_overlay.png")
    assert pic.size[0] > arr.shape[1] and pic.size[1] >= arr.shape[0]
    rows = list(csv.DictReader((out / f"{kind}_legend.csv").open()))
    assert rows and sum(float(r["area_percent"]) for r in rows) == pytest.approx(100, abs=0.05)
    assert {r["name"] for r in rows} <= {"sky", "grass", "person"} and rows[0]["color"].startswith("#")
    assert "wrote" in capsys.readouterr().out
    mode = stat.S_IMODE(os.stat(out / f"{kind}_labels.png").st_mode)
    assert mode == 0o666 & ~_umask()  # normal permissions, not mkstemp's 0600


def _umask() -> int:
    m = os.umask(0)
    os.umask(m)
    return m


def _predict(tiny_run, capsys, *args) -> tuple[int, str]:
    from ovlab.experiments.cli import main

    _, res = tiny_run
    rc = main(["predict", "--checkpoint", str(res.output / "model.pt"), *args])
    return rc, capsys.readouterr().err


def test_predict_errors(tiny_run, shared_data, tmp_path, capsys):
    image = shared_data / "samples" / "coco_panoptic" / "images" / "000000039769.png"
    base = ["--image", str(image), "--out", str(tmp_path / "o")]
    rc, err = _predict(tiny_run, capsys, *base, "--classes", "cat,cat")
    assert rc == 1 and "ovlab predict: error:" in err and "'cat' is given twice" in err
    rc, err = _predict(tiny_run, capsys, *base, "--classes", "a||b")
    assert rc == 1 and "empty synonym" in err
    (tmp_path / "trunc.png").write_bytes(image.read_bytes()[:300])
    rc, err = _predict(tiny_run, capsys, "--image", str(tmp_path / "trunc.png"), "--classes", "cat", "--out", str(tmp_path / "o"))
    assert rc == 1 and "trunc.png" in err and "cannot decode" in err
    (tmp_path / "empty.jpg").write_bytes(b"")
    rc, err = _predict(tiny_run, capsys, "--image", str(tmp_path / "empty.jpg"), "--classes", "cat", "--out", str(tmp_path / "o"))
    assert rc == 1 and "empty.jpg: empty file" in err
    rc, err = _predict(tiny_run, capsys, "--image", str(tmp_path / "nope.jpg"), "--classes", "cat")
    assert rc == 1 and "nope.jpg" in err
    rc, err = _predict(tiny_run, capsys, *base, "--classes", "cat", "--short-side", "32")
    assert rc == 1 and "--short-side 32: must be ≥ 64" in err
    assert not (tmp_path / "o").exists()  # nothing written by a failed run
    with pytest.raises(SystemExit):  # argparse: --short-side 0
        _predict(tiny_run, capsys, *base, "--classes", "cat", "--short-side", "0")
    assert "must be ≥ 1" in capsys.readouterr().err


def test_predict_cuda_without_a_gpu(tiny_run, shared_data, tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    image = shared_data / "samples" / "coco_panoptic" / "images" / "000000039769.png"
    rc, err = _predict(tiny_run, capsys, "--image", str(image), "--classes", "cat", "--device", "cuda",
                       "--out", str(tmp_path))
    assert rc == 1 and "--device cuda: torch sees no GPU" in err and "Traceback" not in err


def test_report_panels_have_contours_and_a_legend(monkeypatch):
    import types

    import ovlab.segmenter.evaluate as ev
    from ovlab.report.training import prediction_panels

    lab = np.zeros((64, 80), np.int64)
    lab[:, 40:] = 2
    monkeypatch.setattr(ev, "predict_labels", lambda model, image, vocab, short_side: lab)

    class Vocab(list):
        classes = ["sky", "grass", "road"]

    built = types.SimpleNamespace(model=types.SimpleNamespace(eval=lambda: None))
    gt = np.zeros((64, 80), np.int64)
    gt[32:] = 1
    (_, g, p), = prediction_panels(built, [(np.zeros((64, 80, 3), np.uint8), gt)], Vocab([0, 1, 2]), short_side=64)
    colors = class_colors(3)
    assert (g[31, 0] == 255).all() and (g[0, 0] == colors[0]).all()      # GT contour between rows 31 and 32
    assert (p[0, 39] == 255).all() and (p[0, 0] == colors[0]).all()      # prediction contour at column 39
    assert p.shape[1] > 80 and (p[8:12, 80 + 8:80 + 12] == colors[0]).all()  # legend: sky first (tie, index 0)
