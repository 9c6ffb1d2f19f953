"""The grid runner's evaluation: one score per grid benchmark, or the section's own ``eval`` once."""

from __future__ import annotations

import torch

from ovlab.config import StageParams
from ovlab.config.base import BaseParams
from ovlab.config.video import VideoStageParams
from ovlab.config.tgkd import TgkdParams
from ovlab.engine import checkpoint as ckpt
from ovlab.experiments.grid import _evaluate

from .conftest import REPO


class _Task:
    """Records what the runner asks for; scores each benchmark with a fixed number."""

    def __init__(self):
        self.loaded, self.seen = None, []

    def build(self, stage):
        task = self

        class Model(torch.nn.Linear):
            def load_state_dict(self, state, strict=True):
                task.loaded = {k: v.clone() for k, v in state.items()}
                return super().load_state_dict(state, strict)

        class Clip:
            def identity(self):
                return {"model": "fake", "untrained": True}

        return type("Built", (), {"model": Model(2, 1), "clip": Clip()})()

    def evaluate(self, stage, built, device, progress, cache_dir=None):
        self.seen.append(stage)
        name = getattr(stage.cfg.eval, "dataset", "vipseg")
        return {"dataset": name, "mIoU": {"coco_133": 12.5, "ade20k_150": 3.25, "vipseg": 7.0}[name]}, \
            [{"index": 0, "name": "a", "IoU": 1.5}]


def _weights(tmp_path):
    torch.manual_seed(0)
    state = torch.nn.Linear(2, 1).state_dict()
    ckpt.save(tmp_path / "model.pt", {"format": ckpt.FORMAT, "model": state})
    return tmp_path / "model.pt", state


def test_every_grid_benchmark_is_scored_with_its_name(tmp_path):
    weights, state = _weights(tmp_path)
    task, metrics = _Task(), {}
    sub = StageParams("tgkd", BaseParams(), TgkdParams(), REPO, "<test>")
    evals = _evaluate(task, sub, weights, ["coco_133", "ade20k_150"], metrics, False, tmp_path)
    assert evals == {"coco_133": {"dataset": "coco_133", "mIoU": 12.5},
                     "ade20k_150": {"dataset": "ade20k_150", "mIoU": 3.25}}
    assert [s.cfg.eval.dataset for s in task.seen] == ["coco_133", "ade20k_150"]
    assert all(torch.equal(task.loaded[k], v) for k, v in state.items())      # the saved weights, not fresh ones
    assert metrics["clip"] == {"model": "fake", "untrained": True}
    assert (tmp_path / "per_class.csv").read_text().splitlines()[1] == "0,a,1.5"


def test_no_grid_benchmarks_scores_the_sections_own_eval_once(tmp_path):
    """A video section's ``eval`` names no benchmark: a cell evaluating a shared model uses it as is."""
    weights, _ = _weights(tmp_path)
    task = _Task()
    sub = StageParams("video", BaseParams(), VideoStageParams(), REPO, "<test>")
    evals = _evaluate(task, sub, weights, None, {}, False, tmp_path)
    assert evals == {"vipseg": {"dataset": "vipseg", "mIoU": 7.0}}
    assert len(task.seen) == 1 and task.seen[0] is sub
