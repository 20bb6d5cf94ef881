"""CRD validation rules (CEL) as kube-apiserver runs them, on the real Gateway API and Istio CRDs.

Every rule of the Gateway API v1.3.0 CRDs (``../shared/crds/gateway-api-v1.3.0``) and of Istio
1.27.1's (``base-1.27.1.tgz``) must compile with the sandbox's CEL library and Kubernetes
extensions; the Gateway's listener rules and HTTPRoute's parentRef rules (which read the escaped
``__namespace__``) are evaluated on objects the real server accepts and refuses. Follows
apiextensions-apiserver's ``schema/cel/validation_test.go`` for the error shapes.
"""

from __future__ import annotations

import tarfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from progdel.kube import structural
from progdel.kube.schema import validate_custom_object
from progdel.sandbox import cel

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
GATEWAY_API = SHARED / "crds" / "gateway-api-v1.3.0"


def shared_crds() -> dict[str, dict[str, Any]]:
    if not GATEWAY_API.is_dir() or not (SHARED / "charts-mirror" / "base-1.27.1.tgz").is_file():
        pytest.skip(f"the upstream CRDs are not at {SHARED} (the shared test data)")
    docs: list[Any] = []
    for path in sorted(GATEWAY_API.glob("*.yaml")):
        docs += yaml.load_all(path.read_text(), Loader=yaml.CSafeLoader)
    with tarfile.open(SHARED / "charts-mirror" / "base-1.27.1.tgz") as tar:
        handle = tar.extractfile("base/files/crd-all.gen.yaml")
        assert handle is not None
        docs += yaml.load_all(handle.read().decode(), Loader=yaml.CSafeLoader)
    return {d["metadata"]["name"]: d for d in docs if d and d.get("kind") == "CustomResourceDefinition"}


def rules_of(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [r["rule"] for r in node.get("x-kubernetes-validations") or []]
        found += [m for r in node.get("x-kubernetes-validations") or [] if (m := r.get("messageExpression"))]
        return found + [x for v in node.values() for x in rules_of(v)]
    if isinstance(node, list):
        return [x for v in node for x in rules_of(v)]
    return []


def test_every_rule_of_the_real_crds_compiles() -> None:
    crds = shared_crds()
    rules = sorted({r for crd in crds.values() for r in rules_of(crd["spec"]["versions"])})
    assert len(rules) > 80
    failures = {r: err for r in rules if (err := cel._program(r)[1])}
    assert failures == {}


def schema_of(crds: dict[str, dict[str, Any]], name: str) -> dict[str, Any]:
    versions = crds[name]["spec"]["versions"]
    found: dict[str, Any] = next(v for v in versions if v["storage"])["schema"]["openAPIV3Schema"]
    return found


def check(s: dict[str, Any], obj: dict[str, Any], old: dict[str, Any] | None = None) -> list[str]:
    """What the sandbox answers for ``obj``: schema errors, then rule errors (none after blocking ones)."""
    structural.coerce(obj, s)
    errors = validate_custom_object(obj, s)
    if errors:
        return [e.text() for e in errors]
    outcome = cel.RuleSet(s).validate(obj, old if old is not None else cel.MISSING)
    return [e.text() for e in outcome.errors]


def gateway(*listeners: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "Gateway",
        "metadata": {"name": "gw", "namespace": "t"},
        "spec": {"gatewayClassName": "istio", "listeners": list(listeners)},
    }


def test_gateway_listener_rules() -> None:
    s = schema_of(shared_crds(), "gateways.gateway.networking.k8s.io")
    http = {"name": "http", "port": 80, "protocol": "HTTP"}
    assert check(s, gateway(http)) == []
    https = {
        "name": "https",
        "port": 443,
        "protocol": "HTTPS",
        "tls": {"certificateRefs": [{"name": "cert"}]},
    }
    assert check(s, gateway(http, https)) == []
    assert check(s, gateway(http, {**http, "name": "other"})) == [
        "spec.listeners: Invalid value: "
        "Combination of port, protocol and hostname must be unique for each listener"
    ]
    with_tls = {**http, "tls": {"certificateRefs": [{"name": "cert"}]}}
    assert check(s, gateway(with_tls)) == [
        "spec.listeners: Invalid value: tls must not be specified for protocols ['HTTP', 'TCP', 'UDP']"
    ]


def test_httproute_parent_ref_rules_read_the_escaped_namespace() -> None:
    s = schema_of(shared_crds(), "httproutes.gateway.networking.k8s.io")

    def route(*parents: dict[str, Any]) -> dict[str, Any]:
        return {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": {"name": "r", "namespace": "t"},
            "spec": {"parentRefs": list(parents)},
        }

    assert check(s, route({"name": "gw", "namespace": "a"}, {"name": "gw", "namespace": "b"})) == []
    refused = check(
        s, route({"name": "gw", "namespace": "a"}, {"name": "gw", "namespace": "a", "sectionName": "x"})
    )
    assert refused == [
        "spec.parentRefs: Invalid value: sectionName must be specified when parentRefs includes 2 or more "
        "references to the same parent"
    ]


def test_kubernetes_extension_functions() -> None:
    cases = {
        "'a/b'.split('/')[1] == 'b'": True,
        "'hello'.substring(1, 3) == 'el'": True,
        "'Hello'.lowerAscii() == 'hello'": True,
        "'abc'.indexOf('c') == 2": True,
        "['a', 'b'].join('-') == 'a-b'": True,
        "url('https://example.com:8443/x').getScheme() == 'https'": True,
        "url('https://example.com:8443/x').getPort() == '8443'": True,
        "isURL('https://example.com') && !isURL('not a url')": True,
        "[1, 2, 3].isSorted() && [1, 2, 3].sum() == 6": True,
        "duration('1m') > duration('59s')": True,
    }
    from celpy import celtypes

    for rule, want in cases.items():
        program, error = cel._program(rule)
        assert error == "", rule
        assert program.evaluate({}) == celtypes.BoolType(want), rule


def test_a_rule_the_sandbox_cannot_evaluate_refuses_rather_than_passes() -> None:
    s = {
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "properties": {
                    "size": {
                        "type": "string",
                        "x-kubernetes-validations": [{"rule": "quantity(self).isInteger()"}],
                    }
                },
            }
        },
    }
    errors = cel.RuleSet(s).validate({"spec": {"size": "1Gi"}}).errors
    assert len(errors) == 1 and errors[0].field == "spec.size"
    assert "the sandbox cannot evaluate the rule 'quantity(self).isInteger()'" in errors[0].message


def test_escaping_of_property_names() -> None:
    assert cel.escape("namespace") == "__namespace__"
    assert cel.escape("x-kubernetes") == "x__dash__kubernetes"
    assert cel.escape("a.b/c__d") == "a__dot__b__slash__c__underscores__d"
    assert cel.escape("1abc") is None
