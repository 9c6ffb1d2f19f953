"""``scan.cs_finetune``: SCAN's fine-tuning of the mask-classifying CLIP with Contextual Shift (SCAN §3.2
last paragraph, §4.2 "for fine-tuned CLIP, the training process is the same as OVSeg"; official code
yongliu20/SCAN ``open_clip_training/src/scripts/finetune_VitL_with_mask.sh`` and
``open_clip_training/src/training/train.py``; ``ovlab.scan.cs_finetune``).

One fine-tuned CLIP is trained per Contextual-Shift substitute source listed in ``sources`` (the
DVC stage ``scan_cs_finetune@<source>``), written to ``<output>/<source>/clip.pt`` (+ ``prompts.pt``
for the ``learnable`` source, SCAN Tab. 6 "learnable prompt"). A SCAN grid cell whose CS is on loads
the fine-tuned CLIP of its source as its mask-classifying CLIP (:func:`finetuned_mask_clip`,
applied by :meth:`ovlab.config.scan.ScanStageParams.grid_section`), unless the cell sets
``mask_clip`` itself.

Defaults: the embedded profile (a few iterations on the tiny CLIP); SCAN's schedule in brackets
[finetune_VitL_with_mask.sh / open_clip ``training/params.py`` defaults].
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ovlab.config.schema import Section
from ovlab.config.train import TrainDataParams

FINETUNE_SOURCES = ("cls", "noise", "original", "learnable", "none")
"""CS substitute sources a CLIP can be fine-tuned with (SCAN Tab. 6; ``none`` = OVSeg's fine-tuning, no shift)."""


class CsFinetuneParams(Section):
    """CLIP fine-tuning on masked crops with Contextual Shift (``ovlab.scan.cs_finetune``).

    Attributes:
        enabled: CS cells of the SCAN grids load the fine-tuned CLIP of their source (false = CS at
            test time on the pretrained CLIP only).
        sources: substitute sources to fine-tune one CLIP for (one DVC stage each) [cls; Tab. 6
            needs cls, noise, original, learnable].
        output: folder of ``<source>/clip.pt`` (full open_clip state dict, loadable as
            ``clip.pretrained``), ``<source>/prompts.pt`` (``learnable``) and ``<source>/metrics.json``.
        data: the training images (COCO panoptic reader; every class, ``vocabulary: all``). SCAN
            uses OVSeg's 442k mask-noun pairs from COCO Captions (not shipped); ovlab pairs each
            ground-truth segment with its class name ([INFER], docs/paper_vs_code.md).
        min_area: smallest segment (pixels) that gives a pair; crowd segments are skipped.
        text_template: prompt of the class name [INFER: OVSeg's "a photo of a {}."].
        layers: CS blocks during fine-tuning; null = the section's ``contextual_shift.layers``
            [code: the forward default 1, 3, 5, 7, 9].
        ratio: α during fine-tuning; null = the section's ``contextual_shift.ratio`` [code: 0.15,
            the forward default; the paper is silent, its test α is 0.3].
        lock_text: keep the text tower frozen [``--lock-text``: true].
        lr: AdamW learning rate [5e-6]. weight_decay: on ≥2-D weights (not biases, norms,
            ``logit_scale`` or the prompts) [0.2]. prompt_weight_decay: on the learnable prompts
            [open_clip ``--mask_wd`` 0.0]. betas, eps: AdamW [0.9, 0.98], [1e-6] (open_clip's ViT values).
        warmup: linear warm-up iterations [100]; then cosine decay to 0 [open_clip ``cosine``].
        iterations: total iterations; null = ``epochs`` passes over the pairs.
        epochs: [10] (used when ``iterations`` is null).
        batch_size: pairs per iteration (one process) [32 × 8 GPUs = 256].
        amp: fp16 autocast + GradScaler on CUDA [``--precision amp``]; ignored on CPU.
        max_logit_scale: clamp of the learned logit scale [100, i.e. ln 100 on the log scale].
        checkpoint_every: write a resumable checkpoint every N iterations (and at the end).
        checkpoint_dir: where runs keep checkpoints (``<dir>/scan_cs-<source>-<fingerprint>/last.pt``).
        log_every: loss entries in ``metrics.json`` history every N iterations.
        seed: seed of the data order and the CS draws (``null`` = ``base.seed``).
    """

    enabled: bool = True
    sources: list[Literal["cls", "noise", "original", "learnable", "none"]] = Field(
        default_factory=lambda: ["cls", "noise", "original", "learnable"], min_length=1)
    output: str = "results/scan_cs"
    data: TrainDataParams = TrainDataParams(vocabulary="all")
    min_area: int = Field(64, ge=1)
    text_template: str = "a photo of a {}."
    layers: list[int] | None = None
    ratio: float | None = Field(None, ge=0.0, le=1.0)
    lock_text: bool = True
    lr: float = Field(1e-4, gt=0.0)
    weight_decay: float = Field(0.2, ge=0.0)
    prompt_weight_decay: float = Field(0.0, ge=0.0)
    betas: list[float] = Field(default_factory=lambda: [0.9, 0.98], min_length=2, max_length=2)
    eps: float = Field(1e-6, gt=0.0)
    warmup: int = Field(1, ge=0)
    iterations: int | None = Field(4, ge=1)
    epochs: int = Field(10, ge=1)
    batch_size: int = Field(8, ge=2)
    amp: bool = True
    max_logit_scale: float = Field(100.0, gt=0.0)
    checkpoint_every: int = Field(1000, ge=1)
    checkpoint_dir: str = "checkpoints"
    log_every: int = Field(1, ge=1)
    seed: int | None = None

    def weights_path(self, source: str) -> str:
        """``<output>/<source>/clip.pt`` (relative to the params file)."""
        return f"{self.output}/{source}/clip.pt"

    def prompts_path(self, source: str) -> str:
        """``<output>/<source>/prompts.pt``: the trained prompt tokens of the ``learnable`` source."""
        return f"{self.output}/{source}/prompts.pt"


def finetuned_mask_clip(section) -> str | None:
    """The fine-tuned CLIP a SCAN section (a grid cell) classifies its crops with, or ``None``.

    Args:
        section: a :class:`ovlab.config.scan.ScanStageParams` (``contextual_shift``, ``mask_clip``,
            ``cs_finetune``).

    Returns:
        ``section.mask_clip`` when set (an explicit choice wins); else, when ``cs_finetune.enabled``
        and CS is on with a source listed in ``cs_finetune.sources``, that source's
        ``<output>/<source>/clip.pt``; with CS off, the ``none`` fine-tuning when listed; else ``None``
        (the stage's pretrained CLIP).
    """
    if section.mask_clip is not None:
        return section.mask_clip
    ft = section.cs_finetune
    if not ft.enabled:
        return None
    cs = section.contextual_shift
    source = cs.source if cs.enabled else "none"
    return ft.weights_path(source) if source in ft.sources else None
