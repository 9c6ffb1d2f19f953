"""The project's DVC pipeline files: the root ``dvc.yaml`` and one ``pipelines/<table>/dvc.yaml`` per table.

Why several files: DVC rewrites the whole ``dvc.lock`` of a stage's ``dvc.yaml`` after every stage it
runs (a round-trip YAML parse and dump, DVC ``dvc/dvcfile.py`` ``Lockfile.dump_stages``). With the 89
stages of the embedded pipeline in one file that lock had 7,600 lines and cost ~4 s a stage; one file
per table keeps each lock at a few hundred lines. A plain ``dvc repro`` reproduces the root file's
stages and what they depend on (DVC ``dvc/repo/reproduce.py``: the default target is the project file),
so the root holds the stages outside any table, the notebooks and the report, and every table cell is
upstream of one of them (``tests/test_dvcfiles.py`` checks it against DVC's plan). A stage outside the
root file is addressed by its file, ``pipelines/gkc_table4/dvc.yaml:gkc_table4@td``. Stage *names* stay unique across the files, so tools
that speak of stages (``ovlab cluster``, ``ovlab bench pipeline``, the tests) use the bare name
(``gkc_table4@td``) and this module turns it into DVC's address and back.

Each sub-pipeline file loads the root ``params.yaml`` as its ``vars`` and runs its stages at the root
(``wdir: ../..``), so commands, paths and ``params`` keys read exactly as in the root file.

Not a paper component: pipeline plumbing (issue #19).
"""

from __future__ import annotations

import shutil
from pathlib import Path

ROOT_FILE = "dvc.yaml"
"""The root pipeline file (its stages are addressed by bare name)."""

SUB_FILES = "pipelines/*/dvc.yaml"
"""The glob, relative to the repository root, of the sub-pipeline files."""


def dvc_files(root: str | Path = ".") -> list[Path]:
    """The pipeline files of the project at ``root``: the root ``dvc.yaml`` first (when present), then
    ``pipelines/*/dvc.yaml`` in name order."""
    root = Path(root)
    first = [root / ROOT_FILE] if (root / ROOT_FILE).is_file() else []
    return first + sorted(root.glob(SUB_FILES))


def lock_files(root: str | Path = ".") -> list[Path]:
    """The ``dvc.lock`` beside each pipeline file of :func:`dvc_files` that has one."""
    return [f.with_name("dvc.lock") for f in dvc_files(root) if f.with_name("dvc.lock").is_file()]


def stage_definitions(root: str | Path = ".") -> dict[str, tuple[Path, dict]]:
    """Every stage as written (``matrix``/``foreach`` not expanded, ``${...}`` left as is, YAML anchors
    resolved): ``{name: (its dvc.yaml, its definition)}``, in file order.

    Raises:
        ValueError: two files define a stage of the same name (the bare names must stay unique).
    """
    import yaml

    out: dict[str, tuple[Path, dict]] = {}
    for f in dvc_files(root):
        for name, stage in ((yaml.safe_load(f.read_text(encoding="utf-8")) or {}).get("stages") or {}).items():
            if name in out:
                raise ValueError(f"stage {name!r} is defined in both {out[name][0]} and {f}")
            out[name] = (f, stage)
    return out


def locked_stages(root: str | Path = ".") -> dict[str, dict]:
    """The entries of every ``dvc.lock`` of the project by stage name (``gkc_table4@td``: matrix cells
    expanded, as DVC writes them)."""
    import yaml

    out: dict[str, dict] = {}
    for lock in lock_files(root):
        out.update((yaml.safe_load(lock.read_text(encoding="utf-8")) or {}).get("stages") or {})
    return out


def stage_name(address: str) -> str:
    """The bare stage name of a DVC address: ``pipelines/gkc_table4/dvc.yaml:gkc_table4@td`` →
    ``gkc_table4@td`` (a bare name is returned as is)."""
    return address.rpartition(":")[2] if ".yaml:" in address else address


def address(name: str, root: str | Path = ".") -> str:
    """DVC's address of the stage (or matrix cell) ``name`` of the project at ``root``: the bare name
    for the root file's stages, ``<file>:<name>`` for the others.

    Raises:
        KeyError: no pipeline file defines the stage (the message lists the stage groups).
    """
    root = Path(root)
    defs = stage_definitions(root)
    group = name.split("@", 1)[0]
    if group not in defs:
        raise KeyError(f"{name}: no such stage in {ROOT_FILE} or {SUB_FILES} (stages: {', '.join(defs)})")
    f = defs[group][0]
    return name if f == root / ROOT_FILE else f"{f.relative_to(root).as_posix()}:{name}"


def copy_pipeline(src: str | Path, dst: str | Path) -> None:
    """Copy the pipeline files (the root ``dvc.yaml`` and every ``pipelines/*/dvc.yaml``, not their
    locks) of the project at ``src`` into the project folder ``dst``."""
    src, dst = Path(src), Path(dst)
    for f in dvc_files(src):
        target = dst / f.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(f, target)
