"""Flagger's built-in Istio queries, unchanged, against a real Prometheus scraping the mesh."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from progdel.errors import ProgdelError
from progdel.sandbox.loadgen import LoadGenerator
from progdel.sandbox.mesh import Envoy
from progdel.sandbox.processes import ProcessReplicaBackend, free_port
from progdel.sandbox.prometheus import PrometheusServer, prometheus_binary

from .conftest import CanaryWorld

SUCCESS_RATE = (
    'sum(rate(istio_requests_total{reporter="destination",destination_workload_namespace="test",'
    'destination_workload=~"TARGET",response_code!~"5.*"}[1m])) / sum(rate(istio_requests_total'
    '{reporter="destination",destination_workload_namespace="test",destination_workload=~"TARGET"}'
    "[1m])) * 100"
)
CANARY_REQUESTS = (
    'sum(increase(istio_requests_total{reporter="destination",destination_workload_namespace="test",'
    'destination_workload="podinfo"}[1m]))'
)
DURATION = (
    'histogram_quantile(0.99, sum(rate(istio_request_duration_milliseconds_bucket{reporter="destination",'
    'destination_workload_namespace="test",destination_workload=~"TARGET"}[1m])) by (le))'
)


def test_flagger_queries_see_the_canary_error_rate(
    tmp_path: Path, backend: ProcessReplicaBackend, envoy: Envoy
) -> None:
    prometheus_binary()
    world = CanaryWorld(backend, envoy, canary_error_rate="0.2", canary_latency_ms="30")
    world.route(50, 50)
    prom = PrometheusServer(tmp_path / "prom", free_port(), f"127.0.0.1:{envoy.admin_port}")
    prom.start()
    gen = LoadGenerator(world.url, "podinfo", rate=200, duration=600).start()
    try:
        canary = primary = latency = None
        # enough canary requests for a stable rate (a sample size, not a speed), counted where the
        # rate is computed: in Prometheus' window, which scrapes on a busy machine fill late
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            canary = prom.query_value(SUCCESS_RATE.replace("TARGET", "podinfo"))
            primary = prom.query_value(SUCCESS_RATE.replace("TARGET", "podinfo-primary"))
            latency = prom.query_value(DURATION.replace("TARGET", "podinfo"))
            seen = prom.query_value(CANARY_REQUESTS)
            if None not in (canary, primary, latency) and seen is not None and seen >= 300:
                break
            time.sleep(0.25)
        assert canary is not None and primary is not None and latency is not None
        assert 77.0 <= canary <= 83.0, canary  # exactly 1 in 5 canary requests fail
        assert primary == 100.0
        # 30 ms added to every canary answer: even the fastest 1% take that long. (How much longer a
        # busy machine makes them is no property of the mesh: no upper bound is asserted.)
        assert latency >= 25.0, latency
        fastest = prom.query_value(DURATION.replace("TARGET", "podinfo").replace("0.99", "0.01"))
        assert fastest is not None and fastest >= 25.0, fastest
        # The anchored regex of Flagger's query keeps podinfo and podinfo-primary apart.
        series = prom.query('istio_requests_total{destination_workload_namespace="test"}')
        assert {s["metric"]["destination_workload"] for s in series} == {"podinfo", "podinfo-primary"}
        assert {s["metric"]["reporter"] for s in series} == {"destination"}
    finally:
        gen.stop()
        prom.stop()
    assert prom.proc is not None and prom.proc.poll() is not None


def test_missing_prometheus_is_a_clear_exit_2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr("progdel.sandbox.prometheus.Path.exists", lambda self: False)
    with pytest.raises(ProgdelError) as info:
        prometheus_binary()
    assert info.value.exit_code == 2
    assert "apt-get install --no-install-recommends prometheus" in str(info.value)
