"""Notebooks are committed clean and thin, and each one is a DVC stage."""

from __future__ import annotations

import nbformat
import pytest

from tests.conftest import REPO, pipeline_stages

NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_without_outputs_with_parameters_cell(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code), "strip the outputs"
    tagged = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    src = tagged[0].source
    for name in ("section_name", "base = None", "section = None", "root = None"):
        assert name in src
    assert not any("\ndef " in "\n" + c.source or "\nclass " in "\n" + c.source for c in code), \
        "logic belongs in ovlab/, notebooks only call it"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_notebook_is_a_stage(path):
    stages = pipeline_stages(REPO)
    cmds = [s["cmd"] if isinstance(s, dict) and "cmd" in s else s.get("do", {}).get("cmd", "")
            for s in stages.values()]
    assert any(f"notebooks/{path.name}" in c for c in cmds)
