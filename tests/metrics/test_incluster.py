"""An in-cluster Prometheus address reached through the Kubernetes API's service proxy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from progdel.kube.client import connect
from progdel.metrics.incluster import prometheus_for
from progdel.metrics.prometheus import ServiceAddress, service_address
from progdel.metrics.provider import MetricsUnreachable


def test_service_addresses() -> None:
    assert service_address("http://prometheus.istio-system:9090") == ServiceAddress(
        "http", "prometheus", "istio-system", 9090, "prometheus.istio-system"
    )
    assert service_address("https://prom.monitoring.svc.cluster.local") == ServiceAddress(
        "https", "prom", "monitoring", 443, "prom.monitoring.svc.cluster.local"
    )
    assert service_address("http://prom.monitoring.svc:80/").port == 80  # type: ignore[union-attr]
    for other in ("http://127.0.0.1:9090", "https://prometheus.example.com", "http://localhost:9090"):
        assert service_address(other) is None, other


def test_an_unresolvable_service_address_goes_through_the_api_server(sandbox: Any, httpx_mock: Any) -> None:
    kube = connect(str(sandbox.kubeconfig))
    proxied = f"{sandbox.url}/api/v1/namespaces/istio-system/services/http:prometheus:9090/proxy/api/v1/query"
    answer = {
        "status": "success",
        "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1, "42"]}]},
    }
    httpx_mock.add_response(
        url=f"{proxied}?query=up&time=1700000000.000",
        match_headers={"Authorization": f"Bearer {sandbox.access.token}"},  # the kubeconfig's credentials
        json=answer,
    )
    provider = prometheus_for("http://prometheus.istio-system:9090", kube)
    assert provider.query("up", datetime.fromtimestamp(1_700_000_000, UTC)) == 42.0
    assert provider.url == "http://prometheus.istio-system:9090"

    httpx_mock.add_response(
        status_code=503,
        json={"kind": "Status", "message": 'no endpoints available for service "prometheus"'},
    )
    with pytest.raises(MetricsUnreachable) as err:
        provider.query("up", datetime.fromtimestamp(1_700_000_000, UTC))
    assert str(err.value) == (
        "Prometheus at http://prometheus.istio-system:9090 (through the Kubernetes API's service proxy) "
        'answered HTTP 503: no endpoints available for service "prometheus"'
    )


@pytest.mark.parametrize("suffix", ["/prometheus", "/prometheus/"])
def test_the_path_of_a_service_address_is_kept_through_the_api_server(
    sandbox: Any, httpx_mock: Any, suffix: str
) -> None:
    """Mimir, Cortex and a Prometheus behind ``--web.route-prefix`` serve the API under a path:
    Flagger joins it with ``api/v1/query`` (providers/prometheus.go RunQuery), so must the proxy."""
    kube = connect(str(sandbox.kubeconfig))
    proxied = (
        f"{sandbox.url}/api/v1/namespaces/monitoring/services/http:prometheus:9009/proxy"
        "/prometheus/api/v1/query"
    )
    httpx_mock.add_response(
        url=f"{proxied}?query=up&time=1700000000.000",
        json={"status": "success", "data": {"resultType": "scalar", "result": [1, "7"]}},
    )
    provider = prometheus_for(f"http://prometheus.monitoring:9009{suffix}", kube)
    assert provider.query("up", datetime.fromtimestamp(1_700_000_000, UTC)) == 7.0


def test_addresses_that_resolve_or_without_a_cluster_are_queried_directly(sandbox: Any) -> None:
    kube = connect(str(sandbox.kubeconfig))
    assert prometheus_for("http://127.0.0.1:9090", kube).where == "http://127.0.0.1:9090"
    assert (
        prometheus_for("http://prometheus.istio-system:9090", None).where
        == "http://prometheus.istio-system:9090"
    )


def test_a_canary_run_reaches_the_in_cluster_prometheus_through_the_api(
    sandbox: Any, namespace: str, tmp_path: Any
) -> None:
    """The run is judged by a real Prometheus the test puts behind the Service ``prometheus`` in
    the namespace (selector-less, its backend registered with the sandbox), as it would sit in a
    cluster."""
    from progdel.errors import ExitCode
    from progdel.kube.resources import SERVICES
    from tests.canary.test_runner_integration import T0, history, new_revision, run, setup_canary
    from tests.promfixture import TrafficPhase, require_prometheus, run_prometheus

    require_prometheus()
    kube = connect(str(sandbox.kubeconfig), None, namespace)
    setup_canary(kube, namespace)
    new_revision(kube)
    with run_prometheus(history(namespace, [TrafficPhase(0, 10, 0.0, 40)]), tmp_path) as prom:
        port = int(prom.url.rsplit(":", 1)[1])
        kube.create(
            SERVICES, {"metadata": {"name": "prometheus"}, "spec": {"ports": [{"name": "web", "port": 9090}]}}
        )
        sandbox.register_backend(namespace, "prometheus", "127.0.0.1", port, "web")
        url = f"http://prometheus.{namespace}:9090"  # resolves only inside a cluster
        code, records = run(kube, namespace, url, T0 + timedelta(seconds=300))
    assert code is ExitCode.OK
    values = [
        m["value"] for r in records if r["kind"] == "tick" for m in r["metrics"] if m["value"] is not None
    ]
    assert values and 100.0 in values, "the success rate came from the real Prometheus"
