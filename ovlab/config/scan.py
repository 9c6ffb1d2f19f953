"""SCAN parameters: SIM (spec §4.2), Contextual Shift (§4.3), score ensemble (§4.4), and the ``scan``
stage section (:class:`ScanStageParams`: the SCAN segmenter's training, evaluation and ablation grids).

Defaults fit the embedded profile (``ovlab-tiny-vit``: 64 px, patch 8, 8×8 grid, width 64, 3 blocks,
embed 64); the SCAN values are given in brackets as ``[ViT-L | ViT-B]`` or ``[paper / code]``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, ValidationError, model_validator

from ovlab.config.clip import ClipParams
from ovlab.config.grids import deep_merge
from ovlab.config.scan_grids import INFERENCE_KEYS, ScanGridsParams, drop_keys
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
    """Contextual Shift of the mask-classifying CLIP (SCAN Eq. 5; ``ovlab.scan.shifted_vit``).

    Attributes:
        enabled: apply CS at all (false = Tab. 7 "W/o Contextual Shift").
        layers: 1-based blocks after which background tokens are replaced [1, 3, 5, 7, 9 | 1, 3, 5];
            tiny (3 blocks): [1] (the shallow first ~40 % of the depth, as ViT-B's 5 of 12) [INFER].
        ratio: α, share of background patches replaced [paper 0.3 / code 0.15]; used when ``preset``
            is null or does not list the benchmark.
        preset: ``vit-l`` / ``vit-b``: take α per benchmark from SCAN's yaml comments
            (``ovlab.scan.contextual_shift.CS_RATIO_PRESETS``); null = ``ratio`` everywhere.
        source: substitute token: ``cls`` (SCAN), ``noise``, ``original``, ``learnable``, ``none`` (Tab. 6).
        seed: seed of the background-patch draws [SCAN: unseeded Python ``random``].
    """

    enabled: bool = True
    layers: list[Annotated[int, Field(ge=0)]] = Field(default_factory=lambda: [1])
    ratio: float = Field(0.15, ge=0.0, le=1.0)
    preset: Literal["vit-l", "vit-b"] | None = None
    source: Literal["cls", "noise", "original", "learnable", "none"] = "cls"
    seed: int = 0

    def ratio_for(self, dataset: str) -> float:
        """α for a benchmark (canonical name); 0 when disabled."""
        if not self.enabled or self.source == "none":
            return 0.0
        if self.preset is None:
            return self.ratio
        from ovlab.config.presets import CS_RATIO_PRESETS

        return CS_RATIO_PRESETS[self.preset].get(dataset, self.ratio)


class EnsembleParams(Section):
    """Geometric score ensemble and semantic inference (spec §4.4; ``ovlab.segmenter.ensemble``).

    Attributes:
        preset: ``vit-l`` / ``vit-b``: [MASK_THR, λ] and the renormalisation per benchmark from
            SCAN's yaml comments (``ENSEMBLE_PRESETS``); benchmarks not listed use the fields below.
            null = the fields below everywhere.
        clip_weight: λ, the CLIP exponent of p_in^(1−λ)·p_clip^λ [yaml default 0.7].
        mask_threshold: σ(mask) threshold of the CLIP crops [yaml default 0.4].
        renormalize: the A-847 / PC-459 renormalisation with void [false; true for those two].
    """

    preset: Literal["vit-l", "vit-b"] | None = None
    clip_weight: float = Field(0.7, ge=0.0, le=1.0)
    mask_threshold: float = Field(0.4, ge=0.0, le=1.0)
    renormalize: bool = False

    def setting(self, dataset: str):
        """The :class:`ovlab.segmenter.ensemble.EnsembleSetting` for a benchmark (canonical name)."""
        from ovlab.config.presets import ENSEMBLE_PRESETS, EnsembleSetting

        own = EnsembleSetting(self.mask_threshold, self.clip_weight, self.renormalize)
        if self.preset is None:
            return own
        return ENSEMBLE_PRESETS[self.preset].get(dataset, own)


class ScanParams(Section):
    """The SCAN method: its three blocks and the test-time classification (spec §4).

    Attributes:
        sim: :class:`SimParams` (train and test).
        contextual_shift: :class:`ContextualShiftParams` (test time: the mask-classifying CLIP).
        ensemble: :class:`EnsembleParams` (test time).
        inference: which scores classify the proposals at test time (SCAN Tab. 8): ``mask`` (the
            in-model, SIM-calibrated proposal embeddings only), ``clip`` (the mask-classifying CLIP
            on the masked crops only; empty masks dropped) or ``both`` (the geometric ensemble) [both].
        clip_logit_scale: τ of the CLIP crop logits τ·cos(crop, text) [100, SCAN/OVSeg].
        mask_clip: weights of the mask-classifying CLIP (SCAN: the CS-fine-tuned CLIP merged by
            ``tools/replace_clip.py``): a checkpoint of the stage's ``clip.model`` that
            ``ovlab.clip.load_clip`` reads, relative to the params file; null = the stage's CLIP
            itself (which also gives SIM and the [CLS] substitutes: SCAN's ``original_clip``).
    """

    sim: SimParams = SimParams()
    contextual_shift: ContextualShiftParams = ContextualShiftParams()
    ensemble: EnsembleParams = EnsembleParams()
    inference: Literal["both", "mask", "clip"] = "both"
    clip_logit_scale: float = Field(100.0, gt=0.0)
    mask_clip: str | None = None


class ScanStageParams(Section):
    """``scan`` section: training and evaluation of the SCAN segmenter (notebook 03; SCAN §3–4, spec §4, §9).

    Shaped like :class:`ovlab.config.tgkd.TgkdParams`, plus the method (:class:`ScanParams`) and the
    ablation grids (:class:`ovlab.config.scan_grids.ScanGridsParams`). Paper values in brackets.

    Attributes:
        clip: the frozen CLIP ViT: text classifier, SIM's spatial tokens and final embedding, the
            [CLS] substitutes of CS and (unless ``scan.mask_clip``) the mask-classifying CLIP
            [ViT-L-14, datacomp_xl_s13b_b90k].
        model: the Mask2Former proposal model [Swin-B; the kit: ``backbone.kind`` clip / imagenet /
            tiny]; τ fixed at 100 [``logit_scale_init: 100``, ``learn_logit_scale: false``];
            templates [vild, 14 ViLD prompts].
        loss, data, augment, optim, schedule, train, eval: as for ``tgkd`` [SCAN: poly schedule,
            AdamW 6e-5, weight decay 0.01, 120k iterations, batch 32; spec §9].
        output: folder of ``ovlab train --section scan`` (``model.pt``, ``metrics.json``, ...).
        scan: the method, :class:`ScanParams`.
        grids: the ablation grids; every cell is validated as a complete section.
    """

    clip: ClipParams = ClipParams(model="ovlab-tiny-vit")
    model: ModelParams = ModelParams(backbone=BackboneParams(kind="tiny"), hidden_dim=32, mask_dim=32, num_queries=8,
                                     decoder_layers=2, heads=4, ffn_dim=64, encoder_ffn_dim=64,
                                     logit_scale_init=100.0, learn_logit_scale=False, templates="vild")
    loss: LossParams = LossParams(num_points=256)
    data: TrainDataParams = TrainDataParams()
    augment: AugmentParams = AugmentParams(crop_size=64)
    optim: OptimParams = OptimParams(lr=2e-3, weight_decay=0.01, backbone_multiplier=1.0, clip_grad=None)
    schedule: ScheduleParams = ScheduleParams(kind="poly", steps=[])
    train: LoopParams = LoopParams(iterations=32, batch_size=2, checkpoint_every=32, log_every=4, amp=False)
    eval: EvalParams = EvalParams(short_side=64, templates="vild")
    output: str = "results/scan/model"
    scan: ScanParams = ScanParams(sim=SimParams(cross_attention_layers=2, encoder_layers=2),
                                  contextual_shift=ContextualShiftParams(ratio=0.3))
    grids: ScanGridsParams = ScanGridsParams()

    @model_validator(mode="after")
    def _check_cells(self):
        for name in self.grids.models:
            self.grid_cell("models", name)
        for table, cell in self.grids.cells():
            self.grid_cell(table, cell)
        return self

    def with_overrides(self, overrides: dict, where: str = "overrides") -> "ScanStageParams":
        """This section with nested ``overrides`` deep-merged in and ``grids`` emptied (a cell's section).

        Raises:
            ValueError: the result does not validate; each line names ``where`` and the key.
        """
        if "grids" in overrides:
            raise ValueError(f"{where}: grids: a cell cannot change the grids")
        doc = deep_merge({**self.model_dump(mode="json"), "grids": {}}, overrides)
        try:
            return type(self).model_validate(doc)
        except ValidationError as exc:
            from ovlab.config import format_validation_error

            raise ValueError(format_validation_error(exc, where)) from None

    def grid_cell(self, table: str, cell: str) -> "ScanStageParams":
        """The section of one grid cell (``table="models"``: a shared model), output set to its folder.

        Raises:
            KeyError: unknown table or cell. ValueError: the cell does not validate (names the key).
        """
        over = self.grids.overrides(table, cell)
        folder = f"{self.grids.output}/models/{cell}" if table == "models" else f"{self.grids.output}/{table}/{cell}"
        cfg = self.with_overrides(over, f"scan.grids.{table}.{cell}")
        updates = {"output": folder}
        if self.grids.eval_max_images is not None:
            updates["eval"] = cfg.eval.model_copy(update={"max_images": self.grids.eval_max_images})
        return cfg.model_copy(update=updates)

    def training_view(self) -> dict:
        """The section without the test-time keys (:data:`ovlab.config.scan_grids.INFERENCE_KEYS`):
        two sections with equal views train the same model."""
        return drop_keys(self.model_dump(mode="json"), INFERENCE_KEYS)

    def shared_model(self, cfg: "ScanStageParams") -> str | None:
        """The name of the shared grid model that ``cfg`` (a cell's section) evaluates, or ``None``
        when ``cfg`` changes training (the cell trains its own model)."""
        view = cfg.training_view()
        for name in self.grids.models:
            if self.grid_cell("models", name).training_view() == view:
                return name
        return None
