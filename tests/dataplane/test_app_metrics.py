"""The sandbox's Prometheus scrapes the apps' own metrics as pod discovery would in a cluster.

Flagger's built-in metrics for providers other than Istio read the app's
``http_request_duration_seconds`` by ``kubernetes_namespace`` and ``kubernetes_pod_name``
(``pkg/metrics/observers/http.go``); the queries below are those, rendered for a canary.
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any

import httpx

from .conftest import MeshSandbox, cluster_service, podinfo_deployment

# pkg/metrics/observers/http.go, "request-success-rate" and "request-duration"
SUCCESS_RATE = """
    sum(
        rate(
            http_request_duration_seconds_count{
                kubernetes_namespace="{{ namespace }}",
                kubernetes_pod_name=~"{{ target }}-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)",
                status!~"5.*"
            }[{{ interval }}]
        )
    )
    /
    sum(
        rate(
            http_request_duration_seconds_count{
                kubernetes_namespace="{{ namespace }}",
                kubernetes_pod_name=~"{{ target }}-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)"
            }[{{ interval }}]
        )
    )
    * 100"""
DURATION = """
    histogram_quantile(
        0.99,
        sum(
            rate(
                http_request_duration_seconds_bucket{
                    kubernetes_namespace="{{ namespace }}",
                    kubernetes_pod_name=~"{{ target }}-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)"
                }[{{ interval }}]
            )
        ) by (le)
    )"""


def render(query: str, namespace: str, target: str) -> str:
    return (
        query.replace("{{ namespace }}", namespace)
        .replace("{{ target }}", target)
        .replace("{{ interval }}", "1m")
    )


def wait_value(sb: MeshSandbox, query: str, accept: Any = lambda v: True, timeout: float = 90.0) -> float:
    prometheus = sb.plane.prometheus
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = prometheus.query_value(query)
        if value is not None and accept(value):
            return value
        time.sleep(0.25)
    targets = httpx.get(f"{sb.plane.prometheus_url}/api/v1/targets").json()["data"]["activeTargets"]
    raise AssertionError(f"{query}: {value}; targets {[(t['labels'], t['health']) for t in targets]}")


def wait_scraped(sb: MeshSandbox, namespace: str, target: str, selector: str, requests: int) -> None:
    """Wait until the last minute Prometheus scraped holds ``requests`` of the target's answers
    matching ``selector``: the window Flagger's queries read then holds the traffic sent."""
    pods = f'kubernetes_namespace="{namespace}",kubernetes_pod_name=~"{target}-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)"'
    query = f"sum(increase(http_request_duration_seconds_count{{{pods}{selector}}}[1m]))"
    wait_value(sb, query, lambda v: v >= requests)


def demo_deployment(name: str, version: str, error_rate: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {
                    "labels": {"app": name},
                    "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": "9797"},
                },
                "spec": {
                    "containers": [
                        {
                            "name": "app",
                            "image": f"progdel/demo-app:{version}",
                            "ports": [{"name": "http", "containerPort": 9898}],
                            "env": [{"name": "DEMO_ERROR_RATE", "value": error_rate}],
                        }
                    ]
                },
            },
        },
    }


class Traffic:
    """Cycles through ``paths`` to ``host`` through the mesh until stopped: a fixed mix of requests,
    however fast the machine serves them (Prometheus' rate() needs the counters to move)."""

    def __init__(self, sb: MeshSandbox, host: str, paths: list[str]) -> None:
        self.client = httpx.Client(base_url=sb.plane.mesh_url, headers={"host": host}, timeout=15)
        self.paths = paths
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stopped.is_set():
            for path in self.paths:
                with contextlib.suppress(httpx.HTTPError):
                    self.client.get(path)

    def __enter__(self) -> Traffic:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopped.set()
        self.thread.join(timeout=20)
        self.client.close()


def test_flagger_http_queries_judge_a_podinfo_canary(mesh_sandbox: MeshSandbox, mesh_ns: str) -> None:
    sb, ns = mesh_sandbox, mesh_ns
    sb.create(
        ns,
        podinfo_deployment("podinfo-primary", "6.0.0", replicas=2),
        podinfo_deployment("podinfo", "6.0.1"),
        cluster_service("podinfo-primary", "podinfo-primary", [(9898, 9898)]),
        cluster_service("podinfo-canary", "podinfo", [(9898, 9898)]),
    )
    sb.wait_available(ns, "podinfo-primary", 2)
    sb.wait_available(ns, "podinfo")
    sb.wait_routed(f"podinfo-canary.{ns}:9898", lambda r: r.status_code == 200)
    sb.wait_routed(f"podinfo-primary.{ns}:9898", lambda r: r.status_code == 200)
    # the canary answers a third of its requests with errors, some slowly; the primary all well
    canary_mix = ["/", "/", "/status/500", "/", "/delay/1", "/status/500"]
    with (
        Traffic(sb, f"podinfo-canary.{ns}:9898", canary_mix),
        Traffic(sb, f"podinfo-primary.{ns}:9898", ["/"]),
    ):
        # two rounds of the mix answered and scraped: the window holds a slow request (the mix is
        # sent in order, one request at a time), however late a busy machine scrapes it
        wait_scraped(sb, ns, "podinfo", "", 2 * len(canary_mix))
        canary = wait_value(sb, render(SUCCESS_RATE, ns, "podinfo"))
        primary = wait_value(sb, render(SUCCESS_RATE, ns, "podinfo-primary"))
        duration = wait_value(sb, render(DURATION, ns, "podinfo"))
    assert 55 < canary < 80, canary  # 2 in 3 of the requests
    assert primary == 100.0
    assert duration >= 1.0  # the one-second delays are its slowest requests

    # the anchored pod-name regex keeps the target's pods apart from the primary's
    series = sb.plane.prometheus.query(
        f'http_request_duration_seconds_count{{kubernetes_namespace="{ns}",'
        'kubernetes_pod_name=~"podinfo-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)"}'
    )
    canary_pods = {e.pod for e in sb.endpoints(ns, "podinfo")}
    assert {s["metric"]["kubernetes_pod_name"] for s in series} == canary_pods
    everything = sb.plane.prometheus.query(f'http_requests_total{{kubernetes_namespace="{ns}"}}')
    pods = {e.pod for e in sb.endpoints(ns, "podinfo") + sb.endpoints(ns, "podinfo-primary")}
    assert {s["metric"]["kubernetes_pod_name"] for s in everything} == pods
    sample = everything[0]["metric"]
    assert sample["namespace"] == ns and sample["pod"] == sample["kubernetes_pod_name"]  # the newer names too
    assert sample["app"] in ("podinfo", "podinfo-primary")  # pod labels, as labelmap gives them
    # Istio's metrics from the mesh are still there beside the apps' own
    istio = wait_value(sb, f'sum(istio_requests_total{{destination_workload_namespace="{ns}"}})')
    assert istio > 0


def test_flagger_http_queries_judge_a_demo_app_canary(mesh_sandbox: MeshSandbox, mesh_ns: str) -> None:
    sb, ns = mesh_sandbox, mesh_ns
    sb.create(
        ns,
        demo_deployment("web-primary", "1.0.0", "0"),
        demo_deployment("web", "1.1.0", "0.25"),
        cluster_service("web-primary", "web-primary", [(80, "http")]),
        cluster_service("web-canary", "web", [(80, "http")]),
    )
    sb.wait_available(ns, "web-primary")
    sb.wait_available(ns, "web")
    sb.wait_routed(f"web-canary.{ns}", lambda r: r.headers.get("x-demo-version") == "1.1.0")
    sb.wait_routed(f"web-primary.{ns}", lambda r: r.status_code == 200)
    with Traffic(sb, f"web-canary.{ns}", ["/"]), Traffic(sb, f"web-primary.{ns}", ["/"]):
        wait_scraped(sb, ns, "web", "", 80)
        wait_scraped(sb, ns, "web-primary", "", 30)
        canary = wait_value(sb, render(SUCCESS_RATE, ns, "web"))
        primary = wait_value(sb, render(SUCCESS_RATE, ns, "web-primary"))
        duration = wait_value(sb, render(DURATION, ns, "web"))
    assert 65 < canary < 85, canary  # exactly 1 in 4 of its requests to / fail
    assert primary == 100.0
    assert duration > 0
