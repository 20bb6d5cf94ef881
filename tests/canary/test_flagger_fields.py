"""Flagger spec fields beyond the analysis: autoscalerRef, revertOnDeletion, targets progdel cannot drive."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from progdel.canary import store
from progdel.canary.cluster import initialize, runner_for
from progdel.errors import ExitCode, InvalidInput
from progdel.kube.client import Kube, connect
from progdel.kube.resources import DEPLOYMENTS, HPAS
from tests.canary.test_runner_integration import canary_doc, deployment


@pytest.fixture
def kube(sandbox: Any, namespace: str) -> Kube:
    return connect(str(sandbox.kubeconfig), None, namespace)


def hpa(max_replicas: int) -> dict[str, Any]:
    return {
        "metadata": {"name": "podinfo", "labels": {"team": "web"}},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
            "minReplicas": 2,
            "maxReplicas": max_replicas,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 90}},
                }
            ],
        },
    }


def with_autoscaler(namespace: str, **ref: Any) -> dict[str, Any]:
    doc = canary_doc(namespace)
    doc["spec"]["autoscalerRef"] = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "name": "podinfo",
        **ref,
    }
    return doc


def test_init_copies_the_hpa_to_the_primary_and_ticks_keep_it_in_step(
    kube: Kube, namespace: str, sandbox: Any
) -> None:
    kube.create(DEPLOYMENTS, deployment("podinfo", "ghcr.io/stefanprodan/podinfo:6.0.0"))
    kube.create(HPAS, hpa(4))
    store.apply_canary(kube, with_autoscaler(namespace, primaryScalerReplicas={"minReplicas": 3}), namespace)
    assert initialize(kube, "podinfo", namespace, lambda _r: None, timeout=30) is ExitCode.OK

    primary = kube.get(HPAS, "podinfo-primary")
    assert primary["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "podinfo-primary",
    }
    assert (primary["spec"]["minReplicas"], primary["spec"]["maxReplicas"]) == (3, 4)
    assert primary["spec"]["metrics"] == hpa(4)["spec"]["metrics"]
    assert primary["metadata"]["labels"] == {"team": "web"}, "Flagger copies the HPA's labels"
    assert kube.get(HPAS, "podinfo")["spec"]["scaleTargetRef"]["name"] == "podinfo", (
        "the target's HPA is untouched"
    )

    kube.update(HPAS, "podinfo", lambda o: o["spec"].update(maxReplicas=8))
    runner_for(kube, "podinfo", namespace, lambda _r: None).tick()
    assert kube.get(HPAS, "podinfo-primary")["spec"]["maxReplicas"] == 8

    proc = subprocess.run(
        [sys.executable, "-m", "progdel", "--kubeconfig", str(sandbox.kubeconfig), "-n", namespace, "canary",
         "delete", "podinfo", "--revert"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert kube.get_or_none(HPAS, "podinfo-primary") is None
    assert kube.get_or_none(HPAS, "podinfo") is not None


def test_a_missing_hpa_is_named(kube: Kube, namespace: str) -> None:
    kube.create(DEPLOYMENTS, deployment("podinfo", "ghcr.io/stefanprodan/podinfo:6.0.0"))
    store.apply_canary(kube, with_autoscaler(namespace), namespace)
    with pytest.raises(InvalidInput, match='horizontalpodautoscaler "podinfo" not found in namespace'):
        initialize(kube, "podinfo", namespace, lambda _r: None, timeout=30)


def test_revert_on_deletion_reverts_without_the_flag(kube: Kube, namespace: str, sandbox: Any) -> None:
    kube.create(DEPLOYMENTS, deployment("podinfo", "ghcr.io/stefanprodan/podinfo:6.0.0"))
    doc = canary_doc(namespace)
    doc["spec"]["revertOnDeletion"] = True
    store.apply_canary(kube, doc, namespace)
    assert initialize(kube, "podinfo", namespace, lambda _r: None, timeout=30) is ExitCode.OK
    assert kube.get(DEPLOYMENTS, "podinfo")["spec"]["replicas"] == 0
    proc = subprocess.run(
        [sys.executable, "-m", "progdel", "--kubeconfig", str(sandbox.kubeconfig), "-n", namespace, "canary",
         "delete", "podinfo"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0 and "deleted and reverted" in proc.stderr, proc.stderr
    assert kube.get_or_none(DEPLOYMENTS, "podinfo-primary") is None
    assert kube.get(DEPLOYMENTS, "podinfo")["spec"]["replicas"] == 2, "the target serves again"


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"targetRef": {"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "podinfo"}}, "kind DaemonSet"),
        ({"service": {"port": 9898, "appProtocol": "tcp"}}, "appProtocol tcp: progdel routes HTTP only"),
    ],
)
def test_what_progdel_cannot_drive_is_refused_before_anything_is_created(
    kube: Kube, namespace: str, change: dict[str, Any], error: str
) -> None:
    kube.create(DEPLOYMENTS, deployment("podinfo", "ghcr.io/stefanprodan/podinfo:6.0.0"))
    doc = canary_doc(namespace)
    doc["spec"].update(change)
    store.apply_canary(kube, doc, namespace)
    with pytest.raises(InvalidInput, match=error):
        initialize(kube, "podinfo", namespace, lambda _r: None, timeout=30)
    assert kube.get_or_none(DEPLOYMENTS, "podinfo-primary") is None


def test_a_metric_templates_headers_go_with_its_queries(kube: Kube, namespace: str, httpx_mock: Any) -> None:
    """Flagger sends a MetricTemplate's ``provider.headers`` (an http.Header: lists of values)
    with its queries, e.g. a Mimir tenant (pkg/metrics/providers/prometheus.go)."""
    from datetime import UTC, datetime

    from progdel.canary.runner import RunOptions
    from progdel.config.canary import parse_canary, parse_metric_template

    template = parse_metric_template(
        {
            "apiVersion": "flagger.app/v1beta1",
            "kind": "MetricTemplate",
            "metadata": {"name": "errors", "namespace": namespace},
            "spec": {
                "provider": {
                    "type": "prometheus",
                    "address": "http://127.0.0.1:9009/prometheus",
                    "headers": {"X-Scope-OrgID": ["tenant-a"], "X-Extra": ["a", "b"]},
                },
                "query": "vector(1)",
            },
        },
        "test",
    )
    doc = canary_doc(namespace)
    doc["spec"]["analysis"]["metrics"] = [
        {"name": "errors", "templateRef": {"name": "errors"}, "thresholdRange": {"max": 5}}
    ]
    httpx_mock.add_response(
        match_headers={"X-Scope-OrgID": "tenant-a", "X-Extra": "a, b"},
        json={
            "status": "success",
            "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1, "1"]}]},
        },
    )
    runner = runner_for(kube, "podinfo", namespace, lambda _r: None, RunOptions(templates=[template]))
    results = runner.measure(parse_canary(doc, "test").model, datetime.now(UTC))
    assert results["errors"].value == 1.0
    assert str(httpx_mock.get_requests()[0].url).startswith("http://127.0.0.1:9009/prometheus/api/v1/query")
