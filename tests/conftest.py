"""Shared fixtures: repo paths, the real samples in ../shared/data, WordNet, the embedded dataset."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
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
