"""A real Prometheus for tests, loaded with known Istio traffic histories.

Two parts, usable separately:

``istio_openmetrics(start, duration_s, step_s, series)``
    OpenMetrics text for Istio's standard metrics (``istio_requests_total`` and the
    ``istio_request_duration_milliseconds`` histogram, ``reporter="destination"``), describing
    per-workload traffic that may change over time. Backfilled, it makes Flagger's built-in
    queries return known numbers at known times: the success rate is ``100 * (1 - error_ratio)``
    and the p99 is ``latency_ms`` (exactly, up to float rounding) whenever the query's window
    lies inside one phase.

``run_prometheus(openmetrics_text, tmp_path)``
    A context manager that backfills the text with ``promtool tsdb create-blocks-from
    openmetrics``, starts ``prometheus`` on a free loopback port and yields a
    ``PrometheusInstance`` (``.url``, ``.stop()`` to simulate an outage, ``.start()`` to bring
    it back). Backfilled data is queryable as soon as ``/-/ready`` answers (~0.1 s).

Example::

    T0 = datetime(2024, 1, 1, tzinfo=UTC)
    text = istio_openmetrics(T0, 600, 10, {
        "test/podinfo-primary": [TrafficPhase(0, rps=20, error_ratio=0.0, latency_ms=40)],
        "test/podinfo": [TrafficPhase(0, 10, 0.0, 40), TrafficPhase(300, 10, 0.3, 1200)],
    })
    with run_prometheus(text, tmp_path) as prom:
        PrometheusProvider(prom.url).query(builtin_query(...), T0 + timedelta(seconds=250))

Use fixed past timestamps (2024-01-01) so histories are deterministic; retention is set to 100y
so Prometheus never drops them.
"""

from __future__ import annotations

import contextlib
import math
import random
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

import httpx
import pytest

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"

#: Istio's default latency buckets (milliseconds), as in its standard metrics.
ISTIO_BUCKETS_MS: tuple[float, ...] = (
    0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000,
    1800000, 3600000,
)  # fmt: skip


@dataclass(frozen=True)
class TrafficPhase:
    """From ``start_s`` seconds after the history's start (until the next phase): ``rps``
    requests per second, of which ``error_ratio`` answer 500, with a p99 of ``latency_ms``."""

    start_s: float
    rps: float
    error_ratio: float = 0.0
    latency_ms: float = 50.0


def jittered(
    seed: int, duration_s: int, step_s: int, *, rps: float, latency_ms: float, spread: float = 0.1
) -> list[TrafficPhase]:
    """One phase per ``step_s`` for ``duration_s`` seconds, each with its p99 drawn at random
    (log-normal, median ``latency_ms``, ``spread`` its sigma): a history whose samples vary as real
    ones do, the same for the same ``seed``. A query's window of two steps sees one draw."""
    rng = random.Random(seed)
    return [
        TrafficPhase(offset, rps, 0.0, round(rng.lognormvariate(math.log(latency_ms), spread), 3))
        for offset in range(0, duration_s + 1, step_s)
    ]


class _Row(NamedTuple):
    ok: float
    err: float
    total: float
    buckets: dict[float, float]
    total_ms: float


PhaseLike = TrafficPhase | tuple[float, float, float, float]


def _phases(items: Sequence[PhaseLike]) -> list[TrafficPhase]:
    out = [p if isinstance(p, TrafficPhase) else TrafficPhase(*p) for p in items]
    out.sort(key=lambda p: p.start_s)
    if not out:
        raise ValueError("a workload needs at least one phase")
    return out


def _phase_at(phases: list[TrafficPhase], offset: float) -> TrafficPhase | None:
    current = None
    for p in phases:
        if p.start_s <= offset:
            current = p
    return current


def _latency_split(
    latency_ms: float, buckets: Sequence[float] = ISTIO_BUCKETS_MS
) -> tuple[float, float, float]:
    """(lower bound, upper bound, share of requests at the lower bound) such that Prometheus'
    ``histogram_quantile(0.99, ...)`` interpolates to exactly ``latency_ms`` (in the unit of
    ``buckets``)."""
    lo = 0.0
    for hi in buckets:
        if latency_ms <= hi:
            break
        lo = hi
    else:
        raise ValueError(f"latency {latency_ms}ms is above the largest bucket")
    t = (latency_ms - lo) / (hi - lo)
    if lo == 0.0 or t > 0.99:
        return lo, hi, 0.0
    return lo, hi, (0.99 - t) / (1 - t)


def _fmt(x: float) -> str:
    return repr(float(x)) if x != int(x) else str(int(x))


def istio_openmetrics(
    start: datetime,
    duration_s: int,
    step_s: int,
    series: Mapping[str, Sequence[PhaseLike]],
    *,
    source_workload: str = "loadtester",
) -> str:
    """OpenMetrics text for Istio's request count and duration histogram.

    ``series`` maps ``"namespace/workload"`` (or just ``"workload"``, namespace ``test``) to its
    traffic phases; samples are written every ``step_s`` seconds from ``start`` for
    ``duration_s`` seconds. Before a workload's first phase it has no samples at all, which is
    how to make "no data". The text ends with ``# EOF``.
    """
    t0 = start.timestamp() if start.tzinfo else start.replace(tzinfo=UTC).timestamp()
    steps = [i * step_s for i in range(duration_s // step_s + 1)]
    workloads = []
    for key, items in series.items():
        ns, _, name = key.rpartition("/")
        workloads.append((ns or "test", name, _phases(items)))

    def labels(ns: str, name: str, extra: str) -> str:
        return (
            f'reporter="destination",source_workload="{source_workload}",source_workload_namespace="{ns}",'
            f'source_app="{source_workload}",destination_workload="{name}",'
            f'destination_workload_namespace="{ns}",destination_app="{name}",'
            f'destination_service="{name}.{ns}.svc.cluster.local",request_protocol="http",'
            f'connection_security_policy="mutual_tls"{extra}'
        )

    # Cumulative counts per workload and step, computed once for both families.
    totals: dict[tuple[str, str], list[_Row | None]] = {}
    for ns, name, phases in workloads:
        ok = err = total_ms = 0.0
        buckets = dict.fromkeys(ISTIO_BUCKETS_MS, 0.0)
        rows: list[_Row | None] = []
        previous: float | None = None
        for off in steps:
            phase = _phase_at(phases, off)
            if phase is None:
                rows.append(None)
                continue
            dt = 0.0 if previous is None else off - previous
            previous = off
            n = phase.rps * dt
            ok += n * (1 - phase.error_ratio)
            err += n * phase.error_ratio
            lo, hi, low_share = _latency_split(phase.latency_ms)
            for b in ISTIO_BUCKETS_MS:
                if b >= hi:
                    buckets[b] += n
                elif lo > 0 and b >= lo:
                    buckets[b] += n * low_share
            total_ms += n * (low_share * lo + (1 - low_share) * phase.latency_ms)
            rows.append(_Row(ok, err, ok + err, dict(buckets), total_ms))
        totals[(ns, name)] = rows

    out = ["# HELP istio_requests Total requests.", "# TYPE istio_requests counter"]
    for ns, name, _ in workloads:
        for code, attr in (("200", "ok"), ("500", "err")):
            for off, row in zip(steps, totals[(ns, name)], strict=True):
                if row is None:
                    continue
                ts = _fmt(t0 + off)
                out.append(
                    f"istio_requests_total{{{labels(ns, name, f',response_code={chr(34)}{code}{chr(34)}')}}} "
                    f"{_fmt(getattr(row, attr))} {ts}"
                )
    out += [
        "# HELP istio_request_duration_milliseconds Request duration.",
        "# TYPE istio_request_duration_milliseconds histogram",
    ]
    for ns, name, _ in workloads:
        rows = totals[(ns, name)]
        base = labels(ns, name, ',response_code="200"')
        for b in (*ISTIO_BUCKETS_MS, float("inf")):
            le = "+Inf" if b == float("inf") else _fmt(b)
            for off, row in zip(steps, rows, strict=True):
                if row is None:
                    continue
                count = row.total if b == float("inf") else row.buckets[b]
                sample = f'istio_request_duration_milliseconds_bucket{{{base},le="{le}"}}'
                out.append(f"{sample} {_fmt(count)} {_fmt(t0 + off)}")
        for suffix, attr in (("sum", "total_ms"), ("count", "total")):
            for off, row in zip(steps, rows, strict=True):
                if row is None:
                    continue
                sample = f"istio_request_duration_milliseconds_{suffix}{{{base}}}"
                out.append(f"{sample} {_fmt(getattr(row, attr))} {_fmt(t0 + off)}")
    out.append("# EOF")
    return "\n".join(out) + "\n"


#: the Prometheus client's default buckets (seconds), which podinfo's histogram uses
HTTP_BUCKETS_S: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


def pod_name(workload: str) -> str:
    """The one pod of ``workload`` in an ``http_openmetrics`` history (ReplicaSet hash, suffix)."""
    return f"{workload}-5d9c7b8f6-x2k4z"


def http_openmetrics(
    start: datetime, duration_s: int, step_s: int, series: Mapping[str, Sequence[PhaseLike]]
) -> str:
    """OpenMetrics text for an application's own ``http_request_duration_seconds`` histogram (as
    podinfo exposes it), labelled as Prometheus' kubernetes-pods discovery labels it
    (``kubernetes_namespace``, ``kubernetes_pod_name``, one pod per workload named
    ``pod_name(workload)``), with ``status`` 200 or 500: what Flagger's HTTP observer queries for
    ``gatewayapi`` and ``kubernetes`` canaries. ``series`` as for ``istio_openmetrics``; latencies
    are still given in milliseconds."""
    t0 = start.timestamp() if start.tzinfo else start.replace(tzinfo=UTC).timestamp()
    steps = [i * step_s for i in range(duration_s // step_s + 1)]
    family = "http_request_duration_seconds"
    out = [f"# HELP {family} Request duration.", f"# TYPE {family} histogram"]
    for key, items in series.items():
        ns, _, name = key.rpartition("/")
        phases = _phases(items)
        pod = pod_name(name)
        base = f'kubernetes_namespace="{ns or "test"}",kubernetes_pod_name="{pod}",method="GET",path="/"'
        counts = {"200": 0.0, "500": 0.0}
        buckets = {code: dict.fromkeys(HTTP_BUCKETS_S, 0.0) for code in counts}
        sums = dict.fromkeys(counts, 0.0)
        previous: float | None = None
        lines: list[tuple[str, float, float]] = []
        for off in steps:
            phase = _phase_at(phases, off)
            if phase is None:
                continue
            dt = 0.0 if previous is None else off - previous
            previous = off
            latency = phase.latency_ms / 1000
            lo, hi, low_share = _latency_split(latency, HTTP_BUCKETS_S)
            for code, share in (("200", 1 - phase.error_ratio), ("500", phase.error_ratio)):
                n = phase.rps * dt * share
                counts[code] += n
                for b in HTTP_BUCKETS_S:
                    if b >= hi:
                        buckets[code][b] += n
                    elif lo > 0 and b >= lo:
                        buckets[code][b] += n * low_share
                sums[code] += n * (low_share * lo + (1 - low_share) * latency)
                labels = f'{base},status="{code}"'
                for b in HTTP_BUCKETS_S:
                    lines.append((f'{family}_bucket{{{labels},le="{_fmt(b)}"}}', buckets[code][b], t0 + off))
                lines.append((f'{family}_bucket{{{labels},le="+Inf"}}', counts[code], t0 + off))
                lines.append((f"{family}_count{{{labels}}}", counts[code], t0 + off))
                lines.append((f"{family}_sum{{{labels}}}", sums[code], t0 + off))
        lines.sort(key=lambda line: line[0])  # OpenMetrics wants each series' samples together
        out += [f"{name} {_fmt(value)} {_fmt(ts)}" for name, value, ts in lines]
    out.append("# EOF")
    return "\n".join(out) + "\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def backfill(openmetrics_text: str, data_dir: Path) -> None:
    """Write blocks for ``openmetrics_text`` into ``data_dir`` with promtool."""
    data_dir.mkdir(parents=True, exist_ok=True)
    src = data_dir.parent / f"{data_dir.name}.om"
    src.write_text(openmetrics_text)
    proc = subprocess.run(
        [PROMTOOL, "tsdb", "create-blocks-from", "openmetrics", str(src), str(data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"promtool backfill failed: {proc.stderr.strip() or proc.stdout.strip()}")


class PrometheusInstance:
    """A ``prometheus`` process on a loopback port over a data directory.

    ``start()`` waits for ``/-/ready``; ``stop()`` terminates it (the port then refuses
    connections, as an outage would); the data directory survives, so ``start()`` again brings
    the same history back on the same URL.
    """

    def __init__(self, data_dir: Path, *, port: int | None = None) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = data_dir.parent / f"{data_dir.name}.yml"
        self.config.write_text("global:\n  scrape_interval: 1m\nscrape_configs: []\n")
        self.log = data_dir.parent / f"{data_dir.name}.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 60.0) -> None:
        if self.running:
            return
        with self.log.open("ab") as log:
            self._proc = subprocess.Popen(
                [
                    PROMETHEUS,
                    f"--config.file={self.config}",
                    f"--storage.tsdb.path={self.data_dir}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--storage.tsdb.retention.time=100y",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"prometheus exited early:\n{self.log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/-/ready", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"prometheus not ready after {timeout}s:\n{self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None

    def __enter__(self) -> PrometheusInstance:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def run_prometheus(
    openmetrics_text: str | None, tmp_path: Path, *, name: str = "prom"
) -> Iterator[PrometheusInstance]:
    """Backfill ``openmetrics_text`` (if any) into ``tmp_path/name`` and run Prometheus on it."""
    data_dir = tmp_path / name
    if openmetrics_text is not None:
        backfill(openmetrics_text, data_dir)
    else:
        data_dir.mkdir(parents=True, exist_ok=True)
    instance = PrometheusInstance(data_dir)
    try:
        instance.start()
        yield instance
    finally:
        instance.stop()


def require_prometheus() -> None:
    """Skip the calling test when the prometheus/promtool binaries are not installed."""
    if not (Path(PROMETHEUS).exists() and Path(PROMTOOL).exists()):
        pytest.skip("prometheus and promtool are not installed")
