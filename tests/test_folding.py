"""Folding for the loop and the fit check with the shell (synthetic FINN estimates: no build)."""

from __future__ import annotations

import pytest

from hw_build.compile import XC7Z020, Estimate
from hw_build.folding import DEFAULT_MVAU_WWIDTH, FoldingPoint, choose, explore
from hw_build.shell import SHELL_ALLOWANCE, with_shell
from training.errors import FlowError


def _point(fps: int, lut: float, latency_us: float, bram: float = 2.0) -> FoldingPoint:
    return FoldingPoint(fps, {"LUT": lut, "BRAM_18K": bram, "DSP": 0.0}, latency_us * 1000, fps,
                        {"MVAU_0": {"PE": fps // 1000}}, lut < 30_000)


#: Faster foldings are larger, as FINN's are.
LADDER = {100_000_000: (12_000, 0.1), 30_000_000: (6_000, 0.2), 10_000_000: (3_600, 0.3), 3_000_000: (1_600, 1.0),
          1_000_000: (1_250, 1.9), 500_000: (1_100, 3.2), 300_000: (1_050, 5.0)}


def _build(fps: int, wwidth: int = DEFAULT_MVAU_WWIDTH) -> FoldingPoint:
    lut, lat = LADDER.get(fps, (1_000, 50.0))
    return _point(fps, lut, lat)


def test_the_smallest_within_the_budget_and_a_tighter_budget_gives_a_faster_larger_design():
    loose, _ = choose(explore(_build, "smallest", 2.0), "smallest", 2.0)
    tight, why = choose(explore(_build, "smallest", 0.5), "smallest", 0.5)
    assert loose.target_fps == 1_000_000 and loose.resources["LUT"] == 1_250
    assert tight.latency_ns < loose.latency_ns and tight.resources["LUT"] > loose.resources["LUT"]
    assert "within 0.5 µs" in why


def test_the_search_stops_after_the_first_folding_over_budget():
    built = []
    explore(lambda fps, wwidth: built.append(fps) or _build(fps), "smallest", 2.0)
    assert built[-1] == 500_000 and 300_000 not in built


def test_an_impossible_budget_names_the_fastest_latency_reachable():
    points = explore(_build, "smallest", 0.01)
    with pytest.raises(FlowError, match=r"LATENCY_US=0.01: the fastest .* is 0.10 µs"):
        choose(points, "smallest", 0.01)


def test_the_default_budget_gives_way_to_the_fastest_folding_and_says_so():
    points = explore(_build, "smallest", 0.01)
    fastest, why = choose(points, "smallest", 0.01, budget_given=False)
    assert fastest.target_fps == 100_000_000 and "no folding reaches the default 0.01 µs" in why


def test_a_wider_weight_stream_is_tried_only_where_the_default_reaches_no_folding_within_the_budget():
    """An 8-bit convolution bound by FINN's 36-bit weight stream: twice as wide halves its latency."""
    built = []

    def build(fps: int, wwidth: int) -> FoldingPoint:
        built.append((fps, wwidth))
        lut, lat = LADDER.get(fps, (1_000, 50.0))
        point = _point(fps, lut * wwidth / DEFAULT_MVAU_WWIDTH, max(lat, 8.0 * DEFAULT_MVAU_WWIDTH / wwidth))
        point.folding, point.mvau_wwidth_max = {"MVAU_0": {"PE": fps // 1000, "SIMD": wwidth // 9}}, wwidth
        return point

    best, why = choose(explore(build, "smallest", 5.0), "smallest", 5.0)
    assert {w for _, w in built} == {36, 72}  # 72 reaches the budget: no wider stream is tried
    assert best.mvau_wwidth_max == 72 and best.latency_ns <= 5000 and "weights ≤ 72 bits per PE" in why
    built.clear()
    choose(explore(build, "smallest", 10.0), "smallest", 10.0)
    assert {w for _, w in built} == {36}


def test_fastest_keeps_the_former_rule():
    best, _ = choose(explore(_build, "fastest", 2.0), "fastest", 2.0)
    assert best.target_fps == 100_000_000


def test_identical_foldings_are_kept_once():
    def build(fps: int, wwidth: int) -> FoldingPoint:
        point = _build(fps)
        if fps >= 10_000_000:  # FINN's folding saturates: every faster target gives the fully parallel design
            point.folding = {"MVAU_0": {"PE": 32}}
        return point

    points = explore(build, "smallest", 2.0)
    assert [p.target_fps for p in points][:2] == [100_000_000, 3_000_000]


def test_the_fit_check_counts_the_shell_and_names_what_overflows():
    shell = with_shell({"LUT": 49_000, "BRAM_18K": 10, "DSP": 0}, {"LUT": 500.0, "BRAM_18K": 0.0, "DSP": 0.0})
    assert shell["total"]["LUT"] == 49_000 + 500 + SHELL_ALLOWANCE["LUT"]
    est = Estimate({"LUT": 49_000, "BRAM_18K": 10, "DSP": 0}, 1e6, 1000, 1_000_000, 10.0, shell)
    assert not est.fits and est.overflow().startswith(f"LUT by {49_000 + 500 + SHELL_ALLOWANCE['LUT'] - XC7Z020['LUT']:,.0f}")
    assert "NO: over in LUT" in est.summary("x")
    alone = Estimate({"LUT": 49_000, "BRAM_18K": 10, "DSP": 0}, 1e6, 1000, 1_000_000, 10.0)
    assert alone.fits  # without the shell it would have passed
