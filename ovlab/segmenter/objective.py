"""The baseline training objective: the Mask2Former set criterion on the vocabulary's classes.

:class:`MaskObjective` applies mask BCE + dice + the plain-name CE on every decoder prediction
(Mask2Former ``mask2former/modeling/criterion.py``; GKC §3 and SCAN §3 baselines). The methods'
objectives build on it: GKC's Eq. 4 in :mod:`ovlab.gkc.criterion`, the video tubes in
:mod:`ovlab.video.criterion`.
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch.nn.parallel import DistributedDataParallel

from ovlab.segmenter.criterion import CriterionOutput, SetCriterion
from ovlab.segmenter.inference import names_to_classes


def _net(model):
    return model.module if isinstance(model, DistributedDataParallel) else model


def class_predictions(preds: list, vocab) -> list:
    """Predictions with per-class logits: the model scores the vocabulary's M names, the criterion's
    targets index its K classes; a multi-name class (``,`` / ``_or_`` parts) takes the max over its
    names, void last, as at inference (GKC ``mask2former/maskformer_model_voca_dense_kd_syn.py`` L778–781).
    One name per class in order: ``preds`` itself.

    Args:
        preds: per decoder layer, predictions whose ``logits`` are (B, Q, M + 1).
        vocab: the training :class:`ovlab.segmenter.vocabulary.Vocabulary` (K classes, M names).

    Returns:
        The same predictions with (B, Q, K + 1) logits.
    """
    ci = vocab.class_index
    if ci.numel() == len(vocab) and bool((ci.cpu() == torch.arange(len(vocab))).all()):
        return preds
    return [replace(p, logits=names_to_classes(p.logits, ci.to(p.logits.device), len(vocab))) for p in preds]


def first_name_rows(vocab) -> torch.Tensor:
    """(K,) int64: the row of each class's first name in the vocabulary's (M, D) text embeddings."""
    ci = vocab.class_index.cpu()
    rows = torch.full((len(vocab),), -1, dtype=torch.long)
    for m in range(ci.numel() - 1, -1, -1):
        rows[ci[m]] = m
    return rows


class MaskObjective:
    """Mask2Former losses on the vocabulary's classes (the baseline: L_M + L_CE of GKC Eq. 4).

    Args:
        loss_params: the section's ``loss`` (:class:`ovlab.config.train.LossParams`).
        vocab: the training vocabulary; with multi-name classes the name logits are reduced to
            class logits (:func:`class_predictions`) before matching. ``None``: one name per class.
    """

    def __init__(self, loss_params, vocab=None):
        self.criterion = SetCriterion(loss_params)
        self.vocab = vocab

    def __call__(self, net, batch, text: torch.Tensor, generator: torch.Generator) -> CriterionOutput:
        preds = net(batch.images, text)
        if self.vocab is not None:
            preds = class_predictions(preds, self.vocab)
        return self.criterion(preds, batch.labels, batch.masks, generator=generator)
