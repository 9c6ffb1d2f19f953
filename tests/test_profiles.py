"""Profiles: one command switches params.yaml; switching back restores it exactly; params.yaml stays minimal."""

from __future__ import annotations

import shutil

import pytest

from ovlab.config import ParamsError, load_params
from ovlab.dvcfiles import copy_pipeline
from ovlab.profiles import apply_profile, profile_keys


def test_profiles_list_the_same_keys(repo_root):
    assert profile_keys(repo_root / "profiles/embedded.yaml") == profile_keys(repo_root / "profiles/paper.yaml")


def test_params_yaml_is_consistent_with_its_profile(repo_root):
    """Every value the profile sets is what params.yaml resolves to (written there, or the schema default)."""
    import yaml

    from ovlab.profiles import _leaves

    params = load_params(repo_root / "params.yaml")
    raw = yaml.safe_load((repo_root / "params.yaml").read_text())
    profile = yaml.safe_load((repo_root / f"profiles/{params.base.profile}.yaml").read_text())
    for path, v in _leaves(profile):
        if "grids" in path:  # grid cells and settings are written as they are
            node = raw
            for k in path:
                node = node[k]
            assert node == v, f"params.yaml {'.'.join(path)}={node!r} but the profile says {v!r}"
            continue
        node = getattr(params, path[0]).model_dump(mode="json")
        for k in path[1:]:
            node = node[k]
        assert node == v, f"params.yaml {'.'.join(path)}={node!r} but the profile says {v!r}"


def test_params_yaml_lists_only_what_differs_from_the_defaults(repo_root):
    """Besides the keys dvc.yaml reads (interpolated, or tracked as a stage's params: `{}` = all
    defaults), every value differs from the schema default."""
    import yaml

    from ovlab.profiles import _default_at, _leaves, _schema_defaults, dvc_keys

    raw = yaml.safe_load((repo_root / "params.yaml").read_text())
    defaults, keep = _schema_defaults(), dvc_keys(repo_root / "dvc.yaml")
    same = [".".join(p) for p, v in _leaves(raw) if "grids" not in p and ".".join(p) not in keep
            and p != ("base", "profile") and p[-1] != "pretrained" and _default_at(defaults, p) == v]
    assert same == [], f"params.yaml restates schema defaults: {same}"
    assert len((repo_root / "params.yaml").read_text().splitlines()) <= 300  # long grid cells are block mappings (a flow mapping past 80 columns is re-wrapped by `dvc exp run -S`)


def test_switch_and_back_is_exact(repo_root, tmp_path):
    shutil.copy(repo_root / "params.yaml", tmp_path / "params.yaml")
    copy_pipeline(repo_root, tmp_path)  # the keys the pipeline files interpolate stay
    shutil.copytree(repo_root / "profiles", tmp_path / "profiles")
    original = (tmp_path / "params.yaml").read_text()
    apply_profile("paper", tmp_path / "params.yaml")
    p = load_params(tmp_path / "params.yaml")
    assert p.base.profile == "paper" and p.base.device == "auto"
    assert "# ovlab parameters" in (tmp_path / "params.yaml").read_text()  # comments kept
    apply_profile("embedded", tmp_path / "params.yaml")
    back = load_params(tmp_path / "params.yaml")
    assert back.model_dump() == load_params(repo_root / "params.yaml").model_dump()
    assert (tmp_path / "params.yaml").read_text() == original  # byte for byte
    assert back.base.profile == "embedded"
    assert original.splitlines()[0] == (tmp_path / "params.yaml").read_text().splitlines()[0]


def test_bad_profiles_leave_params_unchanged(repo_root, tmp_path):
    shutil.copy(repo_root / "params.yaml", tmp_path / "params.yaml")
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles/typo.yaml").write_text("base:\n  devise: cpu\n")
    (tmp_path / "profiles/wrongtype.yaml").write_text("base:\n  seed: zero\n")
    before = (tmp_path / "params.yaml").read_text()
    with pytest.raises(ParamsError, match="base.devise: not a key"):
        apply_profile("typo", tmp_path / "params.yaml")
    with pytest.raises(ParamsError, match="base.seed"):
        apply_profile("wrongtype", tmp_path / "params.yaml")
    with pytest.raises(ParamsError, match="no such profile"):
        apply_profile("nope", tmp_path / "params.yaml")
    assert (tmp_path / "params.yaml").read_text() == before
