"""AdamW with parameter groups and the detectron2-style schedules (GKC §4.2, SCAN §4.2)."""

from __future__ import annotations

import math

import torch
from torch import nn

NORM_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm, nn.GroupNorm, nn.InstanceNorm1d,
              nn.InstanceNorm2d, nn.InstanceNorm3d, nn.LayerNorm, nn.LocalResponseNorm)
"""detectron2's norm layers (GKC / SCAN ``train_net.py`` ``build_optimizer``): ``SOLVER.WEIGHT_DECAY_NORM`` = 0."""

POSITIONAL_TABLES = ("relative_position_bias_table", "absolute_pos_embed")
"""Swin's positional tables, exempt by name in GKC / SCAN ``train_net.py`` ``build_optimizer``."""

EXTENDED_NAMES = ("logit_scale", "void_embedding", "level_embed", "text_scale")
"""``no_decay: extended`` also exempts these (τ, the void embedding, the pixel decoder's level
embedding, the KD text scale s): learnt scalars and embeddings that are ``nn.Parameter`` s, not
``nn.Embedding`` tables, so the official rule decays them."""

NO_DECAY_RULES = ("code", "extended")


def decays(module: nn.Module, param_name: str, full_name: str, rule: str = "code") -> bool:
    """Whether a parameter gets weight decay.

    ``code`` (GKC / SCAN ``train_net.py`` ``build_optimizer``, i.e. detectron2 / Mask2Former with
    ``WEIGHT_DECAY_NORM`` = ``WEIGHT_DECAY_EMBED`` = 0): every parameter decays except those of norm
    layers (:data:`NORM_TYPES`), of ``nn.Embedding`` tables (queries, the decoder's level embedding)
    and Swin's positional tables (:data:`POSITIONAL_TABLES`); biases, τ, the void embedding, the
    KD text scale s, the pixel decoder's level embedding decay. ``extended`` (ovlab's earlier rule):
    the same, and no decay for names containing one of :data:`EXTENDED_NAMES` either.

    Args:
        module: the module that owns the parameter directly.
        param_name: its name within ``module`` (``weight``, ``logit_scale``...).
        full_name: its dotted name in the model.
        rule: ``code`` | ``extended``.

    Raises:
        ValueError: unknown rule.
    """
    if rule not in NO_DECAY_RULES:
        raise ValueError(f"no_decay must be one of {NO_DECAY_RULES}, got {rule!r}")
    if isinstance(module, NORM_TYPES + (nn.Embedding,)) or any(k in param_name for k in POSITIONAL_TABLES):
        return False
    return not (rule == "extended" and any(k in full_name for k in EXTENDED_NAMES))


def param_groups(model: nn.Module, lr: float, weight_decay: float, backbone_multiplier: float,
                 no_decay: str = "code") -> list[dict]:
    """AdamW groups: backbone lr × ``backbone_multiplier``; weight decay by :func:`decays` (``no_decay``
    = ``code``: the official GKC / SCAN training; ``extended``: also none on τ, void, s, level embeddings).

    Returns:
        up to 4 groups ``{"params", "lr", "weight_decay", "name"}``; frozen parameters are left out,
        a parameter shared by two modules is counted once.

    Raises:
        ValueError: unknown ``no_decay``.
    """
    groups: dict[tuple[bool, bool], list] = {}
    seen: set[int] = set()
    for module_name, module in model.named_modules():
        for param_name, p in module.named_parameters(recurse=False):
            if not p.requires_grad or id(p) in seen:
                continue
            seen.add(id(p))
            bare = f"{module_name}.{param_name}".removeprefix("module.") if module_name else param_name
            is_backbone = bare.startswith("backbone.")
            decay = decays(module, param_name, bare, no_decay)
            groups.setdefault((is_backbone, decay), []).append(p)
    if no_decay not in NO_DECAY_RULES:  # a model without parameters still reports a bad rule
        raise ValueError(f"no_decay must be one of {NO_DECAY_RULES}, got {no_decay!r}")
    out = []
    for (is_backbone, decay), params in sorted(groups.items()):
        out.append({"params": params, "lr": lr * (backbone_multiplier if is_backbone else 1.0),
                    "weight_decay": weight_decay if decay else 0.0,
                    "name": f"{'backbone' if is_backbone else 'head'}{'' if decay else '/no_decay'}"})
    return out


def lr_factor(it: int, params, iterations: int) -> float:
    """LR multiplier at iteration ``it`` (0-based) for :class:`ovlab.config.train.ScheduleParams`.

    ``step``: γ^(number of steps ≤ it); ``poly``: (1 − it/iterations)^power; ``cosine``:
    (1 + cos(π·it/iterations))/2 (detectron2 ``WarmupCosineLR``, CAT-Seg); all times the linear
    warm-up factor w + (1 − w)·it/warmup_iters for it < warmup_iters (detectron2 ``WarmupMultiStepLR`` /
    ``WarmupPolyLR``).
    """
    if params.kind == "step":
        f = params.gamma ** sum(1 for s in params.steps if it >= s)
    elif params.kind == "cosine":  # detectron2 WarmupCosineLR (CAT-Seg)
        f = 0.5 * (1.0 + math.cos(math.pi * it / iterations))
    else:
        f = (1.0 - it / iterations) ** params.power
    if it < params.warmup_iters:
        alpha = it / params.warmup_iters
        f *= params.warmup_factor * (1 - alpha) + alpha
    return f


def build_optimizer(model: nn.Module, optim_params, schedule_params, iterations: int):
    """AdamW + ``LambdaLR`` from :class:`ovlab.config.train.OptimParams` / ``ScheduleParams``."""
    groups = param_groups(model, optim_params.lr, optim_params.weight_decay, optim_params.backbone_multiplier,
                          optim_params.no_decay)
    opt = torch.optim.AdamW(groups, lr=optim_params.lr, betas=tuple(optim_params.betas))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda it: lr_factor(it, schedule_params, iterations))
    return opt, sched
