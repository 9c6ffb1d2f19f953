"""The notebook runner: ``python -m ovlab.run NOTEBOOK --section NAME`` (also ``ovlab run``).

It loads the params file the caller names (with any ``-S key=value`` overrides, :mod:`ovlab.config.overrides`),
validates ``base`` and the stage section, sets the
stage environment (seed, offline flags, NLTK data path), executes the notebook with papermill on
the ``python3`` kernel with ``base``/``section``/``root`` injected into the cell tagged
``parameters``, and writes the executed notebook and its HTML to the reports folder, each
atomically. When a cell raises, it exits with status 1 naming the cell; the executed notebook is
kept as ``<name>.failed.ipynb`` for inspection and no report is written under the normal name.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from ovlab.atomic import _umask, write_text
from ovlab.config import ParamsError, load_params
from ovlab.config.overrides import add_override_argument
from ovlab.environment import stage_environment


class NotebookFailed(RuntimeError):
    """A notebook cell raised; the message names the notebook and the cell."""

    def __init__(self, notebook: str, cell_index: int | None, exec_count: int | None, ename: str, evalue: str,
                 first_line: str = ""):
        self.notebook, self.cell_index, self.exec_count = notebook, cell_index, exec_count
        self.ename, self.evalue = ename, evalue
        where = f"cell {cell_index} (0-based, in the source notebook)" if cell_index is not None else "a cell"
        if exec_count is not None:
            where += f" (In [{exec_count}])"
        if first_line:
            where += f" `{first_line}`"
        super().__init__(f"{notebook}: {where} raised {ename}: {evalue}")



# The kernel talks to papermill over local Unix sockets (IPC), not loopback TCP: same behaviour, and no
# "Kernel is running over TCP without encryption" warning in every notebook stage's log (ipykernel's
# kernelapp.init_sockets). A traitlets config for nbclient's kernel manager (jupyter_client's transport).
_KERNEL_CONFIG = {"KernelManager": {"transport": "ipc"}}

def _warm_kernel_manager():
    """The kernel manager class for papermill: jupyter_client's, with the kernel started through
    :mod:`ovlab.stage` (forked from a warm interpreter: torch, open_clip and ipykernel imported once
    for all notebook stages of a run) unless ``OVLAB_WARM=0``. Only the ``python -m ipykernel_launcher``
    command of the standard Python kernel is wrapped; any other kernel starts as its spec says."""
    from jupyter_client import AsyncKernelManager

    class WarmKernelManager(AsyncKernelManager):
        def format_kernel_cmd(self, extra_arguments=None):
            cmd = super().format_kernel_cmd(extra_arguments)
            if os.environ.get("OVLAB_WARM", "1") != "0" and cmd[1:3] == ["-m", "ipykernel_launcher"]:
                cmd = [cmd[0], "-m", "ovlab.stage", *cmd[2:]]
            return cmd

    return WarmKernelManager


def _parameters_index(nb) -> int:
    """Index of the cell tagged ``parameters`` (-1 when there is none)."""
    return next((i for i, c in enumerate(nb.cells) if "parameters" in c.get("metadata", {}).get("tags", [])), -1)


def _has_parameters_cell(nb) -> bool:
    return _parameters_index(nb) >= 0


def run_notebook(
    notebook: str | os.PathLike,
    section: str,
    *,
    params_file: str | os.PathLike = "params.yaml",
    reports_dir: str | os.PathLike | None = None,
    kernel: str = "python3",
    html: bool = True,
    progress: bool = True,
    extra_sections: tuple[str, ...] = (),
    overrides: tuple[str, ...] = (),
) -> Path:
    """Execute ``notebook`` for the stage ``section`` and write its report.

    Args:
        notebook: the ``.ipynb`` to run (committed without outputs, with a ``parameters`` cell).
        section: the params section the stage uses (e.g. ``synonyms``).
        params_file: the params file (``params.yaml``); its folder is the working directory and
            the root of relative paths.
        reports_dir: where the executed notebook goes (default: ``base.paths.reports``).
        extra_sections: further sections the notebook reads (e.g. ``synonyms`` beside ``synonym_score``),
            injected as ``extra = {name: values}``.
        overrides: ``KEY=VALUE`` strings set over the params file for this run (``-S``,
            :mod:`ovlab.config.overrides`); the notebook receives the overridden values.

    Returns:
        Path of the executed notebook (``reports/<name>.ipynb``); the HTML lies beside it. The
        section's fully resolved parameters go to ``<base.paths.results>/<section>/params.yaml``.

    Raises:
        ParamsError: the params file or the section is invalid.
        FileNotFoundError: the notebook is missing.
        ValueError: the notebook has no cell tagged ``parameters``.
        NotebookFailed: a cell raised.
    """
    import nbformat
    import papermill as pm

    nb_path = Path(notebook).resolve()
    if not nb_path.is_file():
        raise FileNotFoundError(f"{notebook}: notebook not found")
    params = load_params(params_file, overrides)
    stage = params.stage(section)
    nb = nbformat.read(nb_path, as_version=4)
    if not _has_parameters_cell(nb):
        raise ValueError(f"{notebook}: no cell tagged 'parameters' (papermill injects the stage params there)")
    out_dir = Path(reports_dir) if reports_dir is not None else stage.path(stage.base.paths.reports)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / nb_path.name
    failed = out_dir / f"{nb_path.stem}.failed.ipynb"

    from ovlab.config.resolved import write_resolved

    write_resolved(stage.path(stage.base.paths.results) / section / "params.yaml", stage)
    env = stage_environment(stage.base.seed, cache_dir=str(stage.path(stage.base.paths.cache)))
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    for orphan in out_dir.glob(f".{nb_path.stem}.*.ipynb"):  # left by a run killed mid-notebook (kill -9)
        orphan.unlink(missing_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{nb_path.stem}.", suffix=".ipynb", dir=out_dir)
    os.fchmod(fd, 0o666 & ~_umask())  # an ordinary file's mode, not mkstemp's private 0o600
    os.close(fd)
    try:
        injected = {"section_name": section, **stage.as_dicts()}
        if extra_sections:
            injected["extra"] = {n: params.section(n).model_dump(mode="json") for n in extra_sections}
        from traitlets.config import Config

        try:
            pm.execute_notebook(
                str(nb_path), tmp, parameters=injected, kernel_name=kernel, cwd=str(stage.root),
                progress_bar=progress, report_mode=False, config=Config(_KERNEL_CONFIG),
                kernel_manager_class=_warm_kernel_manager(),
            )
        except pm.PapermillExecutionError as exc:
            os.replace(tmp, failed)
            first = ""
            try:
                first = next((ln for ln in exc.source.splitlines() if ln.strip()), "")[:80]
            except Exception:  # pragma: no cover - defensive
                pass
            # papermill counts the injected-parameters cell it inserted after ours: map back to the source.
            index = exc.cell_index
            if index is not None and index > _parameters_index(nb):
                index -= 1
            raise NotebookFailed(str(notebook), index, exc.exec_count, exc.ename, exc.evalue, first) from None
        os.replace(tmp, target)
        if failed.exists():
            failed.unlink()
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    if html:
        from nbconvert import HTMLExporter

        body, _ = HTMLExporter().from_filename(str(target))
        write_text(target.with_suffix(".html"), body)
    return target


def add_parser(subparsers) -> None:
    """Register ``ovlab run``."""
    p = subparsers.add_parser("run", help="execute a stage notebook with papermill", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    _arguments(p)
    p.set_defaults(func=_main)


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("notebook", help="path of the .ipynb")
    p.add_argument("--section", required=True, help="params section of the stage (e.g. synonyms)")
    p.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    add_override_argument(p)
    p.add_argument("--extra-section", action="append", default=[], metavar="NAME",
                   help="another params section the notebook reads (repeatable); injected as `extra`")
    p.add_argument("--reports-dir", default=None, help="output folder (default: base.paths.reports)")
    p.add_argument("--kernel", default="python3")
    p.add_argument("--no-html", action="store_true", help="skip the HTML export")


def _main(args) -> int:
    try:
        out = run_notebook(args.notebook, args.section, params_file=args.params, reports_dir=args.reports_dir,
                           kernel=args.kernel, html=not args.no_html, extra_sections=tuple(args.extra_section),
                           overrides=tuple(args.overrides))
    except (ParamsError, NotebookFailed, FileNotFoundError, ValueError) as exc:
        print(f"ovlab run: error: {exc}", file=sys.stderr)
        return 1
    print(f"ovlab run: wrote {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m ovlab.run``."""
    p = argparse.ArgumentParser(prog="python -m ovlab.run", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    _arguments(p)
    return _main(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
