"""pyproject.toml and environment.yml name the same packages; torch comes from PyPI."""

from __future__ import annotations

import re
import tomllib

import yaml


def _name(req: str) -> str:
    return re.split(r"[<>=!~\[; ]", req.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_environment_yml_mirrors_pyproject(repo_root):
    py = tomllib.loads((repo_root / "pyproject.toml").read_text())["project"]
    wanted = {_name(r) for r in py["dependencies"]} | {_name(r) for r in py["optional-dependencies"]["dev"]}
    env = yaml.safe_load((repo_root / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert {_name(r) for r in pip} == wanted


def test_torch_is_not_pinned_to_the_local_wheel(repo_root):
    for f in ("pyproject.toml", "environment.yml"):
        text = (repo_root / f).read_text()
        assert "torch==" not in text and "torchvision==" not in text, f


def test_ci_runs_the_readme_test_command(repo_root):
    readme = (repo_root / "README.md").read_text()
    assert "make test" in readme and "make repro" in readme
    assert "make test" in (repo_root / ".ci/run").read_text()
