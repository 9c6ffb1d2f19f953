"""Engine pieces: augmentation, deterministic batches, lr schedule, parameter groups, fingerprints."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ovlab.config.train import AugmentParams, ScheduleParams
from ovlab.segmenter.augment import augment
from ovlab.engine.checkpoint import fingerprint
from ovlab.segmenter.data import IterationBatches
from ovlab.engine.optim import lr_factor, param_groups


def test_augment_without_scale_flips_and_pads_exactly():
    img = torch.arange(2 * 3, dtype=torch.float32).view(1, 2, 3).expand(3, 2, 3) / 10
    masks = torch.tensor([[[1, 0, 0], [1, 0, 0]]], dtype=torch.bool)

    class AlwaysFlip:
        def random(self):
            return 0.0

        def uniform(self, a, b):
            return 1.0

    out, m, valid = augment(img, masks, AlwaysFlip(), scale_min=1.0, scale_max=1.0, crop_size=3)
    # fits 3x3: factor min(3/2, 3/3) = 1 -> no resize; flipped; one padded row of 128/255
    assert out[0, :2].flatten().tolist() == pytest.approx([0.2, 0.1, 0.0, 0.5, 0.4, 0.3])
    assert out[:, 2].flatten().tolist() == pytest.approx([128 / 255] * 9)
    assert m[0].tolist() == [[False, False, True], [False, False, True], [False, False, False]]
    assert valid.tolist() == [[True] * 3, [True] * 3, [False] * 3]


def test_augment_is_a_function_of_the_generator():
    img, masks = torch.rand(3, 40, 50), torch.rand(2, 40, 50) > 0.5
    a = augment(img, masks, np.random.default_rng([0, 5, 1]), crop_size=32)
    b = augment(img, masks, np.random.default_rng([0, 5, 1]), crop_size=32)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert a[0].shape == (3, 32, 32) and a[1].shape == (2, 32, 32)


class _Rec:
    def __init__(self, i):
        self.i = i


def test_batches_visit_every_image_once_per_epoch_and_split_across_ranks():
    recs = [_Rec(i) for i in range(10)]
    ib = IterationBatches(recs, torch.zeros(1), 5, seed=3, augment_params=AugmentParams())
    epoch0 = ib.global_indices(0) + ib.global_indices(1)
    assert sorted(epoch0) == list(range(10))
    assert ib.global_indices(2) + ib.global_indices(3) != epoch0  # a new permutation for epoch 1
    again = IterationBatches(recs, torch.zeros(1), 5, seed=3, augment_params=AugmentParams())
    assert again.global_indices(7) == ib.global_indices(7)
    r0 = IterationBatches(recs, torch.zeros(1), 4, 3, AugmentParams(), rank=0, world_size=2)
    assert list(range(0, 4, 2)) == [s for s in range(r0.rank, 4, r0.world_size)]


def test_lr_factor_step_poly_and_warmup_by_hand():
    step = ScheduleParams(kind="step", steps=[10, 20], gamma=0.1)
    assert [lr_factor(i, step, 30) for i in (0, 9, 10, 19, 20)] == pytest.approx([1, 1, 0.1, 0.1, 0.01])
    poly = ScheduleParams(kind="poly", power=0.9, warmup_iters=4, warmup_factor=1e-6)
    assert lr_factor(50, poly, 100) == pytest.approx(0.5 ** 0.9)
    assert lr_factor(0, poly, 100) == pytest.approx(1e-6)
    assert lr_factor(2, poly, 100) == pytest.approx((1 - 0.02) ** 0.9 * (1e-6 * 0.5 + 0.5))


def test_param_groups_backbone_multiplier_and_no_decay():
    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 1), torch.nn.BatchNorm2d(2))
            self.head = torch.nn.Linear(2, 2)
            self.logit_scale = torch.nn.Parameter(torch.tensor(1.0))

    groups = {g["name"]: g for g in param_groups(M(), lr=1.0, weight_decay=0.05, backbone_multiplier=0.1,
                                                 no_decay="extended")}  # τ exempt; the official rule: test_gkc_fidelity
    assert groups["backbone"]["lr"] == 0.1 and groups["backbone"]["weight_decay"] == 0.05
    assert len(groups["backbone/no_decay"]["params"]) == 2  # BN weight and bias
    assert groups["head/no_decay"]["weight_decay"] == 0.0 and len(groups["head/no_decay"]["params"]) == 1
    assert groups["head"]["lr"] == 1.0 and len(groups["head"]["params"]) == 2


def test_fingerprint_ignores_bookkeeping_but_not_results():
    sec = {"train": {"iterations": 10, "checkpoint_every": 5}, "optim": {"lr": 1.0}, "output": "a"}
    fp = fingerprint(sec, 0)
    assert fingerprint({**sec, "output": "b", "train": {"iterations": 10, "checkpoint_every": 2}}, 0) == fp
    assert fingerprint({**sec, "optim": {"lr": 2.0}}, 0) != fp
    assert fingerprint(sec, 1) != fp


def test_params_yaml_has_a_valid_tgkd_section_and_errors_name_the_key(repo_root, tmp_path):
    import yaml

    from ovlab.config import ParamsError, load_params

    params = load_params(repo_root / "params.yaml")
    assert params.tgkd.model.hidden_dim % 32 == 0
    data = yaml.safe_load((repo_root / "params.yaml").read_text())
    data["tgkd"]["model"]["hiden_dim"] = 64
    bad = tmp_path / "params.yaml"
    bad.write_text(yaml.safe_dump(data))
    with pytest.raises(ParamsError, match=r"tgkd\.model\.hiden_dim"):
        load_params(bad)
    data["tgkd"]["model"].pop("hiden_dim")
    data["tgkd"]["model"]["hidden_dim"] = 48
    bad.write_text(yaml.safe_dump(data))
    with pytest.raises(ParamsError, match="multiple of 32"):
        load_params(bad)
