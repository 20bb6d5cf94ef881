"""A Canary written for Flagger 0.x, as older tutorials and books show it (Jenkins X's Flagger
chapter among them), initialized by ``canary init`` against the sandbox: read with 0.x's meaning
(Flagger's ``docs/gitbook/dev/upgrade-guide.md``), stored as ``v1beta1`` (the only version
``artifacts/flagger/crd.yaml`` serves), the conversion said once.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from progdel.kube.client import Kube, connect
from progdel.kube.resources import CANARIES, DEPLOYMENTS, VIRTUALSERVICES
from tests.canary.test_runner_integration import deployment

JX = """\
apiVersion: flagger.app/{version}
kind: Canary
metadata: {{name: jx-production-demo6, namespace: {namespace}}}
spec:
  targetRef: {{apiVersion: apps/v1, kind: Deployment, name: jx-production-demo6}}
  progressDeadlineSeconds: 60
  service:
    port: 8080
    gateways: [jx-gateway.istio-system.svc.cluster.local]
    hosts: [go-demo-6.istio.example.com]
  canaryAnalysis:
    interval: 60s
    threshold: 5
    maxWeight: 50
    stepWeight: 10
    metrics:
    - {{name: istio_requests_total, threshold: 99, interval: 60s}}
    - {{name: istio_request_duration_seconds_bucket, threshold: 500, interval: 60s}}
"""


@pytest.fixture
def kube(sandbox: Any, namespace: str) -> Kube:
    return connect(str(sandbox.kubeconfig), None, namespace)


@pytest.mark.parametrize("version", ["v1alpha2", "v1alpha3"])
def test_a_flagger_0x_canary_initializes_as_v1beta1_with_its_0x_meaning(
    sandbox: Any, kube: Kube, namespace: str, tmp_path: Path, version: str
) -> None:
    kube.create(DEPLOYMENTS, deployment("jx-production-demo6", "ghcr.io/stefanprodan/podinfo:6.0.0"))
    path = tmp_path / "old.yaml"
    path.write_text(JX.format(version=version, namespace=namespace))
    done = subprocess.run(
        [sys.executable, "-m", "progdel", "--kubeconfig", str(sandbox.kubeconfig), "-n", namespace,
         "canary", "init", "-f", str(path), "--timeout", "60"],
        capture_output=True, text=True, timeout=180, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stderr.count(f"converted from Flagger 0.x: apiVersion flagger.app/{version} -> ") == 1, (
        done.stderr
    )

    stored = kube.get(CANARIES, "jx-production-demo6")
    assert stored["apiVersion"] == "flagger.app/v1beta1" and "canaryAnalysis" not in stored["spec"]
    analysis = stored["spec"]["analysis"]
    assert (analysis["interval"], analysis["threshold"], analysis["maxWeight"], analysis["stepWeight"]) == (
        "60s",
        5,
        50,
        10,
    )
    assert [(m["name"], m["thresholdRange"], m["interval"]) for m in analysis["metrics"]] == [
        ("request-success-rate", {"min": 99}, "60s"),  # a minimum percentage
        ("request-duration", {"max": 500}, "60s"),  # a P99 maximum in ms
    ]
    assert stored["status"]["phase"] == "Initialized"
    vs = kube.get(VIRTUALSERVICES, "jx-production-demo6")["spec"]
    assert vs["gateways"] == ["jx-gateway.istio-system.svc.cluster.local"]
    assert vs["hosts"] == ["go-demo-6.istio.example.com", "jx-production-demo6"]
