"""Conformance: Flagger's own Canaries, unchanged, initialize into what Flagger creates.

Every Istio and Gateway API Canary of Flagger 1.44's README, tutorials, docs, examples and e2e
tests (``/work/upstream/flagger``, read at run time: ``tests/conformance/flagger_sources.py``) is
initialized with ``progdel canary init`` against the sandbox, set up as Flagger's tests set it
up: the installation's ``-mesh-provider`` as ``--mesh-provider`` and its
``-include-label-prefix`` as progdel.yaml's ``includeLabelPrefix``; the targets applied as
``test/workloads/init.sh`` (or ``kustomize/podinfo``) applies them; the app's own objects of the
same ``kubectl apply`` applied first. Each object progdel created is then compared, field by
field, with the one Flagger's routers and canary controller create (``flagger_model.py``, which
names the Flagger function it follows), as the cluster stores them. The e2e scripts' own
checks are made too: ``test/istio/test-canary.sh`` (``Initialized``, the apex Service's
labels, annotations and selector; the revert on deletion), ``test/gatewayapi/test-utils.sh``
(``check_primary``). Canaries of providers progdel does not drive must be refused, naming the
provider or target, with nothing written.

``test_the_coverage`` lists which Flagger files and Canaries are covered, and why any is left out.
"""

from __future__ import annotations

import copy
import re
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from progdel.kube import structural
from progdel.kube.client import Kube, connect
from progdel.kube.resources import (
    CANARIES,
    CONFIGMAPS,
    DEPLOYMENTS,
    DESTINATIONRULES,
    HPAS,
    HTTPROUTES,
    SECRETS,
    SERVICES,
    VIRTUALSERVICES,
    Resource,
)
from progdel.routing.gatewayapi import HTTPROUTES_V1BETA1
from progdel.routing.provider import choose_provider
from tests.conformance import flagger_model as flagger
from tests.conformance.flagger_sources import DRIVEN, UPSTREAM, FlaggerCanary, flagger_canaries
from tests.realcrds import schema

if not (UPSTREAM / "artifacts" / "flagger" / "crd.yaml").exists():
    pytest.skip(f"Flagger's source tree is not at {UPSTREAM}: its Canaries are read there at run time",
                allow_module_level=True)  # fmt: skip

CASES = flagger_canaries()


def _has_analysis(case: FlaggerCanary) -> bool:
    return bool((case.canary.get("spec") or {}).get("analysis"))


def _kind(case: FlaggerCanary) -> str:
    return str(((case.canary.get("spec") or {}).get("targetRef") or {}).get("kind", "Deployment"))


INITIALIZED = [
    c
    for c in CASES
    if not c.left_out and c.provider in DRIVEN and _kind(c) == "Deployment" and _has_analysis(c)
]
REFUSED = [c for c in CASES if not c.left_out and c not in INITIALIZED]
RESOURCES: dict[str, Resource] = {
    "Deployment": DEPLOYMENTS,
    "Service": SERVICES,
    "Secret": SECRETS,
    "ConfigMap": CONFIGMAPS,
    "HorizontalPodAutoscaler": HPAS,
    "VirtualService": VIRTUALSERVICES,
}
#: what the API server sets or defaults, beside what Flagger (or progdel) writes
SERVER_SET = re.compile(
    r"^(metadata\.(uid|resourceVersion|creationTimestamp|generation|managedFields|selfLink)"
    r"|status(\..*)?"
    r"|spec\.(clusterIP|clusterIPs|ipFamilies|ipFamilyPolicy|sessionAffinity|internalTrafficPolicy))$"
)
#: progdel's own markers (README): annotations progdel.dev/created-by, original-configuration,
#: provider, and the names of its strategy routes (progdel-ab, progdel-*-cookie)
PROGDEL_ANNOTATION = re.compile(r"^(metadata\.annotations\.progdel\.dev/[\w-]+|spec\.http\[\d+\]\.name)$")


def test_the_coverage() -> None:
    """Which Flagger files and Canaries the suite covers, and why any is left out."""
    lines = [f"{c.id}: initialized ({c.provider}, {c.installation.source})" for c in INITIALIZED]
    lines += [f"{c.id}: refused ({c.provider}, {_kind(c)} target)" for c in REFUSED]
    lines += [f"{c.id}: left out: {c.left_out}" for c in CASES if c.left_out]
    print("\n".join(lines))
    files = {c.file for c in INITIALIZED}
    for wanted in (
        "test/istio/test-canary.sh",
        "test/istio/test-delegation.sh",
        "test/istio/test-session-affinity.sh",
        "test/istio/test-skip-analysis.sh",
        "test/gatewayapi/test-canary.sh",
        "test/gatewayapi/test-ab.sh",
        "test/gatewayapi/test-bg.sh",
        "test/gatewayapi/test-session-affinity.sh",
        "docs/gitbook/tutorials/istio-progressive-delivery.md",
        "docs/gitbook/tutorials/istio-ab-testing.md",
        "docs/gitbook/tutorials/gatewayapi-progressive-delivery.md",
        "artifacts/examples/istio-canary.yaml",
        "artifacts/examples/istio-abtest.yaml",
        "README.md",
    ):
        assert wanted in files, f"{wanted} has no Canary progdel initializes"
    assert all(c.left_out or c in INITIALIZED or c in REFUSED for c in CASES)


# -- running init as a user would -----------------------------------------------------------


@pytest.fixture
def kube(sandbox: Any, namespace: str) -> Kube:
    return connect(str(sandbox.kubeconfig), None, namespace)


def _apply(kube: Kube, namespace: str, doc: dict[str, Any]) -> dict[str, Any] | None:
    resource = RESOURCES.get(str(doc.get("kind")))
    if resource is None:  # MetricTemplates, Gateways...: not what init reads or writes
        return None
    body = copy.deepcopy(doc)
    body.pop("apiVersion", None)
    body.pop("kind", None)
    body["metadata"] = {k: v for k, v in body["metadata"].items() if k != "namespace"}
    return kube.create(resource, body, namespace)


def progdel(
    sandbox: Any, tmp_path: Path, case: FlaggerCanary, namespace: str, *args: str
) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "progdel.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "environments": [
                    {"name": "prod", "namespace": namespace, "order": 1, "promotionStrategy": "Auto"}
                ],
                "apps": [{"name": "podinfo", "image": "ghcr.io/stefanprodan/podinfo"}],
                "defaults": {"includeLabelPrefix": list(case.installation.label_prefixes)},
            }
        )
    )
    return subprocess.run(
        [sys.executable, "-m", "progdel", "--kubeconfig", str(sandbox.kubeconfig), "--config", str(config),
         "--mesh-provider", case.installation.provider, "-n", namespace, *args],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip


def _prune(value: Any) -> Any:
    """Empty maps and lists are absent (Go's omitempty, the server's pruning of empty fields)."""
    if isinstance(value, dict):
        out = {k: _prune(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v not in ({}, [], None)}
    if isinstance(value, list):
        return [_prune(v) for v in value]
    return value


def _ports(spec: dict[str, Any]) -> None:
    if isinstance(spec.get("ports"), list):  # Flagger's Services list ports in any order
        spec["ports"] = sorted(spec["ports"], key=lambda p: (p.get("port"), p.get("name", "")))


def differences(expected: Any, actual: Any, path: str = "") -> list[str]:
    """Where ``actual`` (as stored) differs from ``expected`` (Flagger's), field by field; fields
    only the server sets, and progdel's documented annotations, are allowed beside."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        out = []
        for key in expected:
            where = f"{path}.{key}" if path else key
            if key not in actual:
                out.append(f"{where}: missing (Flagger: {expected[key]!r})")
            else:
                out += differences(expected[key], actual[key], where)
        for key in actual:
            where = f"{path}.{key}" if path else key
            ours = PROGDEL_ANNOTATION.match(where) and (
                not where.endswith(".name") or str(actual[key]).startswith("progdel-")
            )
            if key in expected or SERVER_SET.match(where) or ours:
                continue
            if isinstance(actual[key], dict):
                out += differences({}, actual[key], where)  # each of its keys must be allowed
            else:
                out.append(f"{where}: {actual[key]!r} (Flagger writes none)")
        return out
    if isinstance(expected, list) and isinstance(actual, list) and len(expected) == len(actual):
        return [
            d
            for i, (e, a) in enumerate(zip(expected, actual, strict=True))
            for d in differences(e, a, f"{path}[{i}]")
        ]
    if expected == "<uuid>" and isinstance(actual, str):  # Flagger's random flagger-id
        try:
            uuid.UUID(actual)
            return []
        except ValueError:
            pass
    return [] if expected == actual else [f"{path}: {actual!r} (Flagger: {expected!r})"]


def as_stored(obj: dict[str, Any]) -> dict[str, Any]:
    """``obj`` as a real API server stores it: a custom object pruned and defaulted by its real
    CRD (``tests/realcrds.py``), as the sandbox does with progdel's."""
    group = str(obj.get("apiVersion", "")).partition("/")[0]
    if "." not in group:
        return obj
    out = copy.deepcopy(obj)
    crd = schema(obj["apiVersion"], obj["kind"])
    structural.prune(out, crd)
    structural.default(out, crd)
    return out


def compare(expected: dict[str, Any], actual: dict[str, Any] | None, what: str) -> None:
    assert actual is not None, f"{what}: progdel did not create it"
    exp, act = _prune(as_stored(expected)), _prune(copy.deepcopy(actual))
    exp.pop("status", None)  # an adopted object's expectation starts from the stored one
    for key in [k for k in exp.get("metadata", {}) if SERVER_SET.match(f"metadata.{k}")]:
        del exp["metadata"][key]
    for obj in (exp, act):
        obj.get("metadata", {}).pop("namespace", None)
        _ports(obj.get("spec") or {})
    found = differences(exp, act)
    assert found == [], f"{what} differs from Flagger's:\n  " + "\n  ".join(found)


@pytest.mark.parametrize("case", INITIALIZED, ids=[c.id for c in INITIALIZED])
def test_flaggers_canary_initializes_into_flaggers_objects(
    case: FlaggerCanary, sandbox: Any, kube: Kube, namespace: str, tmp_path: Path
) -> None:
    canary = copy.deepcopy(case.canary)
    canary["metadata"]["namespace"] = namespace
    applied = [a for d in case.workloads + case.companions if (a := _apply(kube, namespace, d)) is not None]
    by_kind = {(a["kind"], a["metadata"]["name"]): a for a in applied}
    spec = canary["spec"]
    target = kube.get(DEPLOYMENTS, spec["targetRef"]["name"])
    configs = {
        ref: obj
        for ref in flagger.config_refs(target)
        if (obj := kube.get_or_none(CONFIGMAPS if ref[0] == "configmap" else SECRETS, ref[1])) is not None
    }
    tracked = flagger.tracked(target, configs)
    path = tmp_path / "canary.yaml"
    path.write_text(yaml.safe_dump(canary))

    done = progdel(sandbox, tmp_path, case, namespace, "canary", "init", "-f", str(path), "--timeout", "60")
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr

    # the primary, its configs, the target (deployment_controller.go, config_tracker.go)
    primary = kube.get_or_none(DEPLOYMENTS, f"{target['metadata']['name']}-primary")
    compare(
        flagger.primary_deployment(target, tracked, case.installation.label_prefixes),
        primary,
        "Deployment primary",
    )
    for copy_ in flagger.primary_configs(tracked, case.installation.label_prefixes):
        resource = CONFIGMAPS if copy_["kind"] == "ConfigMap" else SECRETS
        compare(
            copy_,
            kube.get_or_none(resource, copy_["metadata"]["name"]),
            f"{copy_['kind']} {copy_['metadata']['name']}",
        )
    assert kube.get(DEPLOYMENTS, target["metadata"]["name"])["spec"]["replicas"] == 0
    if spec.get("autoscalerRef"):
        hpa = kube.get(HPAS, spec["autoscalerRef"]["name"])
        compare(
            flagger.primary_hpa(hpa, canary),
            kube.get_or_none(HPAS, f"{spec['autoscalerRef']['name']}-primary"),
            "HPA",
        )

    # the Services (kubernetes_default.go)
    apex, primary_svc, canary_svc = flagger.names(canary)
    for which, name in (("apex", apex), ("primary", primary_svc), ("canary", canary_svc)):
        existing = by_kind.get(("Service", name))
        expected = (
            flagger.adopted_service(existing, canary, target)
            if existing
            else flagger.service(canary, target, which)
        )
        compare(expected, kube.get_or_none(SERVICES, name), f"Service {name}")
    apex_meta = spec["service"].get("apex") or {}
    stored_apex = kube.get(SERVICES, apex)
    assert stored_apex["spec"]["selector"] == {
        flagger.selector_label(target)[0]: f"{flagger.selector_label(target)[1]}-primary"
    }
    for key, value in {**(apex_meta.get("labels") or {}), **(apex_meta.get("annotations") or {})}.items():
        assert {
            **stored_apex["metadata"].get("labels", {}),
            **stored_apex["metadata"].get("annotations", {}),
        }[key] == value

    # the routes (istio.go, gateway_api.go)
    if case.provider == "istio":
        for host in (primary_svc, canary_svc):
            compare(
                flagger.destination_rule(canary, host),
                kube.get_or_none(DESTINATIONRULES, host),
                f"DestinationRule {host}",
            )
        existing_vs = by_kind.get(("VirtualService", apex))
        expected_vs = (
            flagger.adopted_virtual_service(existing_vs, canary)
            if existing_vs
            else flagger.virtual_service(canary)
        )
        compare(expected_vs, kube.get_or_none(VIRTUALSERVICES, apex), "VirtualService")
    else:
        version = case.provider.partition(":")[2]
        resource = HTTPROUTES_V1BETA1 if version == "v1beta1" else HTTPROUTES
        compare(flagger.http_route(canary, version), kube.get_or_none(resource, apex), "HTTPRoute")

    # the status (status.go, setPhaseInitialized) and what the e2e scripts check
    status = kube.get(CANARIES, canary["metadata"]["name"])["status"]
    assert status["phase"] == "Initialized"
    assert (status["canaryWeight"], status["failedChecks"], status["iterations"]) == (0, 0, 0)
    assert status["lastAppliedSpec"] and status["lastAppliedSpec"] == status["lastPromotedSpec"]
    promoted = next(c for c in status["conditions"] if c["type"] == "Promoted")
    assert (promoted["status"], promoted["reason"], promoted["message"]) == (
        "True",
        "Initialized",
        "Deployment initialization completed.",
    )
    assert {k.lower() for k in status.get("trackedConfigs") or {}} == {f"{k}/{n}" for k, n in tracked}

    # the provider a user without the flag gets is Flagger's, or said
    choice = choose_provider(spec, canary["metadata"].get("annotations") or {})
    if choice.provider != case.provider:
        assert case.installation.provider == case.provider and not spec.get("provider"), case.id

    if spec.get("revertOnDeletion"):
        _revert(sandbox, tmp_path, case, kube, namespace, canary, target, by_kind)


def _revert(
    sandbox: Any,
    tmp_path: Path,
    case: FlaggerCanary,
    kube: Kube,
    namespace: str,
    canary: dict[str, Any],
    target: dict[str, Any],
    before: dict[tuple[str, str], dict[str, Any]],
) -> None:
    """``test/istio/test-canary.sh``: deleting a Canary with revertOnDeletion gives the target its
    replicas back and leaves the app's own Service and VirtualService; here also: as they were."""
    done = progdel(sandbox, tmp_path, case, namespace, "canary", "delete", canary["metadata"]["name"])
    assert done.returncode == 0, done.stderr
    assert kube.get(DEPLOYMENTS, target["metadata"]["name"])["spec"]["replicas"] == target["spec"]["replicas"]
    apex = flagger.names(canary)[0]
    if ("Service", apex) in before:
        assert kube.get(SERVICES, apex)["spec"] == before[("Service", apex)]["spec"]
    if ("VirtualService", apex) in before:
        assert kube.get(VIRTUALSERVICES, apex)["spec"] == before[("VirtualService", apex)]["spec"]
    assert kube.get_or_none(DEPLOYMENTS, f"{target['metadata']['name']}-primary") is None


@pytest.mark.parametrize("case", REFUSED, ids=[c.id for c in REFUSED])
def test_canaries_progdel_does_not_drive_are_refused_writing_nothing(
    case: FlaggerCanary, sandbox: Any, kube: Kube, namespace: str, tmp_path: Path
) -> None:
    for doc in case.workloads + case.companions:
        _apply(kube, namespace, doc)
    canary = copy.deepcopy(case.canary)
    canary["metadata"]["namespace"] = namespace
    path = tmp_path / "canary.yaml"
    path.write_text(yaml.safe_dump(canary))
    done = progdel(sandbox, tmp_path, case, namespace, "canary", "init", "-f", str(path))
    assert done.returncode == 2, done.stderr
    error = done.stderr.strip().splitlines()[-1]
    if case.provider not in DRIVEN:
        assert f"provider {case.provider}" in error, error
    elif _kind(case) != "Deployment":
        assert "progdel drives Deployment targets only" in error, error
    else:
        assert "analysis is required" in error, error
    assert kube.get_or_none(CANARIES, canary["metadata"]["name"]) is None, "not even the Canary"
    assert kube.get_or_none(DEPLOYMENTS, f"{canary['spec']['targetRef']['name']}-primary") is None
