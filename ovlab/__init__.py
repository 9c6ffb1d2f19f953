"""ovlab: a reproducible research kit for open-vocabulary semantic segmentation.

Layers, bottom to top (each imports only the ones below it; ``tests/test_architecture.py``):

- the shared core: :mod:`ovlab.config` (typed parameters), :mod:`ovlab.data` (dataset readers, the
  procedural embedded dataset), :mod:`ovlab.vocab` (WordNet, synonym curation), :mod:`ovlab.clip`
  (generic CLIP), :mod:`ovlab.metrics` (mIoU, SG-IoU, video metrics)
- :mod:`ovlab.engine`: the training loop
- :mod:`ovlab.segmenter`: the shared segment-then-classify model
- one package per paper: :mod:`ovlab.gkc`, :mod:`ovlab.scan`, and :mod:`ovlab.video` on top of GKC
- :mod:`ovlab.experiments`: the composition root (registry, grid runner, stage runners, CLI)
- :mod:`ovlab.report`: the views the notebooks use

``docs/paper_map.md`` maps every paper term to its file.
"""

__version__ = "0.1.0"
