"""Code fingerprints: one small file standing for the code a family of grid cells runs.

``python -m ovlab.experiments.code_fingerprint <stage>`` reads the ``deps`` of ``<stage>`` in
``dvc.yaml`` (the ``code_*`` stages: the ``ovlab`` files and folders the cells of one grid import) and
writes its single output, a JSON of ``{path: md5}`` for every file under them (``__pycache__``,
``*.pyc`` and ``.ipynb_checkpoints`` skipped, as ``.dvcignore`` does), sorted. Each grid cell then
depends on that one file instead of listing ~15 code folders itself.

Why: DVC rewrites the whole ``dvc.lock`` after every stage it runs (a round-trip YAML parse and dump,
~4 s for the 12k-line lock of ~80 stages on 2 cores), and about 60% of that lock was the same code
dependencies repeated in every cell. The fingerprint keeps the precision (the file changes exactly when a
file it covers changes, so editing the video criterion still re-runs no SCAN cell; tested in
``tests/test_pipeline_deps.py``) with a third of the lock, and makes ``dvc status`` hash each code
folder once instead of once per cell.

Not a paper component (pipeline speed, issue #19).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

_SKIP_DIRS = {"__pycache__", ".ipynb_checkpoints"}


def fingerprint(paths: list[str], root: str | os.PathLike = ".") -> dict[str, str]:
    """``{relative path: md5}`` of every file under ``paths`` (files or folders), sorted by path.

    Raises:
        FileNotFoundError: a path does not exist (named).
    """
    root = Path(root)
    out: dict[str, str] = {}
    for rel in paths:
        p = root / rel
        if p.is_file():
            files = [p]
        elif p.is_dir():
            files = []
            for folder, dirs, names in os.walk(p):
                dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS)
                files += [Path(folder) / n for n in names if not n.endswith(".pyc")]
        else:
            raise FileNotFoundError(f"code fingerprint: {rel} does not exist (under {root})")
        for f in files:
            out[f.relative_to(root).as_posix()] = hashlib.md5(f.read_bytes()).hexdigest()
    return dict(sorted(out.items()))


def stage_spec(stage: str, dvc_yaml: str | os.PathLike = "dvc.yaml") -> tuple[list[str], str]:
    """The ``deps`` and the single output path of ``stage`` in ``dvc_yaml``.

    Raises:
        KeyError: no such stage, or it has not exactly one output.
    """
    import yaml

    stages = yaml.safe_load(Path(dvc_yaml).read_text())["stages"]
    if stage not in stages:
        raise KeyError(f"{dvc_yaml}: no stage {stage!r}")
    spec = stages[stage]
    outs = [next(iter(o)) if isinstance(o, dict) else o for o in spec.get("outs", [])]
    if len(outs) != 1:
        raise KeyError(f"{dvc_yaml}: stage {stage!r} must have exactly one output (has {len(outs)})")
    return [str(d) for d in spec.get("deps", [])], str(outs[0])


def main(argv: list[str] | None = None) -> int:
    """``python -m ovlab.experiments.code_fingerprint STAGE``: write STAGE's fingerprint (see module doc)."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m ovlab.experiments.code_fingerprint STAGE", file=sys.stderr)
        return 2
    from ovlab.atomic import write_json

    try:
        deps, out = stage_spec(argv[0])
        prints = fingerprint(deps)
    except (KeyError, FileNotFoundError) as exc:
        print(f"code fingerprint: error: {exc.args[0]}", file=sys.stderr)
        return 1
    write_json(out, {"stage": argv[0], "files": prints})
    print(f"code fingerprint: {argv[0]}: {len(prints)} files -> {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
