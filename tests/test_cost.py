"""``ovlab bench cost`` (GKC Tab. 2): FLOP counting on hand-computed layers, ratios, a tiny end-to-end run."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from ovlab.gkc.cost import bench_cost, cost_ratios, count_flops, count_parameters, measure_cost


def test_count_flops_linear_and_conv_by_hand():
    lin = nn.Linear(8, 4)
    assert count_flops(lin, torch.randn(5, 8)) == 2 * 5 * 8 * 4  # 2·rows·in·out, bias not counted
    conv = nn.Conv2d(3, 4, 3, padding=1)
    # 2 · (output elements 1·4·6·6) · (multiply-adds per output 3·3·3)
    assert count_flops(conv, torch.randn(1, 3, 6, 6)) == 2 * (4 * 6 * 6) * (3 * 3 * 3)
    seq = nn.Sequential(nn.Linear(8, 4), nn.ReLU(), nn.Linear(4, 2))
    assert count_flops(seq, torch.randn(3, 8)) == 2 * 3 * (8 * 4 + 4 * 2)


def test_count_parameters_counts_shared_once():
    a = nn.Linear(8, 4)  # 36 parameters
    b = nn.Sequential(a, nn.Linear(4, 2))  # + 10
    assert count_parameters(a) == 36 and count_parameters(a, b) == 46


def test_cost_ratios():
    r = cost_ratios({"GFLOPs": 15.0, "images_per_s": 8.0}, {"GFLOPs": 150.0, "images_per_s": 2.0})
    assert r["flops_ratio"] == pytest.approx(0.1) and r["speed_ratio"] == pytest.approx(4.0)
    assert r["flops_target_met"] and r["speed_target_met"]
    r = cost_ratios({"GFLOPs": 151.44, "images_per_s": 8.04}, {"GFLOPs": 1165.07, "images_per_s": 2.32})  # GKC Tab. 2
    assert r["flops_ratio"] == pytest.approx(0.12998, abs=1e-4) and r["flops_target_met"]
    assert r["speed_ratio"] == pytest.approx(3.4655, abs=1e-3) and not r["speed_target_met"]


def test_measure_cost_embedded_end_to_end(tmp_path, capsys):
    out = tmp_path / "cost.json"
    threads = torch.get_num_threads()
    try:
        assert bench_cost(["--config", "embedded", "--size", "64", "--proposals", "4", "--repeats", "1",
                           "--warmup", "0", "--threads", "1", "--json", str(out)]) == 0
    finally:
        torch.set_num_threads(threads)
    printed = capsys.readouterr().out
    assert "FLOPs ratio" in printed and "speed ratio" in printed and "two-stage (4 crops)" in printed
    res = json.loads(out.read_text())
    single, two = res["models"]
    assert res["proposals"] == 4 and res["crops_encoded"] == 4 and res["size"] == 64
    assert two["GFLOPs"] > single["GFLOPs"] > 0 and two["params_M"] > single["params_M"] > 0
    assert res["flops_ratio"] == pytest.approx(single["GFLOPs"] / two["GFLOPs"])
    assert res["speed_ratio"] == pytest.approx(single["images_per_s"] / two["images_per_s"])
    assert isinstance(res["flops_target_met"], bool) and isinstance(res["speed_target_met"], bool)


def test_measure_cost_rejects_bad_input():
    with pytest.raises(ValueError, match="proposals"):
        measure_cost("embedded", "cpu", 64, 10_000, 1)
    with pytest.raises(ValueError, match="multiple of 32"):
        measure_cost("embedded", "cpu", 70, 4, 1)
    with pytest.raises(ValueError, match="configuration"):
        measure_cost("huge", "cpu", 64, 4, 1)
