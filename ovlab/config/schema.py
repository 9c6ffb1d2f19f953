"""Shared pieces of the parameter schema: the strict base model every section derives from."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """Base of every params section.

    Strict: unknown keys are rejected (``extra="forbid"``), values are not coerced between
    types (``"3"`` is not an int, ``1`` is not a bool), and the object is immutable.
    Paths are plain strings, relative to the folder of the params file; resolve them with
    :meth:`ovlab.config.Params.path`.
    """

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
