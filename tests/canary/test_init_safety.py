"""`canary init` on a live app, refusals, and `canary delete --revert`, through the CLI against the
sandbox: nothing switches before the primary is ready, a refusal writes nothing (the Canary
object included) and names the real reason first, and a revert leaves the app serving as it did.

Flagger's rules followed: ``pkg/controller/scheduler.go`` (the apex Service and the mesh router
are reconciled only after ``canaryController.Initialize`` found the primary ready),
``pkg/router/kubernetes_default.go`` (``Finalize``) and ``pkg/canary/deployment_controller.go``
(``Finalize``), and the revert checks of ``test/istio/test-canary.sh``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from progdel.kube.client import Kube, connect
from progdel.kube.resources import CANARIES, DEPLOYMENTS, DESTINATIONRULES, SERVICES, VIRTUALSERVICES
from tests.canary.test_runner_integration import canary_doc, deployment


@pytest.fixture
def kube(sandbox: Any, namespace: str) -> Kube:
    return connect(str(sandbox.kubeconfig), None, namespace)


def progdel(
    sandbox: Any, namespace: str, *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "progdel", "--kubeconfig", str(sandbox.kubeconfig), "-n", namespace, *args],
        capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def write(tmp_path: Path, doc: dict[str, Any]) -> str:
    path = tmp_path / "canary.yaml"
    path.write_text(yaml.safe_dump(doc))
    return str(path)


def app_service(**spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "podinfo", "labels": {"team": "web"}},
        "spec": {
            "type": "ClusterIP",
            "selector": {"app": "podinfo"},
            "ports": [{"name": "http", "port": 9898, "targetPort": 9898, "protocol": "TCP"}],
            **spec,
        },
    }


def users_virtual_service() -> dict[str, Any]:
    return {
        "metadata": {"name": "podinfo"},
        "spec": {
            "hosts": ["podinfo", "app.example.com"],
            "gateways": ["mesh", "istio-system/public-gateway"],
            "http": [{"retries": {"attempts": 3}, "route": [{"destination": {"host": "podinfo"}}]}],
        },
    }


def test_nothing_switches_while_the_primary_is_not_ready(
    sandbox: Any, kube: Kube, namespace: str, tmp_path: Path
) -> None:
    """The primary of a target whose image never starts never gets ready: init times out (7)
    with the app's Service and VirtualService as they were and the target at its replicas."""
    kube.create(DEPLOYMENTS, deployment("podinfo", "registry.invalid/podinfo:6.0.0"))
    kube.create(SERVICES, app_service())
    kube.create(VIRTUALSERVICES, users_virtual_service())
    done = progdel(sandbox, namespace, "canary", "init", "-f", write(tmp_path, canary_doc(namespace)),
                   "--timeout", "3")  # fmt: skip
    assert done.returncode == 7, done.stderr
    assert kube.get(SERVICES, "podinfo")["spec"]["selector"] == {"app": "podinfo"}
    assert kube.get(VIRTUALSERVICES, "podinfo")["spec"] == users_virtual_service()["spec"]
    assert kube.get(DEPLOYMENTS, "podinfo")["spec"]["replicas"] == 2
    assert kube.get(SERVICES, "podinfo-primary")["spec"]["selector"] == {"app": "podinfo-primary"}
    assert kube.get(CANARIES, "podinfo")["status"]["phase"] == "Initializing"


@pytest.mark.parametrize(
    ("spec", "first_words"),
    [
        (  # Flagger's Knative tutorial: no spec.service at all; the provider is the reason
            {
                "provider": "knative",
                "targetRef": {"apiVersion": "serving.knative.dev/v1", "kind": "Service", "name": "podinfo"},
                "analysis": {"interval": "15s", "threshold": 15, "maxWeight": 50, "stepWeight": 10},
            },
            "spec.provider knative: progdel drives istio, gatewayapi:v1, gatewayapi:v1beta1 only",
        ),
        (
            {
                "targetRef": {"apiVersion": "serving.knative.dev/v1", "kind": "Service", "name": "podinfo"},
                "analysis": {"interval": "15s", "threshold": 15, "maxWeight": 50, "stepWeight": 10},
            },
            "spec.targetRef is a Knative Service: progdel drives Deployment targets only",
        ),
        (
            {
                "provider": "linkerd",
                "targetRef": {"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "podinfo"},
                "service": {"port": 9898},
                "analysis": {"interval": "15s", "threshold": 15, "maxWeight": 50, "stepWeight": 10},
            },
            "spec.provider linkerd: progdel drives",
        ),
        (
            {
                "targetRef": {"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "podinfo"},
                "service": {"port": 9898},
                "analysis": {"interval": "15s", "threshold": 15, "maxWeight": 50, "stepWeight": 10},
            },
            "spec.targetRef.kind DaemonSet: progdel drives Deployment targets only",
        ),
        (
            {
                "provider": "gatewayapi:v1",
                "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
                "service": {"port": 9898},
                "analysis": {"interval": "15s", "threshold": 15, "maxWeight": 50, "stepWeight": 10},
            },
            "spec.service.gatewayRefs: the Gateway API router needs the Gateways",
        ),
    ],
)
def test_a_refusal_writes_nothing_and_names_the_real_reason_first(
    sandbox: Any, kube: Kube, namespace: str, tmp_path: Path, spec: dict[str, Any], first_words: str
) -> None:
    kube.create(DEPLOYMENTS, deployment("podinfo", "ghcr.io/stefanprodan/podinfo:6.0.0"))
    doc = {
        "apiVersion": "flagger.app/v1beta1",
        "kind": "Canary",
        "metadata": {"name": "podinfo"},
        "spec": spec,
    }
    path = write(tmp_path, doc)
    for command in (["canary", "init", "-f", path], ["canary", "check", "-f", path, "--no-cluster"]):
        done = progdel(sandbox, namespace, *command)
        assert done.returncode == 2, done.stderr
        line = done.stderr.strip().splitlines()[-1]
        assert line.startswith(f"error: {path}: canary {namespace}/podinfo: {first_words}"), line
        assert "Traceback" not in done.stderr
    assert kube.get_or_none(CANARIES, "podinfo") is None, "not even the Canary"
    assert kube.items(SERVICES) == [] and kube.get_or_none(DEPLOYMENTS, "podinfo-primary") is None


def test_delete_revert_leaves_the_app_serving_as_before(
    sandbox: Any, kube: Kube, namespace: str, tmp_path: Path
) -> None:
    """test/istio/test-canary.sh's revert case: an app with its own Service and VirtualService,
    a Canary with revertOnDeletion, then delete: the Service selects the target's pods again with
    its type and ports, the VirtualService is the user's, the target has its replicas back."""
    kube.create(DEPLOYMENTS, deployment("podinfo", "ghcr.io/stefanprodan/podinfo:6.0.0"))
    kube.create(SERVICES, app_service(type="NodePort"))
    before = kube.get(SERVICES, "podinfo")["spec"]
    kube.create(VIRTUALSERVICES, users_virtual_service())
    doc = canary_doc(namespace)
    doc["spec"]["service"] = {"port": 80, "portName": "http-podinfo", "targetPort": 9898}
    doc["spec"]["revertOnDeletion"] = True
    done = progdel(sandbox, namespace, "canary", "init", "-f", write(tmp_path, doc), "--timeout", "30")
    assert done.returncode == 0, done.stderr
    svc = kube.get(SERVICES, "podinfo")["spec"]
    assert svc["selector"] == {"app": "podinfo-primary"} and svc["type"] == "NodePort"
    assert [p["port"] for p in svc["ports"]] == [9898, 80], "the app's own port stays beside the canary's"
    assert kube.get(DEPLOYMENTS, "podinfo")["spec"]["replicas"] == 0

    done = progdel(sandbox, namespace, "canary", "delete", "podinfo")
    assert done.returncode == 0 and "deleted and reverted" in done.stderr, done.stderr
    after = kube.get(SERVICES, "podinfo")
    assert after["spec"]["selector"] == {"app": "podinfo"}
    assert after["spec"]["type"] == "NodePort" and after["spec"]["ports"] == before["ports"]
    assert after["metadata"]["labels"] == {"team": "web"}
    assert "progdel.dev/original-configuration" not in (after["metadata"].get("annotations") or {})
    assert kube.get(VIRTUALSERVICES, "podinfo")["spec"] == users_virtual_service()["spec"]
    assert kube.get(DEPLOYMENTS, "podinfo")["spec"]["replicas"] == 2
    assert kube.get_or_none(DEPLOYMENTS, "podinfo-primary") is None
    for name in ("podinfo-primary", "podinfo-canary"):
        assert kube.get_or_none(SERVICES, name) is None and kube.get_or_none(DESTINATIONRULES, name) is None
    assert kube.get_or_none(CANARIES, "podinfo") is None


def test_a_canary_deleted_with_kubectl_is_reverted_from_its_file(
    sandbox: Any, kube: Kube, namespace: str, tmp_path: Path
) -> None:
    """Without a finalizer `kubectl delete canary` removes the Canary only: the primary keeps
    serving, and `canary delete --revert -f FILE` puts the app back afterwards."""
    kube.create(DEPLOYMENTS, deployment("podinfo", "ghcr.io/stefanprodan/podinfo:6.0.0"))
    path = write(tmp_path, canary_doc(namespace))
    assert progdel(sandbox, namespace, "canary", "init", "-f", path, "--timeout", "30").returncode == 0
    kube.delete(CANARIES, "podinfo")
    assert kube.get(SERVICES, "podinfo")["spec"]["selector"] == {"app": "podinfo-primary"}
    assert kube.get(DEPLOYMENTS, "podinfo-primary")["spec"]["replicas"] == 2, "still serving"
    done = progdel(sandbox, namespace, "canary", "delete", "podinfo", "--revert", "-f", path)
    assert done.returncode == 0, done.stderr
    assert kube.get(SERVICES, "podinfo")["spec"]["selector"] == {"app": "podinfo"}
    assert kube.get(DEPLOYMENTS, "podinfo")["spec"]["replicas"] == 2
    assert kube.get_or_none(VIRTUALSERVICES, "podinfo") is None, "progdel created it"
    assert kube.get_or_none(DEPLOYMENTS, "podinfo-primary") is None
