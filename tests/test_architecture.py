"""The package's shape: the import-layering contracts of pyproject.toml hold (no import circle, no
import from a lower layer into a higher one) and ``ovlab/engine`` is the training loop only."""

from __future__ import annotations

import contextlib
import io
import os

from tests.conftest import REPO


def test_import_layers_and_no_circles():
    from importlinter.cli import lint_imports

    out = io.StringIO()
    cwd = os.getcwd()
    os.chdir(REPO)  # the contracts live in pyproject.toml
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            code = lint_imports(no_cache=True)
    finally:
        os.chdir(cwd)
    text = out.getvalue()
    assert code == 0, text[-4000:]
    assert "ovlab layers KEPT" in text and "no import circles between sibling modules KEPT" in text


def test_engine_is_the_loop_only():
    files = sorted((REPO / "ovlab" / "engine").glob("*.py"))
    assert {f.stem for f in files} <= {"__init__", "trainer", "optim", "checkpoint", "live", "distributed"}
    lines = sum(len(f.read_text().splitlines()) for f in files)
    assert lines <= 600, f"ovlab/engine has {lines} lines; the training loop only should stay under 600"
