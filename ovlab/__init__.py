"""ovlab: a reproducible research kit for open-vocabulary semantic segmentation.

Sub-packages, one per concern:

- :mod:`ovlab.config`  typed, validated parameters (``params.yaml``)
- :mod:`ovlab.vocab`   class names, WordNet, synonym curation (GKC §3.1)
- :mod:`ovlab.data`    dataset readers and the procedural (synthetic) embedded dataset
- :mod:`ovlab.report`  caveats and helpers for the notebook reports
- :mod:`ovlab.run`     the papermill notebook runner used by the DVC stages
"""

__version__ = "0.1.0"
