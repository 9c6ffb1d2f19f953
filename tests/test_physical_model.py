"""The CAT-Seg baseline of the physically guided paper: class aggregation is permutation-equivariant
over classes (no positional encoding over classes), the whole model gives any vocabulary's classes the
same logits in any order, CAT-Seg's sliding window reproduces a position-preserving predictor, the
L^p / L^sac heads run in training only, SuperPoint fails clearly without weights, the grids validate."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ovlab.physical.cost_aggregation import ClassAggregation, CostAggregator


def test_class_aggregation_permutes_with_the_classes():
    torch.manual_seed(0)
    for attention in ("linear", "full"):
        layer = ClassAggregation(dim=8, guidance_dim=4, heads=2, pooling=2, attention=attention).eval()
        x = torch.randn(2, 8, 5, 6, 6)
        g = torch.randn(2, 5, 4)
        perm = torch.tensor([3, 0, 4, 1, 2])
        y = layer(x, g)
        yp = layer(x[:, :, perm], g[:, perm])
        assert torch.allclose(yp, y[:, :, perm], atol=1e-5), attention
        assert not torch.allclose(y, x)  # it does something


def test_cost_aggregator_permutes_with_the_classes():
    torch.manual_seed(0)
    agg = CostAggregator(6, 6, hidden_dim=8, appearance_guidance_dim=4, text_guidance_dim=4, decoder_dims=(8, 8),
                         decoder_guidance_in=(4, 4), decoder_guidance_dims=(2, 2), num_layers=1, heads=2, window=2,
                         pooling=1).eval()
    cost = torch.randn(1, 1, 4, 4, 4)
    img = torch.randn(1, 6, 4, 4)
    text = torch.randn(1, 4, 6)
    guid = [torch.randn(1, 4, 8, 8), torch.randn(1, 4, 16, 16)]
    perm = torch.tensor([2, 3, 1, 0])
    out = agg(cost, img, text, guid)
    assert out.shape == (1, 4, 16, 16)
    outp = agg(cost[:, :, perm], img, text[:, perm], guid)
    assert torch.allclose(outp, out[:, perm], atol=1e-5)


def _stage(tmp_path, **section):
    from ovlab.config import StageParams
    from ovlab.config.base import BaseParams
    from ovlab.config.physical import PhysicalStageParams

    cfg = PhysicalStageParams.model_validate({"clip": {"pretrained": None}, "output": str(tmp_path / "out"), **section})
    return StageParams("physical", BaseParams(), cfg, tmp_path)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    from ovlab.physical.task import PhysicalTask

    stage = _stage(tmp_path_factory.mktemp("phys"), structure={"enabled": True}, sac={"enabled": True})
    return PhysicalTask().build(stage)


def test_model_logits_follow_the_vocabulary_order_and_heads_run_in_training_only(built):
    model = built.model.eval()
    torch.manual_seed(1)
    images = torch.rand(1, 3, 64, 64)
    text = torch.nn.functional.normalize(torch.randn(5, 64), dim=-1)
    perm = torch.tensor([4, 2, 0, 3, 1])
    out = model(images, text)
    assert out.logits.shape == (1, 5, 32, 32) and out.structure is None and out.sac_logits is None
    outp = model(images, text[perm])
    assert torch.allclose(outp.logits, out.logits[:, perm], atol=1e-4)
    model.train()
    tr = model(images, text)
    assert tr.structure.shape == (1, 1, 64, 64) and tr.sac_logits.shape == (64, 5)
    model.eval()


def test_clip_attention_finetuning_trains_q_and_v_only(built):
    names = built.model.trainable_clip
    assert names and all(".attn.in_proj_" in n for n in names)
    frozen = [n for n, p in built.model.backbone.named_parameters() if p.requires_grad and n not in names]
    assert not frozen
    w = built.model.backbone.transformer.resblocks[0].attn.in_proj_weight
    built.model.train()
    out = built.model(torch.rand(1, 3, 64, 64), torch.nn.functional.normalize(torch.randn(3, 64), dim=-1))
    built.model.zero_grad()
    out.logits.sum().backward()
    c = w.shape[0] // 3
    assert w.grad[:c].abs().sum() > 0 and w.grad[2 * c:].abs().sum() > 0
    assert float(w.grad[c:2 * c].abs().sum()) == 0.0          # the key rows stay at their CLIP values
    built.model.zero_grad()
    built.model.eval()


class _Identity(torch.nn.Module):
    """A 'model' whose class-0 probability is the image's red channel (position preserving)."""

    def segment(self, x, text, class_index, k):
        return x[:, :1].expand(-1, k, -1, -1)


def test_sliding_window_matches_catseg_on_a_position_preserving_predictor():
    from ovlab.physical.inference import sliding_window_scores

    h, w = 48, 72
    ramp = torch.linspace(0, 1, w)[None, :].expand(h, w)
    img = torch.stack([ramp, ramp, ramp])[None]
    text = torch.zeros(2, 4)
    out = sliding_window_scores(_Identity(), img, text, torch.arange(2), 2, kernel=32, overlap=0.333, out_res=53)
    assert out.shape == (1, 2, h, w)
    assert torch.allclose(out[0, 0], ramp, atol=0.03)
    with pytest.raises(ValueError):
        sliding_window_scores(_Identity(), img, text, torch.arange(2), 2, kernel=32, out_res=16)


def test_superpoint_fails_clearly_without_weights_and_loads_its_state_dict(tmp_path):
    from ovlab.physical.superpoint import SuperPoint, SuperPointNotFoundError, load_superpoint

    with pytest.raises(SuperPointNotFoundError, match="superpoint_v1.pth"):
        load_superpoint(tmp_path / "missing.pth")
    torch.manual_seed(3)
    ref = SuperPoint()
    torch.save(ref.state_dict(), tmp_path / "sp.pth")
    net = load_superpoint(tmp_path / "sp.pth")
    assert all(torch.equal(a, b) for a, b in zip(ref.state_dict().values(), net.state_dict().values()))
    pts = net.keypoints(torch.rand(3, 64, 64))
    assert pts.ndim == 2 and pts.shape[1] == 2
    assert ((pts >= 4) & (pts < 60)).all()                    # border of 4 px dropped


def test_superpoint_cell_without_checkpoint_file_is_an_error_naming_it(tmp_path, embedded_root):
    from ovlab.physical.superpoint import SuperPointNotFoundError
    from ovlab.physical.task import PhysicalTask

    stage = _stage(tmp_path, data={"root": str(embedded_root / "coco")},
                   structure={"enabled": True, "source": "superpoint", "superpoint_checkpoint": "nope/sp.pth"})
    with pytest.raises(SuperPointNotFoundError, match="nope/sp.pth"):
        PhysicalTask().batches(stage, None, 0, 1)


def test_physical_grids_validate_and_name_bad_keys(repo_root):
    from ovlab.config import ParamsError, load_params, parse_params
    from ovlab.config import read_yaml

    p = load_params(repo_root / "params.yaml").physical
    cells = p.grids.cells()
    assert ("table3", "baseline") in cells and ("table4", "edge_gt") in cells
    lp = p.grid_section("table3", "lp")
    assert lp.structure.enabled and not lp.sac.enabled and lp.output.endswith("table3/lp")
    assert p.grid_section("table4", "canny").structure.source == "canny"
    data = read_yaml(repo_root / "params.yaml")
    data["physical"]["grids"]["table3"]["bad"] = {"structure.sorce": "sift"}
    with pytest.raises(ParamsError, match="physical.grids.table3.bad"):
        parse_params(data)
    data["physical"]["grids"]["table3"]["bad"] = {"sac.form": "sum"}
    with pytest.raises(ParamsError, match="physical.grids.table3.bad"):
        parse_params(data)


def test_pseudo_gt_sources_on_a_drawn_square():
    from ovlab.physical.pseudo_gt import canny_edges, sift_keypoints

    img = np.zeros((64, 64, 3), np.uint8)
    img[16:48, 16:48] = 255
    e = canny_edges(img)
    assert e[16:48, 14:19].any() and not e[28:36, 28:36].any() and not e[:8, :8].any()
    pts = sift_keypoints(img)
    assert len(pts) > 0


def test_semantic_layout_records_give_the_label_maps(tmp_path, embedded_root):
    from ovlab.data.files import read_label_map
    from ovlab.physical.data import read_semantic_records, semantic_map
    from ovlab.data.errors import DatasetNotFoundError

    coco = embedded_root / "coco"
    recs = read_semantic_records(coco, "val", label_dir="panoptic_semseg_val2017", max_images=2)
    assert len(recs) == 2
    r = recs[0]
    lab = read_label_map(r.label_path).astype(np.int64)
    m = r.masks()
    assert [s.category_index for s in r.segments] == sorted(set(np.unique(lab).tolist()) - {255})
    sem = semantic_map(torch.from_numpy(m), torch.tensor([s.category_index for s in r.segments]),
                       torch.ones(lab.shape, dtype=torch.bool))
    assert (sem.numpy() == lab).all()
    with pytest.raises(DatasetNotFoundError, match="stuffthingmaps_detectron2"):
        read_semantic_records(coco, "train")


def test_semantic_format_trains_through_the_task(tmp_path, embedded_root):
    from ovlab.physical.task import PhysicalTask

    stage = _stage(tmp_path, data={"root": str(embedded_root / "coco"), "format": "semantic", "split": "val",
                                   "label_dir": "panoptic_semseg_val2017"},
                   structure={"enabled": True, "source": "edge_gt"})
    task = PhysicalTask()
    built = task.build(stage)
    vocab = task.vocabulary(stage, built.clip)
    batch = task.batches(stage, vocab, 0, 1)[0]
    assert batch.semantic.shape == (2, 64, 64) and ((batch.semantic < 133) | (batch.semantic == 255)).all()
    assert (batch.semantic != 255).any() and batch.structure.sum() > 0
