"""Bad input outside params and training (the bad-input matrix, the rest): checkpoints given to
``ovlab evaluate`` / ``predict``, ``--device cuda`` without a GPU, ``vocab-sim`` vocabularies, missing
weights offline, a category JSON as ``data.categories``, read-only / full output folders, orphan
temporary files, the run lock after ``kill -9``, and normal file permissions."""

from __future__ import annotations

import errno
import os
import shutil
import signal
import stat
import subprocess
import sys
import time

import pytest
import torch

from ovlab import atomic
from ovlab.experiments.cli import main


def _one_error(capsys, command: str, *needles: str) -> str:
    err = capsys.readouterr().err
    assert err.startswith(f"ovlab {command}: error: ") and err.count("error:") == 1 and "Traceback" not in err, err
    for n in needles:
        assert n in err, (n, err)
    return err


# --- checkpoints and devices ----------------------------------------------------------------------

def test_truncated_and_foreign_checkpoints_are_named(tmp_path, capsys):
    trunc = tmp_path / "model.pt"
    torch.save({"format": "ovlab-segmenter/1", "model": {"w": torch.zeros(1000)}}, trunc)
    trunc.write_bytes(trunc.read_bytes()[:500])
    assert main(["evaluate", "--checkpoint", str(trunc), "--dataset", "coco_133", "--root", str(tmp_path)]) == 1
    _one_error(capsys, "evaluate", "model.pt: cannot be read as a checkpoint")
    foreign = tmp_path / "resnet.pth"
    torch.save({"state_dict": {}}, foreign)
    assert main(["predict", "--checkpoint", str(foreign), "--image", "x.png", "--classes", "cat", "--out", str(tmp_path / "o")]) == 1
    _one_error(capsys, "predict", "resnet.pth: not an ovlab segmenter checkpoint")
    assert main(["evaluate", "--checkpoint", str(tmp_path / "absent.pt"), "--dataset", "coco_133"]) == 1
    _one_error(capsys, "evaluate", "absent.pt")
    assert not (tmp_path / "o").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present")
def test_device_cuda_without_a_gpu(tmp_path, capsys):
    assert main(["evaluate", "--checkpoint", str(tmp_path / "m.pt"), "--dataset", "coco_133", "--device", "cuda"]) == 1
    _one_error(capsys, "evaluate", "--device cuda: torch sees no GPU")


def test_bad_counts_are_refused_by_the_parser(tmp_path, capsys):
    for opt in ("--short-side", "--max-images"):
        with pytest.raises(SystemExit):
            main(["evaluate", "--checkpoint", "m.pt", "--dataset", "coco_133", opt, "0"])
        assert "must be ≥ 1, got 0" in capsys.readouterr().err


# --- vocabularies, weights ------------------------------------------------------------------------

@pytest.mark.parametrize("eval_vocab, needle", [
    ("ade20k_15", "did you mean 'ade20k_150'"),
    ("cat,cat", "'cat' given twice"),
    ("a,,b", "empty class name"),
    (",", "empty vocabulary"),
])
def test_vocab_sim_vocabularies(capsys, eval_vocab, needle):
    assert main(["vocab-sim", "--eval", eval_vocab, "--train", "coco_panoptic_133"]) == 1
    _one_error(capsys, "vocab-sim", needle)


def test_missing_weights_offline(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("OVLAB_WEIGHTS", str(tmp_path / "weights"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("OVLAB_ALLOW_DOWNLOAD", raising=False)
    assert main(["vocab-sim", "--eval", "cat,dog", "--train", "sofa,", "--model", "RN50", "--pretrained", "openai"]) == 1
    _one_error(capsys, "vocab-sim", "RN50", str(tmp_path / "weights"))


def test_truncated_clip_weights_are_named(tmp_path, capsys):
    bad = tmp_path / "clip_weights.pt"
    bad.write_bytes(b"PK\x03\x04 cut short")
    assert main(["vocab-sim", "--eval", "cat,dog", "--train", "sofa,", "--model", "ovlab-tiny-rn", "--pretrained", str(bad)]) == 1
    _one_error(capsys, "vocab-sim", "clip_weights.pt: cannot load it as ovlab-tiny-rn weights")


# --- data -----------------------------------------------------------------------------------------

def test_a_category_json_path_is_accepted_by_the_coco_reader(shared_data, tmp_path):
    """``tgkd.data.categories: <file>.json`` reaches the reader as a Path (it crashed with TypeError)."""
    from importlib import resources

    from ovlab.data.coco_panoptic import read_coco_panoptic

    copy = tmp_path / "cats.json"
    shutil.copy(resources.files("ovlab.data") / "catalog" / "coco_panoptic_133.json", copy)
    kw = dict(image_dir="images", panoptic_dir="panoptic", panoptic_json="panoptic_val2017_mini.json")
    root = shared_data / "samples" / "coco_panoptic"
    by_path = read_coco_panoptic(root, "val", copy, **kw)
    by_name = read_coco_panoptic(root, "val", "coco_panoptic_133", **kw)
    assert [[s.category_index for s in r.segments] for r in by_path] == [[s.category_index for s in r.segments] for r in by_name]


def test_category_files_with_duplicate_or_empty_names(tmp_path):
    import json

    from ovlab.data.categories import load_categories
    from ovlab.data.errors import CorruptFileError

    f = tmp_path / "c.json"
    f.write_text(json.dumps({"categories": [{"index": 0, "id": 1, "name": "cat"}, {"index": 1, "id": 2, "name": "cat"}]}))
    with pytest.raises(CorruptFileError, match=r"c\.json: .*duplicate"):
        load_categories(f)
    f.write_text("{")
    with pytest.raises(CorruptFileError, match=r"c\.json: invalid JSON at line 1"):
        load_categories(f)


# --- output folders and files ---------------------------------------------------------------------

def test_files_get_normal_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        f = atomic.write_text(tmp_path / "a.txt", "x")
        assert stat.S_IMODE(f.stat().st_mode) == 0o644
        os.umask(0o002)
        f = atomic.write_bytes(tmp_path / "b.bin", b"x")
        assert stat.S_IMODE(f.stat().st_mode) == 0o664
    finally:
        os.umask(old)


@pytest.mark.parametrize("code, needle", [(errno.EROFS, "the file system is read-only"), (errno.ENOSPC, "the disk is full"),
                                          (errno.EACCES, "permission denied")])
def test_unwritable_output_is_one_clear_error_and_keeps_the_old_file(tmp_path, monkeypatch, code, needle):
    target = atomic.write_text(tmp_path / "metrics.json", "old")

    def fail(*a, **k):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(atomic.tempfile, "mkstemp", fail)
    with pytest.raises(atomic.OutputNotWritableError, match=f"cannot write .*metrics.json: {needle}"):
        atomic.write_text(target, "new")
    monkeypatch.undo()
    monkeypatch.setattr(atomic.os, "replace", fail)  # the disk fills at the rename
    with pytest.raises(atomic.OutputNotWritableError, match=needle):
        atomic.write_text(target, "new")
    monkeypatch.undo()
    assert target.read_text() == "old" and not list(tmp_path.glob(".*.tmp"))


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_folder(tmp_path):
    d = tmp_path / "ro"
    d.mkdir()
    d.chmod(0o555)
    try:
        with pytest.raises(atomic.OutputNotWritableError, match="permission denied"):
            atomic.write_text(d / "x.json", "{}")
    finally:
        d.chmod(0o755)


def test_remove_orphans_only_touches_temporary_files(tmp_path):
    keep = [tmp_path / "last.pt", tmp_path / ".hidden", tmp_path / "x.tmp"]
    gone = [tmp_path / ".last.pt.abc123.tmp", tmp_path / ".metrics.json.q.tmp"]
    for f in keep + gone:
        f.write_text("x")
    assert sorted(atomic.remove_orphans(tmp_path)) == sorted(gone)
    assert all(f.exists() for f in keep) and not any(f.exists() for f in gone)


def test_the_lock_is_released_by_kill_9(tmp_path):
    lock = tmp_path / "run" / "lock"
    code = f"import time; from ovlab.atomic import exclusive_lock\nwith exclusive_lock({str(lock)!r}):\n    print('held', flush=True); time.sleep(60)"
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        with pytest.raises(atomic.LockedError, match=f"pid {proc.pid}"):
            with atomic.exclusive_lock(lock):
                pass
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    time.sleep(0.05)
    with atomic.exclusive_lock(lock):  # a stale lock file never blocks a later run
        pass
