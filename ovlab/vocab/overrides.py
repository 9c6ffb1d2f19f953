"""The manual curation file of a synonym vocabulary (YAML kept in git, read-only for the pipeline).

Schema::

    blocklist: [name, ...]          # dropped from every class
    classes:
      <canonical class name>:        # must be a class of the vocabulary (normalised name)
        senses: [rock.n.01, ...]     # keep only these WordNet noun senses (default: all senses)
        remove: [name, ...]          # names dropped from this class
        add: [name, ...]             # names added (bypass the automatic filters)
        note: "why"                  # free text, shown in the report

An unknown class, an unknown key, a sense that is not a noun sense of the class name, or a name
both added and removed is an error that names the entry.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ConfigDict, Field, ValidationError

from ovlab.config import ParamsError, Section, format_validation_error


class ClassOverride(Section):
    """Manual curation of one class (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    senses: list[str] | None = None
    remove: list[str] = Field(default_factory=list)
    add: list[str] = Field(default_factory=list)
    note: str = ""


class Overrides(Section):
    """A whole curation file."""

    blocklist: list[str] = Field(default_factory=list)
    classes: dict[str, ClassOverride] = Field(default_factory=dict)


class CurationError(ParamsError):
    """The curation file is invalid; the message names the file and the entry."""


def load_overrides(path: str | Path | None, vocabulary: list[str] | None = None, wordnet=None) -> Overrides:
    """Read and validate a curation file.

    Args:
        path: the YAML file; ``None`` gives empty overrides.
        vocabulary: the normalised class names; entries for other names are errors.
        wordnet: an nltk WordNet reader; when given, every ``senses`` entry must be a noun sense
            of its class name.

    Raises:
        CurationError: missing, empty, binary or non-mapping file, invalid YAML, schema error,
            unknown class or sense, a name both added and removed.
    """
    if path is None:
        return Overrides()
    p = Path(path)
    if not p.is_file():
        raise CurationError(f"{p}: curation file not found")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise CurationError(f"{p}: invalid YAML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise CurationError(f"{p}: not a UTF-8 text file ({exc.reason} at byte {exc.start})") from None
    if data is None:  # an emptied file would silently leave every class uncurated
        raise CurationError(f"{p}: the curation file is empty (every class would be uncurated); write "
                            "`classes: {}` for an empty curation on purpose, or set the `overrides` key to null")
    if not isinstance(data, dict):
        raise CurationError(f"{p}: expected a mapping with `blocklist` and `classes`, got {type(data).__name__}")
    try:
        ov = Overrides.model_validate(data)
    except ValidationError as exc:
        raise CurationError(format_validation_error(exc, str(p))) from None
    problems = []
    for cls, entry in ov.classes.items():
        if vocabulary is not None and cls not in vocabulary:
            problems.append(f"{p}: classes.{cls}: not a class of the vocabulary")
        both = {a.lower() for a in entry.add} & {r.lower() for r in entry.remove}
        if both:
            problems.append(f"{p}: classes.{cls}: names both added and removed: {sorted(both)}")
        if wordnet is not None and entry.senses is not None:
            valid = {s.name() for s in wordnet.synsets(cls.replace(" ", "_"), pos="n")}
            for s in entry.senses:
                if s not in valid:
                    problems.append(
                        f"{p}: classes.{cls}.senses: {s!r} is not a noun sense of {cls!r} "
                        f"(its senses: {', '.join(sorted(valid)) or 'none'})"
                    )
    if problems:
        raise CurationError("\n".join(problems))
    return ov
