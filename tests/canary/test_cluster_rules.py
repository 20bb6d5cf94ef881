"""What a real API server refuses, asked before `canary init` writes anything, and what progdel
writes so that a real server accepts it (Services it does not own, names, exported Canaries)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from progdel.canary import store
from progdel.canary.preflight import PlannedKube
from progdel.kube.client import Kube, connect
from progdel.kube.resources import CANARIES, DEPLOYMENTS, SERVICES, Resource
from tests.canary.test_runner_integration import canary_doc, deployment
from tests.sandbox.test_rbac import add_token, unique


@pytest.fixture
def kube(sandbox: Any, namespace: str) -> Kube:
    return connect(str(sandbox.kubeconfig), None, namespace)


def init(
    kubeconfig: Path, namespace: str, doc: dict[str, Any], tmp_path: Path
) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "canary.yaml"
    path.write_text(yaml.safe_dump(doc))
    return subprocess.run(
        [sys.executable, "-m", "progdel", "--kubeconfig", str(kubeconfig), "-n", namespace, "-o", "ndjson",
         "canary", "init", "-f", str(path), "--timeout", "30"],
        capture_output=True, text=True, timeout=90,
    )  # fmt: skip


def restricted_kubeconfig(sandbox: Any, kube: Kube, namespace: str, tmp_path: Path) -> Path:
    """A user who may read everything and write everything but Services."""
    role = Resource("rbac.authorization.k8s.io", "v1", "roles", "Role")
    binding = Resource("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding")
    user = add_token(sandbox, unique("no-services"))
    rules = [
        {"apiGroups": ["*"], "resources": ["*"], "verbs": ["get", "list"]},
        {
            "apiGroups": ["apps", "flagger.app", "networking.istio.io", "coordination.k8s.io", ""],
            "resources": ["deployments", "canaries", "canaries/status", "destinationrules", "virtualservices",
                          "leases", "events"],
            "verbs": ["create", "update", "patch"],
        },
    ]  # fmt: skip
    kube.create(role, {"metadata": {"name": "most"}, "rules": rules}, namespace)
    kube.create(
        binding,
        {
            "metadata": {"name": "most"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "most"},
            "subjects": [{"kind": "User", "name": user.name}],
        },
        namespace,
    )
    config = yaml.safe_load(Path(sandbox.kubeconfig).read_text())
    config["users"][0]["user"]["token"] = user.token
    path = tmp_path / "restricted-kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return path


def test_init_writes_nothing_when_the_server_refuses_one_object(
    sandbox: Any, kube: Kube, namespace: str, tmp_path: Path
) -> None:
    kube.create(DEPLOYMENTS, deployment("podinfo", "ghcr.io/stefanprodan/podinfo:6.0.0"))
    kubeconfig = restricted_kubeconfig(sandbox, kube, namespace, tmp_path)
    done = init(kubeconfig, namespace, canary_doc(namespace), tmp_path)
    assert done.returncode == 2, done.stderr
    assert "the cluster refuses what canary init would write (nothing was written)" in done.stderr
    for name in ("podinfo", "podinfo-primary", "podinfo-canary"):
        assert f"Service {name}: forbidden" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    assert kube.get_or_none(CANARIES, "podinfo") is None, "not even the Canary"
    assert kube.get_or_none(DEPLOYMENTS, "podinfo-primary") is None
    assert kube.get(DEPLOYMENTS, "podinfo")["spec"]["replicas"] == 2

    admin = init(Path(sandbox.kubeconfig), namespace, canary_doc(namespace), tmp_path)
    assert admin.returncode == 0, admin.stderr


def test_an_existing_load_balancer_keeps_its_type_node_ports_and_other_ports(
    sandbox: Any, kube: Kube, namespace: str, tmp_path: Path
) -> None:
    kube.create(DEPLOYMENTS, deployment("podinfo", "ghcr.io/stefanprodan/podinfo:6.0.0"))
    kube.create(
        SERVICES,
        {
            "metadata": {"name": "podinfo"},
            "spec": {
                "type": "LoadBalancer",
                "selector": {"app": "podinfo"},
                "loadBalancerSourceRanges": ["10.0.0.0/8"],
                "ports": [
                    {"name": "http", "port": 9898, "targetPort": 9898, "nodePort": 30898, "protocol": "TCP"},
                    {
                        "name": "metrics",
                        "port": 9797,
                        "targetPort": 9797,
                        "nodePort": 30797,
                        "protocol": "TCP",
                    },
                ],
            },
        },
    )
    done = init(Path(sandbox.kubeconfig), namespace, canary_doc(namespace), tmp_path)
    assert done.returncode == 0, done.stderr
    spec = kube.get(SERVICES, "podinfo")["spec"]
    assert spec["type"] == "LoadBalancer" and spec["loadBalancerSourceRanges"] == ["10.0.0.0/8"]
    assert [(p["name"], p["port"], p["nodePort"]) for p in spec["ports"]] == [
        ("http", 9898, 30898),
        ("metrics", 9797, 30797),
    ]
    assert spec["selector"] == {"app": "podinfo-primary"}, "the apex now sends to the primary"
    assert kube.get(SERVICES, "podinfo-canary")["spec"]["type"] == "ClusterIP"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"service": {"port": 9898, "name": "a" * 56}}, "is not a DNS label"),
        ({"service": {"port": 9898, "name": "1podinfo"}}, "Service name '1podinfo' is not a DNS label"),
    ],
)
def test_names_a_server_refuses_are_spec_errors_before_anything_is_written(
    sandbox: Any, kube: Kube, namespace: str, tmp_path: Path, change: dict[str, Any], message: str
) -> None:
    kube.create(DEPLOYMENTS, deployment("podinfo", "ghcr.io/stefanprodan/podinfo:6.0.0"))
    doc = canary_doc(namespace)
    doc["spec"].update(change)
    done = init(Path(sandbox.kubeconfig), namespace, doc, tmp_path)
    assert done.returncode == 2 and message in done.stderr, done.stderr
    assert kube.get_or_none(CANARIES, "podinfo") is None
    assert kube.items(SERVICES) == []


def test_a_selector_label_too_long_for_the_primary_is_refused(
    sandbox: Any, kube: Kube, namespace: str, tmp_path: Path
) -> None:
    app = "p" * 60
    dep = deployment("podinfo", "ghcr.io/stefanprodan/podinfo:6.0.0")
    dep["spec"]["selector"]["matchLabels"]["app"] = app
    dep["spec"]["template"]["metadata"]["labels"]["app"] = app
    kube.create(DEPLOYMENTS, dep)
    done = init(Path(sandbox.kubeconfig), namespace, canary_doc(namespace), tmp_path)
    assert done.returncode == 2, done.stderr
    assert f"would be labelled app='{app}-primary'" in done.stderr
    assert kube.get_or_none(CANARIES, "podinfo") is None


def test_an_exported_canary_applies_without_its_server_set_metadata(
    sandbox: Any, kube: Kube, namespace: str, tmp_path: Path
) -> None:
    kube.create(DEPLOYMENTS, deployment("podinfo", "ghcr.io/stefanprodan/podinfo:6.0.0"))
    doc = canary_doc(namespace)
    doc["metadata"].update(
        resourceVersion="12345",
        uid="0b9c3c4e-1111-2222-3333-444455556666",
        creationTimestamp="2024-01-01T00:00:00Z",
        generation=3,
        managedFields=[
            {"manager": "kubectl", "operation": "Update", "fieldsType": "FieldsV1", "fieldsV1": {}}
        ],
    )
    doc["status"] = {"phase": "Succeeded"}
    planned = PlannedKube(kube)  # what apply_canary sends: a real server refuses a create with a
    store.apply_canary(planned, doc, namespace)  # resourceVersion
    sent = planned.get(CANARIES, "podinfo", namespace)
    assert set(sent["metadata"]) == {"name", "namespace"} and "status" not in sent
    done = init(Path(sandbox.kubeconfig), namespace, doc, tmp_path)
    assert done.returncode == 0, done.stderr
    stored = kube.get(CANARIES, "podinfo")
    assert stored["metadata"]["uid"] != doc["metadata"]["uid"]
    assert stored["status"]["phase"] == "Initialized"


def test_check_lists_what_the_server_refuses_in_a_dry_run(
    sandbox: Any, kube: Kube, namespace: str, tmp_path: Path
) -> None:
    kube.create(DEPLOYMENTS, deployment("podinfo", "ghcr.io/stefanprodan/podinfo:6.0.0"))
    kubeconfig = restricted_kubeconfig(sandbox, kube, namespace, tmp_path)
    path = tmp_path / "canary.yaml"
    path.write_text(yaml.safe_dump(canary_doc(namespace)))
    done = subprocess.run(
        [sys.executable, "-m", "progdel", "--kubeconfig", str(kubeconfig), "-n", namespace, "-o", "json",
         "canary", "check", "-f", str(path), "--prometheus-url", "http://127.0.0.1:9"],
        capture_output=True, text=True, timeout=90,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    report = json.loads(done.stdout)
    refused = report["cluster"]["refused"]
    assert [r.split(":")[0] for r in refused] == [  # in the order init writes them, Flagger's
        "Service podinfo-canary",
        "Service podinfo-primary",
        "Service podinfo",
    ]
    assert all("forbidden" in r for r in refused)
    assert kube.items(SERVICES) == [] and kube.get_or_none(CANARIES, "podinfo") is None
