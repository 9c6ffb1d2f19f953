"""``scan.grids``: the SCAN ablation grids (SCAN Tables 3–8) as named cells over the ``scan`` section.

A cell is a small mapping of overrides of the ``scan`` stage section, written with dotted keys
(``{scan.sim.enabled: false}``) or nested (``{scan: {sim: {enabled: false}}}``), deep-merged over
the section. Every cell is validated with the section (:class:`ovlab.config.scan.ScanStageParams`),
so an unknown key or a wrong type is a :class:`ovlab.config.ParamsError` naming
``scan.grids.<table>.<cell>`` and the key.

Which model a cell scores is decided by its **training view** (the section without the test-time
keys of :data:`INFERENCE_KEYS`): a cell whose training view equals that of one of the shared
:attr:`ScanGridsParams.models` evaluates that model (Table 6 CS sources, Table 7 CS layers × ratio,
Table 8 mask / CLIP / both, and the rows of the other tables that are a shared model); any other
cell trains its own model (Tables 4 and 5 rows that change SIM).
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field, field_validator

from ovlab.config.grids import deep_merge
from ovlab.config.schema import Section

TABLES = ("table3", "table4", "table5", "table6", "table7", "table8")

#: Dotted keys of the ``scan`` section that change only the evaluation of a trained model (CS is a
#: test-time change of the mask-classifying CLIP, spec §4.3 "Where it is used").
INFERENCE_KEYS = ("scan.contextual_shift", "scan.ensemble", "scan.inference", "scan.clip_logit_scale",
                  "scan.mask_clip", "eval", "output", "grids")

_NAME = re.compile(r"^[A-Za-z0-9_\-]+$")


def expand_dotted(overrides: dict) -> dict:
    """``{"a.b": 1, "c": {"d.e": 2}}`` → ``{"a": {"b": 1}, "c": {"d": {"e": 2}}}`` (nested keys merged)."""
    out: dict = {}
    for key, value in overrides.items():
        value = expand_dotted(value) if isinstance(value, dict) else value
        node: Any = value
        for part in reversed(str(key).split(".")):
            node = {part: node}
        out = deep_merge(out, node)
    return out


def drop_keys(doc: dict, dotted: tuple[str, ...] = INFERENCE_KEYS) -> dict:
    """A copy of a nested mapping without the given dotted keys (absent keys are ignored)."""
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in doc.items()}
    for key in dotted:
        *parents, last = key.split(".")
        node = out
        for p in parents:
            child = node.get(p)
            if not isinstance(child, dict):
                node = None
                break
            node[p] = dict(child)
            node = node[p]
        if node is not None:
            node.pop(last, None)
    return out


class ScanGridsParams(Section):
    """The SCAN ablation grids (notebook 03; one DVC stage per cell).

    Attributes:
        output: folder of the outputs: ``<output>/models/<model>/`` (shared models) and
            ``<output>/<table>/<cell>/metrics.json`` (cells).
        eval_datasets: benchmarks every cell is scored on, each with its own presets [ade20k_150,
            ade20k_847, pascal_context_59: the columns of SCAN Tables 3–8].
        eval_max_images: cap on the evaluation images of every cell (``null`` = ``eval.max_images``).
        torch_threads: ``torch.set_num_threads`` of ``ovlab scan-grid`` runs (``null`` = torch's
            default, one per core). 1 in the embedded profile: on a small machine shared by other
            jobs, two threads per process oversubscribe the cores (measured ~10× slower here), and
            a fixed count also fixes the float summation order.
        models: the shared trained models, name → overrides (e.g. ``sim: {}``, ``nosim:
            {scan.sim.enabled: false}``); cells that only change test-time keys evaluate them.
        table3 .. table8: cell name → overrides: SCAN Tab. 3 (SIM × CS), Tab. 4 (SIM structure,
            no CS), Tab. 5 (SIM layers × LFE σ), Tab. 6 (CS substitute source), Tab. 7 (CS layers ×
            ratio), Tab. 8 (mask-only / CLIP-only / both, baseline and SCAN).
    """

    output: str = "results/scan"
    eval_datasets: list[str] = Field(default_factory=lambda: ["coco_133"], min_length=1)
    eval_max_images: int | None = Field(None, ge=1)
    torch_threads: int | None = Field(None, ge=1)
    models: dict[str, dict[str, Any]] = Field(default_factory=dict)
    table3: dict[str, dict[str, Any]] = Field(default_factory=dict)
    table4: dict[str, dict[str, Any]] = Field(default_factory=dict)
    table5: dict[str, dict[str, Any]] = Field(default_factory=dict)
    table6: dict[str, dict[str, Any]] = Field(default_factory=dict)
    table7: dict[str, dict[str, Any]] = Field(default_factory=dict)
    table8: dict[str, dict[str, Any]] = Field(default_factory=dict)

    @field_validator("models", *TABLES)
    @classmethod
    def _names(cls, v: dict) -> dict:
        bad = [n for n in v if not _NAME.match(str(n))]
        if bad:
            raise ValueError(f"cell / model names must be letters, digits, '_' or '-': {bad}")
        return v

    def cells(self) -> list[tuple[str, str]]:
        """Every (table, cell), in table order."""
        return [(t, c) for t in TABLES for c in getattr(self, t)]

    def overrides(self, table: str, cell: str) -> dict:
        """The nested overrides of one cell (``table="models"`` for a shared model).

        Raises:
            KeyError: unknown table or cell (lists the known ones).
        """
        if table != "models" and table not in TABLES:
            raise KeyError(f"unknown SCAN grid table {table!r}; known: {', '.join(TABLES)}")
        cells = getattr(self, table)
        if cell not in cells:
            raise KeyError(f"scan.grids.{table} has no cell {cell!r}; cells: {', '.join(cells) or '(none)'}")
        return expand_dotted(cells[cell])
