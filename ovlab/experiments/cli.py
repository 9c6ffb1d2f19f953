"""The ``ovlab`` command line. Each sub-command lives in the module that owns the concept.

To add one, write ``add_parser(subparsers)`` in your module (register a parser and
``set_defaults(func=callable(args) -> int)``) and list the module in :data:`COMMAND_MODULES`.
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMAND_MODULES: list[str] = [
    "ovlab.run",
    "ovlab.profiles",
    "ovlab.data.cli",
    "ovlab.metrics.evaluate",
    "ovlab.metrics.vocab_similarity",
    "ovlab.experiments.train_cli",
    "ovlab.experiments.grid",
    "ovlab.experiments.bench",
]


def build_parser() -> argparse.ArgumentParser:
    """The ``ovlab`` parser with every sub-command of :data:`COMMAND_MODULES`."""
    parser = argparse.ArgumentParser(prog="ovlab", description="Reproducible open-vocabulary segmentation research kit.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``ovlab``: returns the sub-command's exit code."""
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
