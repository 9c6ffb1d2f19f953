"""SCAN's fine-tuning of the mask-classifying CLIP with Contextual Shift (SCAN §3.2 last paragraph:
"to better adapt CLIP to the shifted domain, we also follow OVSeg to finetune the contextual shifted
CLIP on the masked images dataset"; §4.2; official code yongliu20/SCAN ``open_clip_training``:
``src/scripts/finetune_VitL_with_mask.sh``, ``src/training/train.py``, the shifted
``VisionTransformer.forward`` of ``src/open_clip/transformer.py``).

What is trained (one run per CS substitute source, ``scan.cs_finetune.sources``):

- the visual tower of a copy of the stage's CLIP (``scan.clip``), run with Contextual Shift
  (:class:`ovlab.scan.contextual_shift.ContextualShiftCLIP`: after each CS block ⌊α·|B_k|⌋ background
  tokens of the crop are replaced, SCAN Eq. 5), the [CLS] substitutes coming from the **frozen
  pretrained** visual tower on the natural source image of each pair (SCAN's ``original_clip``,
  ``fine_tune=True``: each sample's own image);
- the ``learnable`` source's prompt tokens (SCAN Tab. 6 "learnable prompt"), saved to ``prompts.pt``
  (no weight decay: open_clip ``--mask_wd 0``);
- CLIP's logit scale, clamped to ``max_logit_scale`` after every step (open_clip ``train.py``);
- the text tower only when ``lock_text`` is false (SCAN: ``--lock-text``, frozen).

Loss: CLIP's symmetric InfoNCE over the batch, (CE(τ·E_img E_txtᵀ) + CE(τ·E_txt E_imgᵀ)) / 2, with
E_txt the embedding of ``text_template`` filled with each pair's class name (open_clip
``ClipLoss``). Optimiser AdamW with weight decay on ≥2-D weights only (open_clip ``main.py``
exclusion rule), linear warm-up then cosine decay (``transformers.get_cosine_schedule_with_warmup``).

Reproducibility: the pair order is a seeded permutation per epoch and every CS draw uses a
``torch.Generator`` seeded from (seed, iteration), so a run resumed from its checkpoint ends with
the same weights as an uninterrupted one (CPU, fp32).

Outputs (``scan.cs_finetune.output``/<source>/): ``clip.pt`` (the whole open_clip state dict with
the fine-tuned visual tower: ``clip.pretrained`` / ``scan.mask_clip`` load it), ``prompts.pt``
(``learnable``) and ``metrics.json``.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ovlab.atomic import write_with
from ovlab.clip.loading import file_sha256, load_clip_from_params
from ovlab.data.categories import load_categories
from ovlab.data.coco_panoptic import read_coco_panoptic
from ovlab.scan.contextual_shift import ContextualShiftCLIP
from ovlab.scan.crop_pairs import crop_pairs, load_crop_batch

PROMPTS_FORMAT = "ovlab.scan_cs_prompts/1"


class NoPairsError(ValueError):
    """The training set gives no masked-crop pair (the message names the root and ``min_area``)."""


@dataclass
class FinetuneResult:
    """What :func:`run_cs_finetune` returns: the weights, the prompts (``learnable``) and the metrics."""

    weights: Path
    prompts: Path | None
    metrics: dict


def infonce_loss(image: torch.Tensor, text: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    """CLIP's symmetric contrastive loss (open_clip ``ClipLoss``, one process).

    Args:
        image, text: (B, D) L2-normalised embeddings, row i of each is a pair.
        logit_scale: τ (a scalar tensor, not its log).

    Returns:
        scalar: (CE(τ·I Tᵀ, arange) + CE(τ·T Iᵀ, arange)) / 2.
    """
    logits = logit_scale * image @ text.T
    labels = torch.arange(image.shape[0], device=image.device)
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2


def decay_groups(named_params, weight_decay: float) -> list[dict]:
    """AdamW groups with open_clip's exclusion rule (``main.py``): no decay for tensors with fewer
    than 2 dims and names containing ``bn``, ``ln``, ``bias`` or ``logit_scale``; only trainable ones."""
    decay, rest = [], []
    for n, p in named_params:
        if not p.requires_grad:
            continue
        (rest if p.ndim < 2 or any(k in n for k in ("bn", "ln", "bias", "logit_scale")) else decay).append(p)
    return [g for g in ({"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0})
            if g["params"]]


def pair_order(n: int, batch: int, iteration: int, seed: int) -> list[int]:
    """Pair indices of one iteration: positions ``iteration·batch …`` of the stream of per-epoch
    permutations (epoch e: ``randperm(n)`` seeded with ``seed + e``)."""
    out, cache = [], {}
    for pos in range(iteration * batch, (iteration + 1) * batch):
        e = pos // n
        if e not in cache:
            cache[e] = torch.randperm(n, generator=torch.Generator().manual_seed(seed + e)).tolist()
        out.append(cache[e][pos % n])
    return out


def save_prompts(cs_clip: ContextualShiftCLIP, path) -> Path:
    """Write the trained prompt tokens of a ``learnable`` CS-CLIP (rows = its ``layers``) atomically;
    other sources write the file with ``prompts: None`` (one output per stage)."""
    doc = {"format": PROMPTS_FORMAT, "source": cs_clip.source, "layers": list(cs_clip.layers),
           "prompts": cs_clip.prompts.detach().cpu() if cs_clip.prompts is not None else None}
    return write_with(path, lambda fh: torch.save(doc, fh))


def load_prompts(cs_clip: ContextualShiftCLIP, path) -> None:
    """Copy the prompts of :func:`save_prompts` into a ``learnable`` CS-CLIP (the test-time mask classifier).

    Raises:
        FileNotFoundError: no such file (says which stage writes it).
        ValueError: the CLIP's source is not ``learnable``, or its CS layers differ from the file's.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: learnable CS prompts not found; run the scan_cs_finetune@learnable stage "
                                f"(`python -m ovlab.experiments.scan_cs learnable`) first")
    if cs_clip.prompts is None:
        raise ValueError(f"{p}: prompts given for a CS-CLIP whose source is {cs_clip.source!r}, not 'learnable'")
    doc = torch.load(p, map_location="cpu", weights_only=True)
    if doc.get("prompts") is None:
        raise ValueError(f"{p}: holds no prompts (fine-tuned with source {doc.get('source')!r}, not 'learnable')")
    if doc.get("format") != PROMPTS_FORMAT or list(doc["layers"]) != list(cs_clip.layers):
        raise ValueError(f"{p}: prompts were trained for CS layers {doc.get('layers')}, the model uses {cs_clip.layers}")
    with torch.no_grad():
        cs_clip.prompts.copy_(doc["prompts"].to(cs_clip.prompts))


def attach_finetuned_prompts(model, section, root: Path) -> Path | None:
    """Give a SCAN segmenter's ``learnable`` mask classifier the prompts fine-tuned with its CLIP.

    Args:
        model: a :class:`ovlab.scan.model.ScanSegmenter` (its ``mask_clip``).
        section: its ``scan`` section (``mask_clip``, ``cs_finetune``).
        root: the params folder (relative paths).

    Call it once the model is built (``ovlab.scan.task.ScanTask.build``, after
    ``build_scan_segmenter``): the CS-CLIP is outside the segmenter's ``state_dict``.

    Returns:
        the prompts file loaded, or ``None`` (not the ``learnable`` source, or a ``mask_clip`` that
        is not a fine-tuning output: its prompts stay at their seeded initialisation).

    Raises:
        FileNotFoundError / ValueError: see :func:`load_prompts`.
    """
    cs_clip = getattr(model, "mask_clip", None)
    if cs_clip is None or getattr(cs_clip, "prompts", None) is None or section.mask_clip is None:
        return None
    ft = section.cs_finetune
    if Path(section.mask_clip) != Path(ft.weights_path("learnable")):
        return None
    path = root / ft.prompts_path("learnable")
    load_prompts(cs_clip, path)
    return path


def _fingerprint(stage, source: str) -> str:
    cfg = stage.cfg
    doc = {"source": source, "clip": cfg.clip.model_dump(mode="json"), "cs": cfg.contextual_shift.model_dump(mode="json"),
           "ft": cfg.cs_finetune.model_dump(mode="json", exclude={"output", "sources", "checkpoint_every", "checkpoint_dir"}),
           "seed": stage.base.seed}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]


def run_cs_finetune(stage, source: str, *, progress: bool = True) -> FinetuneResult:
    """Fine-tune the stage's CLIP with Contextual Shift for one substitute source and write its outputs.

    Args:
        stage: the ``scan`` :class:`ovlab.config.StageParams` (``clip``, ``contextual_shift``,
            ``cs_finetune``; ``base.seed``, ``base.device``).
        source: one of ``cs_finetune.sources`` (SCAN: ``cls``).

    Returns:
        a :class:`FinetuneResult`.

    Raises:
        KeyError: ``source`` is not listed in ``cs_finetune.sources``.
        DatasetNotFoundError / CorruptFileError: training data absent or broken.
        WeightsNotFoundError: the CLIP weights are absent. NoPairsError: no segment is large enough.
        TypeError: the CLIP is not a ViT.
    """
    cfg, ft = stage.cfg, stage.cfg.cs_finetune
    if source not in ft.sources:
        raise KeyError(f"scan.cs_finetune.sources has no source {source!r} (sources: {', '.join(ft.sources)})")
    seed = stage.base.seed if ft.seed is None else ft.seed
    device = torch.device("cuda" if stage.base.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if stage.base.device == "auto" else stage.base.device))
    layers = list(cfg.contextual_shift.layers if ft.layers is None else ft.layers)
    ratio = float(cfg.contextual_shift.ratio if ft.ratio is None else ft.ratio)

    data = ft.data
    cats = load_categories(str(stage.path(data.categories)) if data.categories.endswith(".json") else data.categories)
    records = read_coco_panoptic(stage.path(data.root), data.split, cats, image_dir=data.image_dir,
                                 panoptic_dir=data.panoptic_dir, panoptic_json=data.panoptic_json,
                                 captions_json=data.captions_json)
    if data.max_images is not None:
        records = records[:data.max_images]
    classes = None if data.vocabulary == "all" else {c.index for c in cats if not c.novel}
    pairs = crop_pairs(records, cats.names, min_area=ft.min_area, classes=classes)
    if not pairs:
        raise NoPairsError(f"{stage.path(data.root)}: no segment of at least {ft.min_area} px to fine-tune on "
                           f"(scan.cs_finetune.min_area)")

    clip = load_clip_from_params(cfg.clip, stage)
    clip.model.to(device)
    original = clip.model.visual                                   # frozen, pretrained: SCAN's original_clip
    visual = copy.deepcopy(original).train()
    for p in visual.parameters():
        p.requires_grad_(True)
    cs_clip = ContextualShiftCLIP(visual, layers=layers if source != "none" else [], ratio=ratio if source != "none" else 0.0,
                                  source=source, original_visual=original, seed=seed).to(device)
    logit_scale = torch.nn.Parameter(clip.model.logit_scale.detach().clone().float())
    names = [ft.text_template.format(n) for n in cats.names]
    tokens = clip.tokenizer(names).to(device)
    text_params = []
    if not ft.lock_text:
        for n, p in clip.model.named_parameters():
            if not n.startswith("visual.") and n != "logit_scale":
                p.requires_grad_(True)
                text_params.append((n, p))
    groups = decay_groups([(f"visual.{n}", p) for n, p in visual.named_parameters()] + text_params
                          + [("logit_scale", logit_scale)], ft.weight_decay)
    if cs_clip.prompts is not None:
        groups.append({"params": [cs_clip.prompts], "weight_decay": ft.prompt_weight_decay})
    opt = torch.optim.AdamW(groups, lr=ft.lr, betas=tuple(ft.betas), eps=ft.eps)
    total = ft.iterations if ft.iterations is not None else math.ceil(len(pairs) * ft.epochs / ft.batch_size)
    from transformers import get_cosine_schedule_with_warmup

    sched = get_cosine_schedule_with_warmup(opt, ft.warmup, total)
    amp = ft.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    ckpt = stage.path(ft.checkpoint_dir) / f"scan_cs-{source}-{_fingerprint(stage, source)}" / "last.pt"
    start, history = 0, []
    if ckpt.is_file():
        state = torch.load(ckpt, map_location=device, weights_only=False)
        visual.load_state_dict(state["visual"])
        with torch.no_grad():
            logit_scale.copy_(state["logit_scale"])
            if cs_clip.prompts is not None:
                cs_clip.prompts.copy_(state["prompts"])
        if text_params:
            clip.model.load_state_dict(state["text"], strict=False)
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        start, history = int(state["iteration"]), list(state["history"])

    def save_state(it: int) -> None:
        state = {"iteration": it, "visual": visual.state_dict(), "logit_scale": logit_scale.detach(),
                 "prompts": cs_clip.prompts.detach() if cs_clip.prompts is not None else None,
                 "text": {n: p.detach() for n, p in text_params}, "optimizer": opt.state_dict(),
                 "scheduler": sched.state_dict(), "scaler": scaler.state_dict(), "history": history}
        write_with(ckpt, lambda fh: torch.save(state, fh))

    size = tuple(int(s) for s in clip.image_size)
    need_plain = source == "original"
    with torch.no_grad():
        frozen_text = None if text_params else F.normalize(clip.model.encode_text(tokens).float(), dim=-1)
    loss_value = float("nan")
    bar = tqdm(range(start, total), desc=f"scan_cs {source}", unit="it", disable=not progress, initial=start, total=total)
    for it in bar:
        idx = pair_order(len(pairs), ft.batch_size, it, seed)
        batch = load_crop_batch(records, [pairs[i] for i in idx], size=size, mean=clip.mean, std=clip.std,
                                unmasked=need_plain)
        gen = torch.Generator(device=device).manual_seed(seed * 1_000_003 + it)
        cls_idx = batch.class_index.to(device)
        with torch.autocast("cuda", dtype=torch.float16, enabled=amp):
            img = cs_clip(batch.crops.to(device), batch.masks.to(device), natural=batch.natural.to(device),
                          image_index=torch.arange(len(idx), device=device),
                          unmasked=batch.unmasked.to(device) if need_plain else None, generator=gen, normalize=True)
            txt = frozen_text[cls_idx] if frozen_text is not None else \
                F.normalize(clip.model.encode_text(tokens[cls_idx]).float(), dim=-1)
            loss = infonce_loss(img.float(), txt.float(), logit_scale.exp())
        if not torch.isfinite(loss):
            raise FloatingPointError(f"scan_cs {source}: non-finite loss {loss.item()} at iteration {it}")
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        sched.step()
        with torch.no_grad():
            logit_scale.clamp_(0, math.log(ft.max_logit_scale))
        loss_value = float(loss.detach())
        if (it + 1) % ft.log_every == 0 or it + 1 == total:
            history.append({"iteration": it + 1, "loss": loss_value, "lr": float(sched.get_last_lr()[0])})
        if (it + 1) % ft.checkpoint_every == 0 or it + 1 == total:
            save_state(it + 1)
        bar.set_postfix(loss=f"{loss_value:.4f}")

    out = stage.path(ft.output) / source
    state = clip.model.state_dict()
    state.update({f"visual.{k}": v for k, v in visual.state_dict().items()})
    state["logit_scale"] = logit_scale.detach().clone()
    state = {k: v.detach().cpu() for k, v in state.items()}
    weights = write_with(out / "clip.pt", lambda fh: torch.save(state, fh))
    save_prompts(cs_clip, out / "prompts.pt")            # every source writes it (one DVC out); None unless learnable
    prompts = out / "prompts.pt" if cs_clip.prompts is not None else None
    metrics = {"stage": "scan_cs_finetune", "source": source, "profile": stage.base.profile, "seed": seed,
               "cs_layers": cs_clip.layers, "cs_ratio": cs_clip.ratio, "pairs": len(pairs), "images": len(records),
               "iterations": total, "batch_size": ft.batch_size, "lr": ft.lr, "lock_text": ft.lock_text,
               "final_loss": history[-1]["loss"] if history else loss_value, "history": history,
               "logit_scale": float(logit_scale.detach().exp()), "clip": clip.identity(), "weights": str(ft.weights_path(source)),
               "weights_sha256": file_sha256(weights),
               "prompts": str(ft.prompts_path(source)) if prompts is not None else None}
    if stage.base.profile == "embedded":
        from ovlab.caveats import EMBEDDED_CAVEAT

        metrics.update({"synthetic": True, "caveat": EMBEDDED_CAVEAT})
    from ovlab.config.record import write_record

    write_record(out / "metrics.json", metrics)  # numbers in metrics.json, text and provenance in info.json
    return FinetuneResult(weights, prompts, metrics)
