"""The notebook runner: injects the stage params, writes reports atomically, names a failing cell."""

from __future__ import annotations

import os
import json
import shutil

import nbformat
import pytest

from ovlab.run import NotebookFailed, main, run_notebook


def _notebook(path, *cells):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell('section_name = "synonyms"\nbase = None\nsection = None\nroot = None')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params] + [nbformat.v4.new_code_cell(c) for c in cells]
    nbformat.write(nb, path)
    return path


@pytest.fixture()
def project(repo_root, tmp_path):
    shutil.copy(repo_root / "params.yaml", tmp_path / "params.yaml")
    return tmp_path


@pytest.mark.slow
def test_injects_params_and_environment(project, capfd, monkeypatch):
    monkeypatch.setenv("OVLAB_STAGE_USAGE", str(project / "usage.jsonl"))
    nb = _notebook(
        project / "probe.ipynb",
        "import json, os\n"
        "json.dump({'max_words': section['filters']['max_words'], 'seed': base['seed'], 'root': root,\n"
        "           'cwd': os.getcwd(), 'hub_offline': os.environ.get('HF_HUB_OFFLINE'),\n"
        "           'hashseed': os.environ.get('PYTHONHASHSEED')}, open('probe.json', 'w'))",
    )
    out = run_notebook(nb, "synonyms", params_file=project / "params.yaml", progress=False)
    assert out == project / "reports" / "probe.ipynb" and out.with_suffix(".html").is_file()
    probe = json.loads((project / "probe.json").read_text())
    assert probe == {"max_words": 3, "seed": 0, "root": str(project), "cwd": str(project),
                     "hub_offline": "1", "hashseed": "0"}
    executed = nbformat.read(out, as_version=4)
    assert any("injected-parameters" in c.metadata.get("tags", []) for c in executed.cells)
    # the kernel runs over local IPC sockets: no per-stage "running over TCP without encryption" warning
    assert "without encryption" not in capfd.readouterr().err
    # ... forked from a warm interpreter (ovlab.stage), with the stage's environment all the same
    served = [json.loads(x) for x in (project / "usage.jsonl").read_text().splitlines()]
    assert [u["argv"][1] for u in served] == ["ipykernel_launcher"]
    mask = os.umask(0)
    os.umask(mask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~mask  # not mkstemp's private 0o600


@pytest.mark.slow
def test_failing_cell_is_named_and_no_report_is_written(project, capsys):
    nb = _notebook(project / "boom.ipynb", "x = 1", "y = 1 / 0  # the bad cell", "z = 3")
    with pytest.raises(NotebookFailed) as err:
        run_notebook(nb, "synonyms", params_file=project / "params.yaml", progress=False)
    assert err.value.ename == "ZeroDivisionError" and err.value.cell_index == 2
    assert "y = 1 / 0" in str(err.value)
    assert not (project / "reports" / "boom.ipynb").exists()
    assert (project / "reports" / "boom.failed.ipynb").is_file()
    assert not list((project / "reports").glob(".*.ipynb"))  # no temporary file left behind
    code = main([str(nb), "--section", "synonyms", "--params", str(project / "params.yaml"), "--no-html"])
    assert code == 1
    assert "ZeroDivisionError" in capsys.readouterr().err


def test_bad_section_and_params_fail_before_running(project):
    nb = _notebook(project / "ok.ipynb", "pass")
    assert main([str(nb), "--section", "nope", "--params", str(project / "params.yaml")]) == 1
    (project / "params.yaml").write_text((project / "params.yaml").read_text().replace("\nsynonyms:\n", "\nsynonyms:\n  filters: {max_word: 3}\n"))
    from ovlab.config import ParamsError

    with pytest.raises(ParamsError, match="synonyms.filters.max_word"):
        run_notebook(nb, "synonyms", params_file=project / "params.yaml")


def test_notebook_without_parameters_cell_is_refused(project):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("pass")]
    nbformat.write(nb, project / "bare.ipynb")
    with pytest.raises(ValueError, match="parameters"):
        run_notebook(project / "bare.ipynb", "synonyms", params_file=project / "params.yaml")


@pytest.mark.slow
def test_kill_9_during_a_notebook_stage_then_rerun(project):
    """A stage killed mid-notebook leaves the previous report untouched (the executed copy is written
    to a hidden temporary and renamed at the end); the re-run removes that orphan and writes the report."""
    import signal
    import subprocess
    import sys
    import time

    nb = _notebook(project / "slow.ipynb", "import pathlib, time\npathlib.Path('started').write_text('x')\ntime.sleep(120)")
    reports = project / "reports"
    reports.mkdir()
    (reports / "slow.ipynb").write_text("previous report")
    proc = subprocess.Popen([sys.executable, "-m", "ovlab.run", str(nb), "--section", "synonyms", "--params",
                             str(project / "params.yaml"), "--no-html"], cwd=project, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not (project / "started").exists():
            assert proc.poll() is None and time.monotonic() < deadline, "the notebook never started"
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert (reports / "slow.ipynb").read_text() == "previous report"
    orphans = list(reports.glob(".slow.*.ipynb"))
    assert orphans  # what the kill left
    (project / "slow.ipynb").unlink()
    nb = _notebook(project / "slow.ipynb", "print('done')")
    run_notebook(nb, "synonyms", params_file=project / "params.yaml", progress=False, html=False)
    assert not any(o.exists() for o in orphans)
    assert "done" in (reports / "slow.ipynb").read_text()
