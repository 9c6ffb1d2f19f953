"""Query classification targets and the void-weighted CE (Mask2Former ``loss_labels``; L_CE of GKC Eq. 4).

Checked against GKC `mask2former/maskformer_model_voca_dense_kd_syn.py` ``loss_labels`` /
``loss_labels_process_each`` (L834–902) and Mask2Former ``mask2former/modeling/criterion.py``
``loss_labels``: every query's target is void, a matched query's is its GT's class; with region
dropout (GKC yaml ``PER_REGION.DROPOUT``, not in the paper) each matched query's target is set to
ignore (−100) with probability p, one independent draw per matched query **and per CE call** (the
plain CE, the synonym CE and every decoder layer draw anew); the CE weighs void by
``NO_OBJECT_WEIGHT`` = 0.1 and is PyTorch's weighted mean over the non-ignored queries. One
deliberate difference: when every target is ignored the official CE is 0/0 = NaN, ours is 0
(connected to the graph), so a batch whose matched queries are all dropped and which has no
unmatched query cannot poison training.

Convention: logits have C + 1 columns, the void ("no object") column last; targets hold a class
index in [0, C) for a matched query, C (void) for an unmatched one, or ``IGNORE_INDEX``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100


def query_targets(
    num_queries: int,
    num_classes: int,
    matches: list[tuple[torch.Tensor, torch.Tensor]],
    labels: list[torch.Tensor],
    *,
    region_dropout: float = 0.0,
    generator: torch.Generator | None = None,
    ignore_index: int = IGNORE_INDEX,
) -> torch.Tensor:
    """Per-query class targets: void everywhere, the matched GT's label at matched queries.

    Region dropout (GKC yaml ``PER_REGION.DROPOUT``, not in the paper): each matched
    query's target becomes ``ignore_index`` independently with probability ``region_dropout``
    (one uniform draw per matched query, images in order, matches in order).

    Args:
        num_queries: Q.
        num_classes: C (the void index).
        matches: B pairs ``(query_idx, target_idx)`` of int64 tensors.
        labels: B tensors (N_b,) int64 in [0, C).
        region_dropout: probability in [0, 1].
        generator: CPU generator for the dropout draws (``None``: global RNG).

    Returns:
        (B, Q) int64 on the labels' device.

    Raises:
        ValueError: ``region_dropout`` outside [0, 1] or ``len(matches) != len(labels)``.
    """
    if not 0.0 <= region_dropout <= 1.0:
        raise ValueError(f"region_dropout must be in [0, 1], got {region_dropout}")
    if len(matches) != len(labels):
        raise ValueError(f"{len(matches)} matches for {len(labels)} images")
    device = labels[0].device if labels else torch.device("cpu")
    out = torch.full((len(labels), num_queries), num_classes, dtype=torch.int64, device=device)
    for b, ((q, t), lab) in enumerate(zip(matches, labels)):
        q = q.to(device=device, dtype=torch.int64)
        tgt = lab[t.to(device=device, dtype=torch.int64)]
        if region_dropout > 0 and q.numel():
            drop = torch.rand(q.numel(), generator=generator).to(device) < region_dropout
            tgt = torch.where(drop, torch.full_like(tgt, ignore_index), tgt)
        out[b, q] = tgt
    return out


def class_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    void_weight: float = 0.1,
    *,
    ignore_index: int = IGNORE_INDEX,
) -> torch.Tensor:
    """Cross-entropy with weight ``void_weight`` on the last (void) column, 1 elsewhere.

    loss = Σ_q w[y_q]·(−log softmax(z_q)[y_q]) / Σ_q w[y_q] over non-ignored queries (PyTorch's
    weighted mean, as Mask2Former's ``loss_labels``; GKC ``NO_OBJECT_WEIGHT`` = 0.1).

    Args:
        logits: (..., C + 1) float, void last; ``-inf`` columns (padding) are allowed if no target
            points at them.
        targets: logits.shape[:-1] int64 in [0, C] ∪ {ignore_index}.
        void_weight: CE weight of the void class.

    Returns:
        0-d tensor; 0 (connected to the graph) when every target is ignored.

    Raises:
        ValueError: shapes disagree or a target is out of range.
    """
    if logits.shape[:-1] != targets.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and targets {tuple(targets.shape)} disagree")
    n = logits.shape[-1]
    valid = targets != ignore_index
    bad = valid & ((targets < 0) | (targets >= n))
    if bad.any():
        raise ValueError(f"targets must be in [0, {n - 1}] or {ignore_index}, got {targets[bad].unique().tolist()}")
    if not valid.any():
        return logits.nan_to_num(0.0, 0.0, 0.0).sum() * 0.0
    weight = torch.ones(n, dtype=logits.dtype, device=logits.device)
    weight[-1] = void_weight
    return F.cross_entropy(logits.reshape(-1, n), targets.reshape(-1), weight=weight, ignore_index=ignore_index)
