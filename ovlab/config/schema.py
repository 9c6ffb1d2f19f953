"""Shared pieces of the parameter schema: the strict base model every section derives from."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, model_validator


def _merge(default: BaseModel, given: dict) -> dict:
    """``default``'s values with ``given`` merged in, recursing only into fields that are sections
    (a mapping-valued field such as a grid's cells is replaced, never merged)."""
    out = default.model_dump(exclude_unset=True)  # a field the default leaves unset stays unset (e.g. clip.pretrained)
    for k, v in given.items():
        sub = getattr(default, k, None) if k in type(default).model_fields else None
        out[k] = _merge(sub, v) if isinstance(v, dict) and isinstance(sub, BaseModel) else v
    return out


class Section(BaseModel):
    """Base of every params section.

    Strict: unknown keys are rejected (``extra="forbid"``), values are not coerced between
    types (``"3"`` is not an int, ``1`` is not a bool), and the object is immutable.
    Paths are plain strings, relative to the folder of the params file; resolve them with
    :meth:`ovlab.config.Params.path`.

    A mapping given for a field whose default is itself a section is merged over that default, so
    ``params.yaml`` lists only what differs: ``train: {iterations: 10}`` keeps the section's other
    ``train`` defaults (its own, e.g. the video section's batch size, not the bare ``LoopParams``').
    Only the fields the default sets explicitly are carried over, so a field that must be written
    explicitly (``clip.pretrained: null`` for an untrained CLIP) stays unset until it is.
    """

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _over_defaults(cls, data):
        if not isinstance(data, dict):
            return data
        out = dict(data)
        for name, field in cls.model_fields.items():
            given, default = out.get(name), field.default
            if isinstance(given, dict) and isinstance(default, BaseModel):
                out[name] = _merge(default, given)
        return out
