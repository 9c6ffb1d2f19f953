"""Profiles: ``ovlab profile paper`` / ``ovlab profile embedded`` switches params.yaml in one command.

A profile file ``profiles/<name>.yaml`` lists only the values that differ between profiles, as a
nested mapping shaped like ``params.yaml`` (each paper value is stated there once). Applying it
writes those values into ``params.yaml`` (comments and order kept, written atomically after
validating the result, in the style in which ``dvc exp run -S`` rewrites the file —
:func:`round_trip_dump` — so that neither tool churns it) and sets ``base.profile``. A value equal to the schema default is removed
instead, so ``params.yaml`` keeps listing only what differs from the defaults (except the keys
that ``dvc.yaml`` interpolates, which stay). Both profile files list the same keys, so switching
back and forth gives the same parameters; DVC then re-runs exactly the stages whose params changed.
A grid's ``common`` overrides are one value (the whole mapping), not one key per override.

A profile may overlay another: ``extends: paper`` at the top of ``profiles/paper-smoke.yaml`` takes
every value of ``profiles/paper.yaml`` and sets its own over them
(:func:`ovlab.config.profile_gaps.read_profile`).
"""

from __future__ import annotations

import sys
from pathlib import Path

from ovlab.atomic import write_text
from ovlab.config import ParamsError, parse_params, parse_yaml
from ovlab.config.profile_gaps import _MISSING, _leaves, read_profile

PROFILES = ("embedded", "paper", "paper-smoke")


EXPLICIT = ("pretrained", "superpoint_checkpoint")
"""Keys never removed: ``clip.pretrained: null`` (an untrained CLIP) and ``structure.superpoint_checkpoint:
null`` (an untrained SuperPoint) must be written explicitly; their defaults are the real weights."""


def _schema_defaults() -> dict:
    from ovlab.config import Params

    return {name: f.annotation().model_dump(mode="json") for name, f in Params.model_fields.items()}


def _default_at(defaults: dict, path: tuple):
    node = defaults
    for k in path:
        if not isinstance(node, dict) or k not in node:
            return _MISSING
        node = node[k]
    return node


def _drop_empty(node, depth: int = 0) -> None:
    """Remove mappings left empty below a section's blocks (``scan.model.backbone: {}``); the blocks
    themselves (``tgkd.loss: {}``) stay: DVC tracks them."""
    if not isinstance(node, dict):
        return
    for k in list(node):
        v = node[k]
        if k == "grids":
            continue
        _drop_empty(v, depth + 1)
        if isinstance(v, dict) and not v and depth >= 2:
            del node[k]


def dvc_keys(dvc_file: str | Path) -> set[str]:
    """The params keys that the pipeline reads: interpolated (``${tgkd.output}``) or tracked by a
    stage's ``params`` list (``tgkd.loss``), in the root ``dvc_file`` and in every sub-pipeline file
    beside it (``pipelines/*/dvc.yaml``, :mod:`ovlab.dvcfiles`). DVC needs them present, so they stay
    in params.yaml. An absent ``dvc_file`` reads none."""
    import re

    import yaml as pyyaml

    from ovlab.dvcfiles import dvc_files

    p = Path(dvc_file)
    if not p.is_file():
        return set()
    keys: set[str] = set()
    for f in [p, *(f for f in dvc_files(p.parent) if f != p)]:
        text = f.read_text(encoding="utf-8")
        keys.update(re.findall(r"\$\{\s*([A-Za-z_][\w.]*)\s*\}", text))
        for stage in ((pyyaml.safe_load(text) or {}).get("stages") or {}).values():
            for entry in stage.get("params") or []:
                names = [entry] if isinstance(entry, str) else [k for v in entry.values() for k in (v or [])]
                keys.update(n for n in names if "${" not in n)
    return {k for k in keys if not k.startswith("item.")}


def profile_keys(profile_file: str | Path) -> set[str]:
    """Dotted keys a profile file sets (with the profile it ``extends``)."""
    data = read_profile(profile_file)
    return {".".join(k) for k, _ in _leaves(data)}


def _plain(value):
    """What ``dvc exp run -S`` puts in place of every value it rewrites: sequences and mappings as plain
    ``list`` / ``dict`` (their flow style lost), scalars as they were read (a float keeps its text)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _plain_leaves(node) -> None:
    """Replace, in place, every value below the mappings of ``node`` by :func:`_plain` (the mappings
    themselves stay, with their comments and flow style)."""
    for k in list(node):
        v = node[k]
        if isinstance(v, dict) and hasattr(v, "fa"):
            _plain_leaves(v)
        else:
            node[k] = _plain(v)


def _yaml():
    """ruamel's round-trip YAML as DVC configures it to rewrite ``params.yaml`` (``dvc exp run -S``:
    ``dvc.utils.serialize._yaml``): block style for new collections, 80-column lines."""
    from collections import OrderedDict

    from ruamel.yaml import YAML

    yaml = YAML()
    yaml.default_flow_style = False
    yaml.Representer.add_representer(OrderedDict, yaml.Representer.represent_dict)
    return yaml


def round_trip_load(text: str):
    """Parse ``params.yaml`` for a rewrite (ruamel round-trip: comments, order, flow style kept)."""
    return _yaml().load(text)


def round_trip_dump(doc) -> str:
    """Write a document of :func:`round_trip_load` the way ``dvc exp run -S`` rewrites ``params.yaml``.

    Every value that is not a mapping is written as a plain value (lists in block style unless
    inside a flow mapping, ``null`` as an empty value in a block mapping, floats by ``repr``),
    mappings keep their comments and style. So a file written here is a fixed point of DVC's
    rewrite: ``dvc exp run -S a.b=1`` then changes that one line and nothing else
    (``tests/test_profile_roundtrip.py``). Floats such as ``6e-05`` are YAML 1.2 floats, which is how
    :func:`ovlab.config.read_yaml` and DVC read them.
    """
    import io

    _plain_leaves(doc)
    buf = io.StringIO()
    _yaml().dump(doc, buf)
    return buf.getvalue()


def apply_profile(profile: str, params_file: str | Path = "params.yaml", profiles_dir: str | Path | None = None) -> Path:
    """Write the values of ``profiles/<profile>.yaml`` into ``params_file``.

    Raises:
        ParamsError: unknown profile, a profile key that is not a parameter, or a result that
            does not validate (params.yaml is then left unchanged).
    """
    from ruamel.yaml.comments import CommentedMap

    params_file = Path(params_file)
    pdir = Path(profiles_dir) if profiles_dir is not None else params_file.parent / "profiles"
    pfile = pdir / f"{profile}.yaml"
    if not pfile.is_file():
        known = sorted(p.stem for p in pdir.glob("*.yaml"))
        raise ParamsError(f"{pfile}: no such profile (known: {', '.join(known) or 'none'})")
    overrides = read_profile(pfile)  # ``extends: <name>``: that profile, this file's values over it
    doc = round_trip_load(params_file.read_text(encoding="utf-8"))

    defaults, keep = _schema_defaults(), dvc_keys(params_file.parent / "dvc.yaml")
    for path, value in _leaves(overrides):
        dotted = ".".join(path)
        in_grid = "grids" in path
        default = _default_at(defaults, path)
        if default is _MISSING and not in_grid:
            raise ParamsError(f"{pfile}: {dotted}: not a key of the schema (ovlab/config)")
        node = doc
        if not in_grid and value == default and dotted not in keep and path[-1] not in EXPLICIT:
            for k in path[:-1]:  # a default value: remove the key (empty parent mappings stay)
                node = node.get(k) if isinstance(node, dict) else None
                if node is None:
                    break
            if isinstance(node, dict):
                node.pop(path[-1], None)
            continue
        for k in path[:-1]:
            if not isinstance(node, dict):
                raise ParamsError(f"{pfile}: {dotted}: {params_file} has a value, not a mapping, above it")
            if k not in node or node[k] is None:
                node[k] = CommentedMap()
            node = node[k]
        node[path[-1]] = value
    _drop_empty(doc)
    doc["base"]["profile"] = profile
    text = round_trip_dump(doc)
    parse_params(parse_yaml(text, str(params_file)), source=f"{params_file} (with profile {profile})",
                 root=params_file.parent)
    write_text(params_file, text)
    return params_file


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("profile", help="switch params.yaml to a profile (embedded | paper)", description=__doc__)
    p.add_argument("name", help="profile name: a file profiles/<name>.yaml")
    p.add_argument("--params", default="params.yaml")
    p.set_defaults(func=_main)


def _main(args) -> int:
    try:
        apply_profile(args.name, args.params)
    except ParamsError as exc:
        print(f"ovlab profile: error: {exc}", file=sys.stderr)
        return 1
    print(f"ovlab profile: {args.params} now uses the {args.name!r} profile; `dvc repro` re-runs what changed.")
    return 0
