"""Fields of ``spec.service`` and of the target that Flagger honours, honoured by progdel, in the
sandbox: the Services' own fields and metadata (``pkg/router/kubernetes_default.go``
``reconcileService``), ``spec.service`` changes followed on every tick (``pkg/router/istio.go``
``reconcileVirtualService``, ``gateway_api.go`` ``Reconcile``), and what promotion copies
(``pkg/canary/deployment_controller.go`` ``Promote``).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from progdel.canary import store
from progdel.canary.cluster import initialize, runner_for
from progdel.canary.runner import CanaryRunner, RunOptions
from progdel.canary.status import Phase
from progdel.errors import ExitCode
from progdel.kube.client import Kube, connect
from progdel.kube.resources import CANARIES, DEPLOYMENTS, HTTPROUTES, SERVICES, VIRTUALSERVICES
from tests.canary.test_runner_integration import T0, ReplayClock, canary_doc, deployment


@pytest.fixture
def kube(sandbox: Any, namespace: str) -> Kube:
    return connect(str(sandbox.kubeconfig), None, namespace)


def init(kube: Kube, namespace: str, doc: dict[str, Any], options: RunOptions | None = None) -> CanaryRunner:
    store.apply_canary(kube, doc, namespace)
    assert initialize(kube, "podinfo", namespace, lambda _r: None, timeout=30, options=options) is ExitCode.OK
    return runner_for(kube, "podinfo", namespace, lambda _r: None, options or RunOptions(), ReplayClock(T0))


def change_service(kube: Kube, **fields: Any) -> None:
    def put(obj: dict[str, Any]) -> None:
        obj["spec"]["service"].update(fields)

    kube.update(CANARIES, "podinfo", put)


def test_the_services_fields_and_metadata(kube: Kube, namespace: str) -> None:
    kube.create(DEPLOYMENTS, deployment("podinfo", "ghcr.io/stefanprodan/podinfo:6.0.0"))
    doc = canary_doc(namespace)
    doc["spec"]["service"] = {
        "port": 9898,
        "headless": True,
        "appProtocol": "http",
        "trafficDistribution": "PreferClose",
        "canary": {"labels": {"tier": "canary"}, "annotations": {"note": "canary pods"}},
        "unmanagedMetadata": {"annotations": ["owned-by-others"]},
    }
    runner = init(kube, namespace, doc)
    svc = kube.get(SERVICES, "podinfo-canary")
    assert svc["spec"]["clusterIP"] == "None" and svc["spec"]["trafficDistribution"] == "PreferClose"
    assert svc["spec"]["ports"][0]["appProtocol"] == "http"
    assert svc["metadata"]["labels"] == {"tier": "canary", "app": "podinfo-canary"}
    assert svc["metadata"]["annotations"]["note"] == "canary pods"

    def others(obj: dict[str, Any]) -> None:  # another controller writes two annotations
        obj["metadata"]["annotations"].update({"owned-by-others": "yes", "stray": "x"})

    kube.update(SERVICES, "podinfo-canary", others)
    runner.tick()
    annotations = kube.get(SERVICES, "podinfo-canary")["metadata"]["annotations"]
    assert annotations["owned-by-others"] == "yes", "unmanagedMetadata: kept as found"
    assert "stray" not in annotations, "the rest follows spec.service.canary"


def test_spec_service_changes_reach_the_virtualservice_every_tick(kube: Kube, namespace: str) -> None:
    kube.create(DEPLOYMENTS, deployment("podinfo", "ghcr.io/stefanprodan/podinfo:6.0.0"))
    runner = init(kube, namespace, canary_doc(namespace))
    kube.patch(DEPLOYMENTS, "podinfo", {"spec": {"template": {"metadata": {"labels": {"rev": "2"}}}}})
    runner.tick()
    runner.tick()  # a run under way: weight 20
    change_service(
        kube,
        hosts=["app.example.com"],
        gateways=["istio-system/public"],
        timeout="5s",
        retries={"attempts": 2, "perTryTimeout": "1s"},
        apex={"labels": {"team": "web"}},
    )
    runner.tick()
    vs = kube.get(VIRTUALSERVICES, "podinfo")
    assert vs["spec"]["hosts"] == ["app.example.com", "podinfo"]
    assert vs["spec"]["gateways"] == ["istio-system/public"]
    route = vs["spec"]["http"][0]
    assert (route["timeout"], route["retries"]) == ("5s", {"attempts": 2, "perTryTimeout": "1s"})
    assert [d["weight"] for d in route["route"]] != [100, 0], "the weights stay"
    assert vs["metadata"]["labels"] == {"team": "web"}
    change_service(kube, hosts=[], gateways=[], timeout=None, retries=None)
    runner.tick()
    spec = kube.get(VIRTUALSERVICES, "podinfo")["spec"]
    assert (spec["hosts"], spec["gateways"]) == (["podinfo"], ["mesh"])
    assert "timeout" not in spec["http"][0] and "retries" not in spec["http"][0]


def test_spec_service_changes_reach_the_httproute_every_tick(kube: Kube, namespace: str) -> None:
    kube.create(DEPLOYMENTS, deployment("podinfo", "ghcr.io/stefanprodan/podinfo:6.0.0"))
    doc = canary_doc(namespace)
    doc["spec"]["service"] = {"port": 9898, "gatewayRefs": [{"name": "gw", "namespace": "edge"}]}
    runner = init(kube, namespace, doc)
    change_service(
        kube,
        hosts=["www.example.com"],
        timeout="10s",
        backendTimeout="2s",
        headers={"request": {"set": {"x-b": "2", "x-a": "1"}}},
        rewrite={"uri": "/api", "type": "ReplacePrefixMatch"},
        match=[{"uri": {"prefix": "/v1"}}],
    )
    runner.tick()
    route = kube.get(HTTPROUTES, "podinfo")["spec"]
    assert route["hostnames"] == ["www.example.com"]
    rule = route["rules"][0]
    assert rule["matches"] == [{"path": {"type": "PathPrefix", "value": "/v1"}}]
    assert rule["timeouts"] == {"request": "10s", "backendRequest": "2s"}
    assert rule["filters"] == [
        {
            "type": "RequestHeaderModifier",
            "requestHeaderModifier": {"set": [{"name": "x-a", "value": "1"}, {"name": "x-b", "value": "2"}]},
        },
        {
            "type": "URLRewrite",
            "urlRewrite": {"path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/api"}},
        },
    ]
    assert [(b["name"], b["weight"]) for b in rule["backendRefs"]] == [
        ("podinfo-primary", 100),
        ("podinfo-canary", 0),
    ]


def test_promotion_copies_what_flagger_copies(kube: Kube, namespace: str) -> None:
    dep = deployment("podinfo", "ghcr.io/stefanprodan/podinfo:6.0.0")
    dep["metadata"]["labels"].update({"app.kubernetes.io/part-of": "shop", "team": "web"})
    kube.create(DEPLOYMENTS, dep)
    doc = canary_doc(namespace, metrics=[], interval="5s", threshold=1, maxWeight=50, stepWeight=50)
    runner = init(kube, namespace, doc, RunOptions(label_prefixes=("app.kubernetes.io",)))
    assert kube.get(DEPLOYMENTS, "podinfo-primary")["metadata"]["labels"] == {
        "app": "podinfo-primary",
        "app.kubernetes.io/part-of": "shop",
    }, "-include-label-prefix: the primary gets the labels with the prefix"

    def release(obj: dict[str, Any]) -> None:
        spec = obj["spec"]
        spec.update(replicas=3, minReadySeconds=7, progressDeadlineSeconds=90, revisionHistoryLimit=4)
        obj["metadata"]["annotations"] = {"owner": "shop-team"}
        obj["metadata"]["labels"]["app.kubernetes.io/version"] = "6.0.1"
        pod = spec["template"]["spec"]
        pod["containers"][0]["image"] = "ghcr.io/stefanprodan/podinfo:6.0.1"
        pod["topologySpreadConstraints"] = [
            {
                "maxSkew": 1,
                "topologyKey": "zone",
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": {"app": "podinfo"}},
            }
        ]
        pod["affinity"] = {
            "podAntiAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": [
                    {
                        "topologyKey": "kubernetes.io/hostname",
                        "labelSelector": {
                            "matchExpressions": [{"key": "app", "operator": "In", "values": ["podinfo"]}]
                        },
                    }
                ]
            }
        }

    kube.update(DEPLOYMENTS, "podinfo", release)
    for _ in range(20):
        if runner.tick().status.phase is Phase.SUCCEEDED:
            break
        runner.clock.sleep(5)
    primary = kube.get(DEPLOYMENTS, "podinfo-primary")
    spec = primary["spec"]
    assert (
        spec["replicas"],
        spec["minReadySeconds"],
        spec["progressDeadlineSeconds"],
        spec["revisionHistoryLimit"],
    ) == (
        3,
        7,
        90,
        4,
    )
    assert not primary["metadata"].get("annotations"), "on promotion annotations pass the label prefixes too"
    assert primary["metadata"]["labels"]["app.kubernetes.io/version"] == "6.0.1"
    pod = spec["template"]["spec"]
    assert pod["containers"][0]["image"] == "ghcr.io/stefanprodan/podinfo:6.0.1"
    assert pod["topologySpreadConstraints"][0]["labelSelector"] == {"matchLabels": {"app": "podinfo-primary"}}
    expr = pod["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0]
    assert expr["labelSelector"]["matchExpressions"][0]["values"] == ["podinfo-primary"]


def test_progdel_yaml_sets_the_default_provider(
    sandbox: Any, kube: Kube, namespace: str, tmp_path: Path
) -> None:
    """defaults.meshProvider is Flagger's -mesh-provider: a Canary without spec.provider and
    without gatewayRefs runs on it (here: the Gateway API, which then wants gatewayRefs)."""
    config = tmp_path / "progdel.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "environments": [
                    {"name": "prod", "namespace": namespace, "order": 1, "promotionStrategy": "Auto"}
                ],
                "apps": [{"name": "podinfo", "image": "ghcr.io/stefanprodan/podinfo"}],
                "defaults": {"meshProvider": "gatewayapi:v1"},
            }
        )
    )
    path = tmp_path / "canary.yaml"
    path.write_text(yaml.safe_dump(canary_doc(namespace)))
    base = [sys.executable, "-m", "progdel", "--kubeconfig", str(sandbox.kubeconfig), "--config", str(config)]
    done = subprocess.run(
        [*base, "canary", "check", "-f", str(path), "--no-cluster"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "spec.service.gatewayRefs: the Gateway API router needs" in done.stderr
    done = subprocess.run(
        [*base, "--mesh-provider", "istio", "canary", "check", "-f", str(path), "--no-cluster",
         "--prometheus-url", "http://127.0.0.1:9"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert "note: canary" in done.stderr and "provider istio (--mesh-provider)" in done.stderr, done.stderr
