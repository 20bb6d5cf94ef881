"""Every field of Flagger 1.44's Canary CRD parses, and each has a place in progdel.

The schema is read at run time from the real chart (``../shared/charts-mirror/flagger-1.44.0.tgz``,
``flagger/crds/crd.yaml``, as ``tests/realcrds.py`` reads it), so a field Flagger adds and
progdel does not list in ``config.canary_fields.FIELDS`` fails here rather than being ignored.
Also: Flagger 0.x Canaries (``docs/gitbook/dev/upgrade-guide.md``) read with 0.x's meaning.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from progdel.canary.admission import admit
from progdel.config.canary import canary_document, load_canary, parse_canary
from progdel.config.canary_fields import FIELDS, rule_for
from progdel.config.yamlfile import Document
from progdel.errors import InvalidInput
from tests.realcrds import schema


def canary_schema() -> dict[str, Any]:
    return schema("flagger.app/v1beta1", "Canary")["properties"]["spec"]


def schema_paths(node: dict[str, Any], path: str = "spec") -> Iterator[str]:
    """Every path of the schema, written as ``FIELDS`` writes them."""
    yield path
    for key, child in (node.get("properties") or {}).items():
        yield from schema_paths(child, f"{path}.{key}")
    if isinstance(node.get("items"), dict):
        yield from schema_paths(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from schema_paths(node["additionalProperties"], f"{path}{{}}")


def test_every_field_of_flaggers_canary_crd_has_a_rule() -> None:
    missing = [p for p in schema_paths(canary_schema()) if rule_for(p) is None]
    assert missing == [], f"fields of Flagger's CRD progdel says nothing about: {missing}"


def test_every_rule_names_a_field_of_the_crd() -> None:
    known = set(schema_paths(canary_schema()))
    assert sorted(set(FIELDS) - known) == []


# -- a Canary with every field of the schema set -------------------------------------------------

_SAMPLES: dict[str, Any] = {
    "spec.provider": "istio",
    "spec.targetRef.kind": "Deployment",
    "spec.targetRef.apiVersion": "apps/v1",
    "spec.targetRef.name": "podinfo",
    "spec.autoscalerRef.kind": "HorizontalPodAutoscaler",
    "spec.service.port": 9898,
    "spec.service.name": "podinfo",
    "spec.service.targetPort": "http",
    "spec.service.timeout": "15s",
    "spec.service.backendTimeout": "5s",
    "spec.service.retries.perTryTimeout": "1s",
    "spec.service.corsPolicy.maxAge": "24h",
    "spec.service.rewrite.type": "ReplacePrefixMatch",
    "spec.analysis.interval": "1m",
    "spec.analysis.threshold": 5,
    "spec.analysis.maxWeight": 50,
    "spec.analysis.stepWeight": 10,
    "spec.analysis.stepWeights": [10, 20],
    "spec.analysis.metrics[].interval": "1m",
    "spec.analysis.metrics[].name": "request-success-rate",
    "spec.analysis.webhooks[].timeout": "5s",
    "spec.analysis.webhooks[].url": "http://tester/",
    "spec.progressDeadlineSeconds": 60,
}
_STRING_MATCH = {"exact", "prefix", "regex"}


def sample(node: dict[str, Any], path: str = "spec") -> Any:
    """A value for ``node`` with every field set (one of each oneOf, as the CRD asks)."""
    if path in _SAMPLES:
        return copy.deepcopy(_SAMPLES[path])
    props = node.get("properties")
    if props:
        keys = list(props)
        if set(keys) >= _STRING_MATCH:
            keys = ["exact"]  # a StringMatch holds exactly one of them
        return {k: sample(props[k], f"{path}.{k}") for k in keys}
    if node.get("type") == "array":
        return [sample(node["items"], f"{path}[]")]
    if isinstance(node.get("additionalProperties"), dict):
        return {"key": sample(node["additionalProperties"], f"{path}{{}}")}
    if "enum" in node:
        return next(v for v in node["enum"] if v != "")
    return {"string": "value", "number": 1, "integer": 1, "boolean": True}.get(node.get("type"), "value")


_ONE_OF = ("stepWeight", "stepWeights", "iterations")  # the CRD's oneOf: exactly one of them


def full_canary(step: str = "stepWeight") -> dict[str, Any]:
    spec = sample(canary_schema())
    metric = spec["analysis"]["metrics"][0]
    with_query = {k: v for k, v in metric.items() if k != "templateRef"} | {"name": "custom"}
    spec["analysis"]["metrics"] = [{k: v for k, v in metric.items() if k != "query"}, with_query]
    for other in _ONE_OF:
        if other != step:
            spec["analysis"].pop(other)
    return {
        "apiVersion": "flagger.app/v1beta1",
        "kind": "Canary",
        "metadata": {"name": "podinfo", "namespace": "test"},
        "spec": spec,
    }


def test_a_canary_setting_every_field_of_the_crd_parses() -> None:
    for step in _ONE_OF:
        parse_canary(full_canary(step), f"every-field, {step}")
    doc = full_canary()
    canary = parse_canary(doc, "every-field").model
    dumped = canary.spec.model_dump(by_alias=True, exclude_none=True)
    svc = dumped["service"]
    assert svc["backendTimeout"] == "5s" and svc["headless"] is True
    assert svc["trafficDistribution"] == doc["spec"]["service"]["trafficDistribution"]
    assert svc["unmanagedMetadata"] == {"annotations": ["value"], "labels": ["value"]}
    assert svc["mirror"] == doc["spec"]["service"]["mirror"] and svc["meshName"] == "value"
    assert dumped["upstreamRef"]["namespace"] == "value"
    affinity = canary.analysis.session_affinity
    assert affinity is not None
    assert (
        affinity.cookie_attributes()
        == "; Domain=value; HttpOnly; Partitioned; Path=value; SameSite=Strict; Secure"
    )


def drivable(provider: str) -> dict[str, Any]:
    """The every-field Canary less the values the chosen router cannot honour."""
    doc = full_canary()
    doc["spec"]["provider"] = provider
    doc["spec"]["service"]["delegation"] = False
    doc["spec"]["service"]["corsPolicy"].pop("allowOrigins")
    doc["spec"]["service"]["match"][0] = {"uri": {"prefix": "/"}}
    doc["spec"]["analysis"]["match"][0].pop("sourceLabels")
    return doc


@pytest.mark.parametrize("provider", ["istio", "gatewayapi:v1"])
def test_fields_the_chosen_router_does_not_read_are_named_never_dropped(provider: str) -> None:
    admitted = admit(Document(drivable(provider), "every-field.yaml"))
    text = "\n".join(admitted.notes)
    for path in ("spec.ingressRef", "spec.routeRef", "spec.upstreamRef", "spec.service.meshName"):
        assert f"{path} is not used" in text
    istio_only = ("spec.service.gateways", "spec.service.retries", "spec.service.trafficPolicy")
    gateway_only = ("spec.service.gatewayRefs", "spec.service.mirror", "spec.service.backendTimeout")
    for path in istio_only:
        assert (f"{path} is not used" in text) is (provider != "istio"), path
    for path in gateway_only:
        assert (f"{path} is not used" in text) is (provider == "istio"), path


@pytest.mark.parametrize(
    ("provider", "path", "value", "named"),
    [
        (
            "istio",
            "service.delegation",
            True,
            "spec.service.delegation: a delegate VirtualService has no hosts",
        ),
        (
            "gatewayapi:v1",
            "service.corsPolicy.allowOrigins",
            [{"exact": "a"}],
            "spec.service.corsPolicy.allowOrigins",
        ),
        ("gatewayapi:v1", "analysis.match", [{"sourceLabels": {"app": "a"}}], "spec.analysis.match[0]: "),
        ("gatewayapi:v1", "service.timeout", "1.5s", "spec.service.timeout '1.5s': an HTTPRoute timeout"),
        (
            "istio",
            "autoscalerRef.kind",
            "ScaledObject",
            "spec.autoscalerRef.kind ScaledObject: progdel scales",
        ),
        ("istio", "service.appProtocol", "tcp", "spec.service.appProtocol tcp: progdel routes HTTP only"),
    ],
)
def test_what_the_chosen_router_cannot_honour_is_refused_by_name(
    provider: str, path: str, value: Any, named: str
) -> None:
    """Flagger's routers stop on these or drop them (widening a canary's audience); progdel names
    the field and refuses the Canary before init or check writes or plans anything."""
    admit(Document(drivable(provider), "every-field.yaml"))  # the rest is drivable
    doc = drivable(provider)
    *parents, key = path.split(".")
    node = doc["spec"]
    for parent in parents:
        node = node[parent]
    node[key] = value
    with pytest.raises(InvalidInput) as err:
        admit(Document(doc, "every-field.yaml"))
    assert str(err.value).startswith(f"every-field.yaml: canary test/podinfo: {named}"), err.value


# -- Flagger 0.x ------------------------------------------------------------------------------

LEGACY = """\
apiVersion: flagger.app/v1alpha2
kind: Canary
metadata: {name: jx-production-demo6, namespace: jx-production}
spec:
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: jx-production-demo6}
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
    - {name: istio_requests_total, threshold: 99, interval: 60s}
    - {name: istio_request_duration_seconds_bucket, threshold: 500, interval: 60s}
"""


def test_a_flagger_0x_canary_is_read_with_0x_meaning(tmp_path: Path) -> None:
    path = tmp_path / "old.yaml"
    path.write_text(LEGACY)
    spec = load_canary(path)
    metrics = spec.model.analysis.metrics
    assert [(m.name, m.threshold_range) for m in metrics] == [
        ("request-success-rate", metrics[0].threshold_range),
        ("request-duration", metrics[1].threshold_range),
    ]
    assert (metrics[0].threshold_range.min, metrics[0].threshold_range.max) == (99, None)  # type: ignore[union-attr]
    assert (metrics[1].threshold_range.min, metrics[1].threshold_range.max) == (None, 500)  # type: ignore[union-attr]
    assert spec.document["apiVersion"] == "flagger.app/v1beta1"
    assert (
        "canaryAnalysis" not in spec.document["spec"]
        and spec.document["spec"]["analysis"]["stepWeight"] == 10
    )
    assert spec.converted.startswith("converted from Flagger 0.x: apiVersion flagger.app/v1alpha2 -> ")
    assert (
        "istio_requests_total -> request-success-rate (threshold 99 -> thresholdRange.min 99%)"
        in spec.converted
    )
    admitted = admit(canary_document(path))
    assert admitted.notes[0] == spec.converted, "said once, first"


def test_0x_defaults_and_errors_keep_the_files_lines(tmp_path: Path) -> None:
    path = tmp_path / "old.yaml"
    path.write_text(
        LEGACY.replace("    interval: 60s\n    threshold: 5\n", "").replace(
            "interval: 60s}", "interval: 6x}", 1
        )
    )
    with pytest.raises(InvalidInput) as err:
        load_canary(path)
    assert str(err.value).startswith(f"{path}:15: spec.analysis.metrics[0].interval"), str(err.value)
    path.write_text(LEGACY.replace("    interval: 60s\n    threshold: 5\n", ""))
    spec = load_canary(path)
    assert (
        spec.document["spec"]["analysis"]["interval"],
        spec.document["spec"]["analysis"]["threshold"],
    ) == ("60s", 1)
    both = LEGACY.replace(
        "  canaryAnalysis:\n", "  analysis: {interval: 1m, threshold: 1, iterations: 2}\n  canaryAnalysis:\n"
    )
    path.write_text(both)
    with pytest.raises(InvalidInput, match=r"old\.yaml:12: spec: both analysis and canaryAnalysis"):
        load_canary(path)


def test_canary_convert_prints_the_v1beta1_file(tmp_path: Path) -> None:
    path = tmp_path / "old.yaml"
    path.write_text(LEGACY)
    base = [sys.executable, "-m", "progdel", "canary", "convert", "-f", str(path)]
    done = subprocess.run(base, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    converted = yaml.safe_load(done.stdout)
    assert converted == load_canary(path).document
    assert done.stderr.count("converted from Flagger 0.x") == 1
    out = tmp_path / "new.yaml"
    out.write_text(done.stdout)
    again = subprocess.run([*base[:-1], str(out), "-o", "json"], capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and json.loads(again.stdout) == converted
    assert "nothing to convert" in again.stderr
    bad = subprocess.run(
        [*base[:-1], str(tmp_path / "missing.yaml")], capture_output=True, text=True, timeout=60
    )
    assert bad.returncode == 2 and "no such file" in bad.stderr and "Traceback" not in bad.stderr
