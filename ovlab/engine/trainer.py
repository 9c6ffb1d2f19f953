"""The training loop (GKC §4.2, SCAN §4.2): AdamW, step/poly schedule, gradient clipping,
AMP on GPU, deep-supervised Mask2Former losses, checkpoints and exact resume, DVCLive, DDP.

Reproducibility: torch is re-seeded at every iteration from (seed, iteration, rank) — the matcher's
and the point sampler's draws — and the data order and augmentation are functions of (seed,
iteration) (:mod:`.data`). With ``base.deterministic`` on CPU, a run resumed from any checkpoint ends
with the same weights and metrics as an uninterrupted one.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from ovlab.atomic import exclusive_lock, remove_orphans, write_text
from ovlab.environment import seed_everything
from ovlab.metrics.evaluate import table_csv
from ovlab.caveats import EMBEDDED_CAVEAT, warn_once
from ovlab.config.record import write_record

from ovlab.engine import checkpoint as ckpt
from ovlab.engine import distributed
from ovlab.engine.live import LiveLog
from ovlab.engine.optim import build_optimizer


@dataclass
class TrainResult:
    """What :func:`train` returns: output folder, final iteration, metrics dict and run folder."""

    output: Path
    iterations: int
    metrics: dict
    run_dir: Path


class NonFiniteLoss(FloatingPointError):
    """The loss became NaN/inf; the message names the iteration and the terms."""


def _iteration_seed(seed: int, it: int, rank: int) -> int:
    return (seed * 1_000_003 + it * 97 + rank) % (2**63 - 1)


def _state(model, opt, sched, scaler, it, history, stage, fp, classes) -> dict:
    net = model.module if isinstance(model, DistributedDataParallel) else model
    return {"format": ckpt.FORMAT, "stage": stage.name, "section": stage.cfg.model_dump(mode="json"),
            "base": stage.base.model_dump(mode="json"), "fingerprint": fp, "iteration": it,
            "model": net.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
            "scaler": scaler.state_dict(), "history": history, "classes": classes, "code": ckpt.code_version()}


def train(stage, *, task, progress: bool = True, evaluate: bool = True,
          stop_after: int | None = None) -> TrainResult:
    """Train (or resume) the model of ``stage`` and evaluate it.

    A run whose ``last.pt`` is at the final iteration (written by the same code) is complete: it is
    evaluated, never trained again; only a changed training configuration (another fingerprint,
    another run folder) or changed code retrains. What the end needs (the evaluation benchmark
    and its root: ``task.preflight``) is checked before the first iteration. The run folder is
    locked (``<run>/lock``) so that two trains of one configuration cannot interleave, orphan
    ``.tmp`` files of a killed write are removed, and an unreadable ``last.pt`` is moved aside
    with a message.

    Args:
        stage: :class:`ovlab.config.StageParams` of a training section (``tgkd``, ``scan``, ``video``...).
        progress: tqdm bars.
        evaluate: score the final model (the task's evaluation, e.g. ``eval.dataset``).
        stop_after: stop (after checkpointing) once this iteration is reached — for tests of resume.
        task: what is trained: an object with ``build``, ``vocabulary``, ``batches``, ``objective`` and
            ``evaluate`` (:class:`ovlab.segmenter.task.ImageTask` documents the interface). The
            caller chooses it (:func:`ovlab.experiments.registry.task_for`); the loop never looks one up.

    Writes (rank 0): ``<output>/model.pt``, ``metrics.json`` + ``info.json`` (:mod:`ovlab.config.record`), ``per_class.csv``, ``dvclive/``, and
    ``<train.checkpoint_dir>/<stage>-<fingerprint>/last.pt`` every ``checkpoint_every`` iterations.

    Raises:
        DatasetNotFoundError / WeightsNotFoundError: data or CLIP weights absent.
        NonFiniteLoss: NaN/inf loss (names the iteration; ``last.pt`` keeps the last good state).
        LockedError: another process trains this configuration now.
    """
    stage = task.resolve(stage)
    if evaluate and hasattr(task, "preflight"):
        task.preflight(stage)
    fp = ckpt.run_fingerprint(stage)
    run_dir = stage.path(stage.cfg.train.checkpoint_dir) / f"{stage.name}-{fp}"
    if os.environ.get("RANK", "0") != "0":
        return _train(stage, task, progress, evaluate, stop_after)
    with exclusive_lock(run_dir / "lock", f"the training run {run_dir}"):
        for folder in (run_dir, stage.path(stage.cfg.output)):
            remove_orphans(folder)
        return _train(stage, task, progress, evaluate, stop_after)


def _train(stage, task, progress: bool, evaluate: bool, stop_after: int | None) -> TrainResult:
    cfg, base = stage.cfg, stage.base
    rank, world, device = distributed.setup(base.device)
    seed_everything(base.seed, deterministic=base.deterministic)
    built = task.build(stage)
    loop = cfg.train
    if loop.init is not None:
        missing, skipped = ckpt.init_from(built.model, stage.path(loop.init))
        if rank == 0 and skipped:  # weights of another model (a SCAN model.pt as init of a GKC one): say so
            warn_once(f"train.init {loop.init}: {len(skipped)} of its tensors do not fit this model and were not loaded "
                      f"(e.g. {skipped[0]}); is it a checkpoint of another model?")
        if rank == 0 and progress:
            print(f"ovlab train: initialised from {loop.init} ({len(missing)} new keys, {len(skipped)} skipped)")
    model, clip = built.model.to(device), built.clip
    cache = stage.path(base.paths.cache)
    vocab = task.vocabulary(stage, clip)
    text = vocab.text.to(device)
    fp = ckpt.run_fingerprint(stage)
    run_dir = stage.path(loop.checkpoint_dir) / f"{stage.name}-{fp}"
    out_dir = stage.path(cfg.output)
    opt, sched = build_optimizer(model, cfg.optim, cfg.schedule, loop.iterations)
    use_amp = loop.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler(device.type, enabled=use_amp)
    start, history = 0, []
    last = run_dir / "last.pt"
    state, aside = ckpt.load_or_quarantine(last, move=rank == 0)
    if aside is not None and rank == 0:
        print(f"ovlab train: {last} cannot be read (cut short by a kill or a full disk?); moved it to {aside.name} "
              f"and training {stage.name} from the start")
    if state is not None and state.get("code") != ckpt.code_version():
        if rank == 0:
            print(f"ovlab train: {last} was written by other ovlab code; training {stage.name} from the start")
        state = None  # half a run with the old code and half with the new would match neither
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        start, history = int(state["iteration"]), list(state["history"])
        if rank == 0 and start >= loop.iterations:
            print(f"ovlab train: {stage.name} is already trained ({last}, iteration {start}); evaluating it")
        elif rank == 0 and progress:
            print(f"ovlab train: resuming {stage.name} from {last} at iteration {start}")
    live = LiveLog(out_dir / "dvclive", history, enabled=rank == 0)
    net = DistributedDataParallel(model) if world > 1 else model
    objective = task.objective(stage, built, vocab)
    batches = task.batches(stage, vocab, rank, world)
    loader = DataLoader(batches, batch_size=None, sampler=range(start, loop.iterations), num_workers=loop.num_workers,
                        collate_fn=_identity)
    end = loop.iterations if stop_after is None else min(stop_after, loop.iterations)
    bar = tqdm(total=loop.iterations, initial=start, desc=f"train {stage.name}", disable=not (progress and rank == 0))
    t0, it = time.perf_counter(), start
    net.train()
    for it, batch in zip(range(start, end), loader):
        torch.manual_seed(_iteration_seed(base.seed, it, rank))
        gen = torch.Generator().manual_seed(_iteration_seed(base.seed, it, rank))
        batch = batch.to(device)
        with torch.autocast(device_type=device.type, enabled=use_amp):
            out = objective(net, batch, text, gen)
        loss = out.total()
        loss_value = float(loss.detach())
        if not torch.isfinite(loss):
            bad = {k: float(v.detach()) for k, v in out.terms.items() if not math.isfinite(float(v.detach()))}
            bar.close()
            kept = f"{last} keeps the last good state" if last.is_file() else "no checkpoint was written yet"
            raise NonFiniteLoss(f"{stage.name}: the loss is not finite at iteration {it + 1} ({loss_value}; terms {bad}); "
                                f"stopped; {kept} (lower optim.lr or set optim.clip_grad)")
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if cfg.optim.clip_grad is not None:
            scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.optim.clip_grad)
        scaler.step(opt)
        scaler.update()
        sched.step()
        done = it + 1
        if done % loop.log_every == 0 or done == loop.iterations:
            row = {"step": done, "train/loss": loss_value, "train/lr": opt.param_groups[-1]["lr"]}
            tau = getattr(getattr(model, "classifier", None), "tau", None)  # models without a τ classifier log none
            if tau is not None:
                row["train/tau"] = float(tau.detach())
            row.update({f"train/{k}": float(v.detach()) for k, v in out.terms.items() if not k[-1].isdigit()})
            live.log(row)
        bar.update(1)
        bar.set_postfix(loss=f"{loss_value:.3f}")
        if rank == 0 and (done % loop.checkpoint_every == 0 or done == end):
            ckpt.save(last, _state(net, opt, sched, scaler, done, live.history, stage, fp, vocab.classes))
        it = done
    bar.close()
    seconds = time.perf_counter() - t0
    if it < loop.iterations:  # stopped early on purpose
        live.close()
        distributed.cleanup()
        return TrainResult(out_dir, it, {}, run_dir)
    metrics = {"stage": stage.name, "profile": base.profile, "seed": base.seed, "fingerprint": fp,
               "iterations": loop.iterations, "batch_size": loop.batch_size, "world_size": world,
               "train_seconds_this_run": round(seconds, 3),
               "final_loss": live.history[-1]["train/loss"] if live.history else None,
               "clip": clip.identity(), "train_vocabulary": len(vocab), "loss_preset": getattr(cfg.loss, "preset", None)}
    if base.profile == "embedded":
        metrics.update({"synthetic": True, "caveat": EMBEDDED_CAVEAT})
    if evaluate and rank == 0:
        summary, per_class = task.evaluate(stage, built, device, progress, cache)
        metrics["eval"] = {k: _num(v) for k, v in summary.items()}
        live.summary({f"eval/{k}": v for k, v in metrics["eval"].items() if isinstance(v, float)})
        if per_class is not None:
            write_text(out_dir / "per_class.csv", table_csv(per_class))
    if rank == 0:
        ckpt.save(out_dir / "model.pt", {**_state(net, opt, sched, scaler, loop.iterations, live.history, stage, fp,
                                                  vocab.classes), "optimizer": None, "scheduler": None, "scaler": None})
        write_record(out_dir / "metrics.json", metrics)  # numbers -> metrics.json, text/provenance -> info.json
    live.close()
    distributed.cleanup()
    return TrainResult(out_dir, loop.iterations, metrics, run_dir)


def _num(v):
    if isinstance(v, (float, np.floating)):
        return None if np.isnan(v) else round(float(v), 6)
    return v


def _identity(batch):
    return batch
