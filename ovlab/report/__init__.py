"""Helpers the notebooks use to show results: tables, plots and the caveats every report carries."""

from ovlab.caveats import EMBEDDED_CAVEAT, caveat_markdown

__all__ = ["EMBEDDED_CAVEAT", "caveat_markdown"]
