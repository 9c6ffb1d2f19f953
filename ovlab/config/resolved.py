"""Each stage writes the fully resolved parameters it ran with (the DVC example projects' pattern).

``params.yaml`` lists only what differs from the schema defaults; the file this module writes beside
a stage's outputs holds every value, defaults included, so nothing a run used is hidden.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from ovlab.atomic import write_text


def resolved_params(stage) -> dict:
    """``{"base": {...}, <section name>: {...}}``: every value of a :class:`ovlab.config.StageParams`."""
    return {"base": stage.base.model_dump(mode="json"), stage.name: stage.cfg.model_dump(mode="json")}


def write_resolved(path: str | Path, stage) -> Path:
    """Write :func:`resolved_params` of ``stage`` as YAML to ``path`` (atomically); returns ``path``."""
    path = Path(path)
    text = (f"# The fully resolved parameters of {stage.name} (written by ovlab; params.yaml lists only what\n"
            "# differs from the schema defaults). Not read back by any stage.\n")
    text += yaml.safe_dump(resolved_params(stage), sort_keys=False, default_flow_style=None, width=110)
    write_text(path, text)
    return path
