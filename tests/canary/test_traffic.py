"""Verified traffic: the split Istio served, read from a real Prometheus with a known history."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from progdel.canary.traffic import (
    served_split,
    served_split_query,
    split_warning,
)
from progdel.metrics.prometheus import PrometheusProvider
from progdel.metrics.provider import MetricsUnreachable
from tests.canary.test_runner_integration import T0
from tests.promfixture import (
    PrometheusInstance,
    TrafficPhase,
    free_port,
    istio_openmetrics,
    require_prometheus,
    run_prometheus,
)

# 0-300 s: the weight was 20% but the canary served 1 of 50 requests per second (2%);
# from 300 s: it served its share (10 of 50, 20%); from 600 s: nothing at all.
HISTORY = {
    "test/podinfo-primary": [TrafficPhase(0, 49), TrafficPhase(300, 40), TrafficPhase(600, 0)],
    "test/podinfo": [TrafficPhase(0, 1), TrafficPhase(300, 10), TrafficPhase(600, 0)],
    "other/podinfo": [TrafficPhase(0, 500)],  # another namespace's podinfo must not count
}


@pytest.fixture(scope="module")
def prom(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusInstance]:
    require_prometheus()
    text = istio_openmetrics(T0, 1200, 5, HISTORY)
    with run_prometheus(text, tmp_path_factory.mktemp("traffic")) as instance:
        yield instance


def test_the_dashboard_query_gives_one_rate_per_workload(prom: PrometheusInstance) -> None:
    query = served_split_query("test", "podinfo", "1m")
    assert query == (
        'sum by (destination_workload) (rate(istio_requests_total{reporter="destination",'
        'destination_workload_namespace="test",destination_workload=~"podinfo|podinfo-primary"}[1m]))'
    )
    at = (T0 + timedelta(seconds=200)).timestamp()
    body = httpx.get(f"{prom.url}/api/v1/query", params={"query": query, "time": at}).json()
    rates = {r["metric"]["destination_workload"]: float(r["value"][1]) for r in body["data"]["result"]}
    assert rates == pytest.approx({"podinfo": 1.0, "podinfo-primary": 49.0})


def test_a_canary_served_far_less_than_its_weight_is_reported(prom: PrometheusInstance) -> None:
    with PrometheusProvider(prom.url) as provider:
        served = served_split(provider, "test", "podinfo", "1m", T0 + timedelta(seconds=200))
    assert served is not None
    assert served["canary"] == pytest.approx(0.02)
    assert served["primary"] == pytest.approx(0.98)
    assert served["rps"] == pytest.approx(50.0)
    warning = split_warning(20, served, 10, name="podinfo.test")
    assert warning == "Traffic split for podinfo.test: canary served 2% of requests, weight 20%"
    assert split_warning(5, served, 10, name="podinfo.test") is None, "3 points off is within 10"
    assert split_warning(20, served, None, name="podinfo.test") is None, "checking is off"


def test_a_split_that_follows_the_weight_is_not_reported(prom: PrometheusInstance) -> None:
    with PrometheusProvider(prom.url) as provider:
        served = served_split(provider, "test", "podinfo", "1m", T0 + timedelta(seconds=500))
    assert served is not None and served["canary"] == pytest.approx(0.2)
    assert split_warning(20, served, 10, name="podinfo.test") is None
    assert split_warning(40, served, 10, name="podinfo.test") is not None


def test_no_traffic_means_nothing_to_judge(prom: PrometheusInstance) -> None:
    with PrometheusProvider(prom.url) as provider:
        assert served_split(provider, "test", "podinfo", "1m", T0 + timedelta(seconds=900)) is None
        assert served_split(provider, "test", "absent", "1m", T0 + timedelta(seconds=200)) is None
    low = {"primary": 0.98, "canary": 0.02, "rps": 0.5}
    assert split_warning(20, low, 10, name="podinfo.test") is None, "too little traffic to judge"
    assert split_warning(20, low, 10, total_rate=5.0, name="podinfo.test") is not None


def test_an_unreachable_prometheus_is_raised(tmp_path: Path) -> None:
    with PrometheusProvider(f"http://127.0.0.1:{free_port()}") as provider, pytest.raises(MetricsUnreachable):
        served_split(provider, "test", "podinfo", "1m", T0)
