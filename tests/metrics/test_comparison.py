"""The statistical judge as a pure function: samples in, verdict out.

The p-values are checked against R's ``wilcox.test(x, y, alternative=..., exact=FALSE,
correct=TRUE)``, the Mann-Whitney test Kayenta's judge is built on
(``kayenta-judge/.../MannWhitneyClassifier.scala``), and scipy computes them the same way.
"""

from __future__ import annotations

import math
import random
import subprocess
import sys

import pytest

from progdel.metrics.comparison import Comparison, Direction, compare, format_effect

PRIMARY = [40.0, 41.5, 39.2, 42.8, 40.7, 38.9, 41.1, 40.2, 39.8, 42.0]


def slower(values: list[float], by: float) -> list[float]:
    return [v * (1 + by) for v in values]


def test_a_canary_twenty_percent_slower_fails_with_its_p_value_and_effect() -> None:
    got = compare(slower(PRIMARY, 0.2), PRIMARY, direction=Direction.INCREASE, name="request-duration")
    assert got.verdict == "fail"
    assert got.effect == pytest.approx(0.2)
    assert got.p_value is not None and got.p_value < 0.001
    assert (got.canary_samples, got.primary_samples) == (10, 10)
    assert got.message.startswith("request-duration +20.0% against the primary (p=")
    assert got.message.endswith("beyond the 10% tolerance")


def test_a_significant_difference_within_the_tolerance_is_marginal() -> None:
    got = compare(slower(PRIMARY, 0.05), PRIMARY, direction=Direction.INCREASE, tolerance=0.10)
    assert got.p_value is not None and got.p_value < 0.05
    assert got.verdict == "marginal"
    # with no tolerance the same difference fails
    assert (
        compare(slower(PRIMARY, 0.05), PRIMARY, direction=Direction.INCREASE, tolerance=0).verdict == "fail"
    )


def test_a_shift_the_direction_allows_passes() -> None:
    faster = slower(PRIMARY, -0.3)
    assert compare(faster, PRIMARY, direction=Direction.INCREASE).verdict == "pass"
    assert compare(faster, PRIMARY, direction=Direction.DECREASE).verdict == "fail"
    assert compare(faster, PRIMARY, direction=Direction.EITHER).verdict == "fail"


def r_wilcox_p(x: list[float], y: list[float], alternative: str) -> float:
    """R's ``wilcox.test(x, y, alternative, exact=FALSE, correct=TRUE)$p.value``, written out:
    the normal approximation of W with tie and continuity corrections (no scipy)."""
    values = sorted(x + y)
    rank = {}
    i = 0
    while i < len(values):
        j = i
        while j + 1 < len(values) and values[j + 1] == values[i]:
            j += 1
        rank[values[i]] = (i + j) / 2 + 1
        i = j + 1
    n1, n2, n = len(x), len(y), len(x) + len(y)
    w = sum(rank[v] for v in x) - n1 * (n1 + 1) / 2
    ties = sum(values.count(v) ** 3 - values.count(v) for v in set(values))
    sigma = math.sqrt(n1 * n2 / 12 * ((n + 1) - ties / (n * (n - 1))))
    z = w - n1 * n2 / 2
    if alternative == "greater":
        return 0.5 * math.erfc((z - 0.5) / sigma / math.sqrt(2))
    corrected = (z - math.copysign(0.5, z)) / sigma
    return math.erfc(abs(corrected) / math.sqrt(2))


@pytest.mark.parametrize(
    ("x", "y"),
    [
        (
            [1.83, 0.50, 1.62, 2.48, 1.68, 1.88, 1.55, 3.06, 1.30],
            [0.878, 0.647, 0.598, 2.05, 1.06, 1.29, 1.06, 3.14, 1.29],
        ),
        ([3.5, 4.5, 5.5, 6.5, 7.5], [1.0, 2.0, 3.0, 4.0]),  # small and without ties: still asymptotic
    ],
)
def test_p_values_are_r_wilcox_test_without_exact(x: list[float], y: list[float]) -> None:
    got = compare(x, y, direction=Direction.INCREASE, min_samples=3, tolerance=0)
    assert got.p_value == pytest.approx(r_wilcox_p(x, y, "greater"), rel=1e-9)
    got = compare(x, y, direction=Direction.EITHER, min_samples=3, tolerance=0)
    assert got.p_value == pytest.approx(r_wilcox_p(x, y, "two.sided"), rel=1e-9)


def test_too_few_samples_is_no_data() -> None:
    got = compare(PRIMARY[:5], PRIMARY, min_samples=8, name="latency")
    assert got.verdict == "no-data"
    assert got.p_value is None and got.effect is None
    assert got.message == (
        "latency: too few samples to compare with the primary (canary 5, primary 10, at least 8 each)"
    )


def test_nan_and_infinite_samples_are_dropped_before_counting() -> None:
    canary = [*PRIMARY[:7], float("nan"), float("inf")]
    got = compare(canary, PRIMARY, min_samples=8)
    assert got.verdict == "no-data" and got.canary_samples == 7


def test_identical_or_constant_sets_pass_without_a_test() -> None:
    assert compare(list(reversed(PRIMARY)), PRIMARY).p_value == 1.0
    same = compare([5.0] * 10, [5.0] * 10)
    assert (same.verdict, same.p_value, same.effect) == ("pass", 1.0, 0.0)


def test_a_primary_mean_of_zero_has_no_ratio_but_errors_appearing_still_fail() -> None:
    got = compare(
        [0.0, 0.0, 1.0, 2.0, 1.5, 3.0, 2.0, 1.0, 2.5, 2.0], [0.0] * 10, direction=Direction.INCREASE
    )
    assert got.effect is None and format_effect(got.effect) == "?"
    assert got.verdict == "fail"


def test_the_verdict_survives_the_status_round_trip() -> None:
    got = compare(slower(PRIMARY, 0.2), PRIMARY, direction=Direction.INCREASE)
    back = Comparison.from_dict(got.to_dict())
    assert back == got
    assert back.summary.startswith("fail +20.0% p=")


def test_same_distribution_fails_no_more_often_than_the_significance() -> None:
    """Under the null hypothesis the test alone (no tolerance) rejects at about its level; this is
    a property check on seeded draws (the full-path rate is bench/bench_judge.py's)."""
    rng = random.Random(7)
    runs = 400
    fails = 0
    for _ in range(runs):
        a = [rng.lognormvariate(3.7, 0.2) for _ in range(10)]
        b = [rng.lognormvariate(3.7, 0.2) for _ in range(10)]
        fails += compare(a, b, direction=Direction.INCREASE, tolerance=0).verdict == "fail"
    assert fails / runs <= 0.05 + 0.03  # binomial slack at 400 draws


def test_importing_the_judge_does_not_load_scipy() -> None:
    code = "import progdel.canary.engine, sys; print('scipy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
