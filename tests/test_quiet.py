"""Quiet by default: each ovlab warning once per process, in one channel, without a source line
(``--verbose``: every time, with it); open_clip's own copy of the untrained-CLIP warning dropped; a
failure is one error line (rank 0 only under torchrun), no traceback."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

LOAD_TWICE = (
    "import sys\n"
    "from ovlab.caveats import configure_output\n"
    "configure_output('--verbose' in sys.argv)\n"
    "from ovlab.clip import load_clip\n"
    "load_clip('ovlab-tiny-rn', pretrained=None)\n"
    "load_clip('ovlab-tiny-rn', pretrained=None)\n"
)


def _run(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    return subprocess.run([sys.executable, "-c", LOAD_TWICE, *args], capture_output=True, text=True, env=env,
                          timeout=300)


@pytest.fixture(scope="module")
def quiet_and_verbose():
    return _run(), _run("--verbose")


@pytest.mark.slow  # fresh processes: ~20 s each on the shared CPU
def test_the_untrained_clip_warning_is_printed_once(quiet_and_verbose):
    quiet, _ = quiet_and_verbose
    assert quiet.returncode == 0, quiet.stderr
    lines = [line for line in quiet.stderr.splitlines() if line.strip()]
    assert lines == [line for line in lines if line.startswith("ovlab: warning: ovlab-tiny-rn: UNTRAINED CLIP")]
    assert len(lines) == 1
    assert "No pretrained weights loaded" not in quiet.stderr and "WARNING:root" not in quiet.stderr


@pytest.mark.slow  # fresh processes: ~20 s each on the shared CPU
def test_verbose_shows_every_occurrence_with_its_source(quiet_and_verbose):
    _, verbose = quiet_and_verbose
    assert verbose.returncode == 0, verbose.stderr
    assert verbose.stderr.count("UNTRAINED CLIP") == 2 and "OvlabWarning" in verbose.stderr


ONCE_ACROSS_CATCH_WARNINGS = (
    "import warnings\n"
    "from ovlab.caveats import configure_output, warn_once\n"
    "configure_output()\n"
    "warn_once('first'); warn_once('first')\n"
    "with warnings.catch_warnings():\n"  # clears Python's own 'once' registry
    "    pass\n"
    "warn_once('first'); warn_once('second')\n"
    "with warnings.catch_warnings(record=True) as seen:\n"  # what pytest.warns / recwarn do
    "    warnings.simplefilter('always')\n"
    "    warn_once('first'); warn_once('first')\n"
    "print(len(seen))\n"
)


def test_a_warning_stays_once_per_process_after_a_catch_warnings_block():
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    res = subprocess.run([sys.executable, "-c", ONCE_ACROSS_CATCH_WARNINGS], capture_output=True, text=True,
                         env=env, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stderr.splitlines() == ["ovlab: warning: first", "ovlab: warning: second"]
    assert res.stdout.strip() == "2"  # under "always" every occurrence is still recorded


def test_a_failure_is_one_error_line_on_rank_0_only(monkeypatch, capsys):
    from ovlab.experiments.train_cli import _error

    monkeypatch.setenv("RANK", "1")
    assert _error("train", ValueError("boom")) == 1
    assert capsys.readouterr().err == ""
    monkeypatch.setenv("RANK", "0")
    assert _error("train", KeyError("unknown dataset 'x'")) == 1
    assert capsys.readouterr().err == "ovlab train: error: unknown dataset 'x'\n"


@pytest.mark.slow  # fresh processes: ~20 s each on the shared CPU
def test_a_training_failure_in_a_fresh_process_prints_one_line_and_no_traceback(tmp_path):
    """``ovlab train --section synonyms`` (not a training section): the whole stderr is one line."""
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    done = subprocess.run([sys.executable, "-m", "ovlab", "train", "--section", "synonyms", "--params",
                           os.path.join(repo, "params.yaml")], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("ovlab train: error: --section synonyms")
