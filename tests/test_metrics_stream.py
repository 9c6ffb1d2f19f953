"""The streaming, multi-process file scorer (ovlab.metrics.stream) against hand counts and the
detectron2 ``SemSegEvaluator`` accumulation, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from ovlab.metrics.benchmark import detectron2_path
from ovlab.metrics.stream import BinAccumulator, PairError, accumulate, label_lut, stream_confusion


def test_accumulate_hand_counts_rows_are_ground_truth():
    K = 3
    gt = np.array([[0, 0, 1], [2, 65535, 1]], np.uint16)
    pred = np.array([[0, 1, 1], [0, 2, 2]], np.uint16)
    conf = np.zeros((K, K), np.int64)
    accumulate(conf, gt, pred, label_lut(K, [65535]))
    # (gt, pred): (0,0) (0,1) (1,1) (2,0) [ignored] (1,2)
    want = np.array([[1, 1, 0], [0, 1, 1], [1, 0, 0]])
    assert (conf == want).all()


def test_prediction_out_of_range_is_an_error_only_where_scored():
    K = 3
    conf = np.zeros((K, K), np.int64)
    lut = label_lut(K, [255])
    accumulate(conf, np.array([[255, 1]]), np.array([[7, 1]]), lut)  # 7 under an ignore pixel: fine
    assert conf.sum() == 1 and conf[1, 1] == 1
    with pytest.raises(PairError, match=r"x.png: prediction values \[7\]"):
        accumulate(conf, np.array([[0, 1]]), np.array([[7, 1]]), lut, name="x.png")


def test_unknown_ground_truth_value_and_size_mismatch_name_the_file():
    conf = np.zeros((3, 3), np.int64)
    lut = label_lut(3, [255])
    with pytest.raises(PairError, match=r"g: ground-truth values \[4\]"):
        accumulate(conf, np.array([[4, 0]]), np.array([[0, 0]]), lut, name="g")
    with pytest.raises(PairError, match="differs from ground truth"):
        accumulate(conf, np.zeros((2, 2), int), np.zeros((2, 3), int), lut, name="p")


def _pairs(tmp_path, n=9, K=847, seed=0):
    rng = np.random.default_rng(seed)
    gts, preds = [], []
    for i in range(n):
        h, w = (24, 40) if i % 2 else (40, 24)
        g = rng.integers(0, K, (h, w)).astype(np.uint16)
        g[rng.random((h, w)) < 0.2] = 65535
        p = rng.integers(0, K, (h, w)).astype(np.uint16)
        gf, pf = tmp_path / f"g{i}.tif", tmp_path / f"p{i}.png"
        Image.fromarray(g).save(gf)
        Image.fromarray(p).save(pf)
        gts.append(gf)
        preds.append(pf)
    return gts, preds


def _load_tif(path):
    return np.array(Image.open(path))


def test_workers_and_chunks_give_the_detectron2_matrix_bit_for_bit(tmp_path):
    gts, preds = _pairs(tmp_path)
    ref = detectron2_path(gts, preds, 847)
    items = list(zip(gts, preds))
    one = stream_confusion(items, _load_tif, 847, [65535], workers=1, progress=False)
    two = stream_confusion(items, _load_tif, 847, [65535], workers=2, chunk=2, progress=False)
    assert np.array_equal(one, ref) and np.array_equal(two, ref)
    assert ref.sum() == sum(int((_load_tif(g) != 65535).sum()) for g in gts)


def test_a_bad_pair_in_a_worker_surfaces_with_its_file(tmp_path):
    gts, preds = _pairs(tmp_path, n=4, K=5)
    Image.fromarray(np.full((40, 24), 9, np.uint16)).save(preds[2])  # class 9 of K=5
    with pytest.raises(PairError, match="p2.png: prediction values"):
        stream_confusion(list(zip(gts, preds)), _load_tif, 5, [65535], workers=2, chunk=1, progress=False)


# --- the accumulator: one bincount per buffer of pixels -----------------------------------------------

def test_bin_accumulator_flushes_give_the_hand_counts():
    K = 3
    gt = np.array([[0, 0, 1], [2, 65535, 1]], np.uint16)
    pred = np.array([[0, 1, 1], [0, 2, 2]], np.uint16)
    want = np.array([[1, 1, 0], [0, 1, 1], [1, 0, 0]])
    for capacity in (4, 6, 7, 1000):  # a pair larger than the buffer, exactly one, several per buffer
        acc = BinAccumulator(K, label_lut(K, [65535]), capacity=capacity)
        for _ in range(3):
            acc.add(gt, pred)
        assert (acc.flush() == 3 * want).all(), capacity
    acc.reset()
    assert acc.flush().sum() == 0


def test_bin_accumulator_rejects_a_bad_pair_without_counting_it():
    acc = BinAccumulator(3, label_lut(3, [255]), capacity=100)
    acc.add(np.array([[0, 1]]), np.array([[0, 1]]))
    with pytest.raises(PairError, match=r"b.png: prediction values \[5\]"):
        acc.add(np.array([[0, 1]]), np.array([[5, 1]]), name="b.png")
    with pytest.raises(PairError, match=r"ground-truth values \[7\]"):
        acc.add(np.array([[7, 1]]), np.array([[0, 1]]))
    assert acc.flush().tolist() == [[1, 0, 0], [0, 1, 0], [0, 0, 0]]


# --- the file reader: OpenCV where it is exact, PIL for the rest -------------------------------------

@pytest.mark.parametrize("kind", ["L", "I;16", "P", "RGB", "tif16", "tif8", "L-trns"])
def test_read_label_file_equals_pil(tmp_path, kind):
    from ovlab.metrics.stream import read_label_file

    rng = np.random.default_rng(1)
    a16 = rng.integers(0, 900, (13, 17)).astype(np.uint16)
    a8 = rng.integers(0, 200, (13, 17)).astype(np.uint8)
    f = tmp_path / ("x.tif" if kind.startswith("tif") else "x.png")
    if kind == "L":
        Image.fromarray(a8).save(f)
    elif kind == "I;16" or kind == "tif16":
        Image.fromarray(a16).save(f)
    elif kind == "tif8":
        Image.fromarray(a8).save(f)
    elif kind == "P":
        im = Image.fromarray(a8, mode="L").convert("P")
        im.putpalette([v for i in range(256) for v in (255 - i, i, i // 2)])
        im.save(f)
    elif kind == "RGB":
        Image.fromarray(np.stack([a8, a8[::-1], a8], -1)).save(f)
    elif kind == "L-trns":
        Image.fromarray(a8).save(f, transparency=3)
    ref = np.array(Image.open(f))
    got = read_label_file(f)
    assert got.dtype == ref.dtype and got.shape == ref.shape and np.array_equal(got, ref)


def test_read_label_file_errors_are_pils(tmp_path):
    from ovlab.data.errors import CorruptFileError
    from ovlab.metrics.stream import read_label_file

    good = tmp_path / "good.png"
    Image.fromarray(np.arange(64 * 64, dtype=np.uint16).reshape(64, 64)).save(good)
    cut = tmp_path / "cut.png"
    cut.write_bytes(good.read_bytes()[:-40])
    with pytest.raises(CorruptFileError, match="cut.png: cannot decode"):
        read_label_file(cut)
    jpg = tmp_path / "j.png"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(jpg, format="JPEG")
    with pytest.raises(CorruptFileError, match="JPEG data named .png"):
        read_label_file(jpg)
    assert read_label_file(jpg, check_format=False).shape == (8, 8)  # ground truth: read_image's rules
    (tmp_path / "e.png").write_bytes(b"")
    with pytest.raises(CorruptFileError, match="e.png: empty file"):
        read_label_file(tmp_path / "e.png")
    with pytest.raises(FileNotFoundError, match="nope.png: no such file"):
        read_label_file(tmp_path / "nope.png")


# --- worker processes: errors rebuilt in the parent, the first bad item in order --------------------

class _PidScorer:
    """Fails on item 'bad' with the pid of the process that scored it."""

    def __call__(self, acc, item):
        import os

        if item == "bad":
            raise PairError(f"{item}: scored in pid {os.getpid()}")
        acc.add(np.array([[0]]), np.array([[int(item)]]))


def test_items_are_scored_in_workers_and_the_error_of_the_first_bad_item_comes_back():
    import os

    from ovlab.metrics.stream import score_items

    items = ["0", "1", "1", "bad", "0", "bad", "1"]
    lut = label_lut(2, [255])
    assert score_items(items[:3], _PidScorer(), 2, lut, workers=2, chunk=1, progress=False).tolist() == [[1, 2], [0, 0]]
    with pytest.raises(PairError, match=r"^bad: scored in pid (\d+)$") as info:
        score_items(items, _PidScorer(), 2, lut, workers=2, chunk=2, progress=False)
    assert int(info.value.args[0].rsplit(" ", 1)[1]) != os.getpid()  # a worker's
    with pytest.raises(PairError, match=rf"^bad: scored in pid {os.getpid()}$"):
        score_items(items, _PidScorer(), 2, lut, workers=0, progress=False)


def test_a_corrupt_file_error_raised_in_a_worker_is_rebuilt_with_its_path(tmp_path):
    from ovlab.data.errors import CorruptFileError

    gts, preds = _pairs(tmp_path, n=6, K=5)
    preds[3].write_bytes(preds[3].read_bytes()[:60])
    errs = []
    for workers in (0, 2):
        with pytest.raises(CorruptFileError) as info:
            stream_confusion(list(zip(gts, preds)), _load_tif, 5, [65535], workers=workers, chunk=1, progress=False)
        errs.append(info.value)
    assert str(errs[0]) == str(errs[1]) and "p3.png: cannot decode" in str(errs[1])
    assert errs[1].path == preds[3]


def test_chunk_size_about_four_tasks_per_worker():
    from ovlab.metrics.stream import chunk_size

    assert chunk_size(3, 2) == 1 and chunk_size(80, 2) == 10 and chunk_size(2000, 2) == 32 and chunk_size(0, 2) == 1


def test_workers_forked_from_a_process_that_used_opencv_threads_do_not_hang(tmp_path):
    """Regression: ``cv2.setNumThreads`` in a forked worker deadlocked once the parent had used OpenCV's
    thread pool (as ``ovlab prepare`` does before an evaluation in the same process). A fresh
    interpreter runs it so that a hang fails this test (timeout) instead of the suite."""
    import os
    import signal
    import subprocess
    import sys

    gts, preds = _pairs(tmp_path, n=6)
    script = (
        "import sys, numpy as np, cv2\n"
        "from PIL import Image\n"
        "from ovlab.metrics.stream import stream_confusion\n"
        "cv2.setNumThreads(2)\n"
        "a = np.random.rand(1500, 1500).astype(np.float32)\n"
        "for _ in range(3): cv2.GaussianBlur(cv2.resize(a, (2000, 2000)), (15, 15), 3)\n"
        "gts, preds = sys.argv[1].split(','), sys.argv[2].split(',')\n"
        "c = stream_confusion(list(zip(gts, preds)), lambda p: np.array(Image.open(p)), 847, [65535], workers=2,"
        " chunk=1, progress=False)\n"
        "print(int(c.sum()))\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script, ",".join(map(str, gts)), ",".join(map(str, preds))],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the script and its workers (its own session)
        proc.communicate()
        pytest.fail("stream_confusion with workers hung in a process that had used OpenCV's threads")
    assert proc.returncode == 0, stderr
    assert int(stdout) == sum(int((_load_tif(g) != 65535).sum()) for g in gts)
