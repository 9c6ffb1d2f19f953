"""Preset tables: named tables of values that a section's explicit fields override.

Each table is data transcribed from a paper or its official code; :mod:`ovlab.config` resolves a
section's ``preset`` against it into plain values that the models and losses receive. Nothing else
imports these tables to decide behaviour.

- :data:`LOSS_PRESETS`: the Mask2Former-loss settings of GKC's paper (Eq. 4, §4.2) and of its
  official code (GKC ``configs/*.yaml``: the code adds a 50 % region dropout).
- :data:`WEIGHT_PRESETS`: the λ of GKC's calibration terms (paper Eq. 4 / §4.2, or the code's).
- :data:`CS_RATIO_PRESETS`: SCAN's test-time Contextual-Shift ratio α (SCAN Eq. 5) per CLIP and
  benchmark (comments of the official yongliu20/SCAN ``configs/scan_vitL.yaml`` and its ViT-B
  config; the paper's ratio is 0.3, SCAN Tab. 7).
- :data:`ENSEMBLE_PRESETS`: SCAN's mask threshold and CLIP-ensemble λ per CLIP and benchmark (the
  same config comments; the paper does not give them).

The SCAN tables are resolved by :meth:`ovlab.config.scan.ScanParams.inference_for` into an
:class:`ovlab.config.scan.ScanInference`.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Loss settings of the GKC paper (Eq. 4) and of its official code (GKC's yaml ``MASK_WEIGHT`` / ``DICE_WEIGHT`` / ``PLAIN_LOSS_WEIGHT`` and the model's defaults). The code also
#: weights the synonym CE, grounding and KD by 10; those live with the GKC losses.
LOSS_PRESETS: dict[str, dict] = {
    "paper": {"mask_weight": 5.0, "dice_weight": 5.0, "class_weight": 2.0, "void_weight": 0.1,
              "matcher_class": 2.0, "matcher_mask": 5.0, "matcher_dice": 5.0, "region_dropout": 0.0},
    "code": {"mask_weight": 5.0, "dice_weight": 5.0, "class_weight": 2.0, "void_weight": 0.1,
             "matcher_class": 2.0, "matcher_mask": 5.0, "matcher_dice": 5.0, "region_dropout": 0.5},
}


PAPER_WEIGHTS: dict[str, float] = {
    "loss_syn": 2.0,                             # λ_c (loss_syn only appears when the plain CE is kept)
    "loss_grounding": 2.0,                       # λ_g
    "loss_kd": 2.0, "loss_text_kd": 2.0,         # λ_kd
}
"""GKC paper Eq. 4 / §4.2: the calibration terms (λ_m = 5 and the plain CE's λ_c = 2 are :data:`LOSS_PRESETS`'
``mask_weight`` / ``dice_weight`` / ``class_weight``, the one home of the Mask2Former terms' weights)."""

CODE_WEIGHTS: dict[str, float] = {
    "loss_syn": 10.0,                            # default PER_REGION.SYN_CLASS.LOSS_WEIGHT
    "loss_grounding": 10.0,                      # yaml GROUNDING.LOSS_WEIGHT
    "loss_kd": 10.0,                             # default KD.KD_WEIGHT
    "loss_text_kd": 10.0,                        # [INFER] TEXT_KD_WEIGHT is ≤ 0 (unused) by default
}
"""GKC official code: the defaults ``SYN_CLASS.LOSS_WEIGHT``, ``KD.KD_WEIGHT`` and the yaml's
``GROUNDING.LOSS_WEIGHT`` (mask, dice, plain CE: :data:`LOSS_PRESETS`)."""

WEIGHT_PRESETS: dict[str, dict[str, float]] = {"paper": PAPER_WEIGHTS, "code": CODE_WEIGHTS}


def loss_weights(preset: str = "paper", **overrides: float) -> dict[str, float]:
    """The GKC calibration weights of a preset with some replaced, e.g. ``loss_weights("code", loss_kd=2.0)``
    (what :meth:`ovlab.config.gkc.LossWeightsParams.resolve` gives the objective).

    Raises:
        ValueError: unknown preset or override name.
    """
    if preset not in WEIGHT_PRESETS:
        raise ValueError(f"loss-weight preset must be one of {tuple(WEIGHT_PRESETS)}, got {preset!r}")
    out = dict(WEIGHT_PRESETS[preset])
    unknown = sorted(set(overrides) - set(out))
    if unknown:
        raise ValueError(f"unknown loss terms {unknown}; known: {sorted(out)}")
    out.update({k: float(v) for k, v in overrides.items()})
    return out


# Test-time α per CLIP and benchmark (yongliu20/SCAN ``configs/scan_vitL.yaml`` comments and the ViT-B
# config's); the code's default is 0.15 (``ContextualShiftParams.ratio``), the paper's 0.3 (SCAN Tab. 7).
CS_RATIO_PRESETS: dict[str, dict[str, float]] = {
    "vit-l": {"ade20k_847": 0.15, "ade20k_150": 0.05, "pascal_context_459": 0.05, "pascal_context_59": 0.05,
              "pascal_voc_20": 0.10},
    "vit-b": {"ade20k_847": 0.05, "ade20k_150": 0.05, "pascal_context_459": 0.05, "pascal_context_59": 0.05,
              "pascal_voc_20": 0.10},
}


@dataclass(frozen=True)
class EnsembleSetting:
    """One benchmark's ensemble setting (a row of :data:`ENSEMBLE_PRESETS`).

    Attributes:
        mask_threshold: σ(mask logit) > threshold binarises a mask for its CLIP crop (``MASK_THR``).
        clip_weight: λ, the CLIP exponent (``CLIP_ENSEMBLE_WEIGHT``).
        renormalize: the A-847 / PC-459 renormalisation with void (hard-coded by dataset name in
            yongliu20/SCAN ``scan/ovseg_model.py``).
    """

    mask_threshold: float
    clip_weight: float
    renormalize: bool = False


# [MASK_THR, λ] per CLIP and benchmark (yongliu20/SCAN ``configs/scan_vitL.yaml`` comments and the ViT-B
# config's); the yaml default is [0.4, 0.7].
ENSEMBLE_PRESETS: dict[str, dict[str, EnsembleSetting]] = {
    "vit-l": {
        "ade20k_847": EnsembleSetting(0.3, 0.75, True),
        "ade20k_150": EnsembleSetting(0.55, 0.75),
        "pascal_context_459": EnsembleSetting(0.25, 0.65, True),
        "pascal_context_59": EnsembleSetting(0.5, 0.5),
        "pascal_voc_20": EnsembleSetting(0.2, 0.65),
    },
    "vit-b": {
        "ade20k_847": EnsembleSetting(0.25, 0.75, True),
        "ade20k_150": EnsembleSetting(0.4, 0.7),
        "pascal_context_459": EnsembleSetting(0.25, 0.7, True),
        "pascal_context_59": EnsembleSetting(0.25, 0.35),
        "pascal_voc_20": EnsembleSetting(0.2, 0.45),
    },
}
DEFAULT_SETTING = EnsembleSetting(0.4, 0.7)


def ensemble_preset(dataset: str, clip: str = "vit-l") -> EnsembleSetting:
    """SCAN's setting for a benchmark (canonical names of :mod:`ovlab.data.benchmarks`).

    Unknown benchmarks (COCO, Cityscapes, the embedded data...) get the yaml default [0.4, 0.7]
    without renormalisation.

    Raises:
        ValueError: unknown ``clip`` (``vit-l`` or ``vit-b``).
    """
    if clip not in ENSEMBLE_PRESETS:
        raise ValueError(f"ensemble preset clip must be one of {sorted(ENSEMBLE_PRESETS)}, got {clip!r}")
    return ENSEMBLE_PRESETS[clip].get(dataset, DEFAULT_SETTING)
