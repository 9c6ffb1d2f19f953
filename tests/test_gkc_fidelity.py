"""GKC fidelity (issue 14, defects 1–6): each switch against hand-computed values that fail under the
other setting, and each fixed defect against today's failure.

1. the paper profile trains GKC on all 133 COCO-panoptic classes (GKC §4);
2. Random TD starts on a 133-class synonym-score table under a seen vocabulary;
3. KD distils matched ground truth only (never into another instance's query);
4. ``loss.preset: code`` applies the official 50 % region dropout, also in a grid cell, and the
   synonym CE draws its own dropout (GKC ``loss_labels`` / ``loss_labels_process_each``);
5. weight decay of τ, the void embedding and s: the official rule by default, ``extended`` exempts them;
6. Table 2 with any CLIP ResNet (RN101 in the paper profile); ``crop`` + ``masked`` pools over the
   crop's mask.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import pytest
import torch
import yaml

from ovlab.config import StageParams
from ovlab.config.base import BaseParams
from ovlab.config.grid import deep_merge
from ovlab.config.tgkd import TgkdParams
from ovlab.data.categories import load_categories
from ovlab.data.names import normalize_class_name

from .conftest import REPO, tiny_tgkd_section

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _stage(section: dict) -> StageParams:
    return StageParams("tgkd", BaseParams(), TgkdParams.model_validate(section), REPO, "<test>")


def _profile_tgkd(name: str) -> TgkdParams:
    """The ``tgkd`` section a profile gives over the schema defaults (as :func:`ovlab.config.bench.bench_config`)."""
    doc = yaml.safe_load((REPO / "profiles" / f"{name}.yaml").read_text(encoding="utf-8"))
    return TgkdParams.model_validate(doc["tgkd"], strict=False)


def _tiny_clip(name: str = "ovlab-tiny-rn"):
    from ovlab.clip import load_clip

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_clip(name, pretrained=None)


def _synonym_files(tmp_path: Path, records, extra_segments: dict | None = None):
    """A synonyms file over all 133 classes (canonical + one made-up synonym) and a score table over
    every segment of ``records`` — every class, as the ``synonym_score`` stage writes it."""
    cats = load_categories("coco_panoptic_133")
    table = {normalize_class_name(c.name): [normalize_class_name(c.name), f"{normalize_class_name(c.name)} thing"]
             for c in cats}
    syn = tmp_path / "synonyms.json"
    syn.write_text(json.dumps(table))
    scores: dict = {}
    for r in records:
        for s in r.segments:
            n = normalize_class_name(cats[s.category_index].name)
            scores.setdefault(str(r.image_id), {})[str(s.id)] = {"class": n, "scores": {n: 0.7, f"{n} thing": 0.3}}
    for image_id, segs in (extra_segments or {}).items():
        scores.setdefault(image_id, {}).update(segs)
    sc = tmp_path / "scores.json"
    sc.write_text(json.dumps(scores))
    return syn, sc


def _built(stage):
    from ovlab.experiments.registry import task_for

    task = task_for("tgkd")
    built = task.build(stage)
    vocab = task.vocabulary(stage, built.clip)
    return task, built, vocab


# --------------------------------------------------------------------------- 1. 133 training classes
def test_paper_profile_trains_gkc_on_all_133_classes():
    from ovlab.segmenter.vocabulary import training_vocabulary

    cats = load_categories("coco_panoptic_133")
    paper, embedded = _profile_tgkd("paper"), _profile_tgkd("embedded")
    assert paper.data.vocabulary == "all" and embedded.data.vocabulary == "seen"
    clip = _tiny_clip()
    assert len(training_vocabulary(clip, cats, paper.data.vocabulary)) == 133       # 80 things + 53 stuff
    assert len(training_vocabulary(clip, cats, embedded.data.vocabulary)) == 133 - 18  # the 18 novel dropped
    for table, cell in paper.grids.cells():  # no paper cell goes back to the seen classes
        assert paper.grid_section(table, cell).data.vocabulary == "all", (table, cell)


# ------------------------------------------------------------- 2. Random TD on a 133-class score table
def test_random_td_starts_on_a_133_class_score_table_under_a_seen_vocabulary(embedded_root, tmp_path):
    from ovlab.data.coco_panoptic import read_coco_panoptic

    records = read_coco_panoptic(embedded_root / "coco", "train", "coco_panoptic_133")
    bicycle = {"class": "bicycle", "scores": {"bicycle": 0.9, "bicycle thing": 0.1}}  # a novel class
    syn, sc = _synonym_files(tmp_path, records, {"999999": {"1": bicycle}})
    stage = _stage(deep_merge(tiny_tgkd_section(embedded_root, tmp_path),
                              {"gkc": {"td": {"strategy": "random", "synonyms": str(syn), "scores": str(sc)}}}))
    assert stage.cfg.data.vocabulary == "seen"
    task, built, vocab = _built(stage)
    obj = task.objective(stage, built, vocab)  # raised "class 'bicycle' is not in the synonym vocabulary"
    assert "bicycle" not in obj.syn.classes and obj.syn.num_classes == 115
    assert obj.scores.get(999999, 1) is None                       # the novel segment is left out
    n_seen = sum(1 for r in records for s in r.segments)          # the embedded images hold seen classes only
    assert len(obj.scores) == n_seen
    r0, s0 = records[0], records[0].segments[0]
    assert obj.scores.get(r0.image_id, s0.id).tolist() == pytest.approx([0.7, 0.3])
    # a class that is in neither file is still an error (stale stage outputs)
    unknown = {"class": "unicycle", "scores": {"unicycle": 1.0}}
    syn, sc = _synonym_files(tmp_path, records, {"999999": {"2": unknown}})
    with pytest.raises(ValueError, match="'unicycle' is not in the synonym vocabulary"):
        task.objective(stage, built, vocab)


# -------------------------------------------------------------------- 3. KD on matched instances only
def test_kd_pairs_only_matched_instances_by_hand():
    from ovlab.gkc.criterion import kd_instances, matched_kd_rows

    # image 0: 3 GT, 2 queries; query 1 ↔ GT 2, query 0 ↔ GT 0, GT 1 unmatched. image 1: 1 GT on query 1.
    final = [(torch.tensor([1, 0]), torch.tensor([2, 0])), (torch.tensor([1]), torch.tensor([0]))]
    keep = kd_instances(final, lambda n, g: None)
    assert [k.tolist() for k in keep] == [[0, 2], [0]]                   # GT 1 is never distilled
    queries, gts, rows = matched_kd_rows(final, keep)
    assert [q.tolist() for q in queries] == [[0, 1], [1]] and [g.tolist() for g in gts] == [[0, 2], [0]]
    assert rows.tolist() == [0, 1, 2]
    # an auxiliary prediction that matched GT 1 and GT 2 only: GT 0 has no query there
    aux = [(torch.tensor([0, 1]), torch.tensor([1, 2])), (torch.tensor([0]), torch.tensor([0]))]
    queries, gts, rows = matched_kd_rows(aux, keep)
    assert [q.tolist() for q in queries] == [[1], [0]] and [g.tolist() for g in gts] == [[2], [0]]
    assert rows.tolist() == [1, 2]                                       # teacher rows of GT 2 (image 0), GT 0 (image 1)
    # the batch cap draws among matched instances only (3 here), keeping GT order
    keep = kd_instances(final, lambda n, g: torch.tensor([1, 2]) if n == 3 else None)
    assert [k.tolist() for k in keep] == [[2], [0]]


def test_objective_distils_no_unmatched_instance(embedded_root, tmp_path):
    sec = tiny_tgkd_section(embedded_root, tmp_path, model={"num_queries": 2})
    stage = _stage(deep_merge(sec, {"gkc": {"kd": {"mode": "text_guided"}}}))
    task, built, vocab = _built(stage)
    batch = task.batches(stage, vocab, 0, 1)[0]
    counts = [int(lab.numel()) for lab in batch.labels]
    assert max(counts) > 2                                               # more segments than queries
    obj = task.objective(stage, built, vocab)
    seen = []
    loss = obj.kd.loss
    obj.kd.loss = lambda v, r, ids, **kw: (seen.append((v, r, ids)), loss(v, r, ids, **kw))[1]
    out = obj(built.model, batch, vocab.text, torch.Generator().manual_seed(0))
    assert len(seen) == stage.cfg.model.decoder_layers + 1 and math.isfinite(float(out.terms["loss_kd"]))
    expected = [min(n, 2) for n in counts]
    for v, r, ids in seen:  # today: every GT instance in every layer, the unmatched ones on the last query
        per_image = torch.bincount(ids, minlength=len(counts)).tolist()
        assert all(k <= e for k, e in zip(per_image, expected)) and v.shape[0] == r.shape[0] == len(ids)
    assert torch.bincount(seen[-1][2], minlength=len(counts)).tolist() == expected  # the final prediction: all its matches
    final = out.matches[-1]
    teacher = obj.teacher(batch, [t.sort().values for _, t in final])
    torch.testing.assert_close(seen[-1][1], teacher)                     # the final prediction's own instances


# ------------------------------------------------------------------------------- 4. region dropout
def test_code_loss_preset_applies_the_region_dropout_in_a_grid_cell_by_hand():
    from ovlab.segmenter.class_loss import class_loss, query_targets

    sec = TgkdParams.model_validate({"grids": {"t": {"code": {"loss.preset": "code"}, "paper": {},
                                                     "mine": {"loss": {"preset": "code", "region_dropout": 0.2}}}}})
    code, paper = sec.grid_section("t", "code").loss, sec.grid_section("t", "paper").loss
    assert (code.preset, code.region_dropout) == ("code", 0.5)           # was 0.0: a label only
    assert paper.region_dropout == 0.0 and sec.grid_section("t", "mine").loss.region_dropout == 0.2
    # 4 matched queries of classes 0, 1, 0, 1 (2 classes + void) and one unmatched query
    logits = torch.tensor([[[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 3.0], [0.0, 0.0, 1.0]]])
    matches = [(torch.arange(4), torch.arange(4))]
    labels = [torch.tensor([0, 1, 0, 1])]
    g = torch.Generator().manual_seed(0)
    draws = torch.rand(4, generator=torch.Generator().manual_seed(0))   # one uniform per matched query
    assert draws.tolist() == pytest.approx([0.4963, 0.7682, 0.0885, 0.1320], abs=1e-4)  # torch's seed-0 uniforms
    t_code = query_targets(5, 2, matches, labels, region_dropout=code.region_dropout, generator=g)
    t_paper = query_targets(5, 2, matches, labels, region_dropout=paper.region_dropout)
    assert t_code.tolist() == [[-100, 1, -100, -100, 2]] and t_paper.tolist() == [[0, 1, 0, 1, 2]]  # < 0.5 dropped

    def ce(row, y):
        return -math.log(math.exp(row[y]) / sum(math.exp(x) for x in row))

    rows = logits[0].tolist()
    by_hand = (ce(rows[1], 1) + 0.1 * ce(rows[4], 2)) / 1.1                     # void weight 0.1
    assert float(class_loss(logits, t_code, 0.1)) == pytest.approx(by_hand, rel=1e-6)
    without = (ce(rows[0], 0) + ce(rows[1], 1) + ce(rows[2], 0) + ce(rows[3], 1) + 0.1 * ce(rows[4], 2)) / 4.1
    assert float(class_loss(logits, t_paper, 0.1)) == pytest.approx(without, rel=1e-6)


def test_synonym_ce_draws_its_own_region_dropout(embedded_root, tmp_path):
    """GroupAvg with one name per class: the synonym CE equals the plain CE on the same targets, so
    with dropout the two differ only because each CE drew its own (GKC ``loss_labels`` and
    ``loss_labels_process_each`` each call ``np.random.rand``)."""
    cats = load_categories("coco_panoptic_133")
    syn = tmp_path / "synonyms.json"
    syn.write_text(json.dumps({normalize_class_name(c.name): [normalize_class_name(c.name)] for c in cats}))
    td = {"strategy": "group_avg", "synonyms": str(syn), "keep_plain_ce": True}
    terms = {}
    for dropout in (0.0, 0.5):
        stage = _stage(deep_merge(tiny_tgkd_section(embedded_root, tmp_path),
                                  {"loss": {"region_dropout": dropout}, "gkc": {"td": td}}))
        task, built, vocab = _built(stage)
        batch = task.batches(stage, vocab, 0, 1)[0]
        torch.manual_seed(0)  # the matcher's points
        out = task.objective(stage, built, vocab)(built.model, batch, vocab.text, torch.Generator().manual_seed(3))
        terms[dropout] = out.terms
    assert float(terms[0.0]["loss_syn"]) == pytest.approx(float(terms[0.0]["loss_ce"]), rel=1e-5)
    assert float(terms[0.5]["loss_syn"]) != pytest.approx(float(terms[0.5]["loss_ce"]), rel=1e-3)


# ---------------------------------------------------------------------------------- 5. weight decay
class _Tiny(torch.nn.Module):
    """τ, void, s, a pixel-decoder level embedding (parameters), an Embedding table, a LayerNorm, a Swin table."""

    def __init__(self):
        super().__init__()
        self.logit_scale = torch.nn.Parameter(torch.tensor(2.0))
        self.void_embedding = torch.nn.Parameter(torch.full((1, 2), 1.0))
        self.text_scale = torch.nn.Parameter(torch.tensor(1.0))
        self.level_embed = torch.nn.Parameter(torch.full((3, 2), 1.0))
        self.queries = torch.nn.Embedding(2, 2)
        self.norm = torch.nn.LayerNorm(2)
        self.head = torch.nn.Linear(2, 2)
        self.relative_position_bias_table = torch.nn.Parameter(torch.ones(4))


def _one_zero_grad_step(model, rule: str, lr: float = 0.1, wd: float = 0.5) -> None:
    """An AdamW step with zero gradients: Adam's update is 0, so p ← p·(1 − lr·wd) where decayed."""
    from ovlab.engine.optim import param_groups

    opt = torch.optim.AdamW(param_groups(model, lr, wd, 1.0, rule), lr=lr)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()


def test_weight_decay_follows_the_official_rule_by_default_by_hand():
    from ovlab.config.train import OptimParams

    assert OptimParams().no_decay == "code" and TgkdParams().optim.no_decay == "code"
    code, ext = _Tiny(), _Tiny()
    _one_zero_grad_step(code, "code")
    _one_zero_grad_step(ext, "extended")
    f = 1 - 0.1 * 0.5
    assert float(code.logit_scale) == pytest.approx(2.0 * f) and float(ext.logit_scale) == 2.0        # τ
    assert code.void_embedding[0].tolist() == pytest.approx([f, f]) and ext.void_embedding.tolist() == [[1.0, 1.0]]
    assert float(code.text_scale) == pytest.approx(f) and float(ext.text_scale) == 1.0                 # s
    assert code.level_embed[0].tolist() == pytest.approx([f, f]) and ext.level_embed[0].tolist() == [1.0, 1.0]
    for m in (code, ext):  # exempt under both: Embedding tables, norm layers, Swin's positional tables
        assert m.norm.weight.tolist() == [1.0, 1.0] and m.relative_position_bias_table.tolist() == [1.0] * 4
    w0 = torch.tensor([[0.5, -1.0], [2.0, 0.25]])
    for rule in ("code", "extended"):
        m = _Tiny()
        with torch.no_grad():
            m.head.weight.copy_(w0)
            m.queries.weight.copy_(w0)
        _one_zero_grad_step(m, rule)
        torch.testing.assert_close(m.head.weight, w0 * f)                                             # linears decay
        torch.testing.assert_close(m.queries.weight, w0)                                              # Embedding does not
    with pytest.raises(ValueError, match="no_decay"):
        _one_zero_grad_step(_Tiny(), "none")


def test_segmenter_tau_and_void_decay_under_the_default(embedded_root, tmp_path):
    from ovlab.engine.optim import param_groups

    stage = _stage(tiny_tgkd_section(embedded_root, tmp_path))
    _, built, _ = _built(stage)
    o = stage.cfg.optim
    for rule, decayed in (("code", True), ("extended", False)):
        groups = param_groups(built.model, o.lr, o.weight_decay, o.backbone_multiplier, rule)
        wd = {id(p): g["weight_decay"] for g in groups for p in g["params"]}
        for p in (built.model.classifier.logit_scale, built.model.classifier.void_embedding):
            assert (wd[id(p)] == o.weight_decay) is decayed


# ------------------------------------------------------------------------------------- 6. Table 2
def test_cost_measures_the_clip_backbone_it_is_given():
    from ovlab.gkc.cost import backbone_summary, measure_cost

    assert _profile_tgkd("paper").cost.clip == "RN101" and _profile_tgkd("embedded").cost.clip is None
    rn101 = _tiny_clip("RN101")
    assert backbone_summary("RN101", rn101.model.visual)["blocks_per_stage"] == [3, 4, 23, 3]   # ResNet-101
    assert backbone_summary("RN50", _tiny_clip("RN50").model.visual)["blocks_per_stage"] == [3, 4, 6, 3]
    kw = dict(size=64, proposals=2, repeats=1, warmup=0, classes=5)
    deep = measure_cost("embedded", clip="ovlab-tiny-rn-deep", **kw)
    plain = measure_cost("embedded", **kw)
    assert deep["clip"] == "ovlab-tiny-rn-deep" and deep["backbone"]["blocks_per_stage"] == [1, 1, 2, 1]
    assert plain["clip"] == "ovlab-tiny-rn" and plain["backbone"]["blocks_per_stage"] == [1, 1, 1, 1]
    assert deep["models"][0]["params_M"] > plain["models"][0]["params_M"]   # one more res4 bottleneck
    assert deep["models"][0]["clip"] == "ovlab-tiny-rn-deep" and deep["crop_clip"] == "ovlab-tiny-rn-deep"
    crops = measure_cost("embedded", clip="ovlab-tiny-rn-deep", crop_clip="ovlab-tiny-rn", **kw)
    assert crops["crop_clip"] == "ovlab-tiny-rn" and crops["models"][1]["clip"] == "ovlab-tiny-rn-deep + ovlab-tiny-rn crops"
    with pytest.raises(ValueError, match="CLIP ResNet"):
        measure_cost("embedded", clip="ovlab-tiny-vit", **kw)


@pytest.mark.slow
def test_cost_stage_records_rn101_in_the_table2_json_under_the_paper_profile(repo_root, tmp_path, capsys):
    """``gkc_cost`` (``python -m ovlab.experiments.train_cli cost``) on the paper profile: ``cost.json``
    names RN101 and holds its trunk (3, 4, 23, 3 bottlenecks, GKC Tab. 2 "measured on the backbone of
    ResNet101"); only sizes shrunk here. Before the fix the stage could only measure CLIP RN50."""
    import shutil

    from ovlab.config import load_params
    from ovlab.experiments import train_cli
    from ovlab.profiles import apply_profile

    shutil.copy(repo_root / "params.yaml", tmp_path / "params.yaml")
    shutil.copytree(repo_root / "profiles", tmp_path / "profiles")
    apply_profile("paper", tmp_path / "params.yaml")
    small = [f"tgkd.cost.{k}={v}" for k, v in (("config", "embedded"), ("size", 64), ("proposals", 2), ("repeats", 1))]
    argv = ["cost", "--params", str(tmp_path / "params.yaml")] + [a for kv in small for a in ("-S", kv)]
    assert train_cli.main(argv) == 0
    out = load_params(tmp_path / "params.yaml").stage("tgkd")
    doc = json.loads((out.path(out.cfg.grids.output) / "cost.json").read_text())
    assert (doc["clip"], doc["crop_clip"], doc["backbone"]["blocks_per_stage"]) == ("RN101", "RN101", [3, 4, 23, 3])
    assert [m["clip"] for m in doc["models"]] == ["RN101", "RN101 + RN101 crops"]
    assert "backbone CLIP RN101" in capsys.readouterr().out


def test_crop_masks_by_hand():
    from ovlab.gkc.distill_heads import crop_masks

    m = torch.zeros(1, 4, 6, dtype=torch.bool)
    m[0, 1:3, 1:5] = True
    m[0, 2, 4] = False                                                   # bbox x 1..5, y 1..3; one hole
    out = crop_masks(m, torch.tensor([[1, 1, 5, 3]]), (4, 8))            # the 2×4 crop stretched ×2
    expected = torch.ones(4, 8, dtype=torch.bool)
    expected[2:, 6:] = False
    assert out.shape == (1, 4, 8) and torch.equal(out[0], expected)


def test_crop_teacher_with_masked_pool_pools_over_the_crops_mask():
    from ovlab.clip.crops import masked_crops
    from ovlab.clip.dense import mask_pool, resnet_features
    from ovlab.gkc.distill_heads import ClipTeacher, crop_masks
    from ovlab.segmenter.data import Batch, Example

    clip = _tiny_clip()
    with torch.no_grad():  # the untrained pool's outputs hardly vary over the grid: give its positions weight
        pe = clip.model.visual.attnpool.positional_embedding
        pe.copy_(3 * torch.randn(pe.shape, generator=torch.Generator().manual_seed(1)))
    g = torch.Generator().manual_seed(0)
    image = torch.rand(3, 96, 96, generator=g)
    masks = torch.zeros(1, 96, 96, dtype=torch.bool)
    masks[0, 10:80, 10:50] = True
    masks[0, 10:40, 50:90] = True                                       # an L: a quarter of its bbox is background
    src = Example(image, masks, torch.tensor([0]), 1)
    batch = Batch(image[None], [torch.tensor([0])], [masks], [1], [[]], torch.ones(1, 96, 96, dtype=torch.bool), [src])
    masked = ClipTeacher(clip, "spatial", pool="masked", source="crop")(batch, [torch.tensor([0])])
    mean = ClipTeacher(clip, "spatial", pool="mean", source="crop")(batch, [torch.tensor([0])])
    assert float((masked - mean).abs().max()) > 0.01                     # was silently the grid mean
    crops, boxes = masked_crops(image * 255.0, masks, size=clip.image_size, fill="grey", resize="stretch",
                                mean=clip.mean, std=clip.std, exclusive_max_quirk=True)
    clip.model.visual.eval()
    with torch.no_grad():
        f = resnet_features(clip.model.visual, crops)
    pooled, valid = mask_pool(f.spatial_tokens, crop_masks(masks, boxes, clip.image_size)[:, None].float())
    assert bool(valid.all())
    torch.testing.assert_close(masked, torch.nn.functional.normalize(pooled[:, 0], dim=-1), rtol=1e-5, atol=1e-6)
