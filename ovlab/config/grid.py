"""One grid system for every paper table: named cells of dotted-key overrides of a section.

Every training section (``tgkd``, ``scan``, ``video``) has a ``grids`` block of the same schema
(:class:`GridParams`)::

    grids:
      output: results/scan             # <output>/<table>/<cell>/ and <output>/models/<name>/
      eval_datasets: [coco_133]        # null: the section's own ``eval`` (scored at the end of training)
      eval_max_images: 3
      common: {train.iterations: 10}   # applied to every model and cell, before its own overrides
      models:                          # shared trained models
        sim: {}
        nosim: {sim.enabled: false}
      table3:                          # any other key is a table: cell name -> overrides
        baseline: {sim.enabled: false, contextual_shift.enabled: false}
        both: {}
      table8:
        oracle: {model: table4/none, two_stage.enabled: true}

A cell's overrides use dotted keys (``a.b.c: v``; nested mappings work too) over its section. Which
weights a cell scores:

1. ``model: <name>`` (a shared model), ``model: <table>/<cell>`` (a cell that trains its own) or
   ``model: converted:<path>`` (a converted official checkpoint, SCAN Tables 6–8 on released weights):
   the cell evaluates those weights, with its own *test-time* overrides (the section's
   :attr:`GridSection.TEST_TIME_KEYS`, e.g. SCAN's Contextual Shift, GKC's two-stage inference);
   such a cell may change nothing else.
2. otherwise, the shared model whose *training view* (the section without its test-time keys) equals
   the cell's (SCAN Tables 6–8 evaluate one trained model under many test-time settings);
3. otherwise the cell trains its own model in its folder (GKC Tables 4–7, SCAN Tables 4–5 rows that
   change SIM, the video Table 3 rows).

Every model and cell is validated at load time as a complete section, so an unknown key or a wrong
value is a :class:`ovlab.config.ParamsError` naming ``<section>.grids.<table>.<cell>.<key>``. One
runner (:func:`ovlab.experiments.grid.run_cell`) and one command
(``ovlab grid <section> <table>/<cell>``, ``ovlab grid <section> --model <name>``) serve every table.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

from pydantic import Field, ValidationError, field_validator, model_validator

from ovlab.config.schema import Section

_NAME = re.compile(r"^[A-Za-z0-9_\-]+$")
MODEL_KEY = "model"
"""The reserved cell key naming the trained weights a cell evaluates."""
CONVERTED_PREFIX = "converted:"
"""``model: converted:<path>``: the cell evaluates a converted official checkpoint (``ovlab convert
scan``, or an official ``.pth``) with its own test-time overrides, nothing trained (SCAN Tables 6–8)."""


def deep_merge(base: dict, override: dict) -> dict:
    """A copy of ``base`` with ``override`` merged in (mappings recursively, everything else replaced)."""
    out = dict(base)
    for k, v in override.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


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


def drop_keys(doc: dict, dotted: tuple[str, ...]) -> dict:
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


def _leaf_keys(doc: dict, prefix: str = "") -> list[str]:
    keys = []
    for k, v in doc.items():
        key = f"{prefix}{k}"
        keys.extend(_leaf_keys(v, key + ".") if isinstance(v, dict) and v else [key])
    return keys


class GridParams(Section):
    """The ablation grids of one section (module docstring).

    Attributes:
        output: folder of the outputs: ``<output>/models/<name>/`` (shared models) and
            ``<output>/<table>/<cell>/`` (cells: ``metrics.json``, ``per_class.csv``, ``params.yaml``,
            and ``model.pt`` + ``dvclive/`` when the cell trains).
        eval_datasets: benchmarks every cell is scored on (``null``: the section's own ``eval``,
            scored by the trainer at the end of training — the video benchmark).
        eval_max_images: cap on the evaluation images of every cell (``null`` = ``eval.max_images``).
        torch_threads: ``torch.set_num_threads`` of a grid run (``null`` = torch's default). A fixed
            count also fixes the float summation order.
        common: dotted overrides applied to every model and cell, before their own.
        models: the shared trained models, name → dotted overrides.
        tables: table name → cell name → dotted overrides (in ``params.yaml`` the tables are written
            directly under ``grids``: ``grids.table4.td: {...}``).
    """

    output: str = "results/grid"
    eval_datasets: list[str] | None = Field(None, min_length=1)
    eval_max_images: int | None = Field(None, ge=1)
    torch_threads: int | None = Field(None, ge=1)
    common: dict[str, Any] = Field(default_factory=dict)
    models: dict[str, dict[str, Any]] = Field(default_factory=dict)
    tables: dict[str, dict[str, dict[str, Any]]] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _tables_inline(cls, data):
        if not isinstance(data, dict):
            return data
        known = set(cls.model_fields)
        tables = dict(data.get("tables") or {})
        rest = {}
        for k, v in data.items():
            if k in known:
                rest[k] = v
            else:
                tables[k] = v
        rest["tables"] = tables
        return rest

    @field_validator("models", "tables")
    @classmethod
    def _names(cls, v: dict) -> dict:
        bad = [n for n in v if not _NAME.match(str(n))]
        if bad:
            raise ValueError(f"table / cell / model names must be letters, digits, '_' or '-': {bad}")
        for table, cells in v.items():
            if isinstance(cells, dict) and all(isinstance(c, dict) for c in cells.values()):
                badc = [c for c in cells if not _NAME.match(str(c))]
                if badc:
                    raise ValueError(f"{table}: cell names must be letters, digits, '_' or '-': {badc}")
        return v

    def cells(self) -> list[tuple[str, str]]:
        """Every (table, cell), in table order."""
        return [(t, c) for t, cells in self.tables.items() for c in cells]

    def raw(self, table: str, cell: str) -> dict:
        """The overrides of one cell as written (``table="models"`` for a shared model).

        Raises:
            KeyError: unknown table or cell (lists the known ones).
        """
        if table == "models":
            cells = self.models
        elif table in self.tables:
            cells = self.tables[table]
        else:
            raise KeyError(f"unknown grid table {table!r}; tables: {', '.join(self.tables) or '(none)'}")
        if cell not in cells:
            raise KeyError(f"grids.{table} has no cell {cell!r}; cells: {', '.join(cells) or '(none)'}")
        return cells[cell]

    def overrides(self, table: str, cell: str) -> dict:
        """The nested overrides of one cell or model without its ``model`` reference (``common`` first).

        Raises:
            KeyError: unknown table or cell.
        """
        own = {k: v for k, v in self.raw(table, cell).items() if k != MODEL_KEY}
        return deep_merge(expand_dotted(self.common), expand_dotted(own))

    def model_ref(self, table: str, cell: str) -> str | None:
        """The ``model`` a cell names (a shared model or ``<table>/<cell>``), or ``None``."""
        if table == "models":
            return None
        ref = self.raw(table, cell).get(MODEL_KEY)
        return None if ref is None else str(ref)


class GridSection(Section):
    """A section with ablation grids (``tgkd``, ``scan``, ``video``): resolves its models and cells.

    Subclasses set :attr:`TEST_TIME_KEYS`: the dotted keys that change only how a trained model is
    evaluated (two sections equal but for these train the same model).
    """

    TEST_TIME_KEYS: ClassVar[tuple[str, ...]] = ("eval", "output", "grids")
    SECTION: ClassVar[str] = "section"

    grids: GridParams = GridParams()

    @model_validator(mode="after")
    def _check_grid(self):
        if self.grids.models or self.grids.tables:
            for name in self.grids.models:
                self.grid_section("models", name)
            for table, cell in self.grids.cells():
                self.grid_section(table, cell)
                self.grid_model(table, cell)
        return self

    def _where(self, table: str, cell: str) -> str:
        return f"{self.SECTION}.grids.{table}.{cell}"

    def _merged(self, base: "GridSection", overrides: dict, where: str) -> "GridSection":
        if "grids" in overrides:
            raise ValueError(f"{where}: grids: a cell cannot change the grids")
        # only what the base sets explicitly, so a value a ``preset`` filled in (``loss.preset``) is
        # filled again from the cell's own preset instead of being frozen at the base's
        doc = deep_merge(base.model_dump(mode="json", exclude_unset=True), overrides)
        doc["grids"] = GridParams()  # a cell's section has no grids of its own
        try:
            return type(self).model_validate(doc)
        except ValidationError as exc:
            from ovlab.config import format_validation_error

            raise ValueError(format_validation_error(exc, where).replace(f"{where}: ", f"{where}.", 1)
                             .replace(f"\n{where}: ", f"\n{where}.")) from None

    def grid_section(self, table: str, cell: str) -> "GridSection":
        """The complete section of one cell (``table="models"``: a shared model), ``grids`` emptied,
        ``output`` set to its folder, ``eval`` capped by ``grids.eval_max_images``.

        A cell that names a ``model`` is that model's section with the cell's test-time overrides.

        Raises:
            KeyError: unknown table or cell.
            ValueError: the cell does not validate, names an unknown model, or changes more than
                test-time keys while naming a model (the message names ``<section>.grids.<table>.<cell>``).
        """
        where = self._where(table, cell)
        over = self.grids.overrides(table, cell)
        ref = self.grids.model_ref(table, cell)
        base: GridSection = self
        if ref is not None:
            base = self._referenced(ref, where)
            own = expand_dotted({k: v for k, v in self.grids.raw(table, cell).items() if k != MODEL_KEY})
            extra = [k for k in _leaf_keys(own) if not self._test_time(k)]
            if extra:
                raise ValueError(f"{where}: a cell that evaluates model {ref!r} may change only test-time keys "
                                 f"({', '.join(self.TEST_TIME_KEYS)}); it changes {extra}")
            over = own
        cfg = self._merged(base, over, where)
        folder = f"{self.grids.output}/models/{cell}" if table == "models" else f"{self.grids.output}/{table}/{cell}"
        updates: dict[str, Any] = {"output": folder}
        if self.grids.eval_max_images is not None and hasattr(cfg.eval, "max_images"):
            updates["eval"] = cfg.eval.model_copy(update={"max_images": self.grids.eval_max_images})
        return cfg.model_copy(update=updates)

    def _test_time(self, dotted: str) -> bool:
        return any(dotted == k or dotted.startswith(k + ".") for k in self.TEST_TIME_KEYS)

    def _referenced(self, ref: str, where: str) -> "GridSection":
        if ref.startswith(CONVERTED_PREFIX):  # the checkpoint carries its architecture: the section as it is
            if not ref[len(CONVERTED_PREFIX):].strip():
                raise ValueError(f"{where}.model: {ref!r} names no checkpoint path")
            return self._merged(self, {}, where)
        if "/" in ref:
            table, _, cell = ref.partition("/")
            if (table, cell) not in self.grids.cells() or self.grids.model_ref(table, cell) is not None:
                raise ValueError(f"{where}.model: {ref!r} is not a cell that trains its own model")
            return self._merged(self, self.grids.overrides(table, cell), where)
        if ref not in self.grids.models:
            raise ValueError(f"{where}.model: no shared model {ref!r} (models: {', '.join(self.grids.models) or 'none'})")
        return self._merged(self, self.grids.overrides("models", ref), where)

    def training_view(self) -> dict:
        """The section without its test-time keys: two sections with equal views train the same model."""
        return drop_keys(self.model_dump(mode="json"), self.TEST_TIME_KEYS)

    def grid_model(self, table: str, cell: str) -> tuple[str, str]:
        """Which weights a cell scores: ``("model", name)`` (a shared model), ``("cell", "<table>/<cell>")``
        (another cell's own model), ``("converted", path)`` (a converted official checkpoint,
        :data:`CONVERTED_PREFIX`) or ``("own", "<table>/<cell>")`` (it trains its own).

        Raises:
            KeyError / ValueError: see :meth:`grid_section`.
        """
        ref = self.grids.model_ref(table, cell)
        if ref is not None and ref.startswith(CONVERTED_PREFIX):
            return "converted", ref[len(CONVERTED_PREFIX):].strip()
        if ref is not None:
            return ("cell", ref) if "/" in ref else ("model", ref)
        view = self.grid_section(table, cell).training_view()
        for name in self.grids.models:
            if self.grid_section("models", name).training_view() == view:
                return "model", name
        return "own", f"{table}/{cell}"
