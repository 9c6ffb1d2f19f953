"""Optional bridges to other frameworks; the core never imports this package.

- :mod:`ovlab.integrations.detectron2` (importable only when detectron2 is installed): every ovlab
  benchmark in detectron2's ``DatasetCatalog`` / ``MetadataCatalog`` under its canonical name and
  the other repositories' aliases, and :class:`~ovlab.integrations.detectron2.SGIoUEvaluator` for a
  SAN / CAT-Seg / FC-CLIP / SCAN / GKC ``build_evaluator``.
- Its framework-free parts, testable without detectron2: :mod:`ovlab.integrations.catalog` (names,
  dataset dicts, metadata) and :mod:`ovlab.integrations.sg_evaluation` (the evaluator's maths).
"""
