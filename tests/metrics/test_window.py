"""A replay's window answered from range queries (``progdel.metrics.window``), against a provider
that records what it is asked. Against a real Prometheus, the timelines of both ways are compared
in ``tests/canary/test_replay.py``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from progdel.metrics.prometheus import PrometheusProvider
from progdel.metrics.provider import MetricsError, NoData
from progdel.metrics.window import MAX_POINTS, Grid, Prefetch, TickWindow

T0 = datetime(2024, 1, 1, tzinfo=UTC)
S0 = int(T0.timestamp())


class Recorded:
    """A provider answering range queries from ``series`` (labels -> {second: raw value}) and
    instant queries with 7.0, keeping every request."""

    def __init__(self, series: dict[str, dict[int, str]]) -> None:
        self.series = series
        self.asked: list[tuple[str, ...]] = []

    def matrix(self, query: str, start: str, end: str, step: str) -> list[dict[str, Any]]:
        self.asked.append(("range", query, start, end, step))
        lo, hi = float(start), float(end)
        return [
            {"metric": {"pod": name}, "values": [[t, v] for t, v in sorted(points.items()) if lo <= t <= hi]}
            for name, points in self.series.items()
        ]

    def instant_many(
        self, queries: Sequence[tuple[str, str]], at: datetime
    ) -> dict[str, float | MetricsError]:
        self.asked.append(("instant", *(q for _n, q in queries)))
        return {name: 7.0 for name, _q in queries}

    def run_many(self, run: Callable[[str], Any], queries: Sequence[tuple[str, str]]) -> dict[str, Any]:
        return {name: run(q) for name, q in queries}

    number = PrometheusProvider.number
    finite = staticmethod(PrometheusProvider.finite)
    where = "http://prom"


def prefetch(series: dict[str, dict[int, str]], minutes: int = 10) -> tuple[Prefetch, Recorded]:
    provider = Recorded(series)
    window = TickWindow(T0, 60, T0 + timedelta(minutes=minutes))
    return Prefetch(provider, window), provider  # type: ignore[arg-type]


def test_a_grid_is_split_in_range_queries_prometheus_accepts_covering_every_point_once() -> None:
    grid = Grid(1_000, 60_000, 1_000 + 60_000 * (2 * MAX_POINTS + 5))
    chunks = grid.chunks()
    assert len(chunks) == 3
    covered = [t for first, last in chunks for t in range(first, last + 1, grid.step)]
    assert covered == list(range(grid.start, grid.end + 1, grid.step))
    assert all((last - first) // grid.step + 1 <= MAX_POINTS for first, last in chunks)


def test_each_tick_reads_its_value_from_one_range_query() -> None:
    pf, provider = prefetch({"a": {S0 + 60 * k: str(k) for k in range(11) if k != 4}})
    got = [pf.query_many([("m", "q")], T0 + timedelta(minutes=k))["m"] for k in range(11)]
    assert got[:4] == [0.0, 1.0, 2.0, 3.0] and got[5:] == [5.0, 6.0, 7.0, 8.0, 9.0, 10.0]
    assert isinstance(got[4], NoData)  # no point at that tick: no data, as an empty instant vector
    assert provider.asked == [("range", "q", f"{S0}.000", f"{S0 + 600}.000", "60.000")]


def test_a_time_off_the_ticks_or_several_series_at_a_tick_is_asked_by_an_instant_query() -> None:
    pf, provider = prefetch({"a": {S0: "1", S0 + 60: "2"}, "b": {S0 + 60: "3"}})
    assert pf.query_many([("m", "q")], T0)["m"] == 1.0
    assert pf.query_many([("m", "q")], T0 + timedelta(minutes=1))["m"] == 7.0
    assert pf.query_many([("m", "q")], T0 + timedelta(seconds=90))["m"] == 7.0
    assert [a[0] for a in provider.asked] == ["range", "instant", "instant"]


def test_a_nan_at_a_tick_is_no_data_as_for_an_instant_query() -> None:
    pf, _ = prefetch({"a": {S0: "NaN"}})
    got = pf.query_many([("m", "q")], T0)["m"]
    assert isinstance(got, NoData) and str(got) == "no values found (NaN)"


def test_samples_are_sliced_per_tick_from_one_range_query_a_query() -> None:
    # ticks every 60 s, samples every 18 s over 3 minutes: one range query by 6 s for the window
    points = {S0 - 180 + 6 * k: str(k) for k in range(200)}
    pf, provider = prefetch({"a": points})
    for minute in (3, 4):
        at = T0 + timedelta(minutes=minute)
        got = pf.query_range_many([("c", "q")], at - timedelta(seconds=180 - 18), at, 18)["c"]
        first = S0 + 60 * minute - 162
        assert got == [float(points[t]) for t in range(first, S0 + 60 * minute + 1, 18)]
    assert provider.asked == [("range", "q", f"{S0 - 162}.000", f"{S0 + 600}.000", "6.000")]
