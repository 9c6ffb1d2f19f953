"""CLIP toolkit shared by the methods (GKC, SCAN, physically guided): one place for CLIP.

- :mod:`.loading`   ``load_clip`` (any open_clip model offline; local checkpoints; explicit untrained)
- :mod:`.registry`  tiny ``ovlab-tiny-rn`` / ``ovlab-tiny-vit`` configs for the embedded profile
- :mod:`.text`      text banks: templates (none / one / 14 ViLD), multi-name classes, disk cache
- :mod:`.dense`     dense visual features (ResNet res2–res5, attention-pool global/spatial/masked;
  ViT patch tokens and [CLS] per block) and mask pooling
- :mod:`.crops`     masked crops δ(I, M) of the two-stage methods
"""

from ovlab.clip.crops import mask_bbox, masked_crops
from ovlab.clip.dense import (ResNetFeatures, ViTFeatures, attention_pool, mask_pool, masked_attention_pool,
                    resnet_features, vit_features)
from ovlab.clip.loading import (UNTRAINED_WARNING, ClipModel, WeightsNotFoundError, default_weights_dir,
                      find_local_weights, load_clip, save_checkpoint)
from ovlab.clip.registry import TINY_MODELS, register_tiny_configs
from ovlab.clip.text import TEMPLATE_SETS, VILD_TEMPLATES, TextBank, build_text_bank, encode_names, resolve_templates

register_tiny_configs()

__all__ = [
    "TEMPLATE_SETS", "TINY_MODELS", "UNTRAINED_WARNING", "VILD_TEMPLATES", "ClipModel", "ResNetFeatures",
    "TextBank", "ViTFeatures", "WeightsNotFoundError", "attention_pool", "build_text_bank",
    "default_weights_dir", "encode_names", "find_local_weights", "load_clip", "mask_bbox", "mask_pool",
    "masked_attention_pool", "masked_crops", "register_tiny_configs", "resnet_features", "resolve_templates",
    "save_checkpoint", "vit_features",
]
