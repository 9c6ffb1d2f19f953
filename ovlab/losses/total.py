"""GKC total loss (paper Eq. 4; spec §2.3) over all decoder layers (deep supervision).

    L = λ_m·L_M + λ_c·L_CE + λ_g·L_G + λ_kd·L_TGKD,   paper: λ_m = 5, λ_c = λ_g = λ_kd = 2,

with L_M = BCE + dice (each weighted λ_m, as Mask2Former and GKC's yaml do). Every term is applied
on every decoder prediction (GKC ``dense_list``: final + 9 aux, identical weights) and summed.

Named terms (the GKC code's keys): ``loss_mask``, ``loss_dice`` (L_M), ``loss_ce`` (L_CE; plain
names, or the diversified names when only one CE is used), ``loss_syn`` (GKC code's extra synonym
CE), ``loss_grounding`` (L_G), ``loss_kd`` (L_TGKD, or the vanilla part when split) and
``loss_text_kd`` (the pairwise KD part when split). Weight presets: :data:`WEIGHT_PRESETS`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

PAPER_WEIGHTS: dict[str, float] = {
    "loss_mask": 5.0, "loss_dice": 5.0,          # λ_m
    "loss_ce": 2.0, "loss_syn": 2.0,             # λ_c (loss_syn only appears when the plain CE is kept)
    "loss_grounding": 2.0,                       # λ_g
    "loss_kd": 2.0, "loss_text_kd": 2.0,         # λ_kd
}
"""GKC paper Eq. 4 / §4.2."""

CODE_WEIGHTS: dict[str, float] = {
    "loss_mask": 5.0, "loss_dice": 5.0,          # yaml MASK_WEIGHT, DICE_WEIGHT
    "loss_ce": 2.0,                              # yaml PLAIN_LOSS_WEIGHT
    "loss_syn": 10.0,                            # default PER_REGION.SYN_CLASS.LOSS_WEIGHT
    "loss_grounding": 10.0,                      # yaml GROUNDING.LOSS_WEIGHT
    "loss_kd": 10.0,                             # default KD.KD_WEIGHT
    "loss_text_kd": 10.0,                        # [INFER] TEXT_KD_WEIGHT is ≤ 0 (unused) by default
}
"""GKC official code (spec §2.3 table)."""

WEIGHT_PRESETS: dict[str, dict[str, float]] = {"paper": PAPER_WEIGHTS, "code": CODE_WEIGHTS}


def loss_weights(preset: str = "paper", **overrides: float) -> dict[str, float]:
    """The weights of a preset with some replaced, e.g. ``loss_weights("code", loss_kd=2.0)``.

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


def gkc_loss(l_mask, l_ce, l_grounding, l_tgkd, *, lambda_m: float = 5.0, lambda_c: float = 2.0,
             lambda_g: float = 2.0, lambda_kd: float = 2.0):
    """GKC Eq. 4 for one prediction: λ_m·L_M + λ_c·L_CE + λ_g·L_G + λ_kd·L_TGKD (paper defaults)."""
    return lambda_m * l_mask + lambda_c * l_ce + lambda_g * l_grounding + lambda_kd * l_tgkd


@dataclass
class TotalLoss:
    """The weighted sum and its parts.

    Attributes:
        total: 0-d tensor, Σ over layers and terms of weight·term.
        terms: unweighted terms; the final prediction's keep their names, prediction l of L−1 earlier
            ones gets the suffix ``_l`` (Mask2Former / :mod:`ovlab.losses.criterion` convention).
        weights: the weight of each entry of ``terms``.
    """

    total: torch.Tensor
    terms: dict[str, torch.Tensor]
    weights: dict[str, float]

    def log_values(self) -> dict[str, float]:
        """Floats for logging: every term, ``<name>_weighted`` for the final layer, and ``loss_total``."""
        out = {k: float(v.detach()) for k, v in self.terms.items()}
        for k, v in self.terms.items():
            if not k.rsplit("_", 1)[-1].isdigit():  # final-layer terms have no "_<layer>" suffix
                out[f"{k}_weighted"] = float(v.detach()) * self.weights[k]
        out["loss_total"] = float(self.total.detach())
        return out


def total_loss(layers: Sequence[Mapping[str, torch.Tensor]], weights: Mapping[str, float], *,
               strict: bool = True) -> TotalLoss:
    """Σ_layers Σ_terms weight[name]·term (GKC Eq. 4 with deep supervision; spec §2.3).

    Args:
        layers: one ``{name: 0-d tensor}`` per decoder prediction, the **final prediction last**
            (e.g. the 9 aux then the final, as Mask2Former orders them). Layers may hold different
            terms (e.g. grounding only on some).
        weights: ``{name: λ}`` (:func:`loss_weights`). A weight of 0 keeps the term in ``terms`` but
            out of the total.
        strict: raise on a term without a weight (else it is logged with weight 0).

    Returns:
        :class:`TotalLoss`.

    Raises:
        ValueError: no layer, a term without a weight (``strict``), or a term that is not a 0-d tensor.
    """
    if not layers:
        raise ValueError("total_loss needs at least one layer's terms")
    last = len(layers) - 1
    terms: dict[str, torch.Tensor] = {}
    used: dict[str, float] = {}
    total = None
    for li, layer in enumerate(layers):
        for name, value in layer.items():
            if name not in weights:
                if strict:
                    raise ValueError(f"loss term {name!r} (layer {li}) has no weight; weights: {sorted(weights)}")
            if not isinstance(value, torch.Tensor) or value.dim() != 0:
                raise ValueError(f"loss term {name!r} (layer {li}) must be a 0-d tensor")
            key = name if li == last else f"{name}_{li}"
            w = float(weights.get(name, 0.0))
            terms[key] = value
            used[key] = w
            if w != 0.0:
                total = w * value if total is None else total + w * value
    if total is None:
        ref = next((v for layer in layers for v in layer.values()), None)
        total = ref * 0.0 if ref is not None else torch.zeros(())
    return TotalLoss(total=total, terms=terms, weights=used)
