"""Custom objects held to their CRDs as kube-apiserver holds them: pruning, defaulting, fieldValidation,
dry runs, CEL rules, create with a resourceVersion. Through the real kubernetes client, raw HTTP (to
read ``Warning`` headers and send duplicate fields) and the real kubectl.

Follows apiextensions-apiserver's ``test/integration/pruning_test.go``, ``defaulting_test.go`` and
``fieldvalidation_test.go`` (apiserver), with the bundled Flagger and Gateway API CRDs.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, watch
from kubernetes.client import ApiException

from progdel.sandbox.server import SandboxServer

FLAGGER = ("flagger.app", "v1beta1")
ROUTES = ("gateway.networking.k8s.io", "v1")


def canary(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "flagger.app/v1beta1",
        "kind": "Canary",
        "metadata": {"name": name},
        "spec": {
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "service": {"port": 80},
            "analysis": {"interval": "1m", "threshold": 5, "maxWeight": 50, "stepWeight": 10},
            **spec,
        },
    }


def route(name: str, rules: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": name},
        "spec": {"parentRefs": [{"name": "gw"}], "rules": rules},
    }


def status_of(err: ApiException) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(err.body)
    return body


@pytest.fixture
def custom(api_client: Any) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api_client)


# ---- pruning ----------------------------------------------------------------------------------
def test_every_write_path_prunes_what_the_schema_does_not_declare(
    custom: client.CustomObjectsApi, namespace: str
) -> None:
    obj = canary("web", unknownSpec=1)
    obj["metadata"]["bogus"] = "x"
    obj["spec"]["analysis"]["unknownAnalysis"] = True
    created = custom.create_namespaced_custom_object(*FLAGGER, namespace, "canaries", obj)
    assert "unknownSpec" not in created["spec"] and "unknownAnalysis" not in created["spec"]["analysis"]
    assert "bogus" not in created["metadata"]

    created["spec"]["viaPut"] = 1
    replaced = custom.replace_namespaced_custom_object(*FLAGGER, namespace, "canaries", "web", created)
    assert "viaPut" not in replaced["spec"]

    merged = custom.patch_namespaced_custom_object(
        *FLAGGER, namespace, "canaries", "web", {"spec": {"viaMerge": 1}}
    )
    assert "viaMerge" not in merged["spec"]

    patched = custom.patch_namespaced_custom_object(
        *FLAGGER,
        namespace,
        "canaries",
        "web",
        [{"op": "add", "path": "/spec/viaJsonPatch", "value": 1}],
        _content_type="application/json-patch+json",
    )
    assert "viaJsonPatch" not in patched["spec"]

    status = custom.patch_namespaced_custom_object_status(
        *FLAGGER,
        namespace,
        "canaries",
        "web",
        {"status": {"phase": "Progressing", "canaryWeight": 10, "progdelOwn": 1}},
    )
    assert status["status"] == {"phase": "Progressing", "canaryWeight": 10}
    stored = custom.get_namespaced_custom_object(*FLAGGER, namespace, "canaries", "web")
    assert stored["status"] == {"phase": "Progressing", "canaryWeight": 10}
    assert set(stored["spec"]) == {"targetRef", "service", "analysis"}


def test_server_side_apply_refuses_an_undeclared_field_with_the_typed_patch_error(
    sandbox: SandboxServer, namespace: str
) -> None:
    url = f"{sandbox.url}/apis/flagger.app/v1beta1/namespaces/{namespace}/canaries/applied?fieldManager=test"
    apply = {"Content-Type": "application/apply-patch+yaml"}
    obj = canary("applied", extra="x")
    with sandbox.http_client() as http:
        refused = http.patch(url, content=json.dumps(obj), headers=apply)
        assert refused.status_code == 500
        assert refused.json()["message"] == (
            f"failed to create typed patch object ({namespace}/applied; flagger.app/v1beta1, Kind=Canary): "
            ".spec.extra: field not declared in schema"
        )
        del obj["spec"]["extra"]
        applied = http.patch(url, content=json.dumps(obj), headers=apply)
        assert applied.status_code == 201
        assert applied.json()["spec"]["service"] == {"port": 80}


def test_strategic_merge_patch_of_a_custom_object_is_415(sandbox: SandboxServer, namespace: str) -> None:
    url = f"{sandbox.url}/apis/flagger.app/v1beta1/namespaces/{namespace}/canaries"
    with sandbox.http_client() as http:
        assert http.post(url, json=canary("smp")).status_code == 201
        answer = http.patch(
            url + "/smp",
            json={"spec": {"skipAnalysis": True}},
            headers={"Content-Type": "application/strategic-merge-patch+json"},
        )
    assert answer.status_code == 415
    assert answer.json()["message"] == (
        "the body of the request was in an unknown format - accepted media types include: "
        "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
    )


def test_defaults_are_applied_on_write(custom: client.CustomObjectsApi, namespace: str) -> None:
    created = custom.create_namespaced_custom_object(
        *ROUTES, namespace, "httproutes", route("defaulted", [{"backendRefs": [{"name": "web", "port": 80}]}])
    )
    assert created["spec"]["parentRefs"] == [
        {"name": "gw", "group": "gateway.networking.k8s.io", "kind": "Gateway"}
    ]
    rule = created["spec"]["rules"][0]
    assert rule["matches"] == [{"path": {"type": "PathPrefix", "value": "/"}}]
    assert rule["backendRefs"][0] == {"name": "web", "port": 80, "group": "", "kind": "Service", "weight": 1}


def test_objects_stored_under_an_older_schema_are_pruned_and_defaulted_on_read(
    api_client: Any, namespace: str
) -> None:
    ext = client.ApiextensionsV1Api(api_client)
    custom = client.CustomObjectsApi(api_client)
    group = f"{namespace}.example.com"

    def crd(props: dict[str, Any]) -> dict[str, Any]:
        return {
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": f"widgets.{group}"},
            "spec": {
                "group": group,
                "scope": "Namespaced",
                "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
                "versions": [
                    {
                        "name": "v1",
                        "served": True,
                        "storage": True,
                        "schema": {
                            "openAPIV3Schema": {
                                "type": "object",
                                "properties": {"spec": {"type": "object", "properties": props}},
                            }
                        },
                    }
                ],
            },
        }

    ext.create_custom_resource_definition(crd({"old": {"type": "string"}, "kept": {"type": "string"}}))
    try:
        widget = {"apiVersion": f"{group}/v1", "kind": "Widget", "metadata": {"name": "w"}}
        widget["spec"] = {"old": "a", "kept": "b"}
        custom.create_namespaced_custom_object(group, "v1", namespace, "widgets", widget)
        current = crd({"kept": {"type": "string"}, "added": {"type": "string", "default": "d"}})
        current["metadata"]["resourceVersion"] = ext.read_custom_resource_definition(
            f"widgets.{group}"
        ).metadata.resource_version
        ext.replace_custom_resource_definition(f"widgets.{group}", current)
        read = custom.get_namespaced_custom_object(group, "v1", namespace, "widgets", "w")
        assert read["spec"] == {"kept": "b", "added": "d"}
        listed = custom.list_namespaced_custom_object(group, "v1", namespace, "widgets")
        assert listed["items"][0]["spec"] == {"kept": "b", "added": "d"}
    finally:
        ext.delete_custom_resource_definition(f"widgets.{group}")


# ---- fieldValidation ----------------------------------------------------------------------------
def test_field_validation_warn_is_the_default_and_answers_with_warning_headers(
    sandbox: SandboxServer, namespace: str
) -> None:
    url = f"{sandbox.url}/apis/flagger.app/v1beta1/namespaces/{namespace}/canaries"
    obj = canary("warned", foo=1)
    obj["status"] = {"phase": "Initialized"}
    with sandbox.http_client() as http:
        answer = http.post(url, json=obj)
        assert answer.status_code == 201
        assert answer.headers.get_list("warning") == ['299 - "unknown field \\"spec.foo\\""']
        quiet = http.post(url + "?fieldValidation=Ignore", json=canary("ignored", foo=1))
        assert quiet.status_code == 201 and "warning" not in quiet.headers
        merged = http.patch(
            url + "/warned",
            content=b'{"spec": {"bar": 1, "skipAnalysis": true, "skipAnalysis": false}}',
            headers={"Content-Type": "application/merge-patch+json"},
        )
        assert merged.status_code == 200
        assert merged.headers.get_list("warning") == [
            '299 - "duplicate field \\"spec.skipAnalysis\\""',
            '299 - "unknown field \\"spec.bar\\""',
        ]
        assert merged.json()["spec"]["skipAnalysis"] is False


def test_field_validation_strict_refuses_with_the_real_messages(
    sandbox: SandboxServer, namespace: str
) -> None:
    url = f"{sandbox.url}/apis/flagger.app/v1beta1/namespaces/{namespace}/canaries"
    with sandbox.http_client() as http:
        created = http.post(url + "?fieldValidation=Strict", json=canary("strict", foo=1))
        assert created.status_code == 400
        assert created.json()["message"] == (
            'Canary in version "v1beta1" cannot be handled as a Canary: '
            'strict decoding error: unknown field "spec.foo"'
        )
        duplicate = http.post(
            url + "?fieldValidation=Strict",
            content=json.dumps(canary("dup"))[:-1].encode() + b', "kind": "Canary"}',
            headers={"Content-Type": "application/json"},
        )
        assert duplicate.status_code == 400
        assert duplicate.json()["message"].endswith('strict decoding error: duplicate field "kind"')
        assert http.post(url, json=canary("strict")).status_code == 201
        patched = http.patch(
            url + "/strict?fieldValidation=Strict",
            json={"spec": {"foo": 1}},
            headers={"Content-Type": "application/merge-patch+json"},
        )
        assert patched.status_code == 422
        message = patched.json()["message"]
        assert message.startswith(' "" is invalid: patch: Invalid value: "{')
        assert message.endswith('": strict decoding error: unknown field "spec.foo"')
        assert "foo" not in http.get(url + "/strict").json()["spec"]


def test_unsupported_dry_run_and_field_validation_values_are_invalid_options(
    sandbox: SandboxServer, namespace: str
) -> None:
    url = f"{sandbox.url}/apis/flagger.app/v1beta1/namespaces/{namespace}/canaries"
    with sandbox.http_client() as http:
        answer = http.post(url + "?dryRun=Yes", json=canary("opts"))
        assert answer.status_code == 422
        assert answer.json()["message"] == (
            'CreateOptions.meta.k8s.io "" is invalid: '
            'dryRun: Unsupported value: ["Yes"]: supported values: "All"'
        )
        answer = http.patch(
            url + "/opts?fieldValidation=Loud",
            json={},
            headers={"Content-Type": "application/merge-patch+json"},
        )
        assert answer.status_code == 422
        assert answer.json()["message"] == (
            'PatchOptions.meta.k8s.io "" is invalid: fieldValidation: Unsupported value: "Loud": '
            'supported values: "", "Ignore", "Strict", "Warn"'
        )


# ---- dry runs -----------------------------------------------------------------------------------
def test_dry_run_validates_defaults_and_answers_but_stores_nothing(
    api_client: Any, custom: client.CustomObjectsApi, namespace: str
) -> None:
    before = custom.list_namespaced_custom_object(*ROUTES, namespace, "httproutes")["metadata"][
        "resourceVersion"
    ]
    events: list[str] = []
    w = watch.Watch()

    def collect() -> None:
        for ev in w.stream(
            custom.list_namespaced_custom_object,
            *ROUTES,
            namespace,
            "httproutes",
            resource_version=before,
            timeout_seconds=5,
        ):
            events.append(ev["type"])

    watcher = threading.Thread(target=collect)
    watcher.start()
    answer = custom.create_namespaced_custom_object(
        *ROUTES,
        namespace,
        "httproutes",
        route("dry", [{"backendRefs": [{"name": "web", "port": 80}]}]),
        dry_run="All",
    )
    assert answer["spec"]["parentRefs"][0]["kind"] == "Gateway"
    assert answer["metadata"]["uid"] and "resourceVersion" not in answer["metadata"]
    with pytest.raises(ApiException) as err:
        custom.get_namespaced_custom_object(*ROUTES, namespace, "httproutes", "dry")
    assert err.value.status == 404
    with pytest.raises(ApiException) as err:
        custom.create_namespaced_custom_object(
            *ROUTES,
            namespace,
            "httproutes",
            route("dry", [{"backendRefs": [{"name": "web"}]}]),
            dry_run="All",
        )
    assert (
        err.value.status == 422 and "Must have port for Service reference" in status_of(err.value)["message"]
    )

    custom.create_namespaced_custom_object(*ROUTES, namespace, "httproutes", route("real", []))
    after_create = custom.list_namespaced_custom_object(*ROUTES, namespace, "httproutes")["metadata"][
        "resourceVersion"
    ]
    changed = custom.patch_namespaced_custom_object(
        *ROUTES, namespace, "httproutes", "real", {"spec": {"hostnames": ["a.example.com"]}}, dry_run="All"
    )
    assert changed["spec"]["hostnames"] == ["a.example.com"]
    custom.delete_namespaced_custom_object(*ROUTES, namespace, "httproutes", "real", dry_run="All")
    stored = custom.get_namespaced_custom_object(*ROUTES, namespace, "httproutes", "real")
    assert "hostnames" not in stored["spec"]
    assert (
        custom.list_namespaced_custom_object(*ROUTES, namespace, "httproutes")["metadata"]["resourceVersion"]
        == after_create
    )
    watcher.join()
    w.stop()
    assert events == ["ADDED"]  # the real create only


def test_create_with_a_resource_version_is_refused_as_the_storage_layer_refuses_it(
    custom: client.CustomObjectsApi, namespace: str
) -> None:
    exported = canary("exported")
    exported["metadata"]["resourceVersion"] = "12345"
    with pytest.raises(ApiException) as err:
        custom.create_namespaced_custom_object(*FLAGGER, namespace, "canaries", exported)
    assert err.value.status == 500
    body = status_of(err.value)
    assert body["message"] == "resourceVersion should not be set on objects to be created"
    assert "reason" not in body
    assert custom.create_namespaced_custom_object(*FLAGGER, namespace, "canaries", exported, dry_run="All")


# ---- CEL validation rules (Gateway API v1.3.0) --------------------------------------------------
HEADERS = {
    "type": "ResponseHeaderModifier",
    "responseHeaderModifier": {"add": [{"name": "X-A", "value": "1"}]},
}
CEL_CASES = [
    (
        "a second ResponseHeaderModifier on a backendRef",
        [{"backendRefs": [{"name": "web", "port": 80, "filters": [HEADERS, HEADERS]}]}],
        "spec.rules[0].backendRefs[0].filters: "
        "Invalid value: ResponseHeaderModifier filter cannot be repeated",
    ),
    (
        "a URLRewrite with replacePrefixMatch on a rule with several matches",
        [
            {
                "matches": [
                    {"path": {"type": "PathPrefix", "value": "/a"}},
                    {"headers": [{"name": "x", "value": "1"}]},
                ],
                "filters": [
                    {
                        "type": "URLRewrite",
                        "urlRewrite": {"path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/"}},
                    }
                ],
                "backendRefs": [{"name": "web", "port": 80}],
            }
        ],
        "spec.rules[0]: Invalid value: When using URLRewrite filter with path.replacePrefixMatch, "
        "exactly one PathPrefix match must be specified",
    ),
    (
        "duplicate header names in a match",
        [
            {
                "matches": [
                    {"headers": [{"name": "x-canary", "value": "1"}, {"name": "x-canary", "value": "2"}]}
                ],
                "backendRefs": [{"name": "web", "port": 80}],
            }
        ],
        'spec.rules[0].matches[0].headers[1]: Duplicate value: {"name":"x-canary"}',
    ),
]


@pytest.mark.parametrize(("rules", "message"), [c[1:] for c in CEL_CASES], ids=[c[0] for c in CEL_CASES])
def test_gateway_api_rules_refuse_with_422(
    custom: client.CustomObjectsApi, namespace: str, rules: list[dict[str, Any]], message: str
) -> None:
    with pytest.raises(ApiException) as err:
        custom.create_namespaced_custom_object(*ROUTES, namespace, "httproutes", route("refused", rules))
    assert err.value.status == 422
    body = status_of(err.value)
    assert body["message"] == f'HTTPRoute.gateway.networking.k8s.io "refused" is invalid: {message}'
    field, _, detail = message.partition(": ")
    assert {"field": field, "message": detail} in [
        {"field": c["field"], "message": c["message"]} for c in body["details"]["causes"]
    ]


def test_a_valid_route_passes_every_rule(custom: client.CustomObjectsApi, namespace: str) -> None:
    match = {"path": {"type": "PathPrefix", "value": "/api"}, "headers": [{"name": "x-canary", "value": "1"}]}
    rewrite = {"path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/"}}
    backends = [
        {"name": "web", "port": 80, "weight": 90, "filters": [HEADERS]},
        {"name": "web-canary", "port": 80, "weight": 10},
    ]
    rules = [
        {
            "matches": [match],
            "filters": [{"type": "URLRewrite", "urlRewrite": rewrite}],
            "backendRefs": backends,
            "timeouts": {"request": "10s", "backendRequest": "5s"},
        }
    ]
    assert custom.create_namespaced_custom_object(*ROUTES, namespace, "httproutes", route("valid", rules))


def test_transition_rules_see_the_old_value(api_client: Any, namespace: str) -> None:
    """A ``self == oldSelf`` rule (GatewayClass's controllerName) holds on updates only."""
    from progdel.sandbox import cel

    s = {
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "properties": {
                    "controller": {
                        "type": "string",
                        "x-kubernetes-validations": [
                            {"rule": "self == oldSelf", "message": "Value is immutable"}
                        ],
                    }
                },
            }
        },
    }
    rules = cel.RuleSet(s)
    assert rules.validate({"spec": {"controller": "a"}}).errors == []
    changed = rules.validate({"spec": {"controller": "b"}}, {"spec": {"controller": "a"}})
    assert [e.text() for e in changed.errors] == ['spec.controller: Invalid value: "b": Value is immutable']


# ---- kubectl ------------------------------------------------------------------------------------
@pytest.fixture
def kubectl(sandbox: SandboxServer, namespace: str):  # type: ignore[no-untyped-def]
    exe = shutil.which("kubectl")
    if exe is None:
        pytest.skip("kubectl is not on PATH")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        cmd = [exe, "--kubeconfig", str(sandbox.kubeconfig), "-n", namespace, *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60)

    return run


def test_kubectl_strict_validation_warn_and_server_dry_run(kubectl, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    manifest = tmp_path / "canary.json"
    manifest.write_text(json.dumps(canary("kube", bogus=True)))
    refused = kubectl("apply", "-f", str(manifest))
    assert refused.returncode == 1
    assert 'strict decoding error: unknown field "spec.bogus"' in refused.stderr

    warned = kubectl("apply", "--validate=warn", "--dry-run=server", "-f", str(manifest))
    assert warned.returncode == 0, warned.stderr
    assert 'unknown field "spec.bogus"' in warned.stderr
    assert "canary.flagger.app/kube created (server dry run)" in warned.stdout
    assert kubectl("get", "canary", "kube").returncode == 1

    manifest.write_text(json.dumps(canary("kube")))
    assert kubectl("apply", "-f", str(manifest)).returncode == 0
    manifest.write_text(json.dumps(canary("kube", skipAnalysis=True, bogus=1)))
    patched = kubectl("apply", "-f", str(manifest))
    assert patched.returncode == 1 and 'unknown field "spec.bogus"' in patched.stderr
    manifest.write_text(json.dumps(canary("kube", skipAnalysis=True)))
    dry = kubectl("apply", "--dry-run=server", "-f", str(manifest))
    assert dry.returncode == 0 and "configured (server dry run)" in dry.stdout, dry.stderr
    shown = json.loads(kubectl("get", "canary", "kube", "-o", "json").stdout)
    assert "skipAnalysis" not in shown["spec"]
    server_side = kubectl("apply", "--server-side", "--dry-run=server", "-f", str(manifest))
    assert server_side.returncode == 0, server_side.stderr
