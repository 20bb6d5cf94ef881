"""PrometheusProvider against a real Prometheus loaded with known Istio histories."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from progdel.metrics.builtin import builtin_query
from progdel.metrics.prometheus import PrometheusProvider
from progdel.metrics.provider import MetricsUnreachable, NoData, QueryRejected
from tests.promfixture import (
    PrometheusInstance,
    TrafficPhase,
    istio_openmetrics,
    require_prometheus,
    run_prometheus,
)

T0 = datetime(2024, 1, 1, tzinfo=UTC)
HISTORY = {
    "test/podinfo-primary": [TrafficPhase(0, rps=20, error_ratio=0.0, latency_ms=40)],
    # healthy for 5 minutes, then 30% errors and a 1.2s p99
    "test/podinfo": [TrafficPhase(0, 10, 0.0, 40), TrafficPhase(300, 10, 0.3, 1200)],
    # starts receiving traffic only after 10 minutes
    "test/quiet": [TrafficPhase(600, 5, 0.0, 20)],
}


def at(seconds: int) -> datetime:
    return T0 + timedelta(seconds=seconds)


def sr(target: str) -> str:
    return builtin_query("request-success-rate", namespace="test", target=target, interval="1m")


def p99(target: str) -> str:
    return builtin_query("request-duration", namespace="test", target=target, interval="1m")


@pytest.fixture(scope="module")
def prom(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusInstance]:
    require_prometheus()
    text = istio_openmetrics(T0, 900, 10, HISTORY)
    with run_prometheus(text, tmp_path_factory.mktemp("prom")) as instance:
        yield instance


@pytest.fixture
def provider(prom: PrometheusInstance) -> Iterator[PrometheusProvider]:
    with PrometheusProvider(prom.url) as p:
        yield p


def test_healthy_canary(provider: PrometheusProvider) -> None:
    assert provider.query(sr("podinfo"), at(250)) == pytest.approx(100.0)
    assert provider.query(p99("podinfo"), at(250)) == pytest.approx(40.0, abs=1e-6)


def test_regressed_canary(provider: PrometheusProvider) -> None:
    assert provider.query(sr("podinfo"), at(500)) == pytest.approx(70.0)
    assert provider.query(p99("podinfo"), at(500)) == pytest.approx(1200.0, abs=1e-6)
    # the regex is anchored: the primary stays healthy
    assert provider.query(sr("podinfo-primary"), at(500)) == pytest.approx(100.0)


def test_no_data(provider: PrometheusProvider) -> None:
    with pytest.raises(NoData):
        provider.query(sr("quiet"), at(300))
    with pytest.raises(NoData):
        provider.query(sr("nonexistent"), at(300))
    assert provider.query(sr("quiet"), at(800)) == pytest.approx(100.0)


def test_rejected_query(provider: PrometheusProvider, prom: PrometheusInstance) -> None:
    with pytest.raises(QueryRejected) as err:
        provider.query("sum(rate(istio_requests_total[1m]", at(300))
    assert "parse error" in str(err.value) and prom.url in str(err.value)


def test_matrix_is_rejected(provider: PrometheusProvider) -> None:
    with pytest.raises(QueryRejected, match="matrix"):
        provider.query("istio_requests_total[1m]", at(300))


def test_scalar_and_last_series(provider: PrometheusProvider) -> None:
    assert provider.query("scalar(vector(3))", at(300)) == 3.0
    # a vector with several series: the last one, as Flagger
    q = 'label_replace(vector(1), "x", "a", "", "") or label_replace(vector(2), "x", "b", "", "")'
    assert provider.query(q, at(300)) == 2.0


def test_query_many_concurrent(provider: PrometheusProvider) -> None:
    queries = [(f"sr-{t}", sr(t)) for t in ("podinfo", "podinfo-primary")] + [
        ("p99", p99("podinfo")),
        ("bad", "sum("),
        ("none", sr("quiet")),
    ]
    started = time.monotonic()
    results = provider.query_many(queries, at(500))
    elapsed = time.monotonic() - started
    assert results["sr-podinfo"] == pytest.approx(70.0)
    assert results["sr-podinfo-primary"] == pytest.approx(100.0)
    assert results["p99"] == pytest.approx(1200.0, abs=1e-6)
    assert isinstance(results["bad"], QueryRejected)
    assert isinstance(results["none"], NoData)
    print(f"query_many of {len(queries)} queries took {elapsed * 1000:.1f} ms")


def test_unreachable_when_prometheus_stops(tmp_path: Path) -> None:
    require_prometheus()
    with run_prometheus(istio_openmetrics(T0, 120, 10, HISTORY), tmp_path) as prom:
        p = PrometheusProvider(prom.url, timeout=2.0)
        assert p.query(sr("podinfo-primary"), at(100)) == pytest.approx(100.0)
        prom.stop()
        with pytest.raises(MetricsUnreachable) as err:
            p.query(sr("podinfo-primary"), at(100))
        assert prom.url in str(err.value)
        assert err.value.exit_code == 6
        results = p.query_many([("a", "vector(1)")], at(100))
        assert isinstance(results["a"], MetricsUnreachable)
        prom.start()  # the outage ends: same URL, same history
        assert p.query(sr("podinfo-primary"), at(100)) == pytest.approx(100.0)
        p.close()


def test_the_http_observer_queries_on_the_applications_own_histogram(tmp_path: Path) -> None:
    """Flagger's HTTP observer (gatewayapi, kubernetes) against a real Prometheus holding
    podinfo's ``http_request_duration_seconds`` per pod: the canary's pods and the primary's are
    told apart by the pod-name pattern, and the p99 in seconds is judged in milliseconds."""
    from progdel.metrics.builtin import builtin_scale
    from tests.promfixture import http_openmetrics

    require_prometheus()
    text = http_openmetrics(T0, 900, 10, HISTORY)
    provider_name = "gatewayapi:v1"
    q = {"namespace": "test", "interval": "1m", "provider": provider_name}
    with run_prometheus(text, tmp_path) as prom, PrometheusProvider(prom.url) as provider:
        canary_sr = builtin_query("request-success-rate", target="podinfo", **q)
        primary_sr = builtin_query("request-success-rate", target="podinfo-primary", **q)
        duration = builtin_query("request-duration", target="podinfo", **q)
        assert provider.query(canary_sr, at(250)) == pytest.approx(100.0)
        assert provider.query(canary_sr, at(600)) == pytest.approx(70.0)
        assert provider.query(primary_sr, at(600)) == pytest.approx(100.0)
        seconds = provider.query(duration, at(600))
        assert seconds * builtin_scale("request-duration", provider_name) == pytest.approx(1200.0)
        with pytest.raises(NoData):
            provider.query(builtin_query("request-success-rate", target="quiet", **q), at(300))


def test_served_split_and_request_count_of_a_gateway_api_canary(tmp_path: Path) -> None:
    """The verified-traffic split and the min-requests count read the same metrics as the
    provider's built-in queries: the pods' own histogram for a gatewayapi canary."""
    from progdel.canary import traffic
    from tests.promfixture import http_openmetrics

    require_prometheus()
    with (
        run_prometheus(http_openmetrics(T0, 900, 10, HISTORY), tmp_path) as prom,
        PrometheusProvider(prom.url) as provider,
    ):
        split = traffic.served_split(provider, "test", "podinfo", "1m", at(250), "gatewayapi:v1")
        assert split is not None and split["canary"] == pytest.approx(10 / 30)
        count = traffic.canary_requests_query("test", "podinfo", "1m", "gatewayapi:v1")
        assert provider.query(count, at(250)) == pytest.approx(600.0)
        assert traffic.served_split(provider, "test", "podinfo", "1m", at(250)) is None, "no Istio metrics"


def test_a_template_variable_cannot_turn_no_data_into_a_pass(provider: PrometheusProvider) -> None:
    """Pasted as it is (as Flagger does), the value closes the label string and appends
    ``or vector(100)``: a canary with no traffic would pass. Escaped, it is only a label value."""
    from progdel.metrics.templates import QueryContext, render_query

    template = 'sum(istio_requests_total{destination_workload="{{ variables.workload }}"})'
    injection = 'quiet"} or vector(100) or up{job="'
    pasted = template.replace("{{ variables.workload }}", injection)
    assert provider.query(pasted, at(100)) == pytest.approx(100.0)  # what pasting lets through
    ctx = QueryContext("q", "test", "quiet", "quiet", "1m", variables={"workload": injection})
    with pytest.raises(NoData):
        provider.query(render_query(template, ctx), at(100))
