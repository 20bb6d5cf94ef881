"""Bad input gets Kubernetes Status bodies with the real server's codes and wording."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client import ApiException

from progdel.sandbox.server import SandboxServer


def test_malformed_json_is_400(sandbox: SandboxServer, namespace: str) -> None:
    with sandbox.http_client() as http:
        r = http.post(
            f"/api/v1/namespaces/{namespace}/configmaps",
            content=b"{not json",
            headers={"Content-Type": "application/json"},
        )
    assert r.status_code == 400
    body = r.json()
    assert body["kind"] == "Status" and body["reason"] == "BadRequest" and body["code"] == 400


def test_unknown_resource_is_404(sandbox: SandboxServer) -> None:
    with sandbox.http_client() as http:
        r = http.get("/apis/apps/v1/namespaces/default/widgets")
    assert r.status_code == 404 and r.json()["reason"] == "NotFound"


def test_method_not_allowed(sandbox: SandboxServer) -> None:
    with sandbox.http_client() as http:
        r = http.post("/api/v1/namespaces/default/configmaps/x", json={})
    assert r.status_code == 405 and r.json()["reason"] == "MethodNotAllowed"


def test_missing_namespace_is_404_naming_it(api_client: Any) -> None:
    core = client.CoreV1Api(api_client)
    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map("nope", {"metadata": {"name": "x"}})
    assert err.value.status == 404
    assert json.loads(err.value.body)["message"] == 'namespaces "nope" not found'


def test_already_exists_is_409(api_client: Any, namespace: str) -> None:
    core = client.CoreV1Api(api_client)
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "x"}})
    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map(namespace, {"metadata": {"name": "x"}})
    assert err.value.status == 409
    assert json.loads(err.value.body)["reason"] == "AlreadyExists"


def test_invalid_name_is_422(api_client: Any, namespace: str) -> None:
    core = client.CoreV1Api(api_client)
    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map(namespace, {"metadata": {"name": "Bad_Name"}})
    status = json.loads(err.value.body)
    assert err.value.status == 422 and status["reason"] == "Invalid"
    assert status["details"]["causes"][0]["field"] == "metadata.name"


def test_canary_missing_required_field_is_422(api_client: Any, namespace: str) -> None:
    co = client.CustomObjectsApi(api_client)
    canary = {
        "apiVersion": "flagger.app/v1beta1",
        "kind": "Canary",
        "metadata": {"name": "podinfo"},
        "spec": {"service": {"port": 9898}, "analysis": {"interval": "1m", "threshold": 5, "iterations": 3}},
    }
    with pytest.raises(ApiException) as err:
        co.create_namespaced_custom_object("flagger.app", "v1beta1", namespace, "canaries", canary)
    status = json.loads(err.value.body)
    assert err.value.status == 422
    # Flagger's CRD has CEL rules: a missing field keeps them from running, and the server says so.
    assert [c["field"] for c in status["details"]["causes"]] == ["spec.targetRef", "<nil>"]
    assert status["message"] == (
        'Canary.flagger.app "podinfo" is invalid: [spec.targetRef: Required value, <nil>: Invalid value: '
        "null: some validation rules were not checked because the object was invalid; correct the existing "
        "errors to complete validation]"
    )


def test_health_endpoints(sandbox: SandboxServer) -> None:
    with sandbox.http_client() as http:
        for path in ("/healthz", "/readyz", "/livez"):
            assert http.get(path).text == "ok"
