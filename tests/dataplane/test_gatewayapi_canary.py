"""A Gateway API canary end to end in the sandbox: progdel shifts an HTTPRoute's weights, the mesh
routes by it, and Flagger's HTTP observer queries judge the app's own metrics in a real
Prometheus: a healthy release is promoted, one with errors rolled back.

Follows Flagger's e2e for the Gateway API provider (``test/gatewayapi/test-canary.sh``): a
podinfo-like app behind an HTTPRoute, traffic through the gateway's hostname, ``kubectl set
image`` and the expected phase.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from progdel.canary import store
from progdel.canary.cluster import initialize, runner_for
from progdel.canary.runner import RunOptions
from progdel.errors import ExitCode
from progdel.kube.client import connect
from progdel.kube.events import list_events
from progdel.kube.resources import DEPLOYMENTS, HTTPROUTES

from .conftest import MeshSandbox
from .test_app_metrics import Traffic, demo_deployment

HOST = "web.example.com"


def canary(namespace: str, prometheus_url: str) -> dict[str, Any]:
    return {
        "apiVersion": "flagger.app/v1beta1",
        "kind": "Canary",
        "metadata": {"name": "web", "namespace": namespace},
        "spec": {
            "provider": "gatewayapi:v1",
            "metricsServer": prometheus_url,
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "service": {
                "port": 9898,
                "hosts": [HOST],
                "gatewayRefs": [{"name": "public", "namespace": namespace}],
            },
            "analysis": {
                "interval": "4s",
                "threshold": 1,
                "stepWeight": 50,
                "maxWeight": 50,
                "metrics": [
                    {"name": "request-success-rate", "thresholdRange": {"min": 99}, "interval": "15s"},
                    {"name": "request-duration", "thresholdRange": {"max": 500}, "interval": "15s"},
                ],
            },
        },
    }


def release(kube: Any, version: str, error_rate: str) -> None:
    container = {
        "name": "app",
        "image": f"progdel/demo-app:{version}",
        "env": [{"name": "DEMO_ERROR_RATE", "value": error_rate}],
    }
    kube.patch(
        DEPLOYMENTS,
        "web",
        {"spec": {"template": {"spec": {"containers": [container]}}}},
        content_type="application/strategic-merge-patch+json",
    )


def primary_version(kube: Any) -> str:
    image = kube.get(DEPLOYMENTS, "web-primary")["spec"]["template"]["spec"]["containers"][0]["image"]
    return str(image).rsplit(":", 1)[1]


def test_a_gateway_api_canary_is_judged_by_the_apps_metrics_through_the_mesh(
    mesh_sandbox: MeshSandbox, mesh_ns: str, tmp_path: Path
) -> None:
    sb, ns = mesh_sandbox, mesh_ns
    assert sb.plane.prometheus_url is not None
    kube = connect(str(sb.server.write_kubeconfig(tmp_path / "kubeconfig")), None, ns)
    kube.create(DEPLOYMENTS, demo_deployment("web", "1.0.0", "0"))
    sb.wait_available(ns, "web")
    store.apply_canary(kube, canary(ns, sb.plane.prometheus_url), ns)
    assert initialize(kube, "web", ns, lambda _r: None, timeout=60) is ExitCode.OK
    backends = [
        (b["name"], b["weight"]) for b in kube.get(HTTPROUTES, "web")["spec"]["rules"][0]["backendRefs"]
    ]
    assert backends == [("web-primary", 100), ("web-canary", 0)]
    sb.wait_routed(HOST, lambda r: r.headers.get("x-demo-version") == "1.0.0")

    def run() -> tuple[ExitCode, list[dict[str, Any]]]:
        records: list[dict[str, Any]] = []
        runner = runner_for(kube, "web", ns, records.append, RunOptions(timeout=240))
        return runner.run(), records

    with Traffic(sb, HOST, ["/"]):
        release(kube, "1.1.0", "0")
        code, records = run()
        assert code is ExitCode.OK, [r for r in records if r["kind"] != "countdown"][-6:]
        assert primary_version(kube) == "1.1.0"
        judged = [m for r in records if r["kind"] == "tick" for m in r["metrics"] if m["value"] is not None]
        assert {m["name"] for m in judged} == {"request-success-rate", "request-duration"}
        assert all(m["verdict"] == "pass" for m in judged)

        release(kube, "1.2.0", "0.2")
        code, records = run()
        assert code is ExitCode.CANARY_FAILED
        assert primary_version(kube) == "1.1.0", "the primary keeps the healthy release"
        sb.wait_routed(HOST, lambda r: r.headers.get("x-demo-version") == "1.1.0")
    messages = [e["message"] for e in list_events(kube, "Canary", "web")]
    assert any(m.startswith(f"Halt web.{ns} advancement success rate") and "< 99%" in m for m in messages), (
        messages
    )
    assert f"Promotion completed! Scaling down web.{ns}" in messages
    assert f"Canary failed! Scaling down web.{ns}" in messages
