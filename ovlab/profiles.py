"""Profiles: ``ovlab profile paper`` / ``ovlab profile embedded`` switches params.yaml in one command.

A profile file ``profiles/<name>.yaml`` lists only the values that differ between profiles, as a
nested mapping shaped like ``params.yaml``. Applying it writes those values into ``params.yaml``
(comments and order kept, written atomically after validating the result) and sets
``base.profile``. Both profile files list the same keys, so switching back and forth is exact;
DVC then re-runs exactly the stages whose params changed.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

from ovlab.atomic import write_text
from ovlab.config import ParamsError, parse_params, read_yaml

PROFILES = ("embedded", "paper")


def _leaves(d: dict, prefix: tuple = ()):
    for k, v in d.items():
        if isinstance(v, dict):
            yield from _leaves(v, prefix + (k,))
        else:
            yield prefix + (k,), v


def profile_keys(profile_file: str | Path) -> set[str]:
    """Dotted keys a profile file sets."""
    data = read_yaml(profile_file) or {}
    return {".".join(k) for k, _ in _leaves(data)}


def _float_representer():
    """ruamel's round-trip representer, but new floats keep a '.' in the mantissa (6e-05 → 6.0e-05),
    so PyYAML (YAML 1.1) reads them back as floats, not strings."""
    from ruamel.yaml.representer import RoundTripRepresenter

    class FloatRepresenter(RoundTripRepresenter):
        pass

    def represent(rep, value):
        text = repr(float(value))
        if "e" in text and "." not in text.split("e")[0]:
            mantissa, exponent = text.split("e")
            text = f"{mantissa}.0e{exponent}"
        if text in ("inf", "-inf", "nan"):
            text = {"inf": ".inf", "-inf": "-.inf", "nan": ".nan"}[text]
        return rep.represent_scalar("tag:yaml.org,2002:float", text)

    FloatRepresenter.add_representer(float, represent)
    return FloatRepresenter


_FloatRepresenter = _float_representer()


def apply_profile(profile: str, params_file: str | Path = "params.yaml", profiles_dir: str | Path | None = None) -> Path:
    """Write the values of ``profiles/<profile>.yaml`` into ``params_file``.

    Raises:
        ParamsError: unknown profile, a profile key that is not in params.yaml, or a result that
            does not validate (params.yaml is then left unchanged).
    """
    from ruamel.yaml import YAML

    params_file = Path(params_file)
    pdir = Path(profiles_dir) if profiles_dir is not None else params_file.parent / "profiles"
    pfile = pdir / f"{profile}.yaml"
    if not pfile.is_file():
        known = sorted(p.stem for p in pdir.glob("*.yaml"))
        raise ParamsError(f"{pfile}: no such profile (known: {', '.join(known) or 'none'})")
    overrides = read_yaml(pfile) or {}
    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.Representer = _FloatRepresenter
    doc = yaml.load(params_file.read_text(encoding="utf-8"))
    for path, value in _leaves(overrides):
        node = doc
        for k in path[:-1]:
            if not isinstance(node, dict) or k not in node:
                raise ParamsError(f"{pfile}: {'.'.join(path)}: not a key of {params_file}")
            node = node[k]
        if path[-1] not in node:
            raise ParamsError(f"{pfile}: {'.'.join(path)}: not a key of {params_file}")
        node[path[-1]] = value
    doc["base"]["profile"] = profile
    buf = io.StringIO()
    yaml.dump(doc, buf)
    text = buf.getvalue()
    import yaml as pyyaml

    parse_params(pyyaml.safe_load(text), source=f"{params_file} (with profile {profile})", root=params_file.parent)
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
