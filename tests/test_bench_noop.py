"""``ovlab bench noop``: the pipeline's shape from its lock files and the guard that a timed run was a no-op."""

from __future__ import annotations

import sys

import pytest
import yaml

from ovlab.experiments.bench_noop import pipeline_shape, timed


def test_pipeline_shape_counts_what_dvc_walks(tmp_path):
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    (tmp_path / "pipelines" / "t").mkdir(parents=True)
    (tmp_path / "pipelines" / "t" / "dvc.yaml").write_text("stages: {}\n")
    root_lock = {"schema": "2.0", "stages": {
        "a": {"cmd": "x", "deps": [{"path": "data", "md5": "d1.dir", "nfiles": 172}, {"path": "f", "md5": "m"}],
              "params": {"params.yaml": {"base": {"seed": 0}, "a.lr": 0.1}},
              "outs": [{"path": "o1", "md5": "m"}, {"path": "o2", "md5": "e.dir", "nfiles": 3}]}}}
    sub_lock = {"schema": "2.0", "stages": {
        "t@c1": {"cmd": "y", "deps": [{"path": "data", "md5": "d1.dir", "nfiles": 172}],
                 "params": {"params.yaml": {"t.c1": {"k": 1}}}, "outs": [{"path": "o3", "md5": "m"}]},
        "t@c2": {"cmd": "z", "outs": [{"path": "o4", "md5": "m"}]}}}
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump(root_lock))
    (tmp_path / "pipelines" / "t" / "dvc.lock").write_text(yaml.safe_dump(sub_lock))
    assert pipeline_shape(tmp_path) == {
        "lock_files": 2, "stages": 3, "outs": 4, "out_dirs": 1, "deps": 3, "dep_dirs": 2,
        "dir_entries_walked": 172 + 3 + 172,  # the data folder once per stage that lists it
        "stages_with_params": 2, "params_keys_looked_up": 3}


def test_timed_reports_median_and_spread(tmp_path):
    r = timed([sys.executable, "-c", "pass"], tmp_path, repeats=3)
    assert len(r["runs_s"]) == 3
    assert r["min_s"] <= r["median_s"] <= r["max_s"]
    assert r["median_s"] == sorted(r["runs_s"])[1]


def test_timed_refuses_a_run_that_was_not_a_no_op(tmp_path):
    with pytest.raises(RuntimeError, match="not a no-op"):
        timed([sys.executable, "-c", "print(\"Running stage 'x':\")"], tmp_path, 1, forbid="Running stage")
    with pytest.raises(RuntimeError, match="exited 3"):
        timed([sys.executable, "-c", "import sys; sys.exit(3)"], tmp_path, 1)
