"""Experiments compare: `dvc exp run -S` twice on a cheap stage, then `dvc exp show` lists HEAD and both
experiments with numbers (metrics are committed small files, text and provenance live in info.json).

Runs in a temporary git + DVC repository made from this repo's .gitignore, params.yaml and the
`synonyms` stage of dvc.yaml (its params, outs, metrics and plots declarations as they are; its command
is the stage function the notebook calls, to keep the test short). Never runs DVC in the checkout.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
import yaml

pytestmark = pytest.mark.slow

STAGE_SCRIPT = """\
from ovlab.config import load_params
from ovlab.config.resolved import write_resolved
from ovlab.experiments.synonyms import run_synonyms

stage = load_params("params.yaml").stage("synonyms")
write_resolved("results/synonyms/params.yaml", stage)  # as `ovlab run` does
run_synonyms(stage)
"""


def _run(cmd, cwd, **kw):
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, **kw)
    assert done.returncode == 0, f"{cmd}: {done.stdout[-1500:]}\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.fixture
def exp_repo(repo_root, tmp_path, wordnet):
    repo = tmp_path / "repo"
    repo.mkdir()
    for name in (".gitignore", "params.yaml"):
        shutil.copy(repo_root / name, repo / name)
    shutil.copytree(repo_root / "profiles", repo / "profiles")
    params = (repo / "params.yaml").read_text()
    curation = "ovlab/vocab/curation/coco_panoptic_133.yaml"
    assert params.count(f"overrides: {curation}") == 1
    (repo / "params.yaml").write_text(params.replace(f"overrides: {curation}", "overrides: curation.yaml"))
    shutil.copy(repo_root / curation, repo / "curation.yaml")
    (repo / "stage.py").write_text(STAGE_SCRIPT)
    stage = yaml.safe_load((repo_root / "dvc.yaml").read_text())["stages"]["synonyms"]
    stage["cmd"] = f"{sys.executable} stage.py"
    stage["deps"] = ["stage.py", "curation.yaml"]
    stage["outs"] = [o for o in stage["outs"] if not str(next(iter(o))).startswith("reports/")]
    (repo / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"synonyms": stage}}, sort_keys=False))
    _run(["git", "init", "-q"], repo)
    _run(["dvc", "init", "-q"], repo)
    _run(["git", "add", "-A"], repo)
    _run(["git", "commit", "-qm", "init"], repo)
    return repo


def _metrics(rev: dict) -> dict:
    files = (rev.get("data") or {}).get("metrics") or {}
    return (files.get("results/synonyms/metrics.json") or {}).get("data") or {}


def test_two_experiments_compare_with_numbers(exp_repo):
    repo = exp_repo
    _run(["dvc", "repro", "-q", "synonyms"], repo)
    assert "caveat" not in (repo / "results/synonyms/metrics.json").read_text()
    assert "wordnet_source" in json.loads((repo / "results/synonyms/info.json").read_text())
    # the metrics file is not git-ignored (git add would refuse it), the info file is
    _run(["git", "add", "dvc.lock", "results/synonyms/metrics.json"], repo)
    assert subprocess.run(["git", "check-ignore", "-q", "results/synonyms/info.json"], cwd=repo).returncode == 0
    _run(["git", "commit", "-qm", "baseline"], repo)
    before = (repo / "params.yaml").read_text()

    # `++`: the key is not in params.yaml yet (it is a schema default); then it is, and plain -S works
    _run(["dvc", "exp", "run", "-q", "-n", "long", "-S", "++synonyms.filters.max_words=4", "synonyms"], repo)
    _run(["dvc", "exp", "run", "-q", "-n", "short", "-S", "synonyms.filters.max_words=1", "synonyms"], repo)

    after = (repo / "params.yaml").read_text()  # DVC rewrote it: only the new key was added
    assert [ln for ln in after.splitlines() if ln not in before.splitlines()] == ["  filters:", "    max_words: 1"]
    assert len(after.splitlines()) == len(before.splitlines()) + 2

    rows = json.loads(_run(["dvc", "exp", "show", "--json"], repo))
    head = next(r for r in rows if r.get("rev") not in (None, "workspace"))
    exps = {x.get("name"): x for r in rows for e in r.get("experiments") or [] for x in e["revs"]}
    assert {"short", "long"} <= set(exps)
    values = {name: _metrics(rev) for name, rev in [("HEAD", head)] + [(n, exps[n]) for n in ("short", "long")]}
    for name, m in values.items():
        assert m and all(isinstance(v, (int, float)) for v in m.values()), (name, m)
    assert values["short"]["names_total"] < values["HEAD"]["names_total"]
    assert values["short"]["removed_too_long"] > values["long"]["removed_too_long"]

    diff = json.loads(_run(["dvc", "metrics", "diff", "HEAD", "--json"], repo))  # the workspace holds `short`
    changed = diff["results/synonyms/metrics.json"]
    assert changed["names_total"]["new"] == values["short"]["names_total"]
    assert all(isinstance(d["old"], (int, float)) and isinstance(d["new"], (int, float)) for d in changed.values())
