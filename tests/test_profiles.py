"""Profiles: one command switches params.yaml; switching back restores it exactly."""

from __future__ import annotations

import shutil

import pytest

from ovlab.config import ParamsError, load_params
from ovlab.profiles import apply_profile, profile_keys


def test_profiles_list_the_same_keys(repo_root):
    assert profile_keys(repo_root / "profiles/embedded.yaml") == profile_keys(repo_root / "profiles/paper.yaml")


def test_params_yaml_is_consistent_with_its_profile(repo_root):
    import yaml

    params = yaml.safe_load((repo_root / "params.yaml").read_text())
    profile = yaml.safe_load((repo_root / f"profiles/{params['base']['profile']}.yaml").read_text())

    def walk(d, p):
        for k, v in d.items():
            if isinstance(v, dict):
                walk(v, p[k])
            else:
                assert p[k] == v, f"params.yaml {k}={p[k]!r} but the profile says {v!r}"

    walk(profile, params)


def test_switch_and_back_is_exact(repo_root, tmp_path):
    shutil.copy(repo_root / "params.yaml", tmp_path / "params.yaml")
    shutil.copytree(repo_root / "profiles", tmp_path / "profiles")
    original = (tmp_path / "params.yaml").read_text()
    apply_profile("paper", tmp_path / "params.yaml")
    p = load_params(tmp_path / "params.yaml")
    assert p.base.profile == "paper" and p.base.device == "auto"
    assert "# ovlab parameters" in (tmp_path / "params.yaml").read_text()  # comments kept
    apply_profile("embedded", tmp_path / "params.yaml")
    back = load_params(tmp_path / "params.yaml")
    assert back.model_dump() == load_params(repo_root / "params.yaml").model_dump()
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
