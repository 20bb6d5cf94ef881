"""Webhook configurations, PodDisruptionBudgets, PVCs, Ingresses and NetworkPolicies: stored, validated,
defaulted and printed as a real API server does (nothing acts on them).

The objects are those Istio's charts render (``manifests/charts/base`` and ``istio-discovery`` at
1.27.1, in ``../shared/charts-mirror``), trimmed to what each check needs.
"""

from __future__ import annotations

import shutil
import subprocess
import uuid
from typing import Any

import pytest

from progdel.kube.errors import KubeError
from progdel.kube.resources import Resource

VWC = Resource(
    "admissionregistration.k8s.io", "v1", "validatingwebhookconfigurations", "ValidatingWebhookConfiguration",
    namespaced=False,
)  # fmt: skip
MWC = Resource(
    "admissionregistration.k8s.io", "v1", "mutatingwebhookconfigurations", "MutatingWebhookConfiguration",
    namespaced=False,
)  # fmt: skip
PDB = Resource("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget")
PVC = Resource("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim")
INGRESS = Resource("networking.k8s.io", "v1", "ingresses", "Ingress")
NETPOL = Resource("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy")


@pytest.fixture
def kube(sandbox: Any) -> Any:
    from progdel.kube.client import connect

    return connect(str(sandbox.kubeconfig))


def validator(config: str, **hook: Any) -> dict[str, Any]:
    webhook = {
        "name": "validation.istio.io",
        "clientConfig": {"service": {"name": "istiod", "namespace": "istio-system", "path": "/validate"}},
        "rules": [
            {
                "operations": ["CREATE", "UPDATE"],
                "apiGroups": ["networking.istio.io"],
                "apiVersions": ["*"],
                "resources": ["*"],
            }
        ],
        "failurePolicy": "Ignore",
        "sideEffects": "None",
        "admissionReviewVersions": ["v1"],
        **hook,
    }
    return {"metadata": {"name": config}, "webhooks": [webhook]}


def test_webhook_configuration_gets_the_servers_defaults(kube: Any) -> None:
    name = f"istiod-{uuid.uuid4().hex[:6]}"
    created = kube.create(VWC, validator(name))
    try:
        hook = created["webhooks"][0]
        assert hook["failurePolicy"] == "Ignore"  # as written
        assert hook["matchPolicy"] == "Equivalent"
        assert hook["namespaceSelector"] == {} and hook["objectSelector"] == {}
        assert hook["timeoutSeconds"] == 10
        assert hook["clientConfig"]["service"]["port"] == 443
        assert hook["rules"][0]["scope"] == "*"
        assert created["metadata"]["generation"] == 1
    finally:
        kube.delete(VWC, name, missing_ok=True)

    mutating = validator(name, reinvocationPolicy=None)
    del mutating["webhooks"][0]["reinvocationPolicy"]
    created = kube.create(MWC, mutating)
    try:
        assert created["webhooks"][0]["reinvocationPolicy"] == "Never"
    finally:
        kube.delete(MWC, name, missing_ok=True)


@pytest.mark.parametrize(
    ("hook", "message"),
    [
        ({"sideEffects": "Some"}, 'webhooks[0].sideEffects: Unsupported value: "Some"'),
        ({"failurePolicy": "Maybe"}, 'webhooks[0].failurePolicy: Unsupported value: "Maybe"'),
        ({"timeoutSeconds": 31}, "webhooks[0].timeoutSeconds: Invalid value: 31"),
        ({"name": "validation"}, "should be a domain with at least three segments"),
        ({"clientConfig": {}}, "exactly one of url or service is required"),
        ({"admissionReviewVersions": ["v2"]}, "must include at least one of v1, v1beta1"),
    ],
)
def test_invalid_webhook_configurations_are_refused(kube: Any, hook: dict[str, Any], message: str) -> None:
    with pytest.raises(KubeError) as err:
        kube.create(VWC, validator(f"bad-{uuid.uuid4().hex[:6]}", **hook))
    assert err.value.status == 422
    assert message in str(err.value)


def test_webhooks_are_merged_by_name_in_server_side_apply(kube: Any, api_client: Any) -> None:
    """istiod writes failurePolicy and caBundle into the chart's webhook: the chart's other fields stay
    the applier's, and only what istiod changed becomes istiod's (``listType=map``, key ``name``)."""
    name = f"istiod-{uuid.uuid4().hex[:6]}"
    from kubernetes import client

    kube.apply(VWC, validator(name), field_manager="helm")
    try:
        live = kube.get(VWC, name)
        live["webhooks"][0]["failurePolicy"] = "Fail"
        live["webhooks"][0]["clientConfig"]["caBundle"] = "Q0E="
        api = client.AdmissionregistrationV1Api(api_client)
        api.replace_validating_webhook_configuration(name, live, field_manager="pilot-discovery")
        entries = {e["manager"]: e["fieldsV1"] for e in kube.get(VWC, name)["metadata"]["managedFields"]}
        key = 'k:{"name":"validation.istio.io"}'
        assert "f:failurePolicy" in entries["pilot-discovery"]["f:webhooks"][key]
        assert "f:failurePolicy" not in entries["helm"]["f:webhooks"][key]
        assert "f:sideEffects" in entries["helm"]["f:webhooks"][key]
    finally:
        kube.delete(VWC, name, missing_ok=True)


def test_pod_disruption_budget(kube: Any, namespace: str) -> None:
    selector = {"matchLabels": {"app": "istiod"}}
    created = kube.create(
        PDB, {"metadata": {"name": "istiod"}, "spec": {"minAvailable": 1, "selector": selector}}, namespace
    )
    assert created["spec"]["minAvailable"] == 1 and created["metadata"]["generation"] == 1
    with pytest.raises(KubeError) as err:
        kube.create(
            PDB,
            {"metadata": {"name": "both"}, "spec": {"minAvailable": 1, "maxUnavailable": "50%"}},
            namespace,
        )
    assert err.value.status == 422 and "minAvailable and maxUnavailable cannot be both set" in str(err.value)


def test_claims_ingresses_and_network_policies(kube: Any, namespace: str) -> None:
    claim = {
        "metadata": {"name": "prometheus"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "8Gi"}}},
    }
    created = kube.create(PVC, claim, namespace)
    assert created["status"] == {"phase": "Pending"}  # no provisioner binds a volume
    assert created["spec"]["volumeMode"] == "Filesystem"
    with pytest.raises(KubeError) as err:
        kube.create(PVC, {"metadata": {"name": "x"}, "spec": {"resources": {"requests": {}}}}, namespace)
    assert "spec.accessModes: Required value" in str(err.value)

    backend = {"service": {"name": "prometheus", "port": {"number": 9090}}}
    rule = {
        "host": "prom.example.com",
        "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": backend}]},
    }
    created = kube.create(INGRESS, {"metadata": {"name": "prometheus"}, "spec": {"rules": [rule]}}, namespace)
    assert created["status"] == {"loadBalancer": {}}
    rule["http"]["paths"][0]["pathType"] = "Sometimes"
    with pytest.raises(KubeError) as err:
        kube.create(INGRESS, {"metadata": {"name": "bad"}, "spec": {"rules": [rule]}}, namespace)
    assert "pathType: Unsupported value" in str(err.value)

    policy = {
        "metadata": {"name": "prometheus"},
        "spec": {"podSelector": {}, "ingress": [{"ports": [{"port": 9090}]}]},
    }
    created = kube.create(NETPOL, policy, namespace)
    assert created["spec"]["policyTypes"] == ["Ingress"]
    assert created["spec"]["ingress"][0]["ports"][0]["protocol"] == "TCP"


def test_kubectl_prints_them_as_a_real_cluster_does(sandbox: Any, kube: Any, namespace: str) -> None:
    exe = shutil.which("kubectl")
    if exe is None:
        pytest.skip("kubectl is not on PATH")
    name = f"istiod-{uuid.uuid4().hex[:6]}"
    kube.create(VWC, validator(name))
    kube.create(PDB, {"metadata": {"name": "gw"}, "spec": {"maxUnavailable": 1}}, namespace)

    def get(*what: str) -> str:
        return subprocess.run(
            [exe, "--kubeconfig", str(sandbox.kubeconfig), "-n", namespace, "get", *what],
            capture_output=True, text=True, timeout=30, check=True,
        ).stdout  # fmt: skip

    try:
        out = get(f"validatingwebhookconfiguration/{name}") + get("pdb")
    finally:
        kube.delete(VWC, name, missing_ok=True)
    lines = [line.split() for line in out.splitlines() if line.strip()]
    assert lines[0] == ["NAME", "WEBHOOKS", "AGE"]
    assert lines[1][:2] == [name, "1"]
    assert lines[2] == ["NAME", "MIN", "AVAILABLE", "MAX", "UNAVAILABLE", "ALLOWED", "DISRUPTIONS", "AGE"]
    assert lines[3][:4] == ["gw", "N/A", "1", "0"]
