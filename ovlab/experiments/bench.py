"""``ovlab bench <name>``: printed benchmarks (speed targets live here, never in timed tests).

Each benchmark is a function ``fn(args: list[str]) -> int`` in its owner's module, registered
below by name as ``"module:function"`` (imported only when run). To add one, add one line to
:data:`BENCHMARKS`.
"""

from __future__ import annotations

import importlib
import sys

BENCHMARKS: dict[str, str] = {
    "clip": "ovlab.clip.benchmark:bench_clip",
    "cost": "ovlab.gkc.cost:bench_cost",
    "eval": "ovlab.metrics.benchmark:bench_eval",
    "noop": "ovlab.experiments.bench_noop:bench_noop",
    "overfit": "ovlab.experiments.bench_train:bench_overfit",
    "pipeline": "ovlab.experiments.bench_pipeline:bench_pipeline",
    "scale": "ovlab.experiments.bench_scale:bench_scale",
    "train": "ovlab.experiments.bench_train:bench_train",
}


def run_benchmark(name: str, argv: list[str] | None = None) -> int:
    """Run the benchmark ``name`` with its own arguments.

    Raises:
        KeyError: unknown benchmark (lists the registered ones).
    """
    if name not in BENCHMARKS:
        raise KeyError(f"unknown benchmark {name!r}; registered: {', '.join(sorted(BENCHMARKS))}")
    module, func = BENCHMARKS[name].split(":")
    return int(getattr(importlib.import_module(module), func)(list(argv or [])) or 0)


def _cmd(args) -> int:
    try:
        return run_benchmark(args.name, args.rest)
    except KeyError as exc:
        print(f"ovlab bench: error: {exc.args[0]}", file=sys.stderr)
        return 2


def add_parser(sub) -> None:
    p = sub.add_parser("bench", help="run a benchmark and print its figures", description=__doc__)
    p.add_argument("name", help=f"benchmark ({', '.join(sorted(BENCHMARKS))})")
    p.add_argument("rest", nargs="*", help="the benchmark's own options (after --)")
    p.set_defaults(func=_cmd)
