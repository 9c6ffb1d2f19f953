"""Command-line overrides: ``-S key=value`` / ``--set key=value`` on every stage command.

``python -m ovlab.experiments.train_cli train --section tgkd -S tgkd.optim.lr=0.0005 -S tgkd.train.iterations=20``
changes those values for this run only; ``params.yaml`` is not touched (``dvc exp run -S`` is the
way to record a changed value in an experiment). The rules, the same as ``dvc exp run -S``'s:

- the key is a dotted path from the top of ``params.yaml`` (``<section>.<block>.<key>``);
- the value is parsed as YAML: ``20`` is an int, ``0.5`` a float, ``null`` (or nothing) is null,
  ``true`` a bool, ``[1, 2]`` a list, ``{kind: imagenet}`` a mapping; anything else is a string;
- a value replaces what is there (a mapping too: ``-S tgkd.optim={lr: 0.1}`` leaves only ``lr``
  written, the other keys take their schema defaults); missing mappings on the way are created;
- inside a grid cell or a grid's ``common`` (whose keys are themselves dotted, ``train.iterations``),
  the rest of the key is one cell key: ``-S tgkd.grids.common.train.iterations=5``;
  ``-S tgkd.grids.table4.td.gkc.td.strategy=group_max``.

The result is validated like the file itself (:func:`ovlab.config.parse_params`), so an unknown key,
a wrong type or a bad value is a :class:`~ovlab.config.ParamsError` naming the dotted key and the
``-S`` that set it.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from typing import Any

from ovlab.config.errors import ParamsError

_GRID_FIELDS = ("output", "eval_datasets", "eval_max_images", "torch_threads", "common", "models", "tables")
"""Fields of :class:`ovlab.config.grid.GridParams` (any other key under ``grids`` is a table)."""


def parse_override(text: str) -> tuple[str, Any]:
    """``"tgkd.train.iterations=20"`` → ``("tgkd.train.iterations", 20)`` (the value parsed as YAML).

    Raises:
        ParamsError: no ``=``, an empty key or key part, or a value that is not valid YAML.
    """
    key, sep, raw = str(text).partition("=")
    key = key.strip()
    if not sep or not key:
        raise ParamsError(f"-S {text!r}: expected KEY=VALUE with a dotted key, e.g. -S tgkd.train.iterations=20")
    if any(not part for part in key.split(".")):
        raise ParamsError(f"-S {text!r}: empty part in the dotted key {key!r}")
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    try:  # YAML 1.2, as params.yaml is read (ovlab.config.parse_yaml) and as `dvc exp run -S` parses values
        value = YAML(typ="safe", pure=True).load(raw) if raw.strip() else None
    except YAMLError as exc:
        raise ParamsError(f"-S {text!r}: the value is not valid YAML: {exc}") from None
    return key, value


def _holds_dotted_keys(path: tuple[str, ...]) -> bool:
    """Whether the mapping at ``path`` has dotted keys of its own: a grid's ``common``, a shared
    model or a cell (``<section>.grids.<table>.<cell>``, ``<section>.grids.models.<name>``)."""
    if len(path) == 3 and path[1] == "grids" and path[2] == "common":
        return True
    return len(path) == 4 and path[1] == "grids" and (path[2] == "models" or path[2] not in _GRID_FIELDS)


def _set(node: dict, path: tuple[str, ...], parts: list[str], value: Any, text: str) -> None:
    if _holds_dotted_keys(path):
        # the longest existing cell key that starts the rest (``model.backbone`` of ``model.backbone.depth``)
        for j in range(len(parts), 0, -1):
            key = ".".join(parts[:j])
            if key in node:
                break
        else:
            node[".".join(parts)] = value
            return
        if j == len(parts):
            node[key] = value
            return
        child = node[key]
        if not isinstance(child, dict):
            child = node[key] = {}
        _set(child, path + (key,), parts[j:], value, text)  # inside a cell value: plain nesting
        return
    key, rest = parts[0], parts[1:]
    if not rest:
        node[key] = value
        return
    child = node.get(key)
    if child is None:
        child = node[key] = {}
    elif not isinstance(child, dict):
        where = ".".join(path + (key,))
        raise ParamsError(f"-S {text}: {where} is a value ({type(child).__name__}), not a mapping")
    _set(child, path + (key,), rest, value, text)


def apply_overrides(data: dict, overrides: Iterable[str]) -> dict:
    """A deep copy of the parsed ``params.yaml`` mapping ``data`` with each ``KEY=VALUE`` set, in order.

    Raises:
        ParamsError: see :func:`parse_override`; or a key goes through a value that is not a mapping.
    """
    out = copy.deepcopy(data) if isinstance(data, dict) else {}
    for text in overrides:
        key, value = parse_override(text)
        _set(out, (), key.split("."), value, text)
    return out


def override_keys(overrides: Iterable[str]) -> list[tuple[str, str]]:
    """``[(dotted key, the -S text)]`` of ``overrides`` (for naming them in errors)."""
    return [(parse_override(t)[0], str(t)) for t in overrides]


def relabel(message: str, source: str, overrides: Sequence[str]) -> str:
    """Mark each ``source: key: ...`` line of a :class:`ParamsError` message whose key an override set
    (or lies below one) with that override: ``params.yaml (-S tgkd.optim.lr=abc): tgkd.optim.lr: ...``."""
    if not overrides:
        return message
    keys = override_keys(overrides)
    lines = []
    for line in message.splitlines():
        if line.startswith(f"{source}: "):
            loc = line[len(source) + 2:].split(": ", 1)[0]
            hit = [t for k, t in keys if loc == k or loc.startswith(k + ".") or k.startswith(loc + ".")]
            if hit:
                line = f"{source} (-S {hit[-1]}): {line[len(source) + 2:]}"
        lines.append(line)
    return "\n".join(lines)


def add_override_argument(parser) -> None:
    """Add ``-S/--set KEY=VALUE`` (repeatable) to an argparse parser; the values land in ``args.overrides``."""
    parser.add_argument("-S", "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override one parameter for this run, dotted key from the top of params.yaml, value "
                             "parsed as YAML (repeatable), e.g. -S tgkd.train.iterations=20; params.yaml is "
                             "not changed (`dvc exp run -S` records it in an experiment)")


def override_argv(overrides: Sequence[str]) -> list[str]:
    """``["-S", "a=1", "-S", "b=2"]``: the overrides as arguments again (re-launch under torchrun)."""
    return [a for t in overrides for a in ("-S", str(t))]
