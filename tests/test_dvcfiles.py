"""The pipeline's files (ovlab.dvcfiles): one dvc.yaml per table under pipelines/, addressed by file,
named by bare stage name; every lock stays small (DVC rewrites a stage's whole lock after each stage)."""

from __future__ import annotations

import pytest

from ovlab.dvcfiles import (address, copy_pipeline, dvc_files, lock_files, locked_stages, stage_definitions,
                            stage_name)
from tests.conftest import REPO


def _project(tmp_path):
    (tmp_path / "pipelines" / "b_t").mkdir(parents=True)
    (tmp_path / "pipelines" / "a_t").mkdir(parents=True)
    (tmp_path / "dvc.yaml").write_text("stages:\n  r: {cmd: 'true'}\n")
    (tmp_path / "pipelines" / "b_t" / "dvc.yaml").write_text(
        "vars: [../../params.yaml]\nstages:\n  b_t:\n    wdir: ../..\n    matrix: {cell: [x, y]}\n    cmd: 'true'\n")
    (tmp_path / "pipelines" / "a_t" / "dvc.yaml").write_text("stages:\n  a_t: {wdir: ../.., cmd: 'true'}\n")
    (tmp_path / "pipelines" / "a_t" / "dvc.lock").write_text("schema: '2.0'\nstages:\n  a_t: {cmd: 'true'}\n")
    (tmp_path / "dvc.lock").write_text("schema: '2.0'\nstages:\n  r: {cmd: 'true'}\n")
    return tmp_path


def test_files_names_and_addresses(tmp_path):
    root = _project(tmp_path)
    assert [f.relative_to(root).as_posix() for f in dvc_files(root)] == [
        "dvc.yaml", "pipelines/a_t/dvc.yaml", "pipelines/b_t/dvc.yaml"]
    assert [f.relative_to(root).as_posix() for f in lock_files(root)] == ["dvc.lock", "pipelines/a_t/dvc.lock"]
    assert list(stage_definitions(root)) == ["r", "a_t", "b_t"]
    assert locked_stages(root) == {"r": {"cmd": "true"}, "a_t": {"cmd": "true"}}
    assert address("r", root) == "r"
    assert address("b_t@y", root) == "pipelines/b_t/dvc.yaml:b_t@y"
    assert address("a_t", root) == "pipelines/a_t/dvc.yaml:a_t"
    assert stage_name("pipelines/b_t/dvc.yaml:b_t@y") == "b_t@y" and stage_name("r") == "r"
    with pytest.raises(KeyError, match="c_t: no such stage"):
        address("c_t", root)


def test_a_stage_name_defined_twice_is_an_error(tmp_path):
    root = _project(tmp_path)
    (root / "pipelines" / "c").mkdir()
    (root / "pipelines" / "c" / "dvc.yaml").write_text("stages:\n  r: {cmd: 'true'}\n")
    with pytest.raises(ValueError, match="stage 'r' is defined in both"):
        stage_definitions(root)


def test_copy_pipeline_copies_the_files_not_the_locks(tmp_path):
    root = _project(tmp_path / "src")
    copy_pipeline(root, tmp_path / "dst")
    assert sorted(p.relative_to(tmp_path / "dst").as_posix() for p in (tmp_path / "dst").rglob("*") if p.is_file()) == [
        "dvc.yaml", "pipelines/a_t/dvc.yaml", "pipelines/b_t/dvc.yaml"]


def test_the_repository_keeps_every_lock_small():
    """One table per file: no table's dvc.lock past 1,000 lines, the root's (the notebooks, the report and
    the stages outside any table) past 2,000 (DVC parses and rewrites a stage's whole lock after every
    stage; the single lock of 89 stages had 7,600 lines, ~4 s a stage)."""
    locks = lock_files(REPO)
    assert len(locks) == len(dvc_files(REPO)) > 10
    sizes = {lock.relative_to(REPO).as_posix(): len(lock.read_text().splitlines()) for lock in locks}
    assert sizes.pop("dvc.lock") <= 2000
    assert max(sizes.values()) <= 1000, sizes
    for f, st in stage_definitions(REPO).values():
        if f != REPO / "dvc.yaml":  # a sub-pipeline runs at the root, as the root file's stages do
            assert st["wdir"] == "../..", f


def test_a_plain_dvc_repro_reaches_every_stage():
    """`dvc repro` without a target reproduces the root dvc.yaml's stages and what they depend on, not
    every dvc.yaml (DVC `dvc/repo/reproduce.py`: the default target is the project file): every stage of
    a sub-pipeline must be upstream of a root stage, or a fresh clone's `dvc repro` would skip it."""
    from dvc.repo import Repo
    from dvc.repo.reproduce import collect_stages, get_active_graph, plan_repro

    with Repo(str(REPO)) as repo:
        graph = get_active_graph(repo.index.graph)
        planned = {s.addressing for s in plan_repro(graph, collect_stages(repo, ["dvc.yaml"]))}
        everything = {s.addressing for s in graph}
    assert len(everything) > 80
    assert everything - planned == set()
