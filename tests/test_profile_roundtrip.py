"""params.yaml round-trips byte for byte: `ovlab profile` there and back, and `dvc exp run -S` (DVC's own
rewrite) changes only the value it sets; a deleted key takes its documented value, never a surprise."""

from __future__ import annotations

import difflib
import shutil

import pytest

from ovlab.config import ParamsError, load_params, parse_yaml, read_yaml
from ovlab.dvcfiles import copy_pipeline
from ovlab.profiles import _default_at, _leaves, _MISSING, _schema_defaults, round_trip_dump, round_trip_load


@pytest.fixture
def work(repo_root, tmp_path):
    """A copy of params.yaml, dvc.yaml and profiles/ (ovlab profile reads dvc.yaml's keys)."""
    shutil.copy(repo_root / "params.yaml", tmp_path / "params.yaml")
    copy_pipeline(repo_root, tmp_path)
    shutil.copytree(repo_root / "profiles", tmp_path / "profiles")
    return tmp_path


def _changed(before: str, after: str) -> list[str]:
    return [d for d in difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0)
            if d[:1] in "+-" and not d.startswith(("+++", "---"))]


def _dvc_set(path, *overrides):
    """What `dvc exp run -S key=value` does to params.yaml before it runs (dvc.utils.hydra)."""
    from dvc.utils.hydra import apply_overrides

    apply_overrides(str(path), list(overrides))


def test_profile_paper_then_embedded_leaves_no_diff(work):
    from ovlab.experiments.cli import main as ovlab

    original = (work / "params.yaml").read_bytes()
    assert ovlab(["profile", "paper", "--params", str(work / "params.yaml")]) == 0
    paper = (work / "params.yaml").read_text()
    assert paper != original.decode() and load_params(work / "params.yaml").tgkd.train.iterations == 50000
    assert ovlab(["profile", "embedded", "--params", str(work / "params.yaml")]) == 0
    assert (work / "params.yaml").read_bytes() == original
    assert ovlab(["profile", "paper", "--params", str(work / "params.yaml")]) == 0
    assert (work / "params.yaml").read_text() == paper  # and there again: the same bytes


@pytest.mark.parametrize("profile", ["embedded", "paper"])
def test_dvc_exp_run_set_param_changes_one_line(work, profile):
    """DVC rewrites the whole file on `-S` (ruamel, block lists, blank nulls, 80 columns); params.yaml is
    written in that style, so only the line of the changed value differs (both profiles)."""
    from ovlab.profiles import apply_profile

    if profile != "embedded":
        apply_profile(profile, work / "params.yaml")
    before = (work / "params.yaml").read_text()
    _dvc_set(work / "params.yaml", f"base.profile={profile}")
    assert _changed(before, (work / "params.yaml").read_text()) == []
    _dvc_set(work / "params.yaml", "tgkd.grids.eval_max_images=7")
    after = (work / "params.yaml").read_text()
    assert len(_changed(before, after)) == 2 and "eval_max_images: 7" in _changed(before, after)[1]
    assert load_params(work / "params.yaml").tgkd.grids.eval_max_images == 7


def test_the_profile_writer_writes_what_dvc_writes(work):
    """round_trip_dump is DVC's rewrite: its output is a fixed point of `dvc exp run -S`."""
    messy = ("base:\n  profile: embedded   # kept\n  seed: 3\nx:\n  a: [1, 2]\n  b: null\n  c: {d: [3], e: null}\n"
             "  f: 6.0e-05\n")
    (work / "m.yaml").write_text(messy)
    ours = round_trip_dump(round_trip_load(messy))
    _dvc_set(work / "m.yaml", "base.seed=3")
    assert ours == (work / "m.yaml").read_text()
    assert ours == "base:\n  profile: embedded   # kept\n  seed: 3\nx:\n  a:\n  - 1\n  - 2\n  b:\n  c: {d: [3], e: null}\n  f: 6.0e-05\n"
    assert parse_yaml(ours) == {"base": {"profile": "embedded", "seed": 3},
                                "x": {"a": [1, 2], "b": None, "c": {"d": [3], "e": None}, "f": 6e-05}}


def test_params_are_read_as_yaml_1_2_like_dvc(tmp_path):
    (tmp_path / "p.yaml").write_text("a: 6e-05\nb: yes\nc:\n")
    assert read_yaml(tmp_path / "p.yaml") == {"a": 6e-05, "b": "yes", "c": None}
    (tmp_path / "p.yaml").write_text("a: 1\na: 2\n")
    with pytest.raises(ParamsError, match="p.yaml: invalid YAML"):
        read_yaml(tmp_path / "p.yaml")


# ------------------------------------------------------------------------ deleted keys, defaults
def test_schema_defaults_are_the_embedded_profile(repo_root):
    """So a key deleted from params.yaml takes its documented (embedded) value. The exceptions are the
    keys that must be written explicitly (untrained weights: ``clip.pretrained: null``), whose default
    is the real weights, so deleting one fails loudly when the weights are absent."""
    from ovlab.profiles import EXPLICIT

    defaults = _schema_defaults()
    wrong = [(".".join(p), v, _default_at(defaults, p)) for p, v in _leaves(read_yaml(repo_root / "profiles/embedded.yaml"))
             if "grids" not in p and p[-1] not in EXPLICIT and _default_at(defaults, p) not in (v, _MISSING)]
    assert wrong == []


def test_deleted_blocks_take_the_documented_values(work):
    import re

    text = (work / "params.yaml").read_text()
    text = re.sub(r"\n  optim: \{\}\n  schedule: \{\}\n  train: \{\}\n", "\n", text, count=1)  # the tgkd blocks
    (work / "params.yaml").write_text(text)
    cfg = load_params(work / "params.yaml").tgkd
    assert (cfg.optim.lr, cfg.optim.clip_grad, cfg.optim.backbone_multiplier) == (0.002, None, 1.0)
    assert (cfg.train.iterations, cfg.train.batch_size, cfg.schedule.steps, cfg.model.num_queries) == (200, 4, [160], 16)


def test_under_the_paper_profile_a_deleted_profile_key_is_an_error(work):
    from ovlab.profiles import apply_profile

    apply_profile("paper", work / "params.yaml")
    text = (work / "params.yaml").read_text()
    assert text.count("    iterations: 50000\n") == 1 and text.count("    lr: 0.0003\n") == 1
    (work / "params.yaml").write_text(text.replace("    iterations: 50000\n", "").replace("    lr: 0.0003\n", ""))
    with pytest.raises(ParamsError) as err:
        load_params(work / "params.yaml")
    msg = str(err.value)
    assert "tgkd.train.iterations: missing; the paper profile" in msg and "sets 50000" in msg and "default 200" in msg
    assert "tgkd.optim.lr: missing" in msg and "sets 0.0003" in msg and "ovlab profile paper" in msg
    ok = load_params(work / "params.yaml", ["tgkd.train.iterations=50000", "tgkd.optim.lr=3e-4"])  # or given with -S
    assert ok.tgkd.train.iterations == 50000
