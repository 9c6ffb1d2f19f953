"""SCAN parameters: SIM (SCAN §3.1, Eq. 1–3), Contextual Shift (SCAN §3.2, Eq. 4–5), the score
ensemble (SCAN §3 / Fig. 2; official code yongliu20/SCAN ``scan/ovseg_model.py``), and the ``scan``
stage section (:class:`ScanStageParams`: the SCAN segmenter's training, evaluation and ablation grids).

Test time, config meets model through one value: :meth:`ScanParams.inference_for` resolves the
per-benchmark presets (:mod:`ovlab.config.presets`) against the section's own fields into a frozen
:class:`ScanInference` of plain numbers, which :class:`ovlab.scan.model.ScanSegmenter` takes
(``set_inference``); the model never sees a section or a preset table.

Defaults fit the embedded profile (``ovlab-tiny-vit``: 64 px, patch 8, 8×8 grid, width 64, 3 blocks,
embed 64); the SCAN values are given in brackets as ``[ViT-L | ViT-B]`` or ``[paper / code]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, ClassVar, Literal

from pydantic import Field, ValidationError, model_validator

from ovlab.config.clip import ClipParams
from ovlab.config.grid import GridParams, GridSection
from ovlab.config.scan_cs import CsFinetuneParams, finetuned_mask_clip
from ovlab.config.schema import Section
from ovlab.config.segmenter import BackboneParams, LossParams, ModelParams
from ovlab.config.train import AugmentParams, EvalParams, LoopParams, OptimParams, ScheduleParams, TrainDataParams


class SimParams(Section):
    """Semantic Integration Module (SCAN Eq. 1–3; ``ovlab.scan.sim.SemanticIntegrationModule``).

    Attributes:
        enabled: calibrate the proposal embeddings with SIM at all (false = the baseline of Tab. 3,
            Tab. 4 row 1 and Tab. 8 (a): the embeddings go to the text classifier unchanged).
        layers: 1-based CLIP blocks whose spatial tokens are used [12, 18, 24 | 6, 9, 12]; tiny: all 3.
        sigmas: LFE σ per layer in frequency bins [9, 7, 3 on the 16×16 / 14×14 grid]; tiny: the
            paper's values halved for the 8×8 grid [INFER].
        lfe: ``code`` (Conv–ReLU–Conv), ``paper`` (Conv–ReLU, Eq. 1) or ``none`` (Tab. 4, no LFE).
        shared_lfe: one LFE for all layers [code: true].
        cross_attention_layers: stacked MHA layers [code 5 / paper 1].
        cross_attention_residual: E + MHA(E, M, M) [code: true]; false = Eq. 2 literally.
        heads: attention heads of cross-attention and encoder [8]; must divide the CLIP embed dim.
        encoder_layers: transformer-encoder layers [5] (0 = none).
        encoder_ff: encoder feed-forward width [2048]; tiny 256.
        encoder_dropout: [0.1].
        query_interaction: encoder over all queries together [paper] or per query, length 1 [code: false].
        use_spatial: use the spatial tokens (Tab. 4 "F_HW") [true].
        use_cls: add γ·F_CLS^final (Tab. 4 "F_CLS^final") [true].
        normalize_cls: L2-normalise F_CLS^final before γ [code: true; the paper does not say].
        gamma_init: initial γ [0.1].
        resize: ``F.interpolate`` mode bringing the image to the CLIP input size [nearest].
    """

    enabled: bool = True
    layers: list[Annotated[int, Field(ge=0)]] = Field(default_factory=lambda: [1, 2, 3], min_length=1)
    sigmas: list[Annotated[float, Field(gt=0)]] = Field(default_factory=lambda: [4.5, 3.5, 1.5], min_length=1)
    lfe: Literal["code", "paper", "none"] = "code"
    shared_lfe: bool = True
    cross_attention_layers: int = Field(5, ge=1)
    cross_attention_residual: bool = True
    heads: int = Field(8, ge=1)
    encoder_layers: int = Field(5, ge=0)
    encoder_ff: int = Field(256, ge=1)
    encoder_dropout: float = Field(0.1, ge=0.0, lt=1.0)
    query_interaction: bool = False
    use_spatial: bool = True
    use_cls: bool = True
    normalize_cls: bool = True
    gamma_init: float = 0.1
    resize: Literal["nearest", "bilinear", "bicubic"] = "nearest"

    @model_validator(mode="after")
    def _check(self):
        if len(self.sigmas) != len(self.layers):
            raise ValueError(f"sigmas needs one value per layer: {len(self.layers)} layers, {len(self.sigmas)} sigmas")
        if len(set(self.layers)) != len(self.layers):
            raise ValueError(f"layers must be distinct, got {self.layers}")
        return self


class ContextualShiftParams(Section):
    """Contextual Shift of the mask-classifying CLIP (SCAN §3.2, Eq. 5; ``ovlab.scan.contextual_shift``).

    Attributes:
        enabled: apply CS at all (false = Tab. 7 "W/o Contextual Shift").
        layers: 1-based blocks after which background tokens are replaced [1, 3, 5, 7, 9 | 1, 3, 5]
            (SCAN Tab. 7; code ``REPLACE_LAYER``); tiny (3 blocks): [1] (the shallow first ~40 % of
            the depth, as ViT-B's 5 of 12) [INFER].
        ratio: α, share of background patches replaced [paper 0.3 (SCAN Tab. 7, §4.5) / code 0.15];
            used when ``preset`` is null or does not list the benchmark.
        preset: ``vit-l`` / ``vit-b``: take α per benchmark from the comments of yongliu20/SCAN
            ``configs/scan_vitL.yaml`` and its ViT-B config (``ovlab.config.presets.CS_RATIO_PRESETS``);
            null = ``ratio`` everywhere.
        source: substitute token: ``cls`` (SCAN), ``noise``, ``original``, ``learnable``, ``none`` (SCAN Tab. 6).
        seed: seed of the background-patch draws [SCAN: unseeded Python ``random``].
    """

    enabled: bool = True
    layers: list[Annotated[int, Field(ge=0)]] = Field(default_factory=lambda: [1])
    ratio: float = Field(0.15, ge=0.0, le=1.0)
    preset: Literal["vit-l", "vit-b"] | None = None
    source: Literal["cls", "noise", "original", "learnable", "none"] = "cls"
    seed: int = 0

    def ratio_for(self, dataset: str) -> float:
        """α for a benchmark (canonical name; ``""`` = none); 0 when disabled."""
        if not self.enabled or self.source == "none":
            return 0.0
        if self.preset is None:
            return self.ratio
        from ovlab.config.presets import CS_RATIO_PRESETS

        return CS_RATIO_PRESETS[self.preset].get(dataset, self.ratio)


class EnsembleParams(Section):
    """Geometric score ensemble and semantic inference (SCAN §3 / Fig. 2; official code
    yongliu20/SCAN ``scan/ovseg_model.py`` ``semantic_inference``; ``ovlab.segmenter.ensemble``).

    Attributes:
        preset: ``vit-l`` / ``vit-b``: [MASK_THR, λ] and the renormalisation per benchmark from the
            comments of yongliu20/SCAN ``configs/scan_vitL.yaml`` and its ViT-B config
            (``ovlab.config.presets.ENSEMBLE_PRESETS``; the paper does not give them); benchmarks
            not listed use the fields below. null = the fields below everywhere.
        clip_weight: λ, the CLIP exponent of p_in^(1−λ)·p_clip^λ [yaml default 0.7].
        mask_threshold: σ(mask) threshold of the CLIP crops [yaml default 0.4].
        renormalize: the A-847 / PC-459 renormalisation with void [false; true for those two].
    """

    preset: Literal["vit-l", "vit-b"] | None = None
    clip_weight: float = Field(0.7, ge=0.0, le=1.0)
    mask_threshold: float = Field(0.4, ge=0.0, le=1.0)
    renormalize: bool = False

    def setting(self, dataset: str):
        """The :class:`ovlab.config.presets.EnsembleSetting` for a benchmark (canonical name; ``""`` = none)."""
        from ovlab.config.presets import ENSEMBLE_PRESETS, EnsembleSetting

        own = EnsembleSetting(self.mask_threshold, self.clip_weight, self.renormalize)
        if self.preset is None:
            return own
        return ENSEMBLE_PRESETS[self.preset].get(dataset, own)


INFERENCE_MODES = ("both", "mask", "clip")
"""Test-time proposal classification modes (SCAN Tab. 8): in-model and CLIP ensembled, in-model only, CLIP only."""


@dataclass(frozen=True)
class ScanInference:
    """The test-time settings of the SCAN segmenter for one benchmark: plain numbers, no presets.

    Made by :meth:`ScanParams.inference_for`; taken by :class:`ovlab.scan.model.ScanSegmenter`
    (constructor and ``set_inference``) and recorded in ``metrics.json`` (``ovlab.scan.task.scan_summary``).

    Attributes:
        benchmark: canonical benchmark name the settings were resolved for (``None`` = none given).
        mode: one of :data:`INFERENCE_MODES` (SCAN Tab. 8).
        mask_threshold: σ(mask logit) > threshold binarises a proposal for its CLIP crop (code ``MASK_THR``).
        clip_weight: λ of p_in^(1−λ)·p_clip^λ (code ``CLIP_ENSEMBLE_WEIGHT``).
        renormalize: the A-847 / PC-459 renormalisation with void (official ``scan/ovseg_model.py``).
        clip_logit_scale: τ of the crop logits τ·cos(crop, text).
        cs_source: Contextual-Shift substitute (SCAN Tab. 6); ``none`` when CS is off.
        cs_layers: 1-based CS blocks (SCAN Eq. 5 ``idx``); empty when CS is off.
        cs_ratio: α (SCAN Eq. 5); 0 when CS is off.
        cs_seed: seed of the background-patch draws (and of the ``learnable`` prompts).

    ``cs_source``, ``cs_layers`` and ``cs_seed`` shape the mask-classifying CLIP when the model is
    built; the other fields may change from one benchmark to the next.

    Raises:
        ValueError: unknown mode, or a number outside its range.
    """

    benchmark: str | None
    mode: str
    mask_threshold: float
    clip_weight: float
    renormalize: bool
    clip_logit_scale: float
    cs_source: str
    cs_layers: tuple[int, ...]
    cs_ratio: float
    cs_seed: int

    def __post_init__(self):
        if self.mode not in INFERENCE_MODES:
            raise ValueError(f"scan inference must be one of {INFERENCE_MODES}, got {self.mode!r}")
        for name in ("mask_threshold", "clip_weight", "cs_ratio"):
            if not 0.0 <= float(getattr(self, name)) <= 1.0:
                raise ValueError(f"scan inference {name} must be in [0, 1], got {getattr(self, name)}")
        if not float(self.clip_logit_scale) > 0.0:
            raise ValueError(f"scan inference clip_logit_scale must be > 0, got {self.clip_logit_scale}")
        object.__setattr__(self, "cs_layers", tuple(int(i) for i in self.cs_layers))


def canonical_benchmark(name: str | None) -> str | None:
    """The canonical name of a benchmark name or alias (``a-847`` → ``ade20k_847``); unknown names
    and ``None`` pass through unchanged."""
    if name is None:
        return None
    from ovlab.data.benchmarks import get_benchmark

    try:
        return get_benchmark(name).name
    except KeyError:
        return name


class ScanParams(Section):
    """The SCAN method: its three blocks and the test-time classification (SCAN §3).

    Attributes:
        sim: :class:`SimParams` (train and test).
        contextual_shift: :class:`ContextualShiftParams` (test time: the mask-classifying CLIP).
        ensemble: :class:`EnsembleParams` (test time).
        inference: which scores classify the proposals at test time (SCAN Tab. 8, §4.5): ``mask`` (the
            in-model, SIM-calibrated proposal embeddings only), ``clip`` (the mask-classifying CLIP
            on the masked crops only; empty masks dropped) or ``both`` (the geometric ensemble) [both].
        clip_logit_scale: τ of the CLIP crop logits τ·cos(crop, text) [100, SCAN/OVSeg].
        mask_clip: weights of the mask-classifying CLIP (SCAN: the CS-fine-tuned CLIP merged by
            yongliu20/SCAN ``tools/replace_clip.py``): a checkpoint of the stage's ``clip.model`` that
            ``ovlab.clip.load_clip`` reads, relative to the params file; null = the stage's CLIP
            itself (which also gives SIM and the [CLS] substitutes: SCAN's ``original_clip``).
        name_encoding: multi-name classes ("person, individual, someone"): ``whole`` = the whole
            string under each template (SCAN's code; the paper is silent, so the official side is
            the default) or ``split`` = one embedding per name, max over names (ovlab's GKC rule)
            (:data:`ovlab.clip.text.NAME_ENCODINGS`) [whole].
        eval_padding: ``grey`` (the kit's: pad the [0, 1] image with grey, crop from the padded
            image) or ``official`` (detectron2 ``ImageList``: pad with 0 *after* normalisation, for the
            backbone and the CLIP; CLIP crops from the unpadded image) [grey; ``protocol: official``].
    """

    sim: SimParams = SimParams()
    contextual_shift: ContextualShiftParams = ContextualShiftParams()
    ensemble: EnsembleParams = EnsembleParams()
    inference: Literal["both", "mask", "clip"] = "both"
    clip_logit_scale: float = Field(100.0, gt=0.0)
    mask_clip: str | None = None
    name_encoding: Literal["whole", "split"] = "whole"
    eval_padding: Literal["grey", "official"] = "grey"

    def inference_for(self, dataset: str | None) -> ScanInference:
        """The test-time settings for a benchmark: presets resolved against the fields.

        Args:
            dataset: benchmark name or alias (canonicalised; a name no preset lists gets the
                section's own values), or ``None`` (the section's own values).

        Returns:
            a :class:`ScanInference`: mask threshold, λ and renormalisation of
            :meth:`EnsembleParams.setting`, α of :meth:`ContextualShiftParams.ratio_for`, and the CS
            source / layers (``none`` / empty when CS is disabled).
        """
        name = canonical_benchmark(dataset)
        key = name or ""
        cs = self.contextual_shift
        on = cs.enabled and cs.source != "none"
        ens = self.ensemble.setting(key)
        return ScanInference(benchmark=name, mode=self.inference, mask_threshold=float(ens.mask_threshold),
                             clip_weight=float(ens.clip_weight), renormalize=bool(ens.renormalize),
                             clip_logit_scale=float(self.clip_logit_scale),
                             cs_source=cs.source if on else "none", cs_layers=tuple(cs.layers) if on else (),
                             cs_ratio=float(cs.ratio_for(key)), cs_seed=int(cs.seed))


class ScanStageParams(GridSection, ScanParams):
    """``scan`` section: training and evaluation of the SCAN segmenter (notebook 03; SCAN §3–4).

    Shaped like :class:`ovlab.config.tgkd.TgkdParams`, plus the method's fields (:class:`ScanParams`:
    ``sim``, ``contextual_shift``, ``ensemble``, ``inference``, ``clip_logit_scale``, ``mask_clip``,
    written at the top of the section) and the ablation grids (:class:`ovlab.config.grid.GridParams`). Paper values in brackets.

    Attributes:
        clip: the frozen CLIP ViT: text classifier, SIM's spatial tokens and final embedding, the
            [CLS] substitutes of CS and (unless ``mask_clip``) the mask-classifying CLIP
            [ViT-L-14, datacomp_xl_s13b_b90k].
        model: the Mask2Former proposal model [Swin-B: ``backbone.kind: swin``, ``swin: swin-b``;
            the kit also: clip / imagenet / tiny]; τ fixed at 100 [``logit_scale_init: 100``,
            ``learn_logit_scale: false``]; templates [vild, 14 ViLD prompts]; SCAN's head
            [``head: scan``, ``embed_hidden_dim: 1024``; embedded 64].
        loss, data, augment, optim, schedule, train, eval: as for ``tgkd`` [SCAN: poly schedule,
            AdamW 6e-5, weight decay 0.01, 120k iterations, batch 32: SCAN §4.2 and yongliu20/SCAN
            ``configs/scan_vitL.yaml``].
        output: folder of ``ovlab train --section scan`` (``model.pt``, ``metrics.json``, ...).
        sim, contextual_shift, ensemble, inference, clip_logit_scale, mask_clip: the method
            (:class:`ScanParams`; the embedded SIM has 2 cross-attention and 2 encoder layers, CS the
            paper's ratio 0.3).
        grids: the ablation grids; every cell is validated as a complete section.
        protocol: ``kit`` or ``official``: SCAN's official test-time protocol, filled in where the
            section does not write the key (:attr:`OFFICIAL_PROTOCOL`: per-benchmark mask threshold,
            λ and renormalisation (A-847, PC-459) and CS ratio of the ViT-L config, short side 640 /
            max 2560, 14 ViLD templates on whole class names, zero padding after normalisation).
        cs_finetune: SCAN's fine-tuning of the mask-classifying CLIP with CS
            (:class:`ovlab.config.scan_cs.CsFinetuneParams`); a grid cell with CS on classifies its
            crops with the fine-tuned CLIP of its source (:meth:`grid_section`).
    """

    SECTION: ClassVar[str] = "scan"
    #: ``protocol: official`` fills these (dotted key → value) where the section does not set them:
    #: SCAN's official test-time protocol (yongliu20/SCAN ``configs/scan_vitL.yaml`` + its comments).
    OFFICIAL_PROTOCOL: ClassVar[dict] = {
        "ensemble.preset": "vit-l", "contextual_shift.preset": "vit-l", "contextual_shift.ratio": 0.15,
        "eval.short_side": 640, "eval.max_size": 2560, "eval.templates": "vild", "name_encoding": "whole",
        "eval_padding": "official",
    }
    #: Keys that change only the evaluation of a trained model: CS is a test-time change of the
    #: mask-classifying CLIP (SCAN §3.2), the ensemble and the inference mode act on its outputs.
    TEST_TIME_KEYS: ClassVar[tuple[str, ...]] = ("contextual_shift", "ensemble", "inference", "clip_logit_scale",
                                                 "mask_clip", "eval", "output", "grids", "cs_finetune")

    clip: ClipParams = ClipParams(model="ovlab-tiny-vit")
    model: ModelParams = ModelParams(backbone=BackboneParams(kind="tiny"), hidden_dim=32, mask_dim=32, num_queries=8,
                                     decoder_layers=2, heads=4, ffn_dim=64, encoder_ffn_dim=64,
                                     logit_scale_init=100.0, learn_logit_scale=False, templates="vild",
                                     head="scan", embed_hidden_dim=64)
    loss: LossParams = LossParams(num_points=256)
    data: TrainDataParams = TrainDataParams()
    augment: AugmentParams = AugmentParams(crop_size=64)
    optim: OptimParams = OptimParams(lr=2e-3, weight_decay=0.01, backbone_multiplier=1.0, clip_grad=None)
    schedule: ScheduleParams = ScheduleParams(kind="poly", steps=[])
    train: LoopParams = LoopParams(iterations=32, batch_size=2, checkpoint_every=32, log_every=4, amp=False)
    eval: EvalParams = EvalParams(short_side=64, templates="vild")
    output: str = "results/scan/model"
    sim: SimParams = SimParams(cross_attention_layers=2, encoder_layers=2)
    contextual_shift: ContextualShiftParams = ContextualShiftParams(ratio=0.3)
    grids: GridParams = GridParams(output="results/scan")
    protocol: Literal["kit", "official"] = "kit"

    @model_validator(mode="before")
    @classmethod
    def _official_protocol(cls, data):
        """``protocol: official`` = :attr:`OFFICIAL_PROTOCOL` under whatever the section writes itself."""
        if not isinstance(data, dict) or data.get("protocol") != "official":
            return data
        out = dict(data)
        for dotted, value in cls.OFFICIAL_PROTOCOL.items():
            *parents, last = dotted.split(".")
            node = out
            for p in parents:
                child = node.get(p)
                child = dict(child) if isinstance(child, dict) else ({} if child is None else child)
                if not isinstance(child, dict):          # a validated sub-section: leave it to the caller
                    node = None
                    break
                node[p] = child
                node = child
            if node is not None:
                node.setdefault(last, value)
        return out

    #: SCAN's CS fine-tuning of the mask-classifying CLIP (``ovlab.config.scan_cs``; stage ``scan_cs_finetune``).
    cs_finetune: CsFinetuneParams = CsFinetuneParams()

    def grid_section(self, table: str, cell: str) -> "ScanStageParams":
        """:meth:`GridSection.grid_section`, with ``mask_clip`` set to the CS-fine-tuned CLIP of the
        cell's substitute source (:func:`ovlab.config.scan_cs.finetuned_mask_clip`) when the cell
        names none itself. A shared model (``table="models"``) keeps the stage's CLIP: it is trained,
        never scored, there (its cells bring their own mask CLIP)."""
        cfg = super().grid_section(table, cell)
        if table == "models":
            return cfg
        path = finetuned_mask_clip(cfg)
        return cfg if path == cfg.mask_clip else cfg.model_copy(update={"mask_clip": path})
