"""Answering the queries of every tick of a window from a few range queries.

A replay evaluates the same queries at every tick of a window: the first tick, then one interval
later, and so on. Prometheus evaluates a range query at exactly ``start``, ``start + step``, ...
(in milliseconds), each point as an instant query at that time would be evaluated. So one range
query per metric, from the first tick with the interval as step, holds every tick's value; and
for a metric compared with its primary, one range query at the comparison's step over the whole
window holds every tick's samples. A replay's cost then grows with the number of ticks only as
far as slicing lists goes, not by a round trip per tick.

The answers are those the per-tick queries would have had, exactly:

- a range query is split where Prometheus would refuse it (``MAX_POINTS`` points a series);
- a tick's value is the one series' point at the tick's millisecond; no point is no data (as an
  empty instant vector), a NaN is no data (as an instant NaN);
- whatever a range query cannot say as the instant query would, falls back to the instant query
  of that tick: a time off the grid, several series at one time (which of them an instant query
  names last is its own order), a query Prometheus refuses or fails over a range, a point at a
  time the grid does not hold, a native histogram;
- a tick's samples are the one series with points in that tick's window (several: the per-tick
  range query); the range query over the window steps by the largest step that lands on every
  tick's samples (the comparison's step when it divides the interval);
- a query with ``@ start()`` or ``@ end()``, whose values depend on the range asked, is asked
  tick by tick.

A fetch happens on a query's first use, for the whole window.
"""

from __future__ import annotations

import bisect
import math
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Any

from progdel.metrics.provider import MetricsError, NoData

if TYPE_CHECKING:
    from progdel.metrics.prometheus import PrometheusProvider

#: the most points of one series a range query may return (Prometheus refuses past 11,000)
MAX_POINTS = 10_000
#: the most points the window's range query may evaluate for each sample a tick uses
MAX_SPARE = 10
_RANGE_BOUND = re.compile(r"@\s*(start|end)\s*\(\s*\)")


def unix(at: datetime) -> str:
    """A time as the queries send it: seconds since the epoch, to the millisecond."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return f"{at.timestamp():.3f}"


def millis(text: str) -> int:
    """The millisecond Prometheus evaluates at for a time sent as ``text`` (``unix``'s form)."""
    return int((Decimal(text) * 1000).to_integral_value(ROUND_HALF_UP))


def seconds_text(ms: int) -> str:
    """``ms`` as a time or step parameter, exactly."""
    return f"{ms // 1000}.{ms % 1000:03d}"


def step_text(step: float) -> str:
    """A step in seconds as the range queries send it."""
    return f"{step:g}"


def step_millis(step: str) -> int:
    """The step Prometheus takes ``step`` (seconds) to be, in milliseconds: as Go converts it,
    float seconds to whole nanoseconds, then to whole milliseconds, each truncated."""
    return int(float(step) * 1e9) // 1_000_000


@dataclass(frozen=True)
class Grid:
    """The times ``start, start + step, ...`` up to ``end``, in milliseconds."""

    start: int
    step: int
    end: int

    def has(self, ms: int) -> bool:
        return self.start <= ms <= self.end and (ms - self.start) % self.step == 0

    def chunks(self) -> list[tuple[int, int]]:
        """``(first, last)`` of each range query that covers the grid, ``MAX_POINTS`` at most each."""
        out = []
        first = self.start
        while first <= self.end:
            last = min(self.end, first + (MAX_POINTS - 1) * self.step)
            out.append((first, last))
            first = last + self.step
        return out


@dataclass(frozen=True)
class TickWindow:
    """The ticks of a replay: ``first``, then every ``interval`` seconds until ``end``."""

    first: datetime
    interval: float
    end: datetime

    def grid(self) -> Grid | None:
        """The ticks in milliseconds; None when the interval is not a whole number of them (the
        ticks then follow no grid Prometheus would evaluate at)."""
        step = round(self.interval * 1000)
        if step <= 0 or abs(step - self.interval * 1000) > 1e-6:
            return None
        start = millis(unix(self.first))
        end = millis(unix(self.end))
        return Grid(start, step, start + (end - start) // step * step)


class _Fallback(Exception):
    """This query's range answer cannot stand for its instant (or per-tick range) answers."""


Series = list[tuple[int, Any]]  # (ms, the raw value), oldest first


@dataclass(frozen=True)
class _Sampled:
    """One series of a range answer: its times (ms) and raw values, oldest first."""

    times: list[int]
    raws: list[Any]


def _series(result: Sequence[Mapping[str, Any]], grid: Grid) -> dict[tuple[tuple[str, str], ...], Series]:
    """A range answer's points by series, checked to lie on ``grid``."""
    out: dict[tuple[tuple[str, str], ...], Series] = {}
    for s in result:
        if s.get("histograms"):
            raise _Fallback
        labels = tuple(sorted((s.get("metric") or {}).items()))
        points = out.setdefault(labels, [])
        for ts, raw in s.get("values") or []:
            ms = round(float(ts) * 1000)
            if not grid.has(ms):
                raise _Fallback
            points.append((ms, raw))
    return out


class Prefetch:
    """A provider's answers for the ticks of one window, fetched on each query's first use."""

    def __init__(self, provider: PrometheusProvider, window: TickWindow) -> None:
        self.provider = provider
        self.grid = window.grid()
        self._lock = threading.Lock()
        # query -> its points by millisecond (None: several series there), or None: not batched
        self._values: dict[str, dict[int, Any] | None] = {}
        # (query, step, window length in ms) -> its series, or None: not batched
        self._ranges: dict[tuple[str, str, int], list[_Sampled] | None] = {}

    # -- instant queries ---------------------------------------------------------------------

    def _fetch_values(self, query: str) -> dict[int, Any] | None:
        grid = self.grid
        assert grid is not None
        if _RANGE_BOUND.search(query):
            return None
        points: dict[int, Any] = {}
        try:
            for first, last in grid.chunks():
                result = self.provider.matrix(
                    query, seconds_text(first), seconds_text(last), seconds_text(grid.step)
                )
                for series in _series(result, grid).values():
                    for ms, raw in series:
                        points[ms] = None if ms in points else raw
        except (_Fallback, MetricsError, ValueError, TypeError):
            return None
        return points

    def query_many(self, queries: Sequence[tuple[str, str]], at: datetime) -> dict[str, float | MetricsError]:
        """The queries' values at ``at``, from the window's range answers where they hold them,
        else each by its instant query."""
        ms = millis(unix(at))
        if self.grid is None or not self.grid.has(ms):
            return self.provider.instant_many(queries, at)
        missing = [(q, q) for q in dict.fromkeys(q for _n, q in queries) if q not in self._values]
        if missing:
            fetched = self.provider.run_many(self._fetch_values, missing)
            with self._lock:
                for q, got in fetched.items():
                    self._values[q] = None if isinstance(got, BaseException) else got
        results: dict[str, float | MetricsError] = {}
        instant: list[tuple[str, str]] = []
        for name, q in queries:
            points = self._values.get(q)
            if points is None:
                instant.append((name, q))
            elif ms not in points:
                results[name] = NoData("no values found")
            elif points[ms] is None:  # several series at this time
                instant.append((name, q))
            else:
                try:
                    results[name] = self.provider.number(points[ms])
                except MetricsError as err:
                    results[name] = err
        if instant:
            results.update(self.provider.instant_many(instant, at))
        return {name: results[name] for name, _q in queries}

    # -- range queries (the statistical judge's samples) ------------------------------------

    def _fetch_range(self, query: str, step: str, length: int) -> list[_Sampled] | None:
        grid = self.grid
        assert grid is not None
        step_ms = step_millis(step)
        if step_ms <= 0 or _RANGE_BOUND.search(query):
            return None
        # every tick's samples lie on this grid: from the first tick's first sample, by the
        # largest step that lands on each of them
        every = math.gcd(grid.step, step_ms)
        if step_ms > every * MAX_SPARE:
            return None
        wide = Grid(grid.start - length, every, grid.end)
        text = step if every == step_ms else seconds_text(every)
        by_labels: dict[tuple[tuple[str, str], ...], Series] = {}
        try:
            for first, last in wide.chunks():
                result = self.provider.matrix(query, seconds_text(first), seconds_text(last), text)
                for labels, series in _series(result, wide).items():
                    by_labels.setdefault(labels, []).extend(series)
        except (_Fallback, MetricsError, ValueError, TypeError):
            return None
        return [_Sampled([ms for ms, _raw in s], [raw for _ms, raw in s]) for s in by_labels.values()]

    def _samples(
        self, fetched: list[_Sampled], start_ms: int, end_ms: int, step_ms: int
    ) -> list[float] | None:
        """The finite values, every ``step_ms`` from ``start_ms`` to ``end_ms``, of the one series
        with points there; [] for none; None for several (the per-tick query decides which it
        answers with)."""
        found: list[list[Any]] = []
        for series in fetched:
            lo = bisect.bisect_left(series.times, start_ms)
            hi = bisect.bisect_right(series.times, end_ms)
            raws = [series.raws[i] for i in range(lo, hi) if (series.times[i] - start_ms) % step_ms == 0]
            if raws:
                found.append(raws)
        if len(found) > 1:
            return None
        return self.provider.finite(found[0]) if found else []

    def query_range_many(
        self, queries: Sequence[tuple[str, str]], start: datetime, end: datetime, step: float
    ) -> dict[str, list[float] | MetricsError]:
        """Each query's values from ``start`` to ``end`` (a tick) every ``step`` seconds, sliced
        from the window's range answers where they hold them, else by its own range query."""
        start_ms, end_ms = millis(unix(start)), millis(unix(end))
        length = end_ms - start_ms
        if self.grid is None or not self.grid.has(end_ms) or length < 0:
            return self.provider.range_many(queries, start, end, step)
        keys = {q: (q, step_text(step), length) for _n, q in queries}
        missing = [(q, q) for q, key in keys.items() if key not in self._ranges]
        if missing:
            text = step_text(step)
            fetched = self.provider.run_many(lambda q: self._fetch_range(q, text, length), missing)
            with self._lock:
                for q, got in fetched.items():
                    self._ranges[keys[q]] = None if isinstance(got, BaseException) else got
        results: dict[str, list[float] | MetricsError] = {}
        own: list[tuple[str, str]] = []
        for name, q in queries:
            series = self._ranges.get(keys[q])
            step_ms = step_millis(keys[q][1])
            values = None if series is None else self._samples(series, start_ms, end_ms, step_ms)
            if values is None:
                own.append((name, q))
            else:
                results[name] = values
        if own:
            results.update(self.provider.range_many(own, start, end, step))
        return {name: results[name] for name, _q in queries}


__all__ = [
    "MAX_POINTS",
    "Grid",
    "Prefetch",
    "TickWindow",
    "millis",
    "seconds_text",
    "step_millis",
    "step_text",
    "unix",
]
