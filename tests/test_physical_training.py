"""A short training of the physically guided segmenter on the real COCO samples in ../shared/data lowers
both regularisers, L^p (EdgeGT structure) and L^sac, without a NaN; and the grid runner trains
and scores a Table 3 cell on the embedded data, bit-reproducibly."""

from __future__ import annotations

import json
import math

import pytest
import torch


def _stage(tmp_path, root, **section):
    from ovlab.config import StageParams
    from ovlab.config.base import BaseParams
    from ovlab.config.physical import PhysicalStageParams

    doc = {"clip": {"pretrained": None}, "output": str(tmp_path / "out"),
           "data": {"root": str(root), "split": "val", "image_dir": "images", "panoptic_dir": "panoptic",
                    "panoptic_json": "panoptic_val2017_mini.json"},
           "augment": {"crop_size": 64, "scale_min": 0.3, "scale_max": 0.5},
           "structure": {"enabled": True, "source": "edge_gt"}, "sac": {"enabled": True},
           "train": {"iterations": 30, "batch_size": 2}, **section}
    cfg = PhysicalStageParams.model_validate(doc)
    return StageParams("physical", BaseParams(), cfg, tmp_path)


@pytest.mark.slow
def test_short_real_image_training_lowers_lp_and_lsac(tmp_path, shared_data):
    from ovlab.engine.optim import build_optimizer
    from ovlab.physical.task import PhysicalTask

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    stage = _stage(tmp_path, shared_data / "samples" / "coco_panoptic", optim={"lr": 4e-3})
    task = PhysicalTask()
    built = task.build(stage)
    vocab = task.vocabulary(stage, built.clip)
    batches = task.batches(stage, vocab, 0, 1)
    objective = task.objective(stage, built, vocab)
    model = built.model.train()
    cfg = stage.cfg
    opt, sched = build_optimizer(model, cfg.optim, cfg.schedule, cfg.train.iterations)
    text = vocab.text
    hist = {"structure": [], "sac": [], "seg": []}
    for it in range(cfg.train.iterations):
        batch = batches[it]
        assert batch.structure.sum() > 0                      # the real crops have structure pixels
        out = objective(model, batch, text)
        loss = out.total()
        assert math.isfinite(float(loss.detach()))
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        for k in hist:
            hist[k].append(float(out.terms[k].detach()))
    torch.set_num_threads(threads)
    first = {k: sum(v[:6]) / 6 for k, v in hist.items()}
    last = {k: sum(v[-6:]) / 6 for k, v in hist.items()}
    print(first, last)
    assert last["structure"] < 0.9 * first["structure"], (first, last)
    assert last["sac"] < 0.8 * first["sac"], (first, last)


@pytest.mark.slow
def test_grid_cell_trains_and_scores_reproducibly(tmp_path, embedded_root, repo_root):
    from ovlab.config import load_params
    from ovlab.experiments.grid import run_cell

    text = (repo_root / "params.yaml").read_text().replace("data/embedded/coco", str(embedded_root / "coco"))
    text = text.replace("output: results/physical", f"output: {tmp_path / 'grid'}")
    text = text.replace("train: {}\n  eval: {}\n  grids:\n    output:",
                        f"train: {{iterations: 6, checkpoint_dir: {tmp_path / 'ck'}}}\n  eval: {{root: {embedded_root}}}\n  grids:\n    output:")
    (tmp_path / "params.yaml").write_text(text)
    stage = load_params(tmp_path / "params.yaml").stage("physical")
    assert stage.cfg.train.iterations == 6
    m1 = run_cell(stage, "table3", "lp_sac", progress=False)
    ev = m1["evals"]["coco_133"]
    assert 0.0 <= ev["mIoU"] <= 100.0 and ev["num_images"] == 4
    saved = json.loads((tmp_path / "grid" / "table3" / "lp_sac" / "metrics.json").read_text())
    assert saved["evals"]["coco_133"]["mIoU"] == ev["mIoU"]
    import shutil

    shutil.rmtree(tmp_path / "ck")
    m2 = run_cell(stage, "table3", "lp_sac", progress=False)
    assert m2["evals"]["coco_133"]["mIoU"] == ev["mIoU"] and m2["final_loss"] == m1["final_loss"]
