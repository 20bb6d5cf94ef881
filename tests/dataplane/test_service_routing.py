"""The mesh routes every Service, as kube-proxy would, and a VirtualService still wins for its host.

The objects are those Flagger creates for an Istio canary (``pkg/router/kubernetes_default.go``:
``<apex>``, ``<apex>-primary`` and ``<apex>-canary`` Services; ``pkg/router/istio.go``: the
VirtualService for the apex host), with ``test/istio/test-canary.sh``'s service port 80 ->
targetPort ``http`` beside the tutorial's 9898 -> 9898.
"""

from __future__ import annotations

import shutil
import subprocess

import httpx
import pytest

from .conftest import MeshSandbox, cluster_service, podinfo_deployment


def virtualservice(primary: int, canary: int) -> dict[str, object]:
    return {
        "apiVersion": "networking.istio.io/v1beta1",
        "kind": "VirtualService",
        "metadata": {"name": "podinfo"},
        "spec": {
            "hosts": ["podinfo"],
            "http": [
                {
                    "route": [
                        {
                            "destination": {"host": "podinfo-primary", "port": {"number": 9898}},
                            "weight": primary,
                        },
                        {
                            "destination": {"host": "podinfo-canary", "port": {"number": 9898}},
                            "weight": canary,
                        },
                    ]
                }
            ],
        },
    }


def test_services_route_by_selector_and_port(mesh_sandbox: MeshSandbox, mesh_ns: str) -> None:
    sb, ns = mesh_sandbox, mesh_ns
    sb.create(
        ns,
        podinfo_deployment("podinfo-primary", "6.0.0"),
        podinfo_deployment("podinfo", "6.0.1"),
        cluster_service("podinfo", "podinfo-primary", [(9898, 9898)]),
        cluster_service("podinfo-primary", "podinfo-primary", [(9898, 9898), (80, "http")]),
        cluster_service("podinfo-canary", "podinfo", [(9898, 9898), (80, "http")]),
        virtualservice(0, 100),
    )
    sb.wait_available(ns, "podinfo-primary")
    sb.wait_available(ns, "podinfo")

    def version(host: str, expected: str) -> None:
        resp = sb.wait_routed(host, lambda r: r.status_code == 200 and r.json().get("version") == expected)
        assert resp.json()["version"] == expected

    for host in (
        "podinfo-canary",
        f"podinfo-canary.{ns}:9898",
        f"podinfo-canary.{ns}.svc.cluster.local:9898",
    ):
        version(host, "6.0.1")
    version(f"podinfo-primary.{ns}:9898", "6.0.0")
    # port 80 -> targetPort "http" (the container port of that name, 9898); no port is port 80
    version(f"podinfo-canary.{ns}:80", "6.0.1")
    version(f"podinfo-primary.{ns}", "6.0.0")
    # the Service "podinfo" selects the primary, but the VirtualService for that host wins
    version(f"podinfo.{ns}:9898", "6.0.1")
    assert sb.mesh_get(f"podinfo-canary.{ns}:1234").status_code == 404  # no such service port

    # the replicas' metrics port is reachable like any other: a Service on it reaches it
    sb.create(ns, cluster_service("podinfo-metrics", "podinfo", [(9797, "http-metrics")]))
    resp = sb.wait_routed(f"podinfo-metrics.{ns}:9797", lambda r: r.status_code == 200, path="/metrics")
    assert "http_request_duration_seconds" in resp.text

    # scaling the canary to 0 leaves its Service without endpoints
    scaled = podinfo_deployment("podinfo", "6.0.1", replicas=0)
    sb.replace(ns, scaled)
    sb.wait_routed(f"podinfo-canary.{ns}:9898", lambda r: r.status_code == 503)
    # answered by the mesh, as a caller's sidecar answers it: never counted as the workload's
    assert sb.plane.wait_synced()

    def counted() -> str:
        pattern = rf"^cluster\.{ns}_podinfo_9898\.upstream_rq_(\d+|\dxx|total|completed)$"
        stats = httpx.get(f"{sb.plane.envoy_admin_url}/stats", params={"filter": pattern}).text
        assert f"cluster.{ns}_podinfo_9898.upstream_rq_total" in stats
        return stats

    before = counted()
    for _ in range(5):
        assert sb.mesh_get(f"podinfo-canary.{ns}:9898").status_code == 503
    assert counted() == before


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
def test_the_mesh_is_an_http_proxy_for_in_cluster_names(mesh_sandbox: MeshSandbox, mesh_ns: str) -> None:
    """What the load tester's commands rely on: ``http_proxy`` pointed at the mesh listener."""
    sb, ns = mesh_sandbox, mesh_ns
    sb.create(
        ns,
        podinfo_deployment("podinfo", "6.0.3"),
        cluster_service("podinfo-canary", "podinfo", [(9898, 9898)]),
    )
    sb.wait_available(ns, "podinfo")
    sb.wait_routed(f"podinfo-canary.{ns}:9898", lambda r: r.status_code == 200)
    out = subprocess.run(
        ["curl", "-sf", "-d", "test", f"http://podinfo-canary.{ns}:9898/token"],
        env={"PATH": "/usr/bin:/bin", "http_proxy": sb.plane.mesh_url},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert out.returncode == 0 and '"token"' in out.stdout, out.stderr
