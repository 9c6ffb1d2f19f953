"""``ovlab bench cost`` (GKC Tab. 2): FLOP counting on hand-computed layers, ratios, a tiny end-to-end run."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from ovlab.gkc.cost import (bench_cost, cost_ratios, count_flops, count_parameters, measure_cost, spread, time_calls,
                            timing_summary)


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


def test_spread_by_hand():
    s = spread([4.0, 1.0, 3.0, 2.0])
    assert s["n"] == 4 and s["median"] == 2.5 and s["min"] == 1.0 and s["max"] == 4.0
    assert s["q1"] == pytest.approx(1.75) and s["q3"] == pytest.approx(3.25) and s["iqr"] == pytest.approx(1.5)
    assert spread([7.0]) == {"n": 1, "median": 7.0, "min": 7.0, "max": 7.0, "q1": 7.0, "q3": 7.0, "iqr": 0.0}
    with pytest.raises(ValueError, match="no values"):
        spread([])


def test_timing_summary_median_and_spread_of_paired_rounds():
    single = [0.1, 0.2, 0.1, 0.4, 0.1]
    two = [1.0, 1.0, 0.5, 2.0, 0.6]          # rounds' ratios 10, 5, 5, 5, 6
    t = timing_summary(single, two)
    r = t["speed_ratio"]
    assert r["median"] == pytest.approx(5.0) and r["min"] == pytest.approx(5.0) and r["max"] == pytest.approx(10.0)
    assert r["q1"] == pytest.approx(5.0) and r["q3"] == pytest.approx(6.0) and r["n"] == 5
    assert t["single"]["median"] == pytest.approx(0.1) and t["single"]["max"] == pytest.approx(0.4)
    assert t["single_images_per_s"] == pytest.approx(10.0) and t["two_images_per_s"] == pytest.approx(1.0)
    # the median of the ratios, not the ratio of the medians (here 1.0 / 0.1 = 10): a slow round of one
    # model alone (round 4: both 4x slower) does not move it
    assert cost_ratios({"GFLOPs": 1, "images_per_s": 10.0}, {"GFLOPs": 8, "images_per_s": 1.0},
                       speed_ratio=r["median"])["speed_ratio"] == pytest.approx(5.0)
    with pytest.raises(ValueError, match="as many"):
        timing_summary([0.1], [0.2, 0.3])
    with pytest.raises(ValueError, match="> 0"):
        timing_summary([0.0], [0.2])


def test_time_calls_interleaves_rounds_after_the_warmup():
    calls = []
    times = time_calls([lambda: calls.append("a"), lambda: calls.append("b")], repeats=3, warmup=2)
    assert calls == ["a", "a", "b", "b"] + ["a", "b"] * 3
    assert [len(t) for t in times] == [3, 3] and all(x >= 0 for t in times for x in t)
    with pytest.raises(ValueError, match="repeats"):
        time_calls([lambda: None], repeats=0)


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
    assert res["speed_ratio"] == pytest.approx(single["images_per_s"] / two["images_per_s"])  # one round
    assert res["speed_ratio_spread"]["n"] == 1 and res["speed_ratio_spread"]["median"] == pytest.approx(res["speed_ratio"])
    assert single["images_per_s"] == pytest.approx(1 / single["seconds"]["median"])
    assert res["timings_s"]["two"][0] == pytest.approx(two["seconds"]["median"])
    assert "median of 1 rounds" in printed and "IQR" in printed
    assert isinstance(res["flops_target_met"], bool) and isinstance(res["speed_target_met"], bool)


def test_measure_cost_rejects_bad_input():
    with pytest.raises(ValueError, match="proposals"):
        measure_cost("embedded", "cpu", 64, 10_000, 1)
    with pytest.raises(ValueError, match="multiple of 32"):
        measure_cost("embedded", "cpu", 70, 4, 1)
    with pytest.raises(ValueError, match="configuration"):
        measure_cost("huge", "cpu", 64, 4, 1)
