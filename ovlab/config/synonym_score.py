"""``synonym_score`` section: GKC synonym score (GKC Eq. 1, §3.1) of every training segment.

The official pass is GKC ``syn_CLIP_sim.py``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ovlab.config.clip import ClipParams
from ovlab.config.schema import Section


class CocoSource(Section):
    """A COCO-panoptic split (``ovlab.data.coco_panoptic.read_coco_panoptic``).

    Attributes:
        root: dataset root in the standard layout (relative to the params file).
        split: ``train`` or ``val``.
        image_dir, panoptic_dir, panoptic_json: overrides of the standard paths (relative to ``root``).
        max_images: use only the first N images (by image id); ``null`` = all.
    """

    root: str = "data/embedded/coco"
    split: Literal["train", "val"] = "train"
    image_dir: str | None = None
    panoptic_dir: str | None = None
    panoptic_json: str | None = None
    max_images: int | None = Field(None, ge=1)


class SynonymScoreParams(Section):
    """Parameters of the ``synonym_score`` stage.

    Attributes:
        synonyms: the ``synonyms`` stage output ``{canonical: [names, canonical first]}``.
        data: the segments to score.
        clip: the CLIP model (GKC code: ``ViT-B-32`` / ``openai``; embedded: untrained tiny ViT).
        crop: ``mask`` = the segment's masked crop (paper: "cropped by instance masks", filled with
            ``fill``, bicubic resize ignoring aspect) or ``bbox`` = the raw bbox crop with CLIP's
            standard preprocessing (short side + centre crop), as GKC's ``syn_CLIP_sim.py`` does.
        fill: outside-mask fill of the ``mask`` crop: ``mean`` (CLIP mean) or ``grey`` (128).
        expand: bbox expand ratio.
        prompt: the text template; GKC code ``"a photo of {}"`` (no article).
        temperature: softmax temperature on cosine similarities; ``null`` = 1 / CLIP's logit scale
            (0.01 for OpenAI CLIP, as GKC).
        batch_size: crops per CLIP forward.
        output: ``{image_id: {segment_id: {class, category_id, scores: {name: p}}}}`` (JSON).
        metrics: summary statistics and the CLIP identity (DVC metrics file).
        table: one row per segment and name (CSV) for the notebook.
    """

    synonyms: str = "results/synonyms/coco_panoptic_133.json"
    data: CocoSource = CocoSource()
    clip: ClipParams = ClipParams()
    crop: Literal["mask", "bbox"] = "mask"
    fill: Literal["mean", "grey"] = "mean"
    expand: float = Field(1.0, ge=1.0)
    prompt: str = "a photo of {}"
    temperature: float | None = Field(None, gt=0)
    batch_size: int = Field(32, ge=1)
    output: str = "results/synonym_score/coco_panoptic_133.json"
    metrics: str = "results/synonym_score/metrics.json"
    table: str = "results/synonym_score/segments.csv"
