"""Interactive views for JupyterLab (ipywidgets), each with a static fallback for papermill.

- :mod:`ovlab.widgets.curator`: the synonym curator of notebook 01 (GKC §3.1): keep or drop WordNet
  candidates per class and save the manual overrides YAML.
- :mod:`ovlab.widgets.explorer`: the segmentation explorer: any trained checkpoint, an image, a
  free vocabulary, the overlay, per-class areas, per-pixel top-3 and the test-time knobs.
- :mod:`ovlab.widgets.display`: chooses the live widget or its static PNG + table.

This package imports nothing itself, so a notebook that uses the curator does not depend on the
models (``tests/test_pipeline_deps.py``).
"""
