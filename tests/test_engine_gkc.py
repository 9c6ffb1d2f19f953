"""GKC wiring: the objective (TD, KD, grounding on the matches), the teacher, the grid cells."""

from __future__ import annotations

import json
import math
import warnings

import pytest
import torch

from ovlab.config import ParamsError, StageParams
from ovlab.config.base import BaseParams
from ovlab.config.grid import GridParams, deep_merge
from ovlab.config.tgkd import TgkdParams
from ovlab.data.categories import load_categories
from ovlab.data.names import normalize_class_name

from .conftest import REPO, tiny_tgkd_section


def _stage(section: dict, name: str = "tgkd") -> StageParams:
    return StageParams(name, BaseParams(), TgkdParams.model_validate(section), REPO, "<test>")


def _synonym_files(tmp_path, records=(), fake: bool = True):
    """A synonym table (every COCO class + one made-up synonym) and scores for the records' segments."""
    cats = load_categories("coco_panoptic_133")
    table = {}
    for c in cats:
        n = normalize_class_name(c.name)
        table[n] = [n, f"{n} thing"] if fake else [n]
    syn = tmp_path / "synonyms.json"
    syn.write_text(json.dumps(table))
    scores = {}
    for r in records:
        for s in r.segments:
            n = normalize_class_name(cats[s.category_index].name)
            scores.setdefault(str(r.image_id), {})[str(s.id)] = {"class": n, "scores": {n: 0.7, f"{n} thing": 0.3}}
    sc = tmp_path / "scores.json"
    sc.write_text(json.dumps(scores))
    return syn, sc


# ------------------------------------------------------------------------------------------- grids
def test_cell_overrides_merge_common_cell_and_grid_settings():
    g = GridParams(output="out", common={"gkc.grounding.enabled": True, "train.iterations": 7,
                                         "train.init": "a/model.pt", "train.batch_size": 2},
                   table4={"td": {"gkc.td.strategy": "random"}})
    over = g.overrides("table4", "td")
    assert over == {"gkc": {"grounding": {"enabled": True}, "td": {"strategy": "random"}},
                    "train": {"iterations": 7, "init": "a/model.pt", "batch_size": 2}}
    cell = TgkdParams(grids=g).grid_section("table4", "td")
    assert cell.output == "out/table4/td" and cell.train.iterations == 7 and cell.gkc.td.strategy == "random"
    assert deep_merge({"a": {"b": 1, "c": 2}}, {"a": {"b": 3}}) == {"a": {"b": 3, "c": 2}}
    with pytest.raises(KeyError, match="no cell 'nope'"):
        g.overrides("table4", "nope")
    with pytest.raises(KeyError, match="unknown grid table"):
        g.overrides("table9", "td")


def test_repo_grid_cells_validate_and_a_bad_cell_names_its_key(repo_root, tmp_path):
    import yaml

    from ovlab.config import load_params

    params = load_params(repo_root / "params.yaml")
    cell = params.tgkd.grid_section("table4", "td_tgkd")
    assert cell.gkc.td.strategy == "random" and cell.gkc.kd.mode == "text_guided"
    assert cell.gkc.grounding.enabled and cell.output.endswith("table4/td_tgkd")
    assert params.tgkd.grid_model("table8", "simbaseline_td") == ("cell", "table4/td")
    assert params.tgkd.grid_model("table5", "vanilla") == ("own", "table5/vanilla")
    data = yaml.safe_load((repo_root / "params.yaml").read_text())
    data["tgkd"]["grids"]["table5"]["vanilla"] = {"gkc.kd.mode": "vanilla", "gkc.kd.modee": 1}
    bad = tmp_path / "params.yaml"
    bad.write_text(yaml.safe_dump(data))
    with pytest.raises(ParamsError, match=r"tgkd\.grids\.table5\.vanilla\.gkc\.kd\.modee: unknown key"):
        load_params(bad)
    data["tgkd"]["grids"]["table5"]["vanilla"] = {"gkc": {"kd": {"mode": "telepathy"}}}
    bad.write_text(yaml.safe_dump(data))
    with pytest.raises(ParamsError, match=r"tgkd\.grids\.table5\.vanilla\.gkc\.kd\.mode"):
        load_params(bad)
    data["tgkd"]["grids"]["table5"]["vanilla"] = {"gkc.kd.mode": "vanilla"}
    data["tgkd"]["grids"]["table8"]["oracle"] = {"model": "table4/none", "gkc.kd.mode": "vanilla"}
    bad.write_text(yaml.safe_dump(data))
    with pytest.raises(ParamsError, match=r"tgkd\.grids\.table8\.oracle: a cell that evaluates model"):
        load_params(bad)


# ----------------------------------------------------------------------------------------- teacher
def test_teacher_global_token_is_clips_image_embedding_of_the_masked_image():
    from ovlab.clip import load_clip
    from ovlab.segmenter.data import Batch
    from ovlab.gkc.distill_heads import ClipTeacher

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clip = load_clip("ovlab-tiny-rn", pretrained=None)
    g = torch.Generator().manual_seed(0)
    image = torch.rand(1, 3, 96, 96, generator=g)
    masks = torch.zeros(2, 96, 96, dtype=torch.bool)
    masks[0, :48] = True
    masks[1, 40:, 30:] = True
    batch = Batch(image, [torch.tensor([3, 5])], [masks], [1], [[]], torch.ones(1, 96, 96, dtype=torch.bool))
    out = ClipTeacher(clip, "global", source="in_model_mask")(batch, [torch.tensor([0, 1])])
    clip.model.visual.eval()
    with torch.no_grad():
        x = clip.normalize(image) * masks[:, None].float()
        ref = torch.nn.functional.normalize(clip.model.visual(x), dim=-1)
    assert out.shape == (2, 64)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)
    # spatial tokens pooled over the whole grid equal the mean of the attention-pool outputs
    mean = ClipTeacher(clip, "spatial", pool="mean")(batch, [torch.tensor([1])])
    from ovlab.clip.dense import resnet_features

    f = resnet_features(clip.model.visual, x[1:])
    torch.testing.assert_close(mean, torch.nn.functional.normalize(f.spatial_tokens.mean((-1, -2)), dim=-1))


# --------------------------------------------------------------------------------------- objective
def _batch(embedded_root, stage):
    from ovlab.experiments.registry import task_for

    task = task_for("tgkd")
    built = task.build(stage)
    vocab = task.vocabulary(stage, built.clip)
    return task, built, vocab, task.batches(stage, vocab, 0, 1)[0]


def test_group_avg_with_one_name_per_class_equals_the_plain_ce(embedded_root, tmp_path):
    syn, _ = _synonym_files(tmp_path, fake=False)
    base = tiny_tgkd_section(embedded_root, tmp_path)
    plain = _stage(base)
    grouped = _stage(deep_merge(base, {"gkc": {"td": {"strategy": "group_avg", "synonyms": str(syn)}}}))
    task, built, vocab, batch = _batch(embedded_root, plain)
    text = vocab.text
    out_plain = task.objective(plain, built, vocab)(built.model, batch, text, torch.Generator().manual_seed(1))
    obj = task.objective(grouped, built, vocab)
    out_group = obj(built.model, batch, text, torch.Generator().manual_seed(1))
    # the untrained text tower encodes the processed names ("wall brick") differently from the raw
    # ones ("wall-brick"); compare through the same bank: the group CE equals the canonical CE
    from ovlab.gkc.diversify import canonical_logits, group_logits

    preds = built.model(batch.images, obj.bank)
    torch.testing.assert_close(group_logits(preds[-1].logits, obj.syn.name_to_class_tensor(), "mean"),
                               canonical_logits(preds[-1].logits, obj.syn))
    assert set(out_group.terms) == set(out_plain.terms)
    assert all(math.isfinite(float(v)) for v in out_group.terms.values())


def test_objective_logs_every_term_on_every_prediction(embedded_root, tmp_path):
    from ovlab.data.coco_panoptic import read_coco_panoptic

    records = read_coco_panoptic(embedded_root / "coco", "train", "coco_panoptic_133")
    syn, sc = _synonym_files(tmp_path, records)
    sec = deep_merge(tiny_tgkd_section(embedded_root, tmp_path), {"gkc": {
        "td": {"strategy": "random", "synonyms": str(syn), "scores": str(sc), "keep_plain_ce": True},
        "kd": {"mode": "text_guided", "form": "code", "learn_text_scale": True, "separate_text_kd": True},
        "grounding": {"enabled": True}, "weights": {"preset": "code"}}})
    stage = _stage(sec)
    task, built, vocab, batch = _batch(embedded_root, stage)
    obj = task.objective(stage, built, vocab)
    out = obj(built.model, batch, vocab.text, torch.Generator().manual_seed(0))
    layers = stage.cfg.model.decoder_layers + 1
    for name in ("loss_mask", "loss_dice", "loss_ce", "loss_syn", "loss_kd", "loss_text_kd", "loss_grounding"):
        assert name in out.terms
        assert all(f"{name}_{i}" in out.terms for i in range(layers - 1))
    assert out.weights["loss_syn"] == 10.0 and out.weights["loss_kd"] == 10.0 and out.weights["loss_ce"] == 2.0
    assert all(math.isfinite(float(v)) for v in out.terms.values())
    loss = out.total()
    loss.backward()
    assert built.model.distill.text_scale.grad is not None          # s is learnt (code form)
    assert built.model.distill.proj[0].weight.grad.abs().sum() > 0  # student projections get gradients


def test_short_td_tgkd_training_on_real_coco_logs_every_term_without_nan(shared_data, coco_samples, tmp_path):
    from ovlab.experiments.registry import train_stage as train

    syn, sc = _synonym_files(tmp_path, coco_samples)
    root = shared_data / "samples" / "coco_panoptic"
    sec = deep_merge(tiny_tgkd_section(tmp_path, tmp_path), {
        "data": {"root": str(root), "split": "val", "image_dir": "images", "panoptic_dir": "panoptic",
                 "panoptic_json": "panoptic_val2017_mini.json", "vocabulary": "all"},
        "train": {"iterations": 4, "log_every": 1, "checkpoint_every": 4},
        "augment": {"crop_size": 96},
        "gkc": {"td": {"strategy": "random", "synonyms": str(syn), "scores": str(sc)},
                "kd": {"mode": "text_guided"}, "grounding": {"enabled": True}}})
    res = train(_stage(sec), progress=False, evaluate=False)
    hist = json.loads((res.output / "dvclive" / "metrics.json").read_text())["train"]
    for name in ("loss", "loss_mask", "loss_dice", "loss_ce", "loss_kd", "loss_grounding"):
        assert name in hist and math.isfinite(hist[name]), name
    assert res.iterations == 4
