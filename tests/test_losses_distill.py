"""GKC distillation (GKC Eq. 2–3, Tab. 5): every mode and form against plain-Python values."""

from __future__ import annotations

import math

import pytest
import torch

from ovlab.gkc.distill import (
    distill_loss,
    same_image_pairs,
    subsample_instances,
    tgkd_loss,
    vanilla_kd_loss,
    vision_guided_kd_loss,
)

# Two instances of one image, 2-D unit vectors.
V = [[1.0, 0.0], [0.0, 1.0]]          # student
R = [[0.6, 0.8], [0.8, 0.6]]          # teacher
T = [[1.0, 0.0], [0.6, 0.8]]          # text


def dot(a, b):
    return sum(x * y for x, y in zip(a, b))


def dist(a, b):
    return math.sqrt(sum((x - y) ** 2 for x, y in zip(a, b)))


def pairs(ids):
    return [(i, j) for i in range(len(ids)) for j in range(len(ids)) if ids[i] == ids[j]]


def code_ref(v, r, target, ids):
    """GKC code: mean over the concatenation of a_ij (same-image pairs) and b_i."""
    a = [(target[i][j] - dot(v[i], r[j])) ** 2 for i, j in pairs(ids)]
    b = [dist(v[i], r[i]) ** 2 for i in range(len(v))]
    return (sum(a) + sum(b)) / (len(a) + len(b))


def paper_ref(v, r, target_dist, ids):
    """Eq. 3 with Euclidean distances: Σ_pairs |‖v_i − r_j‖ − target_ij| / N."""
    return sum(abs(dist(v[i], r[j]) - target_dist[i][j]) for i, j in pairs(ids)) / len(v)


def t(x, **kw):
    return torch.tensor(x, dtype=torch.float64, **kw)


def val(x):
    return float(x.detach())


def test_tgkd_code_by_hand():
    # a = [[.16, .04], [.04, .16]], b = [.8, .8] -> (0.4 + 1.6) / 6
    out = tgkd_loss(t(V), t(R), t(T), torch.tensor([0, 0]), form="code")
    assert val(out) == pytest.approx(2.0 / 6.0, rel=1e-12)
    # s = 2: a = [[(4−.6)², (2.4−.8)²], [(2.4−.8)², (4−.6)²]] = 28.24
    out2 = tgkd_loss(t(V), t(R), t(T), torch.tensor([0, 0]), form="code", text_scale=2.0)
    assert val(out2) == pytest.approx((28.24 + 1.6) / 6.0, rel=1e-12)


def test_tgkd_paper_by_hand():
    # Σ |‖v_i − r_j‖ − ‖t_i − t_j‖| / 2 = (2√.8 + 2(√.8 − √.4)) / 2
    out = tgkd_loss(t(V), t(R), t(T), torch.tensor([7, 7]), form="paper")
    assert val(out) == pytest.approx(2 * math.sqrt(0.8) - math.sqrt(0.4), rel=1e-12)


def test_vanilla_by_hand():
    assert val(vanilla_kd_loss(t(V), t(R), "code")) == pytest.approx(0.8, rel=1e-12)     # ‖v − r‖² = 2 − 2·0.6
    assert val(vanilla_kd_loss(t(V), t(R), "paper")) == pytest.approx(math.sqrt(0.8), rel=1e-12)
    assert distill_loss("vanilla", t(V), t(R), [0, 0], form="code")["loss_kd"].item() == pytest.approx(0.8)


def test_vision_guided_by_hand():
    ids = torch.tensor([0, 0])
    # code: target ⟨r_i, r_j⟩ = [[1, .96], [.96, 1]]: a = [.16, .0256, .0256, .16]
    assert val(vision_guided_kd_loss(t(V), t(R), ids, "code")) == pytest.approx((0.3712 + 1.6) / 6, rel=1e-12)
    # paper: target ‖r_i − r_j‖ = √.08 off the diagonal
    expected = (2 * math.sqrt(0.8) + 2 * abs(math.sqrt(0.4) - math.sqrt(0.08))) / 2
    assert val(vision_guided_kd_loss(t(V), t(R), ids, "paper")) == pytest.approx(expected, rel=1e-12)


def test_inputs_are_normalised():
    ids = torch.tensor([0, 0])
    ref = tgkd_loss(t(V), t(R), t(T), ids)
    assert val(tgkd_loss(3 * t(V), 0.5 * t(R), 7 * t(T), ids)) == pytest.approx(val(ref), rel=1e-12)


# ---------------------------------------------------------------------------- pairs within images
def _random_unit(n, d, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    return x / x.norm(dim=-1, keepdim=True)


@pytest.mark.parametrize("form", ["code", "paper"])
@pytest.mark.parametrize("mode", ["text_guided", "vision_guided"])
def test_pairs_never_cross_images(form, mode):
    ids = [0, 1, 0, 2, 1, 1]
    v, r, tx = (_random_unit(6, 4, s) for s in (1, 2, 3))
    vl, rl, tl = v.tolist(), r.tolist(), tx.tolist()
    if mode == "text_guided":
        target = [[dot(a, b) for b in tl] for a in tl] if form == "code" else [[dist(a, b) for b in tl] for a in tl]
        out = tgkd_loss(v, r, tx, torch.tensor(ids), form=form)
    else:
        target = [[dot(a, b) for b in rl] for a in rl] if form == "code" else [[dist(a, b) for b in rl] for a in rl]
        out = vision_guided_kd_loss(v, r, torch.tensor(ids), form)
    ref = code_ref(vl, rl, target, ids) if form == "code" else paper_ref(vl, rl, target, ids)
    assert val(out) == pytest.approx(ref, rel=1e-10)
    # the same rows as one image would pair across: a different value
    one = tgkd_loss(v, r, tx, torch.zeros(6, dtype=torch.long), form=form) if mode == "text_guided" else \
        vision_guided_kd_loss(v, r, torch.zeros(6, dtype=torch.long), form)
    assert abs(val(one) - ref) > 1e-6
    assert same_image_pairs(torch.tensor(ids)).sum() == 4 + 9 + 1


def test_single_instance_and_empty():
    # one instance: only the self-pair; code: (a_11 + b_1) / 2 with a_11 = (1 − 0.6)²
    one = tgkd_loss(t(V[:1]), t(R[:1]), t(T[:1]), torch.tensor([3]), form="code")
    assert val(one) == pytest.approx((0.16 + 0.8) / 2, rel=1e-12)
    paper = tgkd_loss(t(V[:1]), t(R[:1]), t(T[:1]), torch.tensor([3]), form="paper")
    assert val(paper) == pytest.approx(math.sqrt(0.8), rel=1e-12)      # = vanilla (Eq. 3's diagonal)
    s = torch.nn.Parameter(torch.tensor(1.0, dtype=torch.float64))
    v = torch.zeros(0, 2, dtype=torch.float64, requires_grad=True)
    for form in ("code", "paper"):
        z = tgkd_loss(v, torch.zeros(0, 2, dtype=torch.float64), torch.zeros(0, 2, dtype=torch.float64),
                      torch.zeros(0, dtype=torch.long), form=form, text_scale=s)
        assert val(z) == 0.0
        z.backward()
        assert s.grad is not None and float(s.grad) == 0.0
    assert val(vanilla_kd_loss(v, v.detach())) == 0.0
    assert distill_loss("vision_guided", v, v.detach(), torch.zeros(0))["loss_kd"].item() == 0.0


def test_gradient_flows_to_text_scale():
    ids = torch.tensor([0, 0])
    s = torch.nn.Parameter(torch.tensor(1.0, dtype=torch.float64))
    tgkd_loss(t(V), t(R), t(T), ids, form="code", text_scale=s).backward()
    # dL/ds = Σ_ij 2(s²tt_ij − vr_ij)·2s·tt_ij / 6 at s = 1
    tt, vr = [[1.0, 0.6], [0.6, 1.0]], [[0.6, 0.8], [0.8, 0.6]]
    expected = sum(2 * (tt[i][j] - vr[i][j]) * 2 * tt[i][j] for i in range(2) for j in range(2)) / 6
    assert float(s.grad) == pytest.approx(expected, rel=1e-12)
    s.grad = None
    tgkd_loss(t(V), t(R), t(T), ids, form="paper", text_scale=s).backward()
    # off-diagonal |√.4 − s·√.8| grows with s at s = 1: d/ds = √.8 each, 2 pairs / N = 2
    assert float(s.grad) == pytest.approx(math.sqrt(0.8), rel=1e-12)


def test_gradient_flows_to_student_only_where_it_should():
    v = t(V, requires_grad=True)
    tgkd_loss(v, t(R), t(T), torch.tensor([0, 0])).backward()
    assert v.grad is not None and torch.isfinite(v.grad).all() and v.grad.abs().sum() > 0


# --------------------------------------------------------------------------------- dispatcher
def test_distill_dispatch_and_separate_terms():
    ids = [0, 0]
    assert distill_loss("none", t(V), t(R), ids) == {}
    joint = distill_loss("text_guided", t(V), t(R), ids, text=t(T), form="code")
    assert set(joint) == {"loss_kd"} and joint["loss_kd"].item() == pytest.approx(2.0 / 6.0)
    split = distill_loss("text_guided", t(V), t(R), ids, text=t(T), form="code", separate=True)
    assert split["loss_kd"].item() == pytest.approx(0.8)          # mean b
    assert split["loss_text_kd"].item() == pytest.approx(0.4 / 4)  # mean a over the 4 pairs
    split_p = distill_loss("text_guided", t(V), t(R), ids, text=t(T), form="paper", separate=True)
    assert split_p["loss_text_kd"].item() == pytest.approx(2 * math.sqrt(0.8) - math.sqrt(0.4))
    vg = distill_loss("vision_guided", t(V), t(R), ids, form="code", separate=True)
    assert vg["loss_text_kd"].item() == pytest.approx(0.3712 / 4)
    with pytest.raises(ValueError, match="needs the text"):
        distill_loss("text_guided", t(V), t(R), ids)
    with pytest.raises(ValueError, match="KD mode"):
        distill_loss("textguided", t(V), t(R), ids, text=t(T))
    with pytest.raises(ValueError, match="KD form"):
        tgkd_loss(t(V), t(R), t(T), ids, form="l1")
    with pytest.raises(ValueError, match="differ"):
        tgkd_loss(t(V), t(R)[:, :1], t(T), ids)
    with pytest.raises(ValueError, match="3 image ids for 2"):
        tgkd_loss(t(V), t(R), t(T), [0, 0, 0])


def test_subsampling_is_seeded_and_capped():
    assert subsample_instances(150, 200) is None
    a = subsample_instances(300, 200, torch.Generator().manual_seed(5))
    b = subsample_instances(300, 200, torch.Generator().manual_seed(5))
    assert torch.equal(a, b) and a.numel() == 200 and a.unique().numel() == 200
    assert torch.equal(a, a.sort().values) and int(a.max()) < 300
    v, r, tx = (_random_unit(300, 8, s) for s in (4, 5, 6))
    ids = torch.arange(300) // 7
    out = distill_loss("text_guided", v, r, ids, text=tx, generator=torch.Generator().manual_seed(5))
    expected = tgkd_loss(v[a], r[a], tx[a], ids[a])
    assert out["loss_kd"].item() == pytest.approx(expected.item(), rel=1e-12)
    again = distill_loss("text_guided", v, r, ids, text=tx, generator=torch.Generator().manual_seed(5))
    assert again["loss_kd"].item() == out["loss_kd"].item()


# ---------------------------------------------------------------------------- mode objects
def test_mode_objects_are_built_once_from_the_params():
    from types import SimpleNamespace

    from ovlab.gkc.distill import (CodeForm, NoDistillation, PaperForm, TextGuidedDistillation, build_distillation)

    def params(mode, form="code", separate=False):
        return SimpleNamespace(mode=mode, form=form, separate_text_kd=separate, max_instances=200)

    ids = torch.tensor([0, 0])
    none = build_distillation(params("none"))
    assert isinstance(none, NoDistillation) and not none.enabled and none.loss(t(V), t(R), ids) == {}
    tg = build_distillation(params("text_guided", "paper", separate=True))
    assert isinstance(tg, TextGuidedDistillation) and isinstance(tg.form, PaperForm) and tg.needs_text
    got = tg.loss(t(V), t(R), ids, text=t(T))
    ref = distill_loss("text_guided", t(V), t(R), ids, text=t(T), form="paper", separate=True)
    assert set(got) == set(ref) == {"loss_kd", "loss_text_kd"} and all(torch.equal(got[k], ref[k]) for k in ref)
    vg = build_distillation(params("vision_guided"))
    assert isinstance(vg.form, CodeForm)
    assert torch.equal(vg.loss(t(V), t(R), ids)["loss_kd"], vision_guided_kd_loss(t(V), t(R), ids, form="code"))
    assert vg.subsample(150) is None and vg.subsample(300, torch.Generator().manual_seed(5)).numel() == 200
    with pytest.raises(ValueError, match="KD mode"):
        build_distillation(params("textguided"))
    with pytest.raises(ValueError, match="KD form"):
        build_distillation(params("text_guided", "l1"))
