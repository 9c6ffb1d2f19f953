"""Bad input and faults in training (the bad-input matrix, training part), on tiny runs of the
embedded data: a diverging run stops naming the iteration and keeps the last good checkpoint; a
finished run is recognised as complete (never trained again); an unreadable ``last.pt`` is moved
aside; orphan ``.tmp`` files are removed; a second train of the same run is refused by a lock;
what the end of a run needs is checked before its first iteration."""

from __future__ import annotations

import json
import math

import pytest

from .conftest import tiny_tgkd_stage
from ovlab.atomic import LockedError, exclusive_lock
from ovlab.engine import checkpoint as ckpt
from ovlab.engine.trainer import NonFiniteLoss, train
from ovlab.gkc.task import GkcTask

TWO = {"iterations": 2, "checkpoint_every": 1, "log_every": 1}


class _NanAt(GkcTask):
    """The GKC task whose loss becomes NaN at the ``at``-th call (1-based); ``at=0``: every call raises."""

    def __init__(self, at: int):
        self.at, self.calls = at, 0

    def objective(self, stage, built, vocab):
        inner = super().objective(stage, built, vocab)

        def objective(net, batch, text, gen):
            self.calls += 1
            if self.at == 0:
                raise AssertionError("a finished run must not train again")
            out = inner(net, batch, text, gen)
            if self.calls == self.at:
                total = out.total

                out.total = lambda: total() * math.nan
            return out

        return objective


def test_a_nan_loss_stops_naming_the_iteration_and_keeps_the_last_good_checkpoint(embedded_root, tmp_path):
    stage = tiny_tgkd_stage(embedded_root, tmp_path, train={"iterations": 4, "checkpoint_every": 2, "log_every": 1})
    with pytest.raises(NonFiniteLoss, match=r"not finite at iteration 3 .*last\.pt keeps the last good state"):
        train(stage, task=_NanAt(3), progress=False)
    last = next((tmp_path / "checkpoints").glob("tgkd-*/last.pt"))
    assert ckpt.load(last)["iteration"] == 2  # the last good state, untouched
    assert not (tmp_path / "run" / "model.pt").exists() and not (tmp_path / "run" / "metrics.json").exists()
    assert not list(tmp_path.rglob(".*.tmp"))


@pytest.fixture(scope="module")
def finished(embedded_root, tmp_path_factory):
    """A 2-iteration run, trained and evaluated once: (stage, TrainResult)."""
    folder = tmp_path_factory.mktemp("finished")
    stage = tiny_tgkd_stage(embedded_root, folder, train=TWO)
    return stage, train(stage, task=GkcTask(), progress=False)


def test_a_finished_run_is_evaluated_not_trained_again(finished, capsys):
    stage, first = finished
    (first.output / "model.pt").unlink()  # as if killed during the final evaluation / a full disk at model.pt
    (first.output / "metrics.json").unlink()
    again = train(stage, task=_NanAt(0), progress=False)  # its objective raises if a step is taken
    assert "is already trained" in capsys.readouterr().out
    assert again.metrics["eval"] == first.metrics["eval"]
    assert (again.output / "model.pt").is_file() and (again.output / "metrics.json").is_file()


def test_a_changed_training_config_trains_again(finished, embedded_root):
    stage, first = finished
    other = tiny_tgkd_stage(embedded_root, first.output.parent, train={**TWO, "iterations": 3})
    assert ckpt.fingerprint(other.cfg.model_dump(mode="json"), 0) != first.run_dir.name.split("-", 1)[1]


def test_an_unreadable_last_pt_is_moved_aside_and_orphan_tmp_files_are_removed(finished, capsys):
    stage, first = finished
    last = first.run_dir / "last.pt"
    last.write_bytes(last.read_bytes()[:1000])  # truncated by a kill or a full disk
    orphans = [first.run_dir / ".last.pt.x1y2.tmp", first.output / ".model.pt.a1b2.tmp"]
    for f in orphans:
        f.write_bytes(b"half")
    res = train(stage, task=GkcTask(), progress=False)
    out = capsys.readouterr().out
    assert "cannot be read" in out and "moved it to last.pt.corrupt-" in out
    assert len(list(first.run_dir.glob("last.pt.corrupt-*"))) == 1
    assert ckpt.load(last)["iteration"] == 2 and res.metrics["eval"] == first.metrics["eval"]
    assert not any(f.exists() for f in orphans)


def test_a_second_train_of_the_same_run_is_refused_by_the_lock(finished):
    stage, first = finished
    with exclusive_lock(first.run_dir / "lock"):
        with pytest.raises(LockedError, match=r"in use by another process \(pid \d+; lock file .*lock\)"):
            train(stage, task=_NanAt(0), progress=False)


def test_a_truncated_checkpoint_is_named(finished, tmp_path):
    _, first = finished
    bad = tmp_path / "model.pt"
    bad.write_bytes((first.output / "model.pt").read_bytes()[:4096])
    with pytest.raises(ckpt.CorruptCheckpointError, match=r"model\.pt: cannot be read as a checkpoint"):
        ckpt.load(bad)
    import torch

    torch.save({"state_dict": {}}, tmp_path / "foreign.pt")
    with pytest.raises(ckpt.CorruptCheckpointError, match=r"foreign\.pt: not an ovlab segmenter checkpoint"):
        ckpt.load(tmp_path / "foreign.pt")


@pytest.mark.parametrize("override, error, needle", [
    ({"eval": {"dataset": "ade20k_15O"}}, KeyError, "unknown dataset 'ade20k_15O'"),
    ({"eval": {"root": "/nonexistent/root"}}, FileNotFoundError, "Expected layout"),
])
def test_what_the_end_needs_is_checked_before_the_first_iteration(embedded_root, tmp_path, override, error, needle):
    stage = tiny_tgkd_stage(embedded_root, tmp_path, train=TWO, **override)
    with pytest.raises(error, match=needle):
        train(stage, task=_NanAt(0), progress=False)
    assert not (tmp_path / "checkpoints").exists() and not (tmp_path / "run").exists()


def test_cli_train_errors_are_one_line(repo_root, embedded_root, tmp_path, capsys):
    import yaml

    from ovlab.experiments.cli import main

    assert main(["train", "--section", "synonyms", "--params", str(repo_root / "params.yaml")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("ovlab train: error: --section synonyms: not a training section") and err.count("\n") == 1
    from .conftest import tiny_tgkd_section

    params = yaml.safe_load((repo_root / "params.yaml").read_text())
    params["tgkd"] = tiny_tgkd_section(embedded_root, tmp_path, eval={"dataset": "ade20k_15O"})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    assert main(["train", "--section", "tgkd", "--params", str(tmp_path / "params.yaml")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("ovlab train: error: ") and "ade20k_15O" in err and err.count("\n") == 1
    assert not (tmp_path / "checkpoints").exists()
    json.dumps(params)  # params stayed plain data


def test_a_retrained_init_checkpoint_makes_another_run(embedded_root, tmp_path):
    """A cell fine-tuned from a parent model.pt: when the parent changes, the finished child run is not reused."""
    parent = tmp_path / "parent.pt"
    parent.write_bytes(b"first weights")
    stage = tiny_tgkd_stage(embedded_root, tmp_path, train={**TWO, "init": str(parent)})
    before = ckpt.run_fingerprint(stage)
    assert before != ckpt.fingerprint(stage.cfg.model_dump(mode="json"), stage.base.seed)
    parent.write_bytes(b"retrained weights")
    assert ckpt.run_fingerprint(stage) != before
