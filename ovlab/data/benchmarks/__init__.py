"""Readers of the standard open-vocabulary segmentation benchmarks (GKC §4.1, SCAN §4.1).

Each benchmark has one canonical name (``ade20k_150``, ``ade20k_847``, ``pascal_context_59``,
``pascal_context_459``, ``pascal_voc_20``, ``pascal_voc_20b``, ``cityscapes_19``, ``coco_133``)
and the other repositories' split names as aliases. ``get_benchmark(name).records(root)`` lists
the evaluation images; ``load_gt(record)`` returns contiguous indices with the ignore label.
"""

from ovlab.data.benchmarks.registry import BENCHMARKS, benchmark_names, get_benchmark, register
from ovlab.data.benchmarks.spec import Benchmark, Layout, Record

__all__ = ["BENCHMARKS", "Benchmark", "Layout", "Record", "benchmark_names", "get_benchmark", "register"]
