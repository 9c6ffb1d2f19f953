"""``clip`` sub-section: which CLIP a stage uses (ovlab.clip.load_clip; weights are never downloaded)."""

from __future__ import annotations

from typing import Literal

from ovlab.config.schema import Section


class ClipParams(Section):
    """The CLIP model of a stage.

    Attributes:
        model: an open_clip model name (``ViT-B-32``, ``RN50``, ``ViT-L-14``...) or a tiny config
            registered by ovlab (``ovlab-tiny-rn``, ``ovlab-tiny-vit``; embedded profile).
        pretrained: a pretrained tag (``openai``, ``datacomp_xl_s13b_b90k``...), a checkpoint file path
            (relative to the params file), or ``null`` for an **untrained** model: write ``null``
            explicitly (the stages refuse an omitted value), and every metrics file made with it
            carries the untrained warning.
        weights_dir: where tags are looked up (``<weights_dir>/<model>/<tag>.safetensors|.bin|.pt``);
            ``null`` = ``$OVLAB_WEIGHTS`` or ``~/.cache/ovlab/weights``.
        cache_dir: open_clip / Hugging Face cache folder also searched (``null`` = their defaults).
        allow_download: let open_clip download missing weights (off: a missing file fails at once).
        precision: ``fp32`` (CPU, bit-reproducible), ``fp16`` or ``bf16``.
    """

    model: str = "ovlab-tiny-vit"
    pretrained: str | None = None
    weights_dir: str | None = None
    cache_dir: str | None = None
    allow_download: bool = False
    precision: Literal["fp32", "fp16", "bf16"] = "fp32"
