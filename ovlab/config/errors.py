"""The error every parameter problem raises."""

from __future__ import annotations


class ParamsError(ValueError):
    """A parameter file is invalid: unknown key, wrong type, missing value or bad YAML.

    The message names the file and the dotted key path, e.g.
    ``params.yaml: synonyms.filters.max_words: Input should be a valid integer``.
    """
