"""Controlled experiments on how SG-IoU (SCAN Eq. 6) and mIoU diverge (issue 3).

Every experiment starts from ground-truth label maps and corrupts a copy of them into a
"prediction" in a known way, so the effect on both metrics can be read off directly:

(a) :func:`association_swaps` — every pixel (or a share) of a child class predicted as one of its
    fathers (parent or synonym per an :class:`~ovlab.metrics.AssociationMap`), next to a control
    swap of the same pixels to an unrelated class: mIoU drops the same way, SG-IoU forgives only
    the father swap.
(b) :func:`confusion_curve` — random confusions of increasing rate (seeded): ``uniform`` (a random
    other class), ``to_father`` (a random father; classes without fathers untouched) or ``mixed``
    (a father when the class has one, else a random other class).
(c) :func:`per_class_deltas` — per-class SG-IoU − IoU of one confusion matrix.

All figures are in percent, detectron2 convention (:func:`ovlab.metrics.summarize`). Same inputs
and seed → identical results. :func:`run_sgiou_stage` runs the ``sgiou`` stage on top.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ovlab.metrics.association import AssociationMap, load_association_map
from ovlab.metrics.confusion import ConfusionMatrix
from ovlab.metrics.scores import iou, sg_iou, summarize

KINDS = ("uniform", "to_father", "mixed")


def load_label_maps(dataset: str, root: str | Path, max_images: int | None = None) -> tuple[list[str], list[np.ndarray]]:
    """Ground-truth label maps of a benchmark (:mod:`ovlab.data.benchmarks`).

    Returns:
        (stems, maps): maps are (H, W) int64 with contiguous indices 0..K-1 and the ignore label.

    Raises:
        DatasetNotFoundError: nothing under ``root`` in a layout the benchmark knows.
    """
    from ovlab.data.benchmarks import get_benchmark

    bench = get_benchmark(dataset)
    recs = bench.records(root)
    if max_images is not None:
        recs = recs[:max_images]
    return [r.stem for r in recs], [bench.load_gt(r) for r in recs]


def confusion_of(gts: Sequence[np.ndarray], preds: Sequence[np.ndarray], num_classes: int) -> np.ndarray:
    """(K, K) int64 confusion matrix (rows = ground truth) of label-map pairs; GT ≥ K is ignored."""
    cm = ConfusionMatrix(num_classes, ignore_labels=_ignores(gts, num_classes))
    for g, p in zip(gts, preds):
        cm.update(g, p)
    return cm.numpy()


def _ignores(gts, K: int) -> list[int]:
    vals = {int(v) for g in gts for v in np.unique(g) if v >= K or v < 0}
    return sorted(vals | {v for v in (255, 65535) if v >= K})


def _fathers(amap: AssociationMap | Mapping[int, Sequence[int]]) -> dict[int, list[int]]:
    if isinstance(amap, AssociationMap):
        return amap.index_fathers()
    return {int(q): [int(f) for f in (fs if isinstance(fs, (list, tuple)) else [fs])] for q, fs in amap.items()}


def score(confusion: np.ndarray, fathers: Mapping[int, Sequence[int]], mode: str = "code") -> dict[str, float]:
    """``{"mIoU", "SG-mIoU", "pACC", "SG-pACC"}`` in percent (SCAN Eq. 6 for the SG figures)."""
    plain, sg = summarize(confusion), summarize(confusion, fathers, mode)
    return {"mIoU": plain["mIoU"], "SG-mIoU": sg["mIoU"], "pACC": plain["pACC"], "SG-pACC": sg["pACC"]}


def swap_predictions(gts: Sequence[np.ndarray], mapping: Mapping[int, int], num_classes: int,
                     fraction: float = 1.0, seed: int = 0) -> list[np.ndarray]:
    """Predictions equal to the GT except that pixels of class ``q`` become ``mapping[q]``.

    Args:
        gts: (H, W) integer label maps; values ≥ K are ignore pixels (predicted 0, never counted).
        mapping: class index → class index it is predicted as.
        fraction: share of each class's pixels swapped, chosen per pixel with a seeded Bernoulli
            draw (1.0 swaps all of them, no randomness).

    Returns:
        (H, W) int64 predictions, one per GT.
    """
    rng = np.random.default_rng(seed)
    lut = np.arange(num_classes + 1, dtype=np.int64)
    lut[num_classes] = 0
    for q, f in mapping.items():
        lut[int(q)] = int(f)
    out = []
    for g in gts:
        g = np.asarray(g, dtype=np.int64)
        base = np.where(g < num_classes, g, 0)
        swapped = lut[np.minimum(g, num_classes)]
        if fraction < 1.0:
            keep = rng.random(g.shape) >= fraction
            swapped = np.where(keep, base, swapped)
        out.append(swapped)
    return out


def random_confusions(gts: Sequence[np.ndarray], num_classes: int, rate: float, kind: str = "uniform",
                      fathers: Mapping[int, Sequence[int]] | None = None, seed: int = 0) -> list[np.ndarray]:
    """Predictions with seeded random confusions at ``rate``.

    Each valid pixel is corrupted with probability ``rate`` (one Bernoulli draw per pixel):

    - ``uniform``: predicted as a uniformly drawn *other* class (so ``rate`` is the error rate);
    - ``to_father``: pixels of classes with fathers predicted as a uniformly drawn father; the other
      classes stay correct;
    - ``mixed``: a father when the class has one, else a uniformly drawn other class.

    Args:
        gts: (H, W) integer label maps (values ≥ K are ignore pixels, predicted 0).
        rate: in [0, 1].
        fathers: class index → father indices (needed for ``to_father`` / ``mixed``).

    Returns:
        (H, W) int64 predictions.

    Raises:
        ValueError: unknown kind, rate outside [0, 1], or no fathers for a kind that needs them.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown corruption kind {kind!r} (use {', '.join(KINDS)})")
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"rate must be in [0, 1], got {rate}")
    K = num_classes
    fl = _fathers(fathers or {})
    if kind != "uniform" and not fl:
        raise ValueError(f"kind {kind!r} needs a non-empty association map")
    nf = np.zeros(K + 1, dtype=np.int64)
    table = np.zeros((K + 1, max([len(v) for v in fl.values()], default=1)), dtype=np.int64)
    for q, fs in fl.items():
        nf[q] = len(fs)
        table[q, :len(fs)] = fs
    rng = np.random.default_rng(seed)
    out = []
    for g in gts:
        g = np.minimum(np.asarray(g, dtype=np.int64), K)
        valid = g < K
        pred = np.where(valid, g, 0)
        hit = valid & (rng.random(g.shape) < rate)
        other = rng.integers(0, max(K - 1, 1), g.shape)
        other = other + (other >= g)  # skip the true class
        pick = np.floor(rng.random(g.shape) * np.maximum(nf[g], 1)).astype(np.int64)
        father = table[g, pick]
        has_f = nf[g] > 0
        if kind == "uniform":
            new = other
        elif kind == "to_father":
            hit &= has_f
            new = father
        else:
            new = np.where(has_f, father, other)
        pred = np.where(hit, new, pred)
        out.append(pred)
    return out


def _relation(amap: AssociationMap | None, child: str, father: str) -> str:
    if amap is None:
        return "father"
    return "parent" if father in amap.parents.get(child, ()) else "synonym"


def association_swaps(gts: Sequence[np.ndarray], amap: AssociationMap, *, mode: str = "code",
                      fraction: float = 1.0, seed: int = 0) -> pd.DataFrame:
    """Experiment (a): each child predicted as each of its fathers, against a control swap.

    For every (child q, father f) pair of ``amap`` whose child occurs in ``gts``, predictions are
    the GT with q's pixels relabelled f (a ``fraction`` of them); the control relabels the same
    pixels as a class c drawn (seeded) among the classes present in the GT that are neither q, a
    father of q, nor a child of q (the control columns are NaN when no class qualifies). A last row, child ``"(all)"``, swaps every present child with
    fathers to its first father at once.

    Returns:
        DataFrame, one row per pair: ``child``, ``father``, ``relation`` (parent/synonym),
        ``child_pixels``, ``mIoU``, ``SG-mIoU``, ``IoU_child``, ``SG-IoU_child`` (percent),
        ``control``, ``control_mIoU``, ``control_SG-mIoU``; plus the ``(all)`` row.
    """
    K = amap.num_classes
    names = amap.categories.names
    fl = amap.index_fathers()
    base = swap_predictions(gts, {}, K)
    G = confusion_of(gts, base, K).sum(axis=1)
    present = [int(c) for c in np.flatnonzero(G)]
    rng = np.random.default_rng(seed)
    rows = []
    for q in [q for q in sorted(fl) if G[q] > 0]:
        for f in fl[q]:
            conf = confusion_of(gts, swap_predictions(gts, {q: f}, K, fraction, seed), K)
            s = score(conf, fl, mode)
            row = {"child": names[q], "father": names[f], "relation": _relation(amap, names[q], names[f]),
                   "child_pixels": int(G[q]), "mIoU": s["mIoU"], "SG-mIoU": s["SG-mIoU"],
                   "IoU_child": _pct(iou(conf)[q]), "SG-IoU_child": _pct(sg_iou(conf, fl, mode)[q])}
            pool = [c for c in present if c != q and c not in fl[q] and q not in fl.get(c, ())]
            if pool:
                c = int(rng.choice(pool))
                cs = score(confusion_of(gts, swap_predictions(gts, {q: c}, K, fraction, seed), K), fl, mode)
                row.update(control=names[c], control_mIoU=cs["mIoU"], **{"control_SG-mIoU": cs["SG-mIoU"]})
            else:
                row.update(control=None, control_mIoU=math.nan, **{"control_SG-mIoU": math.nan})
            rows.append(row)
    children = {q: fl[q][0] for q in sorted(fl) if G[q] > 0}
    if children:
        conf = confusion_of(gts, swap_predictions(gts, children, K, fraction, seed), K)
        s = score(conf, fl, mode)
        rows.append({"child": "(all)", "father": "(first father)", "relation": "all",
                     "child_pixels": int(G[list(children)].sum()), "mIoU": s["mIoU"], "SG-mIoU": s["SG-mIoU"],
                     "IoU_child": math.nan, "SG-IoU_child": math.nan, "control": None,
                     "control_mIoU": math.nan, "control_SG-mIoU": math.nan})
    cols = ["child", "father", "relation", "child_pixels", "mIoU", "SG-mIoU", "IoU_child", "SG-IoU_child",
            "control", "control_mIoU", "control_SG-mIoU"]
    return pd.DataFrame(rows, columns=cols)


def confusion_curve(gts: Sequence[np.ndarray], amap: AssociationMap | Mapping[int, Sequence[int]], num_classes: int,
                    rates: Sequence[float], kinds: Sequence[str] = ("uniform", "to_father"), *,
                    mode: str = "code", seed: int = 0) -> pd.DataFrame:
    """Experiment (b): mIoU and SG-mIoU against the confusion rate, per corruption kind.

    Each (kind, rate) point draws its corruption with the seed ``[seed, kind index, point index]``,
    so adding a rate does not change the others' draws.

    Returns:
        Long DataFrame: ``kind``, ``rate``, ``mIoU``, ``SG-mIoU``, ``gap`` (= SG-mIoU − mIoU),
        ``pACC``, ``SG-pACC`` (percent).
    """
    fl = _fathers(amap)
    rows = []
    for ki, kind in enumerate(kinds):
        for ri, rate in enumerate(rates):
            preds = random_confusions(gts, num_classes, float(rate), kind, fl,
                                      seed=int(np.random.SeedSequence([seed, KINDS.index(kind), ri]).generate_state(1)[0]))
            s = score(confusion_of(gts, preds, num_classes), fl, mode)
            rows.append({"kind": kind, "rate": float(rate), "mIoU": s["mIoU"], "SG-mIoU": s["SG-mIoU"],
                         "gap": s["SG-mIoU"] - s["mIoU"], "pACC": s["pACC"], "SG-pACC": s["SG-pACC"]})
    return pd.DataFrame(rows, columns=["kind", "rate", "mIoU", "SG-mIoU", "gap", "pACC", "SG-pACC"])


def per_class_deltas(confusion: np.ndarray, amap: AssociationMap, mode: str = "code") -> pd.DataFrame:
    """Experiment (c): per-class IoU, SG-IoU and SG-IoU − IoU (percent) of one (K, K) matrix.

    Returns:
        DataFrame over the classes that count (G + P > 0): ``index``, ``name``, ``fathers``
        (names joined by ``"; "``), ``gt_pixels``, ``pred_pixels``, ``IoU``, ``SG-IoU``, ``delta``;
        sorted by ``delta`` descending, then index.
    """
    fl = amap.index_fathers()
    names = amap.categories.names
    c = np.asarray(confusion)
    a, b = iou(c), sg_iou(c, fl, mode)
    G, P = c.sum(axis=1), c.sum(axis=0)
    rows = [{"index": k, "name": names[k], "fathers": "; ".join(names[f] for f in fl.get(k, [])),
             "gt_pixels": int(G[k]), "pred_pixels": int(P[k]), "IoU": a[k] * 100, "SG-IoU": b[k] * 100,
             "delta": (b[k] - a[k]) * 100} for k in range(len(names)) if G[k] + P[k] > 0]
    df = pd.DataFrame(rows, columns=["index", "name", "fathers", "gt_pixels", "pred_pixels", "IoU", "SG-IoU", "delta"])
    return df.sort_values(["delta", "index"], ascending=[False, True], kind="stable").reset_index(drop=True)


def _pct(v: float) -> float:
    return float(v) * 100


@dataclass
class PartResult:
    """The three experiments on one dataset (one "part" of the stage)."""

    name: str
    dataset: str
    num_images: int
    synthetic_data: bool
    swaps: pd.DataFrame
    curve: pd.DataFrame
    per_class: pd.DataFrame
    summary: dict = field(default_factory=dict)


def run_part(name: str, dataset: str, gts: Sequence[np.ndarray], amap: AssociationMap, *, synthetic_data: bool,
             rates: Sequence[float], kinds: Sequence[str], delta_rate: float, delta_kind: str,
             mode: str = "code", fraction: float = 1.0, seed: int = 0) -> PartResult:
    """Experiments (a), (b), (c) on one set of GT maps, plus a JSON-ready summary."""
    K = amap.num_classes
    swaps = association_swaps(gts, amap, mode=mode, fraction=fraction, seed=seed)
    curve = confusion_curve(gts, amap, K, rates, kinds, mode=mode, seed=seed)
    fl = amap.index_fathers()
    preds = random_confusions(gts, K, delta_rate, delta_kind, fl, seed=seed)
    conf = confusion_of(gts, preds, K)
    per_class = per_class_deltas(conf, amap, mode)
    pairs = swaps[swaps.child != "(all)"]
    allrow = swaps[swaps.child == "(all)"]
    summary = {
        "dataset": dataset, "num_images": len(gts), "synthetic_data": synthetic_data,
        "association": amap.identity(), "pairs_present": int(len(pairs)),
        "swap_all": ({"mIoU": float(allrow["mIoU"].iloc[0]), "SG-mIoU": float(allrow["SG-mIoU"].iloc[0])}
                     if len(allrow) else None),
        "swap_mean_gap": float((pairs["SG-mIoU"] - pairs["mIoU"]).mean()) if len(pairs) else None,
        "control_mean_gap": float((pairs["control_SG-mIoU"] - pairs["control_mIoU"]).mean()) if len(pairs) else None,
        "curve_max_gap": {k: float(g.gap.max()) for k, g in curve.groupby("kind", sort=False)},
        "delta": {"rate": delta_rate, "kind": delta_kind, **score(conf, fl, mode),
                  "classes_boosted": int((per_class.delta > 0).sum())},
    }
    return PartResult(name, dataset, len(gts), synthetic_data, swaps, curve, per_class, summary)


@dataclass
class SgiouResult:
    """What :func:`run_sgiou_stage` returns.

    Attributes:
        parts: the parts run; skipped: part name → why it was skipped; metrics: the JSON written;
        predictions: ``ovlab eval``'s per-class table of ``predictions`` (None when unset);
        swaps, curve, per_class: the parts' frames concatenated with a ``part`` column
        (``per_class`` includes the predictions' rows, part ``"predictions"``).
    """

    parts: list[PartResult]
    skipped: dict[str, str]
    metrics: dict
    predictions: pd.DataFrame | None = None
    swaps: pd.DataFrame | None = None
    curve: pd.DataFrame | None = None
    per_class: pd.DataFrame | None = None


def curve_wide(parts: Sequence[PartResult]) -> pd.DataFrame:
    """One row per rate, columns ``<part>_<kind>_miou`` / ``<part>_<kind>_sgmiou`` (the DVC plot)."""
    frames = []
    for p in parts:
        for kind, g in p.curve.groupby("kind", sort=False):
            frames.append(g.set_index("rate")[["mIoU", "SG-mIoU"]].rename(
                columns={"mIoU": f"{p.name}_{kind}_miou", "SG-mIoU": f"{p.name}_{kind}_sgmiou"}))
    return pd.concat(frames, axis=1).reset_index() if frames else pd.DataFrame({"rate": []})


def run_sgiou_stage(stage) -> SgiouResult:
    """The ``sgiou`` stage: experiments on COCO-133 (``data_root``) and ADE-150 (``ade_root``,
    skipped with a reason when absent), optional scoring of ``predictions``; writes ``metrics``
    (JSON), ``curve`` (wide CSV), ``swaps`` and ``per_class`` (long CSVs with a ``part`` column).

    Args:
        stage: :class:`ovlab.config.StageParams` of section ``sgiou``.

    Raises:
        DatasetNotFoundError: the COCO data is missing (the ADE part is optional).
    """
    from ovlab.atomic import write_text
    from ovlab.caveats import EMBEDDED_CAVEAT
    from ovlab.config.record import write_record

    cfg, seed = stage.cfg, stage.base.seed
    common = dict(rates=cfg.rates, kinds=cfg.kinds, delta_rate=cfg.delta_rate, delta_kind=cfg.delta_kind,
                  mode=cfg.mode, fraction=cfg.swap_fraction, seed=seed)
    embedded = stage.base.profile == "embedded"
    parts, skipped = [], {}
    _, gts = load_label_maps("coco_133", stage.path(cfg.data_root), cfg.max_images)
    parts.append(run_part("coco", "coco_133", gts, load_association_map(cfg.coco_association),
                          synthetic_data=embedded, **common))
    ade = stage.path(cfg.ade_root)
    if ade.is_dir():
        _, gts = load_label_maps("ade20k_150", ade, cfg.max_images)
        parts.append(run_part("ade", "ade20k_150", gts, load_association_map(cfg.ade_association),
                              synthetic_data=False, **common))
    else:
        skipped["ade"] = f"ADE-150 folder {cfg.ade_root} not found ({ade}); the ADE-150 part was skipped"
    metrics = {"synthetic": embedded, "mode": cfg.mode, "seed": seed,
               "note": "predictions are synthetic corruptions of the ground truth in every part"}
    if embedded:
        metrics["caveat"] = EMBEDDED_CAVEAT
    metrics.update({p.name: p.summary for p in parts})
    metrics.update({k: {"skipped": v} for k, v in skipped.items()})
    pred_table = None
    if cfg.predictions:
        from ovlab.metrics.evaluate import evaluate_predictions

        res = evaluate_predictions(cfg.predictions_dataset, stage.path(cfg.predictions), stage.path(cfg.predictions_gt_root),
                                   sg=True, sg_mode=cfg.mode, progress=False)
        metrics["predictions"] = {"folder": cfg.predictions, **_json_ready(res.summary)}
        pred_table = pd.DataFrame(res.table)
    write_record(stage.path(cfg.metrics), _json_ready(metrics))  # + info.json beside it (ovlab.config.record)
    write_text(stage.path(cfg.curve), curve_wide(parts).to_csv(index=False, float_format="%.6g"))
    swaps = pd.concat([p.swaps.assign(part=p.name) for p in parts], ignore_index=True)
    write_text(stage.path(cfg.swaps), swaps.to_csv(index=False, float_format="%.6g"))
    frames = [p.per_class.assign(part=p.name) for p in parts]
    if pred_table is not None:
        pt = pred_table.dropna(subset=["IoU"]).assign(part="predictions")
        pt["delta"] = pt["SG-IoU"] - pt["IoU"]
        frames.append(pt)
    per_class = pd.concat(frames, ignore_index=True)
    write_text(stage.path(cfg.per_class), per_class.to_csv(index=False, float_format="%.6g"))
    curve = pd.concat([p.curve.assign(part=p.name) for p in parts], ignore_index=True)
    return SgiouResult(parts, skipped, metrics, pred_table, swaps, curve, per_class)


def _json_ready(v):
    if isinstance(v, dict):
        return {k: _json_ready(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json_ready(x) for x in v]
    if isinstance(v, (float, np.floating)):
        return None if math.isnan(v) else float(v)
    if isinstance(v, np.integer):
        return int(v)
    return v
