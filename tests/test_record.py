"""A run record is split into metrics.json (numbers DVC compares) and info.json (text, provenance)."""

from __future__ import annotations

import json

import pytest

from tests.conftest import pipeline_stages

from ovlab.caveats import EMBEDDED_CAVEAT
from ovlab.config.record import info_path, merge_record, read_record, split_record, write_record

RECORD = {  # the shape the trainer and the grid runner write
    "stage": "tgkd", "profile": "embedded", "seed": 0, "fingerprint": "3f9a0c1d2e4b5a6f",
    "iterations": 200, "batch_size": 4, "world_size": 1, "train_seconds_this_run": 12.345,
    "final_loss": 3.25, "clip": {"model": "ovlab-tiny-rn", "pretrained": None, "checkpoint": None,
                                 "untrained": True, "seed": 0, "warning": "UNTRAINED CLIP: numbers mean nothing"},
    "train_vocabulary": 112, "loss_preset": "gkc", "synthetic": True, "caveat": EMBEDDED_CAVEAT,
    "cell": {"table": "table4", "cell": "td", "overrides": {"gkc": {"td": {"strategy": "random"}}}},
    "model": {"kind": "own", "name": "td", "path": "results/gkc/table4/td/model.pt"},
    "eval": {"dataset": "coco_133", "mIoU": 12.5, "seen_mIoU": None, "scan": {"cs_layers": [1, 2]}},
}


def test_split_puts_numbers_and_short_categories_in_metrics_and_the_rest_in_info():
    metrics, info = split_record(RECORD)
    assert metrics == {
        "stage": "tgkd", "profile": "embedded", "seed": 0, "iterations": 200, "batch_size": 4, "world_size": 1,
        "final_loss": 3.25, "clip": {"model": "ovlab-tiny-rn", "pretrained": None, "untrained": True, "seed": 0},
        "train_vocabulary": 112, "loss_preset": "gkc", "synthetic": True,
        "cell": {"table": "table4", "cell": "td"}, "model": {"kind": "own", "name": "td"},
        "eval": {"dataset": "coco_133", "mIoU": 12.5, "seen_mIoU": None},
    }
    assert info == {
        "fingerprint": "3f9a0c1d2e4b5a6f", "train_seconds_this_run": 12.345,
        "clip": {"checkpoint": None, "warning": "UNTRAINED CLIP: numbers mean nothing"}, "caveat": EMBEDDED_CAVEAT,
        "cell": {"overrides": {"gkc": {"td": {"strategy": "random"}}}},
        "model": {"path": "results/gkc/table4/td/model.pt"}, "eval": {"scan": {"cs_layers": [1, 2]}},
    }
    assert merge_record(metrics, info) == RECORD


def test_write_and_read_back(tmp_path):
    mp, ip = write_record(tmp_path / "run" / "metrics.json", RECORD)
    assert ip == tmp_path / "run" / "info.json" and info_path(tmp_path / "cost.json") == tmp_path / "cost.info.json"
    metrics = json.loads(mp.read_text())
    assert "caveat" not in metrics and "train_seconds_this_run" not in metrics and metrics["eval"]["mIoU"] == 12.5
    assert read_record(tmp_path / "run") == RECORD == read_record(mp)
    ip.unlink()  # a fresh clone: git has the metrics, the DVC cache the info
    assert read_record(mp)["eval"]["mIoU"] == 12.5 and read_record(tmp_path / "none") is None
    mp.write_text("{")
    with pytest.raises(ValueError, match="metrics.json: not valid JSON"):
        read_record(mp)


def test_metrics_file_is_byte_identical_across_runs_with_different_timings(tmp_path):
    write_record(tmp_path / "a" / "metrics.json", RECORD)
    write_record(tmp_path / "b" / "metrics.json", {**RECORD, "train_seconds_this_run": 99.0})
    assert (tmp_path / "a" / "metrics.json").read_bytes() == (tmp_path / "b" / "metrics.json").read_bytes()
    assert (tmp_path / "a" / "info.json").read_bytes() != (tmp_path / "b" / "info.json").read_bytes()


RECORD_STAGES = ("synonyms", "synonym_score", "sgiou", "tgkd_baseline", "gkc_table", "scan_models", "scan_table",
                 "video_table", "physical_table")
"""Stages whose metrics file is written by :func:`ovlab.config.record.write_record`."""


def test_metrics_declared_in_dvc_yaml_are_committed_and_info_files_are_outputs(repo_root):
    """Every stage metrics file of a record writer has its info.json declared as an output, and
    .gitignore re-includes the metrics files (so `dvc exp show` finds them in HEAD and experiments)."""
    import subprocess

    stages = pipeline_stages(repo_root)
    for name, st in stages.items():
        for entry in st.get("metrics") or []:
            (path, opts), = entry.items()
            assert opts.get("cache") is False, f"{name}: {path} must be `cache: false` (committed to git)"
            if name.startswith(RECORD_STAGES) and path.endswith("/metrics.json") and "dvclive" not in path:
                outs = [next(iter(o)) if isinstance(o, dict) else o for o in st.get("outs") or []]
                assert path[: -len("metrics.json")] + "info.json" in outs, f"{name}: no info.json output beside {path}"
    check = subprocess.run(["git", "check-ignore", "--no-index", "-v", "results/gkc/table4/td/metrics.json",
                            "results/gkc/table4/td/info.json", "results/tgkd/baseline/dvclive/plots/metrics/train/loss.tsv",
                            "results/gkc/table4/td/dvclive/metrics.json", "results/gkc/cost.json"],
                           cwd=repo_root, capture_output=True, text=True)
    ignored = {line.split("\t")[-1] for line in check.stdout.splitlines() if not line.split("\t")[0].endswith(":!")
               and "\t" in line and not line.split(":")[2].startswith("!")}
    assert ignored == {"results/gkc/table4/td/info.json", "results/gkc/table4/td/dvclive/metrics.json"}, check.stdout


def test_every_declared_metrics_file_is_committed(repo_root):
    """No `metrics:` file of dvc.yaml is git-ignored (else `dvc exp show` shows `!` for HEAD)."""
    import re
    import subprocess

    from ovlab.config import read_yaml

    params = read_yaml(repo_root / "params.yaml")

    def value(key):
        node = params
        for k in key.split("."):
            node = node[k]
        return node

    paths = []
    for st in pipeline_stages(repo_root).values():
        for entry in st.get("metrics") or []:
            path = next(iter(entry))
            path = re.sub(r"\$\{item\.\w+\}", "cell", path)
            paths.append(re.sub(r"\$\{([\w.]+)\}", lambda m: str(value(m.group(1))), path))
    check = subprocess.run(["git", "check-ignore", "--no-index", "-v", *paths], cwd=repo_root, capture_output=True, text=True)
    ignored = [ln.split("\t")[-1] for ln in check.stdout.splitlines() if not ln.split(":")[2].startswith("!")]
    assert ignored == [], f"git-ignored metrics files (re-include them in .gitignore): {ignored}"
