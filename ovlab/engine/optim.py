"""AdamW with parameter groups and the detectron2-style schedules (GKC §4.2, SCAN §4.2)."""

from __future__ import annotations

import torch
from torch import nn

_NO_DECAY_TYPES = (nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm, nn.Embedding, nn.SyncBatchNorm)
_NO_DECAY_NAMES = ("logit_scale", "void_embedding", "level_embed", "text_scale")


def param_groups(model: nn.Module, lr: float, weight_decay: float, backbone_multiplier: float) -> list[dict]:
    """AdamW groups: backbone lr × ``backbone_multiplier``; no weight decay on norm layers,
    embeddings, τ, the KD text scale s, the void embedding and the level embeddings (detectron2's ``WEIGHT_DECAY_NORM`` /
    ``WEIGHT_DECAY_EMBED`` = 0; biases decay, as detectron2's default).

    Returns:
        up to 4 groups ``{"params", "lr", "weight_decay", "name"}``; frozen parameters are left out.
    """
    no_decay = set()
    for module in model.modules():
        if isinstance(module, _NO_DECAY_TYPES):
            no_decay.update(id(p) for p in module.parameters(recurse=False))
    groups: dict[tuple[bool, bool], list] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        bare = name.removeprefix("module.")
        is_backbone = bare.startswith("backbone.")
        decay = not (id(p) in no_decay or any(k in bare for k in _NO_DECAY_NAMES))
        groups.setdefault((is_backbone, decay), []).append(p)
    out = []
    for (is_backbone, decay), params in sorted(groups.items()):
        out.append({"params": params, "lr": lr * (backbone_multiplier if is_backbone else 1.0),
                    "weight_decay": weight_decay if decay else 0.0,
                    "name": f"{'backbone' if is_backbone else 'head'}{'' if decay else '/no_decay'}"})
    return out


def lr_factor(it: int, params, iterations: int) -> float:
    """LR multiplier at iteration ``it`` (0-based) for :class:`ovlab.config.train.ScheduleParams`.

    ``step``: γ^(number of steps ≤ it); ``poly``: (1 − it/iterations)^power; both times the linear
    warm-up factor w + (1 − w)·it/warmup_iters for it < warmup_iters (detectron2 ``WarmupMultiStepLR`` /
    ``WarmupPolyLR``).
    """
    if params.kind == "step":
        f = params.gamma ** sum(1 for s in params.steps if it >= s)
    else:
        f = (1.0 - it / iterations) ** params.power
    if it < params.warmup_iters:
        alpha = it / params.warmup_iters
        f *= params.warmup_factor * (1 - alpha) + alpha
    return f


def build_optimizer(model: nn.Module, optim_params, schedule_params, iterations: int):
    """AdamW + ``LambdaLR`` from :class:`ovlab.config.train.OptimParams` / ``ScheduleParams``."""
    groups = param_groups(model, optim_params.lr, optim_params.weight_decay, optim_params.backbone_multiplier)
    opt = torch.optim.AdamW(groups, lr=optim_params.lr, betas=tuple(optim_params.betas))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda it: lr_factor(it, schedule_params, iterations))
    return opt, sched
