"""A key the active profile sets must not be silently filled by a schema default that differs from it.

The schema defaults are the ``embedded`` profile's values (``tests/test_profile_roundtrip.py``), so in
the embedded profile a key missing from ``params.yaml`` takes its documented value. Under another
profile (``base.profile: paper``) a key that ``profiles/paper.yaml`` sets but ``params.yaml`` lacks
would take the *embedded* value: 200 iterations instead of 50,000. :func:`profile_gaps` finds those
keys; :func:`ovlab.config.load_params` raises a :class:`~ovlab.config.ParamsError` that shows, for
each, the profile's value and the default that would have filled the gap.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

_MISSING = object()
EXTENDS = "extends"
"""Top-level key of a profile file that names the profile it overlays (``paper-smoke``: ``extends: paper``)."""


def read_profile(pfile: str | Path) -> dict:
    """The mapping of a profile file, with ``extends: <name>`` resolved: the named profile beside it,
    then this file's values merged over it (mappings recursively, a grid's ``common`` and every other
    value replaced whole).

    Raises:
        ParamsError: the file, or the profile it extends, does not exist or extends in a circle.
    """
    from ovlab.config import ParamsError, read_yaml

    pfile = Path(pfile)
    seen: list[Path] = []
    layers = []
    while True:
        if pfile in seen:
            raise ParamsError(f"{pfile}: {EXTENDS}: profiles extend each other in a circle ({' -> '.join(map(str, seen))})")
        if not pfile.is_file():
            raise ParamsError(f"{pfile}: no such profile" + (f" (extended by {seen[-1]})" if seen else ""))
        seen.append(pfile)
        data = dict(read_yaml(pfile) or {})
        parent = data.pop(EXTENDS, None)
        layers.append(data)
        if parent is None:
            break
        pfile = pfile.parent / f"{parent}.yaml"
    out: dict = {}
    for layer in reversed(layers):
        out = _merge(out, layer)
    return out


def _merge(base: dict, over: dict, prefix: tuple = ()) -> dict:
    out = dict(base)
    for k, v in over.items():
        whole = k == "common" and prefix[-1:] == ("grids",)
        if isinstance(v, dict) and isinstance(out.get(k), dict) and not whole:
            out[k] = _merge(out[k], v, prefix + (k,))
        else:
            out[k] = v
    return out


def _leaves(d: dict, prefix: tuple = ()):
    """``(path, value)`` of every leaf of a profile mapping (a grid's ``common`` is one value)."""
    for k, v in d.items():
        whole = k == "common" and prefix[-1:] == ("grids",)
        if isinstance(v, dict) and v and not whole:
            yield from _leaves(v, prefix + (k,))
        else:
            yield prefix + (k,), v


def _at(node: Any, path: tuple):
    for k in path:
        if not isinstance(node, dict) or k not in node:
            return _MISSING
        node = node[k]
    return node


def profile_gaps(data: dict, profile: dict, defaults: dict) -> list[tuple[str, Any, Any]]:
    """``[(dotted key, profile value, schema default)]`` for every key ``profile`` sets (grid cells
    excepted: they are written whole) that ``data`` (the parsed params file) lacks and whose schema
    default differs from the profile's value."""
    out = []
    for path, value in _leaves(profile):
        if "grids" in path or _at(data, path) is not _MISSING:
            continue
        default = _at(defaults, path)
        if default is not _MISSING and default != value:
            out.append((".".join(path), value, default))
    return out


def gaps_message(source: str, profile_name: str, profile_file: Path, gaps) -> str:
    """The :class:`~ovlab.config.ParamsError` text for :func:`profile_gaps`' findings."""
    lines = [f"{source}: {key}: missing; the {profile_name} profile ({profile_file}) sets {value!r}, and the schema "
             f"default {default!r} (the embedded value) would fill the gap" for key, value, default in gaps]
    lines.append(f"{source}: write these keys, or run `ovlab profile {profile_name}` to write every value of the profile")
    return "\n".join(lines)
