"""The ``ovlab`` command line. Each sub-command lives in the module that owns the concept.

To add one, write ``add_parser(subparsers)`` in your module (register a parser and
``set_defaults(func=callable(args) -> int)``) and add one line per command it registers to
:data:`COMMANDS`: ``"name": ("module", "one-line help")``.

Start-up: ``ovlab --help`` imports no command module (the help lines come from :data:`COMMANDS`), and
``ovlab <command> …`` imports only the module that owns ``<command>``, so a command pays for the
libraries it uses and nothing else (``ovlab bench help`` measures it; issue target ≤ 1 s for
``--help`` on an idle machine).
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("ovlab.run", "execute a stage notebook with papermill"),
    "profile": ("ovlab.profiles", "switch params.yaml to a profile (embedded | paper)"),
    "data": ("ovlab.data.cli", "datasets: prepare real ones, make the embedded set, inspect a root"),
    "eval": ("ovlab.metrics.evaluate", "evaluate a folder of prediction PNGs (mIoU, SG-IoU)"),
    "vocab-sim": ("ovlab.metrics.vocab_similarity", "vocabulary similarity of benchmarks (physically-guided Tab. 1)"),
    "train": ("ovlab.experiments.train_cli", "train (or resume) the segmenter of a params section, then evaluate it"),
    "cost": ("ovlab.experiments.train_cli", "GKC Table 2: FLOPs, parameters and speed, single-stage vs two-stage"),
    "evaluate": ("ovlab.experiments.train_cli", "score a trained checkpoint on a benchmark (mIoU, seen/unseen/harmonic)"),
    "predict": ("ovlab.experiments.train_cli", "segment one image with a free-form class list"),
    "grid": ("ovlab.experiments.grid", "ablation grids of any paper table: score a cell or train a shared model"),
    "bench": ("ovlab.experiments.bench", "run a benchmark and print its figures"),
    "report": ("ovlab.report.ablation", "the ablation report: build it, or compare two runs' reports"),
    "doctor": ("ovlab.experiments.doctor", "check the datasets, weights, disk and GPUs a profile needs (offline)"),
    "cluster": ("ovlab.experiments.cluster", "run the cells of a table (any DVC stages) as SLURM jobs through submitit"),
    "convert": ("ovlab.experiments.convert", "convert an official checkpoint into an ovlab checkpoint (SCAN)"),
    "paper-smoke": ("ovlab.experiments.paper_smoke", "run every distinct paper grid configuration on simulated data (CPU)"),
}
"""Every sub-command: its owning module (imported only when the command runs) and its help line."""

COMMAND_MODULES: list[str] = list(dict.fromkeys(module for module, _ in COMMANDS.values()))
"""The modules that own sub-commands, each once, in :data:`COMMANDS` order."""


def _top_parser() -> tuple[argparse.ArgumentParser, argparse._SubParsersAction]:
    parser = argparse.ArgumentParser(prog="ovlab", description="Reproducible open-vocabulary segmentation research kit.")
    parser.add_argument("--verbose", action="store_true",
                        help="every warning each time with its source line, INFO logging, full tracebacks "
                             "(also accepted after the command)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    return parser, sub


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The ``ovlab`` parser.

    Args:
        command: the sub-command about to run: only its module is imported and registers its full
            parser. ``None`` registers every module's parsers (imports them all; tests use it to check
            that :data:`COMMANDS` matches what the modules register).
    """
    parser, sub = _top_parser()
    modules = COMMAND_MODULES if command is None else [COMMANDS[command][0]]
    for name in modules:
        importlib.import_module(name).add_parser(sub)
    if command is not None:
        # The other commands appear in the usage and `--help` listing with their help lines only.
        for name, (module, help_line) in COMMANDS.items():
            if module != COMMANDS[command][0]:
                sub.add_parser(name, help=help_line, add_help=False)
    return parser


def _help_parser() -> argparse.ArgumentParser:
    parser, sub = _top_parser()
    for name, (_module, help_line) in COMMANDS.items():
        sub.add_parser(name, help=help_line)
    return parser


def _command_of(argv: list[str]) -> str | None:
    """The first positional word of ``argv`` when it names a command (options before it are top-level)."""
    for word in argv:
        if word.startswith("-"):
            continue
        return word if word in COMMANDS else None
    return None


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``ovlab``: returns the sub-command's exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    from ovlab.caveats import configure_output

    verbose = "--verbose" in argv  # one place for every command: quiet by default (ovlab.caveats)
    argv = [a for a in argv if a != "--verbose"]
    configure_output(verbose)
    command = _command_of(argv)
    parser = _help_parser() if command is None else build_parser(command)
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
