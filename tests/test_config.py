"""Params validation: every problem is a ParamsError naming the file and the dotted key."""

from __future__ import annotations

import copy

import pytest
import yaml

from ovlab.config import ParamsError, load_params, parse_params, stage_params


@pytest.fixture()
def params_dict(repo_root):
    return yaml.safe_load((repo_root / "params.yaml").read_text())


def _write(tmp_path, data):
    p = tmp_path / "params.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


def test_repo_params_validate(repo_root):
    params = load_params(repo_root / "params.yaml")
    assert params.base.profile == "embedded"
    assert params.base.seed == 0
    assert params.synonyms.filters.max_words == 3
    assert params.root == repo_root
    assert params.path("results") == repo_root / "results"


def test_unknown_key_is_named_with_its_path(tmp_path, params_dict):
    params_dict["synonyms"].setdefault("filters", {})["max_word"] = 3
    path = _write(tmp_path, params_dict)
    with pytest.raises(ParamsError) as err:
        load_params(path)
    msg = str(err.value)
    assert str(path) in msg
    assert "synonyms.filters.max_word" in msg and "unknown key" in msg
    assert isinstance(err.value, ValueError)


def test_wrong_type_is_named_and_not_coerced(tmp_path, params_dict):
    params_dict["synonyms"].setdefault("filters", {})["max_words"] = "3"
    params_dict["base"]["deterministic"] = 1
    with pytest.raises(ParamsError) as err:
        load_params(_write(tmp_path, params_dict))
    msg = str(err.value)
    assert "synonyms.filters.max_words" in msg and "'3'" in msg
    assert "base.deterministic" in msg


def test_missing_section_and_bad_choice(tmp_path, params_dict):
    d = copy.deepcopy(params_dict)
    del d["synonyms"]
    d["base"]["profile"] = "fast"
    with pytest.raises(ParamsError) as err:
        load_params(_write(tmp_path, d))
    msg = str(err.value)
    assert "synonyms: missing required value" in msg
    assert "base.profile" in msg and "'fast'" in msg


def test_invalid_yaml_and_missing_file(tmp_path):
    bad = tmp_path / "params.yaml"
    bad.write_text("base: [unclosed\n")
    with pytest.raises(ParamsError, match="invalid YAML"):
        load_params(bad)
    with pytest.raises(ParamsError, match="not found"):
        load_params(tmp_path / "nope.yaml")
    with pytest.raises(ParamsError, match="mapping of sections"):
        parse_params(["a"], source="x.yaml")


def test_stage_params_from_injected_dicts(params_dict, tmp_path):
    st = stage_params("synonyms", params_dict["base"], params_dict["synonyms"], str(tmp_path))
    assert st.cfg.output == "results/synonyms/coco_panoptic_133.json"
    assert st.path(st.cfg.output) == tmp_path / "results/synonyms/coco_panoptic_133.json"
    bad = dict(params_dict["synonyms"], colour="red")
    with pytest.raises(ParamsError, match=r"params.yaml: synonyms.colour: unknown key"):
        stage_params("synonyms", params_dict["base"], bad, str(tmp_path))
    with pytest.raises(ParamsError, match="no stage section 'nope'"):
        stage_params("nope", params_dict["base"], {}, str(tmp_path))


def test_stage_params_loads_the_file_when_nothing_is_injected(repo_root, monkeypatch):
    monkeypatch.chdir(repo_root / "notebooks")  # as a notebook opened in JupyterLab
    st = stage_params("synonyms")
    assert st.root == repo_root and st.cfg.categories == "coco_panoptic_133"
