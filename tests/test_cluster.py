"""``ovlab cluster``: a table's cells as submitit jobs that run their DVC stage and land in dvc.lock.

DVC must not run inside the checkout (it locks the repository), so the end-to-end test copies the
working tree to a temporary folder and runs there: the cheapest real stage (``synonyms``: WordNet
only, no images, no CLIP) plus a two-cell matrix stage added to the copy's dvc.yaml, all three as
concurrent jobs of submitit's local executor (what a SLURM cluster runs, minus sbatch).
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
import yaml

from ovlab.experiments.cluster import ClusterError, JobSpec, expand_targets, plan, slurm_parameters, submit

REPO = Path(__file__).resolve().parents[1]
TOP_LEVEL_SKIP = {"results", "reports", "checkpoints", "data", ".pytest_cache", ".venv", ".benchmarks", "ovlab.egg-info"}


def IGNORE(folder: str, names: list[str]) -> set[str]:
    """What the copy leaves out: outputs and caches at the top, DVC's cache and lock folder, bytecode."""
    here = Path(folder).resolve()
    skip = {n for n in names if n == "__pycache__"}
    if here == REPO:
        skip |= TOP_LEVEL_SKIP & set(names)
    if here == REPO / ".dvc":
        skip |= {"cache", "tmp"} & set(names)
    return skip

CHECK_STAGE = """
  cluster_check:  # added by tests/test_cluster.py in its copy of the repository
    matrix: {cell: [a, b]}
    cmd: python -c "from pathlib import Path; p = Path('results/cluster_check'); p.mkdir(parents=True, exist_ok=True); (p / '${item.cell}.txt').write_text('${item.cell}')"
    outs:
      - results/cluster_check/${item.cell}.txt: {cache: false}
"""


@pytest.fixture(scope="module")
def repo_copy(tmp_path_factory) -> Path:
    dst = tmp_path_factory.mktemp("cluster") / "repo"
    shutil.copytree(REPO, dst, ignore=IGNORE, symlinks=True)
    text = (dst / "dvc.yaml").read_text()
    (dst / "dvc.yaml").write_text(text.rstrip("\n") + "\n" + CHECK_STAGE)
    lock = yaml.safe_load((dst / "dvc.lock").read_text())
    lock["stages"].pop("synonyms", None)  # so that the job must write it back
    (dst / "dvc.lock").write_text(yaml.safe_dump(lock, sort_keys=False))
    return dst


def test_expand_targets():
    stages = ["synonyms", "tgkd_baseline", "gkc_table4@none", "gkc_table4@td", "gkc_table5@none", "scan_models@sim"]
    assert expand_targets(["tgkd/table4"], stages) == ["gkc_table4@none", "gkc_table4@td"]
    assert expand_targets(["gkc_table4", "gkc_table4@td", "scan/models", "synonyms"], stages) == [
        "gkc_table4@none", "gkc_table4@td", "scan_models@sim", "synonyms"]
    with pytest.raises(ClusterError, match="gkc_table9: no such stage.*gkc_table4"):
        expand_targets(["tgkd/table9"], stages)
    with pytest.raises(ClusterError, match="nope_table1: no such stage"):
        expand_targets(["nope/table1"], stages)


def test_slurm_parameters_of_a_multi_gpu_cell():
    p = slurm_parameters(JobSpec("gkc_table4@td", 8), partition="gpu", timeout_min=600, after="123")
    assert p["gpus_per_node"] == 8 and p["tasks_per_node"] == 1 and p["cpus_per_task"] == 64
    assert p["slurm_partition"] == "gpu" and p["slurm_additional_parameters"] == {"dependency": "afterok:123"}
    assert p["name"] == "ovlab:gkc_table4@td" and p["timeout_min"] == 600


@pytest.mark.slow
def test_cells_run_as_local_jobs_and_land_in_dvc_lock(repo_copy, tmp_path):
    specs = plan(repo_copy, ["cluster_check", "synonyms"])
    assert [s.stage for s in specs] == ["cluster_check@a", "cluster_check@b", "synonyms"]
    jobs = submit(repo_copy, specs, executor="local", folder=tmp_path / "logs")
    results = [j.result() for j in jobs]  # re-raises a failed stage with DVC's output
    assert [r["stage"] for r in results] == ["cluster_check@a", "cluster_check@b", "synonyms"]
    lock = yaml.safe_load((repo_copy / "dvc.lock").read_text())["stages"]
    for cell in ("a", "b"):
        out = lock[f"cluster_check@{cell}"]["outs"][0]
        assert out["path"] == f"results/cluster_check/{cell}.txt"
        assert out["md5"] == hashlib.md5(cell.encode()).hexdigest()
    syn = lock["synonyms"]
    assert syn["cmd"] == "python -m ovlab.run notebooks/01_synonym_curation.ipynb --section synonyms"
    produced = {o["path"]: o["md5"] for o in syn["outs"]}
    out = repo_copy / "results" / "synonyms" / "coco_panoptic_133.json"
    assert produced["results/synonyms/coco_panoptic_133.json"] == hashlib.md5(out.read_bytes()).hexdigest()


def test_paper_cells_ask_for_train_gpus(repo_copy, tmp_path):
    from ovlab.experiments.cluster import stage_gpus
    from ovlab.experiments.doctor import profile_params

    params = profile_params("paper", repo_copy / "params.yaml")
    assert stage_gpus(params, "gkc_table4@td") == 8        # trains its own model: train.gpus, torchrun inside
    assert stage_gpus(params, "tgkd_baseline") == 8
    assert stage_gpus(params, "gkc_table8@oracle") == 1    # scores a trained cell
    assert stage_gpus(params, "scan_table7@wo_cs") == 1    # test-time keys only: scores a shared model
    assert stage_gpus(params, "synonyms") == 1
