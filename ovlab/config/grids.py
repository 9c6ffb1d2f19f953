"""``gkc_grids``: the GKC ablation grids (GKC Tables 4–8) as named cells over the ``tgkd`` section.

A cell is a small nested mapping of overrides of the ``tgkd`` section (``{gkc: {td: {strategy:
random}}}``), deep-merged over it, on top of the grid-wide :attr:`GkcGridsParams.common`
overrides; every cell is validated at load time as a complete ``tgkd`` section, so an unknown key
or a wrong type is a :class:`ovlab.config.ParamsError` naming ``gkc_grids.<table>.<cell>.<key>``.
Each cell is one DVC stage (``dvc.yaml`` matrix stages ``gkc_table4`` ... ``gkc_table8``), run by
``ovlab train --section tgkd --cell <table>/<cell>``; Table 8 cells evaluate a trained cell with the
two-stage baseline (``ovlab two-stage --cell table8/<cell>``).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from ovlab.config.schema import Section
from ovlab.config.two_stage import TwoStageParams

TABLES = ("table4", "table5", "table6", "table7a", "table7b")


def deep_merge(base: dict, override: dict) -> dict:
    """A copy of ``base`` with ``override`` merged in (mappings recursively, everything else replaced)."""
    out = dict(base)
    for k, v in override.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


class TwoStageCell(Section):
    """A Table 8 cell: a trained grid cell evaluated with the two-stage baseline.

    Attributes:
        model: ``<table>/<cell>`` whose ``model.pt`` gives the proposals (and in-model scores).
        two_stage: overrides of the ``two_stage`` settings for this cell.
    """

    model: str
    two_stage: dict[str, Any] = Field(default_factory=dict)


class CostParams(Section):
    """The inference-cost comparison of GKC Tab. 2 (``ovlab bench cost``, :mod:`ovlab.gkc.cost`).

    Attributes:
        config: ``embedded`` (the tiny models) | ``paper`` (RN50 CLIP, 100 queries, 9 layers).
        size: input side in pixels [512].
        proposals: two-stage proposals (``null`` = the model's query count) [100].
        repeats: timed forward passes per model.
        device: ``cpu`` | ``cuda`` (the paper's ratio targets are for CPU here).
    """

    config: str = "embedded"
    size: int = Field(512, ge=32)
    proposals: int | None = Field(None, ge=1)
    repeats: int = Field(3, ge=1)
    device: str = "cpu"


class GkcGridsParams(Section):
    """The GKC ablation grids.

    Attributes:
        output: folder of the cells' outputs (``<output>/<table>/<cell>/``).
        iterations: iterations of every cell (``null`` = the ``tgkd`` section's) [null: full training].
        init: a ``model.pt`` every cell starts from (``null`` = from scratch) [null]. The embedded
            profile fine-tunes the ``tgkd_baseline`` model for a few iterations, so the grids fit
            the pipeline's minutes; such numbers check the pipeline, not the method.
        batch_size: batch size of every cell (``null`` = the ``tgkd`` section's) [null].
        eval_datasets: benchmarks every cell is scored on [pascal_context_59, cityscapes_19: the
            paper's Tables 4–8].
        eval_max_images: cap on the images per benchmark (``null`` = all).
        common: overrides of the ``tgkd`` section applied to every cell (before the cell's own).
        table4 .. table7b: cell name → overrides (GKC Tab. 4 TD × TGKD, Tab. 5 distillation
            strategy, Tab. 6 teacher × student, Tab. 7a TD method, Tab. 7b backbone).
        table8: cell name → :class:`TwoStageCell` (GKC Tab. 8, the two-stage baseline ± TD).
        two_stage: the two-stage inference settings of Table 8 (:mod:`ovlab.config.two_stage`).
        cost: the inference-cost benchmark (GKC Tab. 2).
    """

    output: str = "results/gkc"
    iterations: int | None = Field(None, ge=1)
    init: str | None = None
    batch_size: int | None = Field(None, ge=1)
    eval_datasets: list[str] = Field(default_factory=lambda: ["coco_133"], min_length=1)
    eval_max_images: int | None = Field(None, ge=1)
    common: dict[str, Any] = Field(default_factory=dict)
    table4: dict[str, dict[str, Any]] = Field(default_factory=dict)
    table5: dict[str, dict[str, Any]] = Field(default_factory=dict)
    table6: dict[str, dict[str, Any]] = Field(default_factory=dict)
    table7a: dict[str, dict[str, Any]] = Field(default_factory=dict)
    table7b: dict[str, dict[str, Any]] = Field(default_factory=dict)
    table8: dict[str, TwoStageCell] = Field(default_factory=dict)
    two_stage: TwoStageParams = TwoStageParams()
    cost: CostParams = CostParams()

    def two_stage_cell(self, cell: str) -> tuple[str, str, TwoStageParams]:
        """(table, cell) of the trained model and the two-stage settings of a Table 8 cell.

        Raises:
            KeyError: unknown cell, or its ``model`` is not a training cell.
            pydantic.ValidationError: the cell's ``two_stage`` overrides are invalid.
        """
        if cell not in self.table8:
            raise KeyError(f"gkc_grids.table8 has no cell {cell!r}; cells: {', '.join(self.table8) or '(none)'}")
        c = self.table8[cell]
        table, _, source = c.model.partition("/")
        if (table, source) not in self.cells():
            raise KeyError(f"gkc_grids.table8.{cell}.model: {c.model!r} is not a training cell <table>/<cell>")
        ts = TwoStageParams.model_validate(deep_merge(self.two_stage.model_dump(mode="json"), c.two_stage),
                                           strict=False)
        return table, source, ts

    def cell_overrides(self, table: str, cell: str) -> dict:
        """The merged overrides of one training cell (``common``, then the cell, then the grid's
        ``iterations`` / ``init`` / ``batch_size`` and the cell's output folder).

        Raises:
            KeyError: unknown table or cell (lists the known ones).
        """
        if table not in TABLES:
            raise KeyError(f"unknown grid table {table!r}; known: {', '.join(TABLES)}")
        cells = getattr(self, table)
        if cell not in cells:
            raise KeyError(f"gkc_grids.{table} has no cell {cell!r}; cells: {', '.join(cells) or '(none)'}")
        out = deep_merge(self.common, cells[cell])
        train = {}
        if self.iterations is not None:
            train["iterations"] = self.iterations
        if self.init is not None:
            train["init"] = self.init
        if self.batch_size is not None:
            train["batch_size"] = self.batch_size
        out = deep_merge(out, {"train": train, "output": f"{self.output}/{table}/{cell}"})
        return out

    def cells(self) -> list[tuple[str, str]]:
        """Every (table, cell) of the training tables."""
        return [(t, c) for t in TABLES for c in getattr(self, t)]
