"""Typed, validated parameters.

``params.yaml`` holds one section per stage plus ``base``. :func:`load_params` validates it into
:class:`Params`; every problem (unknown key, wrong type, missing value, YAML syntax) raises
:class:`ParamsError` naming the file and the dotted key path. The library never reads
``params.yaml`` on its own: callers (the runner, the CLI, a notebook cell) pass what they loaded.
Every stage command takes ``-S key=value`` overrides (:mod:`ovlab.config.overrides`), applied by
:func:`load_params` before validation. The file is read as YAML 1.2 (:func:`parse_yaml`), as DVC reads it.

To add a stage's section: write ``ovlab/config/<stage>.py`` with a :class:`Section` subclass and add
one field to :class:`Params`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Sequence
from typing import Any

from pydantic import PrivateAttr, ValidationError

from ovlab.config.base import BaseParams, PathsParams
from ovlab.config.errors import ParamsError
from ovlab.config.schema import Section
from ovlab.config.synonyms import SynonymFilters, SynonymsParams, WordNetExpansion
from ovlab.config.synonym_score import SynonymScoreParams
from ovlab.config.sgiou import SgiouParams
from ovlab.config.tgkd import TgkdParams
from ovlab.config.scan import ScanStageParams
from ovlab.config.video import VideoStageParams
from ovlab.config.physical import PhysicalStageParams

__all__ = [
    "BaseParams",
    "Params",
    "ParamsError",
    "PathsParams",
    "Section",
    "StageParams",
    "SynonymFilters",
    "SynonymsParams",
    "WordNetExpansion",
    "format_validation_error",
    "load_params",
    "parse_params",
    "parse_yaml",
    "read_yaml",
    "section_values",
    "stage_params",
]


class Params(Section):
    """The whole ``params.yaml``: ``base`` plus one section per stage (all required)."""

    base: BaseParams
    synonyms: SynonymsParams
    synonym_score: SynonymScoreParams
    sgiou: SgiouParams
    tgkd: TgkdParams
    scan: ScanStageParams
    video: VideoStageParams
    physical: PhysicalStageParams

    _root: Path = PrivateAttr(default_factory=Path.cwd)
    _source: str = PrivateAttr(default="<dict>")

    @property
    def root(self) -> Path:
        """Folder that relative paths in the params are relative to (the params file's folder)."""
        return self._root

    @property
    def source(self) -> str:
        """Where these params came from (a file path, or ``<dict>``)."""
        return self._source

    def path(self, relative: str | os.PathLike) -> Path:
        """Resolve a path from the params against :attr:`root` (absolute paths pass through)."""
        p = Path(os.path.expanduser(str(relative)))
        return p if p.is_absolute() else self._root / p

    def section(self, name: str) -> Section:
        """Return the section called ``name``.

        Raises:
            ParamsError: no such section.
        """
        _check_section_name(name, self._source)
        return getattr(self, name)

    def stage(self, name: str) -> "StageParams":
        """``base`` plus the section ``name``, bound to :attr:`root`: what a stage function takes."""
        return StageParams(name=name, base=self.base, cfg=self.section(name), root=self._root, source=self._source)


def _check_section_name(name: str, source: str) -> None:
    if name == "base" or name not in Params.model_fields:
        known = ", ".join(sorted(n for n in Params.model_fields if n != "base"))
        raise ParamsError(f"{source}: no stage section {name!r} (known sections: {known})")


@dataclass(frozen=True)
class StageParams:
    """What one stage needs: the ``base`` section, its own section and the folder paths resolve against.

    Stage functions (``ovlab.experiments.synonyms.run_synonyms`` ...) take this, so a notebook that was
    handed two dicts by papermill and the CLI that loaded a whole file call them the same way.
    """

    name: str
    base: BaseParams
    cfg: Any
    root: Path
    source: str = "<dict>"

    def path(self, relative: str | os.PathLike) -> Path:
        """Resolve a path from the params against :attr:`root` (absolute paths pass through)."""
        p = Path(os.path.expanduser(str(relative)))
        return p if p.is_absolute() else self.root / p

    def as_dicts(self) -> dict:
        """``{"base": ..., "section": ..., "root": ...}``: the values the runner injects into a notebook."""
        return {"base": self.base.model_dump(), "section": self.cfg.model_dump(), "root": str(self.root)}


def stage_params(
    name: str,
    base: dict | None = None,
    section: dict | None = None,
    root: str | os.PathLike | None = None,
    *,
    params_path: str | os.PathLike = "params.yaml",
    source: str = "params.yaml",
) -> StageParams:
    """Validate the values papermill injected into a notebook, or load them when there are none.

    The runner (``ovlab run``) injects ``base``, ``section`` and ``root``. A notebook opened by
    hand in JupyterLab has them as ``None``: then ``params_path`` is loaded (searched upwards from
    the current folder when relative and absent, so ``notebooks/`` finds ``../params.yaml``).

    Raises:
        ParamsError: unknown key, wrong type or missing value, named as ``source: name.key``.
    """
    if base is None and section is None:
        path = Path(params_path)
        if not path.is_absolute() and not path.exists():
            for parent in Path.cwd().parents:
                if (parent / path).exists():
                    path = parent / path
                    break
        return load_params(path).stage(name)
    _check_section_name(name, source)
    model = Params.model_fields[name].annotation
    try:
        b = BaseParams.model_validate(base or {})
    except ValidationError as exc:
        raise ParamsError(format_validation_error(exc, source, "base")) from None
    try:
        cfg = model.model_validate(section or {})
    except ValidationError as exc:
        raise ParamsError(format_validation_error(exc, source, name)) from None
    return StageParams(name=name, base=b, cfg=cfg, root=Path(root).resolve() if root else Path.cwd(), source=source)


def section_values(name: str, values: dict | None = None, *, params_path: str | os.PathLike = "params.yaml",
                   source: str = "params.yaml"):
    """One more section for a notebook: the runner's injected ``extra[name]``, or the params file's.

    Raises:
        ParamsError: unknown section, or the values do not validate (names the key).
    """
    if values is None:
        return stage_params(name, params_path=params_path).cfg
    _check_section_name(name, source)
    try:
        return Params.model_fields[name].annotation.model_validate(values, strict=False)
    except ValidationError as exc:
        raise ParamsError(format_validation_error(exc, source, name)) from None


def format_validation_error(err: ValidationError, source: str, prefix: str = "") -> str:
    """Render a pydantic error as ``source: dotted.key: message`` lines."""
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in ((prefix,) if prefix else ()) + tuple(e["loc"]))
        kind = e["type"]
        if kind == "extra_forbidden":
            msg = "unknown key (not a parameter of this section)"
        elif kind == "missing":
            msg = "missing required value"
        else:
            got = e.get("input")
            shown = repr(got) if not isinstance(got, dict) else "a mapping"
            msg = f"{e['msg']} (got {shown}, {type(got).__name__})"
        lines.append(f"{source}: {loc or '<top level>'}: {msg}")
    return "\n".join(lines)


def parse_yaml(text: str, source: str = "<text>") -> Any:
    """Parse YAML text as YAML 1.2 (ruamel's safe loader), the way DVC reads ``params.yaml``.

    YAML 1.2, not PyYAML's 1.1: ``6e-05`` is a float (DVC's rewrite of ``params.yaml`` writes floats
    so), ``yes`` / ``on`` are strings, and a key given twice is an error.

    Raises:
        ParamsError: the text is not valid YAML (the message gives ``source`` and the line).
    """
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    try:
        return YAML(typ="safe", pure=True).load(text)
    except YAMLError as exc:
        raise ParamsError(f"{source}: invalid YAML: {exc}") from None


def read_yaml(path: str | os.PathLike) -> Any:
    """Read a YAML file with clear errors (:func:`parse_yaml`).

    Raises:
        ParamsError: the file is missing or is not valid YAML (the message gives the line).
    """
    p = Path(path)
    if not p.is_file():
        raise ParamsError(f"{p}: parameter file not found")
    return parse_yaml(p.read_text(encoding="utf-8"), str(p))


def parse_params(data: Any, *, source: str = "<dict>", root: str | os.PathLike | None = None) -> Params:
    """Validate a mapping into :class:`Params`.

    Args:
        data: the parsed YAML document.
        source: shown in error messages (the file name).
        root: folder that relative paths are resolved against (default: current folder).

    Raises:
        ParamsError: unknown key, wrong type or missing value; the message lists every problem
            as ``source: dotted.key: reason``.
    """
    if not isinstance(data, dict):
        raise ParamsError(f"{source}: expected a mapping of sections at the top level, got {type(data).__name__}")
    try:
        params = Params.model_validate(data)
    except ValidationError as exc:
        raise ParamsError(format_validation_error(exc, source)) from None
    params._root = Path(root).resolve() if root is not None else Path.cwd()
    params._source = source
    return params


def load_params(path: str | os.PathLike = "params.yaml", overrides: Sequence[str] = ()) -> Params:
    """Load and validate a params file; relative paths inside resolve against its folder.

    Args:
        path: the params file.
        overrides: ``KEY=VALUE`` strings (``-S`` / ``--set`` of the stage commands) set over the
            file's values before validation (:mod:`ovlab.config.overrides`); the file is not changed.

    Under a profile other than ``embedded`` (whose values the schema defaults are), a key that
    ``profiles/<base.profile>.yaml`` beside the file sets must be written in it: a schema default
    would silently fill it with the embedded value (:mod:`ovlab.config.profile_gaps`).

    Raises:
        ParamsError: see :func:`parse_params` and :func:`read_yaml`; a bad override is named
            ``params.yaml (-S key=value): key: reason``; a profile key missing under a non-default
            profile names the key, the profile's value and the default that would fill the gap.
    """
    from ovlab.config.overrides import apply_overrides, relabel

    p = Path(path)
    data = read_yaml(p)
    if overrides:
        data = apply_overrides(data, overrides)
    try:
        params = parse_params(data, source=str(p), root=p.resolve().parent)
    except ParamsError as exc:
        if not overrides:
            raise
        raise ParamsError(relabel(str(exc), str(p), list(overrides))) from None
    _check_profile_gaps(data, params, p)
    return params


def _check_profile_gaps(data: dict, params: Params, path: Path) -> None:
    """Under a profile other than the defaults' (``embedded``), every key of ``profiles/<profile>.yaml``
    beside the params file must be written (:mod:`ovlab.config.profile_gaps`)."""
    from ovlab.config.profile_gaps import gaps_message, profile_gaps, read_profile

    name = params.base.profile
    pfile = path.resolve().parent / "profiles" / f"{name}.yaml"
    if name == "embedded" or not pfile.is_file():
        return
    defaults = {n: f.annotation().model_dump(mode="json") for n, f in Params.model_fields.items()}
    gaps = profile_gaps(data, read_profile(pfile), defaults)
    if gaps:
        raise ParamsError(gaps_message(str(path), name, pfile, gaps))
