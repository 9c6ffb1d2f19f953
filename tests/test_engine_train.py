"""Training engine end to end on the generated embedded data: exact resume (in-process and after
kill -9), DVCLive logs, evaluation, and the ``ovlab evaluate`` / ``ovlab predict`` commands."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
import yaml

from .conftest import tiny_tgkd_section, tiny_tgkd_stage
from ovlab.engine import checkpoint as ckpt
from ovlab.experiments.registry import train_stage as train


def _same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_tiny_run_writes_model_metrics_and_dvclive(tiny_run):
    stage, res = tiny_run
    from ovlab.config.record import read_record

    m = read_record(res.output)  # metrics.json + info.json (the caveat)
    assert m["iterations"] == 12 and m["eval"]["dataset"] == "coco_133" and m["eval"]["protocol"] == "generalized"
    assert {"seen_mIoU", "unseen_mIoU", "harmonic_mIoU", "mIoU"} <= set(m["eval"])
    assert m["clip"]["untrained"] and m["synthetic"] and "pipeline" in m["caveat"]
    tsv = (res.output / "dvclive" / "plots" / "metrics" / "train" / "loss.tsv").read_text().splitlines()
    assert [int(r.split("\t")[0]) for r in tsv[1:]] == [2, 4, 6, 8, 10, 12]
    assert np.isfinite([float(r.split("\t")[1]) for r in tsv[1:]]).all()


def test_resume_in_process_gives_the_same_model_and_metrics(tiny_run, embedded_root, tmp_path):
    _, full = tiny_run
    stage = tiny_tgkd_stage(embedded_root, tmp_path)
    part = train(stage, progress=False, stop_after=5)
    assert part.iterations == 5 and ckpt.load(part.run_dir / "last.pt")["iteration"] == 5
    resumed = train(stage, progress=False)
    assert _same_weights(ckpt.load(resumed.output / "model.pt")["model"], ckpt.load(full.output / "model.pt")["model"])
    assert resumed.metrics["eval"] == full.metrics["eval"]
    rows = (resumed.output / "dvclive" / "plots" / "metrics" / "train" / "loss.tsv").read_text()
    assert rows == (full.output / "dvclive" / "plots" / "metrics" / "train" / "loss.tsv").read_text()


def test_a_half_run_of_other_code_starts_over(tiny_run, embedded_root, tmp_path, capsys):
    _, full = tiny_run
    stage = tiny_tgkd_stage(embedded_root, tmp_path)
    part = train(stage, progress=False, stop_after=5)
    state = ckpt.load(part.run_dir / "last.pt")
    assert state["code"] == ckpt.code_version() and len(state["code"]) == 16
    ckpt.save(part.run_dir / "last.pt", {**state, "code": "0" * 16})  # as if written before an edit
    again = train(stage, progress=True)
    assert "written by other ovlab code" in capsys.readouterr().out
    assert again.metrics["eval"] == full.metrics["eval"]  # a full run from scratch, not a resumed half


def _write_params(repo_root, data_root, folder, **overrides):
    params = yaml.safe_load((repo_root / "params.yaml").read_text())
    params["tgkd"] = tiny_tgkd_section(data_root, folder, **overrides)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "params.yaml").write_text(yaml.safe_dump(params))
    return [sys.executable, "-m", "ovlab", "train", "--section", "tgkd", "--params", str(folder / "params.yaml")]


@pytest.mark.slow
def test_kill_9_then_rerun_gives_the_same_final_metrics(embedded_root, repo_root, tmp_path):
    # Both runs in fresh processes: float sums depend on torch's thread count, which a test process may have changed.
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    ref_cmd = _write_params(repo_root, embedded_root, tmp_path / "ref")
    ref = subprocess.run(ref_cmd, cwd=tmp_path / "ref", env=env, capture_output=True, text=True)
    assert ref.returncode == 0, ref.stderr[-2000:]
    work = tmp_path / "killed"
    cmd = _write_params(repo_root, embedded_root, work)
    proc = subprocess.Popen(cmd, cwd=work, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpts = work / "checkpoints"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and not list(ckpts.glob("*/last.pt")):
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "training ended before it could be killed"
    killed_at = ckpt.load(next(ckpts.glob("*/last.pt")))["iteration"]
    assert 0 < killed_at < 12 and not (work / "run" / "metrics.json").exists()
    done = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "resuming tgkd from" in done.stdout + done.stderr
    ref_metrics = json.loads((tmp_path / "ref" / "run" / "metrics.json").read_text())
    assert json.loads((work / "run" / "metrics.json").read_text())["eval"] == ref_metrics["eval"]
    assert _same_weights(ckpt.load(work / "run" / "model.pt")["model"],
                         ckpt.load(tmp_path / "ref" / "run" / "model.pt")["model"])


def test_ovlab_evaluate_on_a_benchmark(tiny_run, embedded_root, tmp_path):
    from ovlab.experiments.cli import main

    _, res = tiny_run
    out = tmp_path / "eval.json"
    assert main(["evaluate", "--checkpoint", str(res.output / "model.pt"), "--dataset", "coco_133", "--root",
                 str(embedded_root), "--short-side", "64", "--max-images", "3", "--output", str(out)]) == 0
    got = json.loads(out.read_text())
    assert got["num_images"] == 3 and got["mIoU"] == pytest.approx(res.metrics["eval"]["mIoU"], abs=1e-6)
    assert main(["evaluate", "--checkpoint", str(res.output / "model.pt"), "--dataset", "ade20k_150",
                 "--root", str(tmp_path)]) == 1  # absent benchmark: a clear error, exit 1


def test_ovlab_predict_segments_a_real_image_with_free_form_classes(tiny_run, shared_data, tmp_path, capsys):
    from PIL import Image

    from ovlab.experiments.cli import main

    _, res = tiny_run
    image = shared_data / "samples" / "coco_panoptic" / "images" / "000000039769.png"
    assert main(["predict", "--checkpoint", str(res.output / "model.pt"), "--image", str(image),
                 "--classes", "cat,remote control,sofa|couch", "--out-dir", str(tmp_path), "--short-side", "96"]) == 0
    labels = np.array(Image.open(tmp_path / "000000039769_labels.png"))
    overlay = np.array(Image.open(tmp_path / "000000039769_overlay.png"))
    assert labels.shape == (480, 640) and set(np.unique(labels)) <= {0, 1, 2}
    assert overlay.shape[0] == 480 and overlay.shape[1] > 640 and overlay.shape[2] == 3  # image + legend panel
    assert "wrote" in capsys.readouterr().out
    assert main(["predict", "--checkpoint", str(res.output / "model.pt"), "--image", str(image),
                 "--classes", " , ", "--out-dir", str(tmp_path)]) == 1


@pytest.mark.slow
def test_ddp_under_torchrun_on_cpu(embedded_root, repo_root, tmp_path):
    """train.gpus = 2 makes `ovlab train` re-launch itself under torchrun (2 gloo processes on CPU)."""
    cmd = _write_params(repo_root, embedded_root, tmp_path, train={"gpus": 2, "iterations": 4})
    done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert m["world_size"] == 2 and m["iterations"] == 4
    assert done.stdout.count("ovlab train: 4 iterations") == 1  # only rank 0 reports
