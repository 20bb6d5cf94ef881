"""`progdel canary check` as a user runs it: a subprocess against the sandbox and a real Prometheus."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from progdel.canary.preflight import check_access, history_access, needed_access
from progdel.config.canary import Canary, parse_canary, parse_metric_template
from progdel.kube.client import Kube, connect
from progdel.kube.errors import NotFound
from progdel.kube.resources import (
    CANARIES,
    DEPLOYMENTS,
    DESTINATIONRULES,
    EVENTS,
    LEASES,
    SERVICES,
    VIRTUALSERVICES,
    Resource,
)
from progdel.routing.gatewayapi import HTTPROUTES_V1BETA1
from tests.canary.specs import podinfo_canary
from tests.canary.test_runner_integration import T0, deployment
from tests.promfixture import (
    PrometheusInstance,
    TrafficPhase,
    free_port,
    istio_openmetrics,
    require_prometheus,
    run_prometheus,
)
from tests.sandbox.test_rbac import add_token, unique

AT = (T0 + timedelta(seconds=300)).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture(scope="module")
def prom(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusInstance]:
    require_prometheus()
    text = istio_openmetrics(
        T0,
        1200,
        5,
        {
            "good/podinfo": [TrafficPhase(0, 10, 0.0, 40)],
            "bad/podinfo": [TrafficPhase(0, 10, 0.3, 40)],
        },
    )
    with run_prometheus(text, tmp_path_factory.mktemp("preflight")) as instance:
        yield instance


def canary_file(tmp_path: Path, namespace: str, **spec_extra: Any) -> Path:
    doc = podinfo_canary(
        namespace,
        [
            {"name": "request-success-rate", "thresholdRange": {"min": 99}, "interval": "1m"},
            {"name": "request-duration", "thresholdRange": {"max": 500}, "interval": "1m"},
            {"name": "ninety-nine", "query": "vector(99)", "thresholdRange": {"min": 95}},
        ],
        spec=spec_extra,
    )
    path = tmp_path / f"canary-{namespace}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def check(
    kubeconfig: Path, *args: str, namespace: str | None = None
) -> tuple[int, dict[str, Any] | None, str]:
    ns = ["-n", namespace] if namespace else []
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "progdel",
            "--kubeconfig",
            str(kubeconfig),
            *ns,
            "-o",
            "json",
            "canary",
            "check",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    data = json.loads(proc.stdout) if proc.stdout.strip().startswith("{") else None
    return proc.returncode, data, proc.stderr


def dead_kubeconfig(sandbox: Any, tmp_path: Path) -> Path:
    config = yaml.safe_load(Path(sandbox.kubeconfig).read_text())
    for cluster in config["clusters"]:
        cluster["cluster"]["server"] = f"http://127.0.0.1:{free_port()}"
    path = tmp_path / "dead-kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return path


def verdicts(data: dict[str, Any]) -> dict[str, tuple[Any, str]]:
    return {m["name"]: (m["value"], m["verdict"]) for m in data["metrics"]}


def test_good_spec_passes_with_values_and_plans_init(
    sandbox: Any, prom: PrometheusInstance, tmp_path: Path
) -> None:
    code, data, err = check(
        sandbox.kubeconfig,
        "-f",
        str(canary_file(tmp_path, "good")),
        "--prometheus-url",
        prom.url,
        "--at",
        AT,
        "--no-cluster",
    )
    assert code == 0, err
    assert data is not None
    got = verdicts(data)
    assert got["request-success-rate"] == (pytest.approx(100.0), "pass")
    assert got["request-duration"] == (pytest.approx(40.0), "pass")
    assert got["ninety-nine"] == (99.0, "pass")
    assert 'destination_workload_namespace="good"' in data["metrics"][0]["query"]
    assert data["cluster"]["checked"] is False and "skipped" in data["cluster"]["note"]


def test_failing_spec_exits_3(sandbox: Any, prom: PrometheusInstance, tmp_path: Path) -> None:
    code, data, err = check(
        sandbox.kubeconfig,
        "-f",
        str(canary_file(tmp_path, "bad")),
        "--prometheus-url",
        prom.url,
        "--at",
        AT,
        "--no-cluster",
    )
    assert code == 3, err
    assert data is not None
    value, verdict = verdicts(data)["request-success-rate"]
    assert verdict == "fail" and value == pytest.approx(70.0)
    assert data["metrics"][0]["message"] == "success rate 70.00% < 99%"


def test_too_little_traffic_holds_instead_of_failing(
    sandbox: Any, prom: PrometheusInstance, tmp_path: Path
) -> None:
    path = canary_file(tmp_path, "bad")
    doc = yaml.safe_load(path.read_text())
    doc["metadata"]["annotations"] = {"progdel.dev/min-requests": "1000"}
    path.write_text(yaml.safe_dump(doc))
    code, data, err = check(
        sandbox.kubeconfig, "-f", str(path), "--prometheus-url", prom.url, "--at", AT, "--no-cluster"
    )
    assert code == 5, err  # would hold: the 70% success rate is not judged on 600 requests
    assert data is not None
    assert {m["verdict"] for m in data["metrics"]} == {"hold"}
    assert data["metrics"][0]["message"] == (
        "podinfo.bad served 600 requests in the last 1m, fewer than the 1000 progdel.dev/min-requests "
        "asks for before judging"
    )


def test_spec_errors_exit_2(sandbox: Any, prom: PrometheusInstance, tmp_path: Path) -> None:
    path = canary_file(tmp_path, "good")
    doc = yaml.safe_load(path.read_text())
    doc["spec"]["analysis"]["stepWieght"] = 10
    path.write_text(yaml.safe_dump(doc))
    code, _, err = check(sandbox.kubeconfig, "-f", str(path), "--prometheus-url", prom.url, "--no-cluster")
    assert code == 2 and "stepWieght" in err and "Traceback" not in err

    doc["spec"]["analysis"].pop("stepWieght")
    doc["spec"]["analysis"]["metrics"].append(
        {"name": "broken", "query": "sum(rate(foo[1m]", "thresholdRange": {"max": 1}}
    )
    path.write_text(yaml.safe_dump(doc))
    code, data, err = check(
        sandbox.kubeconfig, "-f", str(path), "--prometheus-url", prom.url, "--at", AT, "--no-cluster"
    )
    assert code == 2, err
    assert data is not None and verdicts(data)["broken"] == (None, "rejected")
    assert verdicts(data)["ninety-nine"] == (99.0, "pass"), "the other metrics are still checked"


def test_prometheus_unreachable_exits_6(sandbox: Any, tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    code, data, err = check(
        sandbox.kubeconfig, "-f", str(canary_file(tmp_path, "good")), "--prometheus-url", url, "--no-cluster"
    )
    assert code == 6, err
    assert data is not None and all(m["verdict"] == "unreachable" for m in data["metrics"])
    assert url in data["metrics"][0]["message"]


def snapshot(kube: Kube) -> dict[tuple[str, str], str]:
    out = {}
    for res in (CANARIES, DEPLOYMENTS, SERVICES, DESTINATIONRULES, VIRTUALSERVICES, LEASES, EVENTS):
        for item in kube.items(res):
            out[(res.kind, item["metadata"]["name"])] = item["metadata"]["resourceVersion"]
    return out


def settled(kube: Kube, name: str) -> None:
    """Wait until the deployment controller has written the Deployment's final status: what it
    writes later would look like a change made by the command under test."""
    deadline = time.monotonic() + 60
    while True:
        dep = kube.get(DEPLOYMENTS, name)
        status = dep.get("status") or {}
        replicas = dep["spec"].get("replicas", 1)
        if (
            status.get("observedGeneration") == dep["metadata"].get("generation")
            and status.get("availableReplicas", 0) == replicas
            and status.get("replicas", 0) == replicas
        ):
            return
        assert time.monotonic() < deadline, f"deployment {name} never settled: {status}"
        time.sleep(0.05)


def test_diff_for_an_existing_virtualservice_and_nothing_written(
    sandbox: Any, prom: PrometheusInstance, namespace: str, tmp_path: Path
) -> None:
    kube = connect(str(sandbox.kubeconfig), None, namespace)
    kube.create(DEPLOYMENTS, deployment("podinfo", "ghcr.io/stefanprodan/podinfo:6.0.0"))
    settled(kube, "podinfo")
    kube.create(
        VIRTUALSERVICES,
        {
            "metadata": {"name": "podinfo"},
            "spec": {
                "hosts": ["podinfo", "app.example.com"],
                "http": [
                    {
                        "retries": {"attempts": 3},
                        "route": [{"destination": {"host": "podinfo", "port": {"number": 9898}}}],
                    }
                ],
            },
        },
    )
    before = snapshot(kube)
    code, data, err = check(
        sandbox.kubeconfig,
        "-f",
        str(canary_file(tmp_path, namespace)),
        "--prometheus-url",
        prom.url,
        "--at",
        AT,
    )
    assert snapshot(kube) == before, "check must not change anything in the cluster"
    assert code == 3, err  # this namespace has no traffic in the history: no data fails
    assert data is not None and data["cluster"]["checked"] is True
    actions = {(o["kind"], o["name"]): o["action"] for o in data["cluster"]["objects"]}
    assert actions[("Deployment", "podinfo-primary")] == "create"
    assert actions[("Deployment", "podinfo")] == "change"  # scaled to zero
    for svc in ("podinfo", "podinfo-primary", "podinfo-canary"):
        assert actions[("Service", svc)] == "create"
    assert actions[("DestinationRule", "podinfo-canary")] == "create"
    assert actions[("VirtualService", "podinfo")] == "change"
    assert actions[("Canary", "podinfo")] == "create"
    vs = next(o for o in data["cluster"]["objects"] if o["kind"] == "VirtualService")
    diff = vs["diff"]
    assert "-        host: podinfo\n" in diff
    assert "+        host: podinfo-primary\n" in diff and "+        host: podinfo-canary\n" in diff
    assert "+      weight: 100\n" in diff and "+      weight: 0\n" in diff
    assert "+    progdel.dev/original-configuration:" in diff
    assert not any(line.startswith("-") and "retries" in line for line in diff.splitlines())
    primary = next(
        o for o in data["cluster"]["objects"] if o["name"] == "podinfo-primary" and o["kind"] == "Deployment"
    )
    assert primary["object"]["spec"]["selector"] == {"matchLabels": {"app": "podinfo-primary"}}

    assert "create" not in {o["action"] for o in data["cluster"]["objects"] if o["kind"] == "VirtualService"}


def test_objects_already_as_init_writes_them_are_unchanged(
    sandbox: Any, prom: PrometheusInstance, namespace: str, tmp_path: Path
) -> None:
    from progdel.canary import store
    from progdel.canary.admission import admit
    from progdel.canary.cluster import initialize
    from progdel.config.canary import canary_document

    kube = connect(str(sandbox.kubeconfig), None, namespace)
    kube.create(DEPLOYMENTS, deployment("podinfo", "ghcr.io/stefanprodan/podinfo:6.0.0"))
    path = canary_file(tmp_path, namespace)
    store.apply_canary(kube, admit(canary_document(path)).document, namespace)  # as init stores it
    initialize(kube, "podinfo", namespace, lambda _r: None, timeout=30)
    settled(kube, "podinfo")
    settled(kube, "podinfo-primary")
    before = snapshot(kube)
    _, data, err = check(sandbox.kubeconfig, "-f", str(path), "--prometheus-url", prom.url, "--at", AT)
    assert snapshot(kube) == before
    assert data is not None, err
    actions = {(o["kind"], o["name"]): o["action"] for o in data["cluster"]["objects"]}
    assert set(actions.values()) == {"unchanged"}, actions
    assert ("VirtualService", "podinfo") in actions and ("Deployment", "podinfo-primary") in actions


def test_unreachable_cluster_still_checks_the_metrics(
    sandbox: Any, prom: PrometheusInstance, tmp_path: Path
) -> None:
    code, data, err = check(
        dead_kubeconfig(sandbox, tmp_path),
        "-f",
        str(canary_file(tmp_path, "good")),
        "--prometheus-url",
        prom.url,
        "--at",
        AT,
    )
    assert code == 0, err
    assert data is not None and data["cluster"]["checked"] is False
    assert data["cluster"]["note"].startswith("skipped: cannot reach the Kubernetes API")
    assert verdicts(data)["ninety-nine"] == (99.0, "pass")


def test_human_output_shows_the_table_and_the_diff(
    sandbox: Any, prom: PrometheusInstance, namespace: str, tmp_path: Path
) -> None:
    kube = connect(str(sandbox.kubeconfig), None, namespace)
    kube.create(DEPLOYMENTS, deployment("podinfo", "ghcr.io/stefanprodan/podinfo:6.0.0"))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "progdel",
            "--kubeconfig",
            str(sandbox.kubeconfig),
            "canary",
            "check",
            "-f",
            str(canary_file(tmp_path, namespace)),
            "--prometheus-url",
            prom.url,
            "--at",
            AT,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    out = proc.stdout
    assert "ninety-nine" in out and "99.00" in out and ">= 95" in out
    assert "create" in out and "podinfo-primary" in out
    assert f"+++ virtualservice {namespace}/podinfo (progdel)" in out


def rights(data: dict[str, Any]) -> dict[str, list[str]]:
    return {m["resource"]: m["verbs"] for m in data["rbac"]["missing"]}


def test_rbac_rights_the_loop_lacks_are_listed_and_exit_2(
    sandbox: Any, prom: PrometheusInstance, namespace: str, tmp_path: Path
) -> None:
    kube = connect(str(sandbox.kubeconfig), None, namespace)
    kube.create(DEPLOYMENTS, deployment("podinfo", "ghcr.io/stefanprodan/podinfo:6.0.0"))
    role = Resource("rbac.authorization.k8s.io", "v1", "roles", "Role")
    binding = Resource("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding")
    reader = add_token(sandbox, unique("reader"))
    kube.create(
        role,
        {
            "metadata": {"name": "read"},
            "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["get", "list"]}],
        },
        namespace,
    )
    kube.create(
        binding,
        {
            "metadata": {"name": "reader-read"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "read"},
            "subjects": [{"kind": "User", "name": reader.name}],
        },
        namespace,
    )
    config = yaml.safe_load(Path(sandbox.kubeconfig).read_text())
    config["users"][0]["user"]["token"] = reader.token
    restricted = tmp_path / "restricted-kubeconfig"
    restricted.write_text(yaml.safe_dump(config))
    path = canary_file(tmp_path, namespace)

    code, data, err = check(restricted, "-f", str(path), "--prometheus-url", prom.url, "--at", AT)
    assert data is not None, err
    assert code == 2, err  # a missing right outweighs the metrics failing for lack of data (3)
    assert data["cluster"]["checked"] is True, "reading is allowed: init is still planned"
    assert data["rbac"]["checked"] is True
    missing = rights(data)
    assert missing["canaries.flagger.app/status"] == ["update"]
    assert "create" in missing["events"]
    assert missing["canaries.flagger.app"] == ["create", "update", "patch"]
    assert missing["deployments.apps"] == ["create", "update", "patch"]
    assert missing["leases.coordination.k8s.io"] == ["create", "update"]
    assert missing["configmaps"] == ["create", "update", "delete"], "the run history's"
    assert set(missing) >= {"virtualservices.networking.istio.io", "destinationrules.networking.istio.io"}
    assert not any("get" in verbs for verbs in missing.values()), "what the user may do is not listed"
    assert all(m["namespace"] == namespace for m in data["rbac"]["missing"])
    status = next(m for m in data["rbac"]["missing"] if m["resource"] == "canaries.flagger.app/status")
    assert status["message"] == f'update canaries.flagger.app/status in namespace "{namespace}"'

    proc = subprocess.run(
        [sys.executable, "-m", "progdel", "--kubeconfig", str(restricted), "canary", "check", "-f", str(path),
         "--prometheus-url", prom.url, "--at", AT],
        capture_output=True,
        text=True,
        timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert "RBAC" in proc.stdout and "canaries.flagger.app/status" in proc.stdout

    code, data, err = check(sandbox.kubeconfig, "-f", str(path), "--prometheus-url", prom.url, "--at", AT)
    assert code == 3, err  # the admin: only the metrics (no data in this namespace) decide
    assert data is not None and data["rbac"]["checked"] is True and data["rbac"]["missing"] == []


def test_rbac_not_checked_without_a_cluster(sandbox: Any, prom: PrometheusInstance, tmp_path: Path) -> None:
    code, data, err = check(
        sandbox.kubeconfig, "-f", str(canary_file(tmp_path, "good")), "--prometheus-url", prom.url,
        "--at", AT, "--no-cluster",
    )  # fmt: skip
    assert code == 0, err
    assert data is not None and data["rbac"] == {
        "checked": False,
        "note": "not checked: the cluster was not read",
        "missing": [],
    }


def _canary(**spec_extra: Any) -> Canary:
    doc = {
        "apiVersion": "flagger.app/v1beta1",
        "kind": "Canary",
        "metadata": {"name": "podinfo", "namespace": "ns"},
        "spec": {
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
            "service": {"port": 9898},
            "analysis": {"interval": "10s", "threshold": 2, "stepWeight": 20},
            **spec_extra,
        },
    }
    return parse_canary(doc, "test").model


def _described(canary: Canary, **kw: Any) -> list[tuple[str, str, str | None]]:
    return [
        (a.verb, a.resource.qualified + (f"/{a.subresource}" if a.subresource else ""), a.namespace)
        for a in needed_access(canary, **kw)
    ]


def test_needed_access_for_istio_and_gatewayapi() -> None:
    common = [
        ("get", "canaries.flagger.app", "ns"),
        ("create", "canaries.flagger.app", "ns"),
        ("update", "canaries.flagger.app", "ns"),
        ("patch", "canaries.flagger.app", "ns"),
        ("update", "canaries.flagger.app/status", "ns"),
        ("get", "leases.coordination.k8s.io", "ns"),
        ("create", "leases.coordination.k8s.io", "ns"),
        ("update", "leases.coordination.k8s.io", "ns"),
        ("create", "events", "ns"),
        ("get", "events", "ns"),
        ("update", "events", "ns"),
        ("get", "deployments.apps", "ns"),
        ("create", "deployments.apps", "ns"),
        ("update", "deployments.apps", "ns"),
        ("patch", "deployments.apps", "ns"),
        ("get", "services", "ns"),
        ("create", "services", "ns"),
        ("update", "services", "ns"),
    ]
    istio = [
        (v, r, "ns")
        for r in ("destinationrules.networking.istio.io", "virtualservices.networking.istio.io")
        for v in ("get", "create", "update")
    ]
    httproutes = [(v, "httproutes.gateway.networking.k8s.io", "ns") for v in ("get", "create", "update")]
    assert _described(_canary()) == common + istio
    assert _described(_canary(provider="istio")) == common + istio
    assert _described(_canary(provider="gatewayapi:v1")) == common + httproutes
    v1beta1 = needed_access(_canary(provider="gatewayapi:v1beta1"))
    assert [a.resource for a in v1beta1 if a.resource.plural == "httproutes"] == [HTTPROUTES_V1BETA1] * 3
    assert not any(a.resource.plural == "virtualservices" for a in v1beta1)


def test_the_run_history_rights_are_checked_beside_the_loop_s() -> None:
    """What ``RunRecorder`` does with a run's ConfigMap: list a canary's runs, get and update the
    open record, create a new one, delete the oldest."""
    assert [(a.verb, a.resource.qualified, a.namespace) for a in history_access(_canary())] == [
        (v, "configmaps", "ns") for v in ("list", "get", "create", "update", "delete")
    ]


def test_needed_access_follows_the_spec_and_the_target() -> None:
    canary = _canary(
        analysis={
            "interval": "10s",
            "threshold": 2,
            "stepWeight": 20,
            "metrics": [
                {
                    "name": "errors",
                    "templateRef": {"name": "errors", "namespace": "shared"},
                    "thresholdRange": {"max": 1},
                },
                {"name": "latency", "templateRef": {"name": "latency"}, "thresholdRange": {"max": 500}},
            ],
            "alerts": [{"name": "on-call", "providerRef": {"name": "slack", "namespace": "alerting"}}],
        }
    )
    pod_template = {
        "spec": {
            "containers": [{"name": "app", "envFrom": [{"configMapRef": {"name": "settings"}}]}],
            "volumes": [{"name": "tls", "secret": {"secretName": "tls"}}],
        }
    }
    from_file = parse_metric_template(
        {
            "apiVersion": "flagger.app/v1beta1",
            "kind": "MetricTemplate",
            "metadata": {"name": "latency"},
            "spec": {"provider": {"type": "prometheus"}, "query": "vector(1)"},
        },
        "test",
    )

    got = _described(
        canary, templates=[from_file], pod_template=pod_template, alert_secret_namespaces=["alerting"]
    )
    assert got[-8:] == [
        ("get", "configmaps", "ns"),
        ("get", "secrets", "ns"),
        ("get", "metrictemplates.flagger.app", "shared"),
        ("get", "metrictemplates.flagger.app", "ns"),
        ("create", "metrictemplates.flagger.app", "ns"),
        ("patch", "metrictemplates.flagger.app", "ns"),
        ("get", "alertproviders.flagger.app", "alerting"),
        ("get", "secrets", "alerting"),
    ]
    assert not any(r in ("configmaps", "secrets") for _v, r, _n in _described(_canary()))

    # a template's provider.secretRef is read at every check, in the template's namespace
    with_secret = parse_metric_template(
        {
            "apiVersion": "flagger.app/v1beta1",
            "kind": "MetricTemplate",
            "metadata": {"name": "latency", "namespace": "metrics"},
            "spec": {"provider": {"type": "prometheus", "secretRef": {"name": "auth"}}, "query": "vector(1)"},
        },
        "test",
    )
    got = _described(canary, templates=[with_secret], metric_secret_namespaces=["shared"])
    assert got[-2:] == [("get", "secrets", "metrics"), ("get", "secrets", "shared")]


class _NoReviews(Kube):
    """A cluster without the SelfSubjectAccessReview API (and no objects)."""

    def __init__(self) -> None:
        self.namespace = "ns"

    def get_or_none(self, *_args: Any, **_kw: Any) -> None:
        return None

    def create(self, *_args: Any, **_kw: Any) -> dict[str, Any]:
        raise NotFound("the server could not find the requested resource", 404)


def test_a_cluster_that_cannot_answer_reviews_is_a_note_not_a_failure() -> None:
    missing, note = check_access(_NoReviews(), _canary())
    assert missing is None
    assert note.startswith("not checked: the cluster does not answer SelfSubjectAccessReviews")


def test_a_variable_that_shapes_a_query_is_warned_about(
    sandbox: Any, prom: PrometheusInstance, tmp_path: Path
) -> None:
    path = canary_file(tmp_path, "good")
    doc = yaml.safe_load(path.read_text())
    doc["spec"]["analysis"]["metrics"] = [
        {
            "name": "by-label",
            "query": (
                'sum(vector({{ variables.limit }})) + 0 * count(up{job="{{ variables.job }}"} or vector(1))'
            ),
            "templateVariables": {"limit": "99", "job": 'x"} or vector(0) or up{job="'},
            "thresholdRange": {"min": 95},
        }
    ]
    path.write_text(yaml.safe_dump(doc))
    code, data, err = check(
        sandbox.kubeconfig, "-f", str(path), "--prometheus-url", prom.url, "--at", AT, "--no-cluster"
    )
    assert code == 0, err
    assert data is not None
    (metric,) = data["metrics"]
    assert metric["query"].endswith('count(up{job="x\\"} or vector(0) or up{job=\\""} or vector(1))')
    assert metric["warning"].startswith("templateVariables limit used outside a quoted label value")
    assert data["warnings"] == [f"metric by-label: {metric['warning']}"]
    human = subprocess.run(
        [
            sys.executable,
            "-m",
            "progdel",
            "canary",
            "check",
            "-f",
            str(path),
            "--prometheus-url",
            prom.url,
            "--at",
            AT,
            "--no-cluster",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "warning: metric by-label: templateVariables limit used outside" in " ".join(human.stdout.split())
