"""``sgiou`` section: controlled experiments on how SG-IoU (SCAN Eq. 6) and mIoU diverge (issue 3)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from ovlab.config.schema import Section


class SgiouParams(Section):
    """Parameters of the ``sgiou`` stage (``notebooks/04_sgiou_analysis.ipynb``).

    Attributes:
        data_root: COCO root whose ``panoptic_semseg_val2017`` labels (0..132 / 255) are the
            ground truth of the COCO-133 part (benchmark ``coco_133``).
        coco_association: association map for COCO-133 (a shipped name, a vocabulary = its default
            map, or a JSON path; ``ovlab.metrics.association.resolve_association``): ovlab's WordNet map
            (SCAN has none for COCO).
        ade_root: ADE20K-150 root (any layout ``ovlab.data.benchmarks`` reads); skipped with a note
            when the folder is absent. Default: the 3 real samples beside the checkout.
        ade_association: association map for ADE-150: the vocabulary's default, SCAN's own pairs
            (``scan_ade20k_150``); ``wordnet_ade20k_150`` is ovlab's WordNet-derived alternative.
        max_images: use only the first N images of each part (``null`` = all).
        mode: SG-IoU variant, ``code`` (SCAN's evaluator) or ``pooled`` (Eq. 6 as printed).
        swap_fraction: share of a child's pixels relabelled as its father in experiment (a).
        rates: confusion rates of the curve in experiment (b), each in [0, 1].
        kinds: corruptions of the curve: ``uniform`` (a random other class), ``to_father`` (a
            random father, classes with fathers only), ``mixed`` (a father when the class has one,
            else a random other class).
        delta_rate, delta_kind: the corruption whose per-class SG-IoU − IoU experiment (c) shows.
        predictions: optional folder of prediction PNGs, scored with ``ovlab eval``'s function.
        predictions_dataset, predictions_gt_root: the benchmark and GT root of ``predictions``.
        metrics, curve, swaps, per_class: output files.
    """

    data_root: str = "data/embedded/coco"
    coco_association: str = "coco_panoptic_133"
    ade_root: str = "../shared/data/samples/ade20k_150"
    ade_association: str = "ade20k_150"
    max_images: int | None = Field(None, ge=1)
    mode: Literal["code", "pooled"] = "code"
    swap_fraction: float = Field(1.0, gt=0.0, le=1.0)
    rates: list[Annotated[float, Field(ge=0.0, le=1.0)]] = Field(default_factory=lambda: [0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0], min_length=1)
    kinds: list[Literal["uniform", "to_father", "mixed"]] = Field(default_factory=lambda: ["uniform", "to_father"], min_length=1)
    delta_rate: float = Field(0.3, ge=0.0, le=1.0)
    delta_kind: Literal["uniform", "to_father", "mixed"] = "mixed"
    predictions: str | None = None
    predictions_dataset: str = "coco_133"
    predictions_gt_root: str = "data/embedded/coco"
    metrics: str = "results/sgiou/metrics.json"
    curve: str = "results/sgiou/curve.csv"
    swaps: str = "results/sgiou/swaps.csv"
    per_class: str = "results/sgiou/per_class.csv"
