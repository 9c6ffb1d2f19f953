"""``ovlab doctor``: every missing dataset and weight of the paper profile, and a layout made by
``ovlab data prepare`` from the real samples reported as present.

The weights and dataset search paths are pointed at empty temporary folders, so the result does
not depend on what a developer machine holds. Importing open_clip (for the weights' origins)
dominates the run time.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from ovlab.dvcfiles import copy_pipeline
from ovlab.experiments.doctor import _gb, diagnose, openai_sha256, profile_params, render

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


@pytest.fixture()
def offline_caches(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("OVLAB_WEIGHTS", str(tmp_path / "weights"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("DETECTRON2_DATASETS", str(tmp_path / "datasets"))
    return tmp_path


def _project(tmp: Path) -> Path:
    """A project folder with this repo's params.yaml, dvc.yaml and profiles (what doctor reads)."""
    proj = tmp / "project"
    proj.mkdir()
    shutil.copyfile(REPO / "params.yaml", proj / "params.yaml")
    copy_pipeline(REPO, proj)
    shutil.copytree(REPO / "profiles", proj / "profiles")
    return proj


def _by_what(rep) -> dict[str, object]:
    return {c.what: c for c in rep.checks}


def test_paper_profile_lists_every_missing_dataset_and_weight(offline_caches):
    proj = _project(offline_caches)
    rep = diagnose(profile_params("paper", proj / "params.yaml"), profile="paper")
    assert not rep.ok
    missing = {c.what for c in rep.checks if c.status == "missing"}
    ds = offline_caches / "datasets"
    want = {
        f"COCO train2017 images in {proj}/datasets/coco/train2017",
        f"COCO panoptic JSON {proj}/datasets/coco/annotations/panoptic_train2017.json",
        f"COCO captions {proj}/datasets/coco/annotations/captions_train2017.json (grounding loss)",
        f"benchmark coco_133 under {ds}", f"benchmark ade20k_150 under {ds}", f"benchmark ade20k_847 under {ds}",
        f"benchmark pascal_context_59 under {ds}", f"benchmark cityscapes_19 under {ds}",
        f"benchmark ade20k_150 under {proj}/datasets/ADEChallengeData2016",
        f"VIPSeg train videos under {proj}/datasets/VIPSeg",
        "CLIP ViT-B-32 pretrained 'openai'", "CLIP RN50 pretrained 'openai'", "CLIP RN101 pretrained 'openai'",
        "CLIP ViT-L-14 pretrained 'datacomp_xl_s13b_b90k'",
        "backbone resnet50-0676ba61.pth", "backbone resnet101-63fe2227.pth",
    }
    assert want <= missing, want - missing
    checks = _by_what(rep)
    rn50 = checks["CLIP RN50 pretrained 'openai'"]
    assert "SHA-256 afeb0e10f9e5a86da6080e35cf09123aca3b358a0c3e3b6c78a7b63bc04b6762" in rn50.fetch
    assert str(offline_caches / "weights" / "RN50" / "openai.safetensors") in rn50.fetch
    assert "97.8 MB" in checks["backbone resnet50-0676ba61.pth"].fetch  # torchvision's _file_size
    assert checks["benchmark pascal_context_59 under " + str(ds)].fetch.endswith(f"ovlab data prepare pascal_context_59 --src <raw> --dst {ds}`")
    # the sgiou root is the coco folder itself: prepare must write under its parent
    assert f"--dst {proj}/datasets`" in checks[f"benchmark coco_133 under {proj}/datasets/coco"].fetch
    assert checks[f"initial checkpoint {proj}/results/tgkd/baseline/model.pt"].status == "made"
    text = render(rep)
    assert "to fetch or fix" in text and "tgkd: 19 grid run(s)" in text


def test_prepared_samples_are_reported_present(shared_data, offline_caches):
    from ovlab.data.prepare import prepare

    ds = offline_caches / "datasets"
    prepare("ade20k_847", shared_data / "samples" / "ade20k_full", ds, progress=False, splits=["training"])
    # the ADE sample images are training files; put them where the benchmark's validation split is
    (ds / "ADE20K_2021_17_01" / "annotations_detectron2" / "training").rename(ds / "ADE20K_2021_17_01" / "annotations_detectron2" / "validation")
    (ds / "ADE20K_2021_17_01" / "images_detectron2" / "training").rename(ds / "ADE20K_2021_17_01" / "images_detectron2" / "validation")
    prepare("ade20k_150", shared_data / "samples" / "ade20k_150", ds, progress=False)
    prepare("pascal_voc_20", shared_data / "samples" / "pascal_voc", ds, progress=False)
    proj = _project(offline_caches)
    # a fake RN50 checkpoint: found, and rejected by --verify-hashes (its SHA-256 is not OpenAI's)
    fake = offline_caches / "weights" / "RN50" / "openai.pt"
    fake.parent.mkdir(parents=True)
    fake.write_bytes(b"not a checkpoint")
    # a model trained under this profile sizes the disk estimate (model.pt + last.pt ~3x, per training)
    trained = proj / "results" / "tgkd" / "baseline"
    trained.mkdir(parents=True)
    (trained / "model.pt").write_bytes(bytes(1_000_000))
    (trained / "params.yaml").write_text("base:\n  profile: paper\n")
    rep = diagnose(profile_params("paper", proj / "params.yaml"), profile="paper", verify=True)
    checks = _by_what(rep)
    disk = checks[f"free space at {proj}"]
    n = int(disk.found.split("(")[1].split(" x ")[0])
    assert f"(model.pt 1.0 MB + last.pt" in disk.found and f"about {_gb(n * 4e-3)}" in disk.found
    assert checks[f"initial checkpoint {trained / 'model.pt'}"].status == "ok"
    a847 = checks[f"benchmark ade20k_847 under {ds}"]
    assert a847.status == "partial" and a847.found.startswith("3 of 2000 images (Mask2Former prepared uint16 tif")
    a150 = checks[f"benchmark ade20k_150 under {ds}"]
    assert a150.status == "partial" and a150.found.startswith("3 of 2000 images (detectron2 prepared")
    assert checks[f"benchmark pascal_context_59 under {ds}"].status == "missing"
    inv = {c.what: c.found for c in rep.checks if c.stage == "datasets root"}
    assert inv[f"prepared pascal_voc_20 val: {ds}/VOCdevkit/VOC2012/annotations_detectron2/val"].startswith("3 of 1449")
    rn50 = checks["CLIP RN50 pretrained 'openai'"]
    assert rn50.status == "mismatch" and hashlib.sha256(b"not a checkpoint").hexdigest() in rn50.found
    assert not rep.ok


def test_cli_exit_status(offline_caches, capsys):
    from ovlab.experiments.cli import main

    proj = _project(offline_caches)
    assert main(["doctor", "--params", str(proj / "params.yaml"), "--profile", "paper"]) == 1
    out = capsys.readouterr().out
    assert "MISSING" in out and "CLIP ViT-L-14 pretrained 'datacomp_xl_s13b_b90k'" in out


def test_openai_sha256_from_url():
    url = "https://openaipublic.azureedge.net/clip/models/afeb0e10f9e5a86da6080e35cf09123aca3b358a0c3e3b6c78a7b63bc04b6762/RN50.pt"
    assert openai_sha256(url) == "afeb0e10f9e5a86da6080e35cf09123aca3b358a0c3e3b6c78a7b63bc04b6762"
    assert openai_sha256("https://huggingface.co/laion/x") is None


def test_embedded_profile_is_ready_with_the_embedded_data(offline_caches, embedded_root, shared_data):
    """The embedded profile: synthetic data (counts not held against the full splits), no weights, CPU."""
    proj = _project(offline_caches)
    (proj / "data").mkdir()
    (proj / "data" / "embedded").symlink_to(embedded_root)
    (offline_caches / "shared").symlink_to(shared_data.parent)  # params.yaml reads ../shared/data samples
    params = profile_params("embedded", proj / "params.yaml")
    rep = diagnose(params, profile="embedded")
    assert rep.ok, render(rep)
    assert not [c for c in rep.checks if c.kind == "gpu"]
    coco = _by_what(rep)[f"COCO train2017 images in {proj}/data/embedded/coco/train2017"]
    assert coco.status == "ok" and coco.found.endswith("of 118287 images")


def test_converted_checkpoint_cell_says_how_to_make_it(tmp_path):
    """A SCAN Table 6-8 cell scored on ``converted:<path>``: missing, the fix names ``ovlab convert
    scan`` with the released SCAN.pth / clip.pt beside it and which of them are there; present, ok."""
    from ovlab.experiments.doctor import Report, check_converted

    out = tmp_path / "weights" / "scan" / "scan_vitl.pt"
    out.parent.mkdir(parents=True)
    rep = Report("paper")
    check_converted(rep, "scan.grids.table6.noise", out)
    (c,) = rep.checks
    assert c.status == "missing" and not rep.ok
    assert f"ovlab convert scan --checkpoint {out.parent / 'SCAN.pth'} --clip {out.parent / 'clip.pt'} --out {out}" in c.fetch
    assert c.fetch.endswith("(found: neither)")
    (out.parent / "SCAN.pth").write_bytes(b"x")
    rep = Report("paper")
    check_converted(rep, "scan.grids.table6.noise", out)
    assert rep.checks[0].fetch.endswith(f"(found: {out.parent / 'SCAN.pth'})")
    out.write_bytes(b"x")
    rep = Report("paper")
    check_converted(rep, "scan.grids.table8.mask", out)
    assert rep.ok and rep.checks[0].status == "ok"
