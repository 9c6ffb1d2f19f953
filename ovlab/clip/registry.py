"""The project's tiny CLIP configs, registered with open_clip's model-config registry.

``ovlab-tiny-rn`` (a ModifiedResNet CLIP, 96 px, res5 grid 3×3, width 8, one bottleneck per
stage, embed 64) and ``ovlab-tiny-vit`` (a ViT CLIP, 64 px, patch 8, grid 8×8, width 64, 3 blocks,
embed 64; ``ovlab-tiny-rn-deep`` is the same with two res4 bottlenecks, the embedded stand-in for
RN101 in GKC Tab. 7b; ``ovlab-tiny-vit-24``: 24 blocks like ViT-L, patch 14, 112 px, width 32, the
``paper-smoke`` stand-in for ViT-L/14 so that the paper's layer indices are valid) all have a 2-layer,
width-64 text tower with context 32. They exist so that the
``embedded`` profile runs every CLIP step in seconds on 2 CPU cores; untrained, they measure
nothing about CLIP (see :data:`ovlab.clip.loading.UNTRAINED_WARNING`).

The JSON files live in ``ovlab/clip/model_configs/``; :func:`register_tiny_configs` is called on
``import ovlab.clip`` and is idempotent.
"""

from __future__ import annotations

from pathlib import Path

CONFIG_DIR = Path(__file__).parent / "model_configs"
TINY_MODELS = ("ovlab-tiny-rn", "ovlab-tiny-rn-deep", "ovlab-tiny-vit", "ovlab-tiny-vit-24")


def register_tiny_configs() -> list[str]:
    """Add ``ovlab/clip/model_configs`` to open_clip's registry (once); returns the names added."""
    import open_clip
    from open_clip import factory

    if CONFIG_DIR not in factory._MODEL_CONFIG_PATHS:
        open_clip.add_model_config(CONFIG_DIR)
    return [n for n in TINY_MODELS if n in open_clip.list_models()]
