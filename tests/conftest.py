"""Shared fixtures: repo paths, the real samples in ../shared/data, WordNet, the embedded dataset."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def pipeline_stages(root: Path = REPO) -> dict:
    """Every stage definition of the project's pipeline files (root ``dvc.yaml`` and
    ``pipelines/*/dvc.yaml``) by name, as written (ovlab.dvcfiles)."""
    from ovlab.dvcfiles import stage_definitions

    return {name: stage for name, (_, stage) in stage_definitions(root).items()}
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` beside the checkout (real samples; never copied into the repo)."""
    if not (SHARED_DATA / "samples").is_dir():
        pytest.skip(f"real samples not found at {SHARED_DATA} (CI and the dev machines have them)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def coco_samples(shared_data) -> list:
    """The 3 real COCO val2017 panoptic samples as records."""
    from ovlab.data.coco_panoptic import read_coco_panoptic

    return read_coco_panoptic(shared_data / "samples" / "coco_panoptic", "val", image_dir="images",
                              panoptic_dir="panoptic", panoptic_json="panoptic_val2017_mini.json")


@pytest.fixture(scope="session")
def wordnet(tmp_path_factory):
    """WordNet 3.0 as the set-up provides it (fails, not skips, when absent: it is part of the set-up)."""
    from ovlab.vocab import load_wordnet

    return load_wordnet()


@pytest.fixture(scope="session")
def embedded_root(tmp_path_factory) -> Path:
    """A fresh copy of the embedded dataset (seed 0), generated once per session."""
    from ovlab.data.procedural import make_embedded

    root = tmp_path_factory.mktemp("embedded")
    make_embedded(root, seed=0)
    return root


def tiny_tgkd_section(data_root: Path, output: Path, **overrides) -> dict:
    """A ``tgkd`` section small enough to train in seconds on the embedded data (dict, validated later)."""
    sec = {
        "clip": {"model": "ovlab-tiny-rn", "pretrained": None},
        "model": {"hidden_dim": 32, "mask_dim": 32, "num_queries": 8, "decoder_layers": 2, "encoder_layers": 1,
                  "heads": 4, "ffn_dim": 64, "encoder_ffn_dim": 64},
        "loss": {"num_points": 256},
        "data": {"root": str(data_root / "coco")},
        "augment": {"crop_size": 64},
        "optim": {"lr": 2e-3, "backbone_multiplier": 1.0},
        "schedule": {"steps": [8]},
        "train": {"iterations": 12, "batch_size": 2, "checkpoint_every": 4, "log_every": 2,
                  "checkpoint_dir": str(output / "checkpoints")},
        "eval": {"root": str(data_root), "short_side": 64, "max_images": 3},
        "output": str(output / "run"),
    }
    for key, value in overrides.items():
        sec[key] = {**sec.get(key, {}), **value} if isinstance(value, dict) else value
    return sec


def tiny_tgkd_stage(data_root: Path, output: Path, **overrides):
    """:class:`ovlab.config.StageParams` of :func:`tiny_tgkd_section`."""
    from ovlab.config import StageParams
    from ovlab.config.base import BaseParams
    from ovlab.config.tgkd import TgkdParams

    cfg = TgkdParams.model_validate(tiny_tgkd_section(data_root, output, **overrides))
    return StageParams("tgkd", BaseParams(), cfg, REPO, "<test>")


@pytest.fixture(scope="session")
def tiny_run(embedded_root, tmp_path_factory):
    """A tiny segmenter trained once per session on the generated embedded data: (stage, TrainResult)."""
    from ovlab.experiments.registry import train_stage as train

    stage = tiny_tgkd_stage(embedded_root, tmp_path_factory.mktemp("tiny_run"))
    return stage, train(stage, progress=False)


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a module's tests (``pytestmark = pytest.mark.usefixtures("one_torch_thread")``),
    restored afterwards so later tests keep the default."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_vit():
    """The visual tower of an untrained ``ovlab-tiny-vit`` CLIP (SCAN tests)."""
    import warnings

    from ovlab.clip import load_clip

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_clip("ovlab-tiny-vit", pretrained=None).model.visual


@pytest.fixture(scope="session")
def paper_scan(tmp_path_factory):
    """The ``scan`` section that ``ovlab profile paper`` writes over this checkout's params.yaml (a copy)."""
    import shutil

    from ovlab.config import load_params
    from ovlab.profiles import apply_profile

    tmp = tmp_path_factory.mktemp("paper")
    shutil.copy(REPO / "params.yaml", tmp / "params.yaml")
    shutil.copytree(REPO / "profiles", tmp / "profiles")
    apply_profile("paper", tmp / "params.yaml")
    return load_params(tmp / "params.yaml").scan
