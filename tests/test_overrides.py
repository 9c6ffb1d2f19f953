"""`-S key=value` / `--set key=value` on every stage command: dotted keys, YAML values, the same
ParamsError naming the key; and what a run needs at its end is checked at its start."""

from __future__ import annotations

import pytest

from ovlab.config import ParamsError, load_params
from ovlab.config.overrides import apply_overrides, override_argv, parse_override


@pytest.mark.parametrize("text, key, value", [
    ("tgkd.train.iterations=20", "tgkd.train.iterations", 20),
    ("tgkd.optim.lr=5e-4", "tgkd.optim.lr", 5e-4),           # YAML 1.2: a float
    ("tgkd.optim.clip_grad=null", "tgkd.optim.clip_grad", None),
    ("tgkd.optim.clip_grad=", "tgkd.optim.clip_grad", None),
    ("tgkd.augment.flip=false", "tgkd.augment.flip", False),
    ("scan.sim.layers=[1, 2]", "scan.sim.layers", [1, 2]),
    ("tgkd.output=out=dir", "tgkd.output", "out=dir"),       # only the first '=' splits
    ("tgkd.clip.model= RN50", "tgkd.clip.model", "RN50"),
])
def test_parse_override(text, key, value):
    assert parse_override(text) == (key, value)


@pytest.mark.parametrize("text, match", [
    ("tgkd.train.iterations", "expected KEY=VALUE"),
    ("=3", "expected KEY=VALUE"),
    ("tgkd..lr=3", "empty part"),
    ("tgkd.train.iterations=[1", "not valid YAML"),
])
def test_bad_override_syntax(text, match):
    with pytest.raises(ParamsError, match=match):
        parse_override(text)


def test_overrides_set_nested_and_grid_cell_keys(repo_root):
    p = load_params(repo_root / "params.yaml", [
        "tgkd.train.iterations=7",
        "tgkd.grids.common.train.iterations=3",                       # a dotted key of `common`
        "tgkd.grids.table4.td.gkc.td.strategy=group_max",               # an existing cell key
        "tgkd.grids.table4.td.gkc.kd.teacher=spatial",                  # a new cell key
        "tgkd.grids.table7b.imagenet_r50.model.backbone.depth=101",     # inside a cell key's mapping
        "video.clip.model=RN50",                                       # through a null
    ])
    assert p.tgkd.train.iterations == 7
    assert p.tgkd.grids.common["train.iterations"] == 3 and p.tgkd.grids.common["train.batch_size"] == 2
    assert p.tgkd.grids.tables["table4"]["td"] == {"gkc.td.strategy": "group_max", "gkc.kd.mode": "none",
                                                    "gkc.kd.teacher": "spatial"}
    assert p.tgkd.grids.tables["table7b"]["imagenet_r50"]["model.backbone"]["depth"] == 101
    assert p.video.clip.model == "RN50"
    assert p.tgkd.grid_section("table4", "td").train.iterations == 3  # common applies to the cell


def test_overrides_do_not_touch_the_input_or_the_file(repo_root):
    text = (repo_root / "params.yaml").read_text()
    data = {"tgkd": {"train": {}}}
    out = apply_overrides(data, ["tgkd.train.iterations=5", "tgkd.optim={lr: 0.1}"])
    assert data == {"tgkd": {"train": {}}} and out == {"tgkd": {"train": {"iterations": 5}, "optim": {"lr": 0.1}}}
    load_params(repo_root / "params.yaml", ["tgkd.train.iterations=5"])
    assert (repo_root / "params.yaml").read_text() == text


@pytest.mark.parametrize("override, message", [
    ("tgkd.optim.lrr=0.1", "params.yaml (-S tgkd.optim.lrr=0.1): tgkd.optim.lrr: unknown key"),
    ("tgkd.train.iterations=abc", "params.yaml (-S tgkd.train.iterations=abc): tgkd.train.iterations: Input should be a valid integer"),
    ("tgkd.train.gpus=3", "params.yaml (-S tgkd.train.gpus=3): tgkd.train: Value error, batch_size 4 is not divisible by gpus 3"),
    ("nosuch.key=1", "params.yaml (-S nosuch.key=1): nosuch: unknown key"),
    ("tgkd.output.sub=1", "-S tgkd.output.sub=1: tgkd.output is a value (str), not a mapping"),
    ("tgkd.grids.table4.td.gkc.td.strategy=bogus", "tgkd.grids.table4.td.gkc.td.strategy: Input should be"),
    ("tgkd.grids.common.train.iterationz=5", "train.iterationz: unknown key"),
])
def test_bad_override_is_a_params_error_naming_the_key(repo_root, override, message):
    with pytest.raises(ParamsError) as err:
        load_params(repo_root / "params.yaml", [override])
    assert message in str(err.value).replace(str(repo_root / "params.yaml"), "params.yaml")


def test_override_argv_round_trips():
    assert override_argv(["a.b=1", "c=x y"]) == ["-S", "a.b=1", "-S", "c=x y"]


# ------------------------------------------------------------------ every stage command takes -S / --set
def test_grid_command_applies_overrides(repo_root, capsys, monkeypatch):
    from ovlab.experiments import grid

    monkeypatch.chdir(repo_root)
    assert grid.main(["tgkd", "--list", "--set", "tgkd.grids.table8.simbaseline.model=table4/td"]) == 0
    assert "table8/simbaseline: cell table4/td\n" in capsys.readouterr().out  # params.yaml says table4/none
    assert grid.main(["tgkd", "--list", "-S", "tgkd.grids.eval_max_images=0"]) == 1
    assert "(-S tgkd.grids.eval_max_images=0): tgkd.grids.eval_max_images" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [
    ["train", "--section", "tgkd"],
    ["cost"],
])
def test_train_cli_commands_take_overrides(repo_root, capsys, monkeypatch, argv):
    from ovlab.experiments import train_cli

    monkeypatch.chdir(repo_root)
    assert train_cli.main(argv + ["-S", "tgkd.cost.repeatz=2"]) == 1
    err = capsys.readouterr().err
    assert f"ovlab {argv[0]}: error:" in err and "tgkd.cost.repeatz: unknown key" in err and "(-S tgkd.cost.repeatz=2)" in err


def test_run_and_ovlab_cli_take_overrides(repo_root, capsys, monkeypatch):
    from ovlab import run
    from ovlab.experiments.cli import main as ovlab

    monkeypatch.chdir(repo_root)
    assert run.main(["notebooks/01_synonym_curation.ipynb", "--section", "synonyms",
                     "-S", "synonyms.filters.max_wordz=2"]) == 1
    assert "(-S synonyms.filters.max_wordz=2): synonyms.filters.max_wordz: unknown key" in capsys.readouterr().err
    assert ovlab(["grid", "scan", "--list", "-S", "scan.grids.models.sim.sim.enabled=nope"]) == 1
    assert "scan.grids.models.sim.sim.enabled" in capsys.readouterr().err
    assert ovlab(["run", "notebooks/01_synonym_curation.ipynb", "--section", "synonyms", "--set", "x=1"]) == 1
    assert "(-S x=1): x: unknown key" in capsys.readouterr().err


# --------------------------------------------------- what a run needs at its end is checked at its start
@pytest.mark.parametrize("override, key", [
    ("tgkd.eval.dataset=ade20k_15", "tgkd.eval.dataset: unknown dataset 'ade20k_15'"),
    ("tgkd.eval.root=no/such/folder", "tgkd.eval.root: the coco_133 benchmark that the run is scored on at its end is not there"),
])
def test_train_checks_its_evaluation_before_training(repo_root, tmp_path, capsys, monkeypatch, override, key):
    from ovlab.experiments import train_cli

    monkeypatch.chdir(repo_root)
    out = tmp_path / "run"
    code = train_cli.main(["train", "--section", "tgkd", "-S", override, "-S", f"tgkd.output={out}",
                           "-S", f"tgkd.train.checkpoint_dir={tmp_path / 'ckpt'}"])
    assert code == 1 and key in capsys.readouterr().err
    assert not out.exists() and not (tmp_path / "ckpt").exists()  # nothing trained, nothing written


def test_grid_cell_checks_its_benchmarks_before_training(repo_root, tmp_path, capsys, monkeypatch):
    from ovlab.experiments import grid

    monkeypatch.chdir(repo_root)
    code = grid.main(["tgkd", "table4/td", "-S", "tgkd.grids.eval_datasets=[coco_133, cityscape]",
                      "-S", f"tgkd.grids.output={tmp_path / 'gkc'}", "-S", f"tgkd.train.checkpoint_dir={tmp_path / 'ckpt'}"])
    assert code == 1 and "tgkd.grids.eval_datasets: unknown dataset 'cityscape'" in capsys.readouterr().err
    assert not (tmp_path / "gkc").exists() and not (tmp_path / "ckpt").exists()
