"""Every DVC stage depends on the ``ovlab`` code its command imports, so a change to a module re-runs
the stages that use it and no others (editing the video criterion re-runs no SCAN stage).

The imports of a command are found statically: the module it runs (``python -m <module>``), the
code cells of the notebook ``ovlab.run`` executes, and everything they import, transitively, at any
depth of the file (a function-level import counts). The one dynamic choice, which task a section
trains (:func:`ovlab.experiments.registry.task_for`), is resolved by calling it for the stage's
section, so a SCAN stage is not charged with GKC's or the video code.
"""

from __future__ import annotations

import ast
import hashlib
import json
import shlex
from functools import lru_cache
from pathlib import Path

import pytest

from tests.conftest import REPO, pipeline_stages

PKG = REPO / "ovlab"


def _module_file(name: str) -> Path | None:
    rel = Path(*name.split("."))
    for cand in (REPO / rel.with_suffix(".py"), REPO / rel / "__init__.py"):
        if cand.is_file():
            return cand
    return None


def _parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def _imports_in(tree: ast.AST, package: str, skip_function: str | None = None) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(tree):
        if skip_function and isinstance(node, ast.FunctionDef) and node.name == skip_function:
            node.body = []  # its imports are resolved per section (task_for)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] == "ovlab"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod.split(".")[0] != "ovlab":
                continue
            out.add(mod)
            for a in node.names:
                if _module_file(f"{mod}.{a.name}") is not None:
                    out.add(f"{mod}.{a.name}")
    return out


@lru_cache(maxsize=None)
def _direct(name: str) -> frozenset[str]:
    path = _module_file(name)
    if path is None:
        return frozenset()
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    skip = "task_for" if name == "ovlab.experiments.registry" else None
    return frozenset(_imports_in(ast.parse(path.read_text()), package, skip))


def _task_module(section: str) -> str:
    from ovlab.experiments.registry import task_for

    return type(task_for(section)).__module__


def closure(entries: set[str], section: str | None) -> set[str]:
    """Every ``ovlab`` module that ``entries`` import, transitively (parents' ``__init__`` included)."""
    seen: set[str] = set()
    todo = list(entries)
    while todo:
        m = todo.pop()
        if m in seen or _module_file(m) is None:
            continue
        seen.add(m)
        todo.extend(_parents(m))
        todo.extend(_direct(m))
        if m == "ovlab.experiments.registry":
            todo.append(_task_module(section or "tgkd"))
    return seen


def notebook_imports(path: Path) -> set[str]:
    nb = json.loads(path.read_text())
    src = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
    src = "\n".join(ln for ln in src.splitlines() if not ln.lstrip().startswith(("%", "!")))
    return _imports_in(ast.parse(src), "ovlab")


def _fingerprints(doc) -> dict[str, list[str]]:
    """``results/code/<x>.json`` -> the deps of the ``code_*`` stage that writes it (the code it stands for)."""
    out = {}
    for name, st in doc["stages"].items():
        if name.startswith("code_"):
            (path,) = [next(iter(o)) for o in st["outs"]]
            out[path] = [str(d) for d in st["deps"]]
    return out


def _stages():
    """(name, cmd, deps) of every stage of the pipeline files (dvc.yaml, pipelines/*/dvc.yaml), ``${...}``
    left as written; a code fingerprint among the deps is replaced by the code it stands for
    (ovlab.experiments.code_fingerprint)."""
    doc = {"stages": pipeline_stages(REPO)}
    prints = _fingerprints(doc)
    for name, st in doc["stages"].items():
        deps = []
        for d in map(str, st.get("deps", [])):
            deps += prints.get(d, [d])
        yield name, st["cmd"], deps


def command_entries(cmd: str) -> tuple[set[str], str | None]:
    """The modules a stage command runs, and the params section it works on."""
    argv = shlex.split(cmd)
    assert argv[:2] == ["python", "-m"], f"stage commands run `python -m <module>`: {cmd!r}"
    module, rest = argv[2], argv[3:]
    entries = {module}
    if module == "ovlab.stage":  # `python -m ovlab.stage <module> ...`: the warm-interpreter launcher
        module, rest = rest[0], rest[1:]
        entries.add(module)
    section = None
    if "--section" in rest:
        section = rest[rest.index("--section") + 1]
    if module == "ovlab.experiments.grid":
        section = rest[0]
    if module == "ovlab.run":
        entries |= notebook_imports(REPO / rest[0])
    return entries, section


def _covered(module: str, deps: list[str]) -> bool:
    rel = _module_file(module).relative_to(REPO).as_posix()
    return any(rel == d or rel.startswith(d.rstrip("/") + "/") for d in deps)


STAGES = list(_stages())


@pytest.mark.parametrize("name, cmd, deps", STAGES, ids=[s[0] for s in STAGES])
def test_stage_depends_on_the_code_its_command_imports(name, cmd, deps):
    entries, section = command_entries(cmd)
    missing = sorted(m for m in closure(entries, section) if not _covered(m, deps))
    assert not missing, f"stage {name}: its command imports {missing} but its deps do not list them"


def test_method_stages_do_not_depend_on_other_methods():
    """Editing the video criterion re-runs no SCAN or GKC stage; editing SCAN re-runs no GKC stage."""
    for name, _cmd, deps in STAGES:
        if name.startswith("scan"):
            assert not any(d.startswith(("ovlab/gkc", "ovlab/video")) for d in deps), name
        if name.startswith(("gkc", "tgkd")):
            assert not any(d.startswith(("ovlab/scan", "ovlab/video")) for d in deps), name


def test_the_closure_finds_function_level_imports():
    # grid.py imports the trainer at module level and clip.loading inside _main: both count.
    mods = closure({"ovlab.experiments.grid"}, "scan")
    assert {"ovlab.engine.trainer", "ovlab.clip.loading", "ovlab.scan.task", "ovlab.scan.model"} <= mods
    assert not any(m.startswith(("ovlab.gkc", "ovlab.video")) for m in mods)
    assert "ovlab.gkc.task" in closure({"ovlab.experiments.grid"}, "tgkd")


def test_a_code_fingerprint_changes_exactly_when_its_code_does(tmp_path):
    from ovlab.experiments.code_fingerprint import fingerprint

    (tmp_path / "pkg" / "__pycache__").mkdir(parents=True)
    (tmp_path / "pkg" / "a.py").write_text("x = 1\n")
    (tmp_path / "pkg" / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"junk")
    (tmp_path / "b.py").write_text("y = 2\n")
    (tmp_path / "other.py").write_text("z = 3\n")
    first = fingerprint(["pkg", "b.py"], tmp_path)
    assert first == {"b.py": hashlib.md5(b"y = 2\n").hexdigest(), "pkg/a.py": hashlib.md5(b"x = 1\n").hexdigest()}
    (tmp_path / "other.py").write_text("z = 4\n")  # not covered
    (tmp_path / "pkg" / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"other junk")  # ignored, as .dvcignore does
    assert fingerprint(["pkg", "b.py"], tmp_path) == first
    (tmp_path / "pkg" / "a.py").write_text("x = 11\n")
    assert fingerprint(["pkg", "b.py"], tmp_path) != first
    (tmp_path / "pkg" / "a.py").write_text("x = 1\n")
    (tmp_path / "pkg" / "new.py").write_text("")
    assert fingerprint(["pkg", "b.py"], tmp_path) != first  # an added file counts
    with pytest.raises(FileNotFoundError, match="gone.py"):
        fingerprint(["gone.py"], tmp_path)


def test_grid_cells_depend_on_a_fingerprint_not_on_code_folders():
    """The dvc.lock stays small: no stage other than a ``code_*`` one lists ovlab folders when a fingerprint
    covers them, and every fingerprint is used."""
    doc = {"stages": pipeline_stages(REPO)}
    prints = _fingerprints(doc)
    used = set()
    for name, st in doc["stages"].items():
        deps = [str(d) for d in st.get("deps", [])]
        used |= set(deps) & prints.keys()
        if name.startswith(("gkc_table", "scan_table", "scan_models", "video_table", "physical_table", "scan_cs")):
            assert not [d for d in deps if d.startswith("ovlab/")], name
            assert set(deps) & prints.keys(), name
    assert used == prints.keys()
