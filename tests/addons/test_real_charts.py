"""The catalog against the real upstream charts of ``../shared/charts-mirror``, with both Helm engines.

The mirror holds the exact archives the catalog pins (Istio base/istiod/gateway 1.27.1, prometheus
27.37.0, flagger 1.44.0, grafana 1.7.0, loadtester 0.38.0, see its README); a test serves it over
HTTP on a free port, as ``--chart-repo`` expects. Where the folder is absent (a clone without
``../shared`` beside it) these tests are skipped.

What would break a user's install fails here: an object rendered twice, a value the catalog sets
that the chart does not define, a kind the sandbox does not serve (also with values users commonly
set: autoscaling, PodDisruptionBudgets, persistence, an Ingress, the load tester's RBAC), and the
whole life of the addons: install with --wait, status, list, a re-install that writes nothing, and
a remove that leaves the cluster as it was.
"""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import tarfile
import threading
import uuid
from collections.abc import Iterator
from functools import partial
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from progdel.addons.catalog import CATALOG, chart_values
from progdel.addons.install import InstallOptions, deep_merge, plan
from progdel.addons.kinds import ApiDiscovery
from progdel.kube.resources import NAMESPACES, Resource

from .conftest import _QuietHandler
from .test_addons import cli
from .test_render import HELM_DIR, _without_helm

SERVICE_ACCOUNTS = Resource("", "v1", "serviceaccounts", "ServiceAccount")
MIRROR = Path(__file__).resolve().parents[3] / "shared" / "charts-mirror"
VWC = Resource(
    "admissionregistration.k8s.io", "v1", "validatingwebhookconfigurations", "ValidatingWebhookConfiguration",
    namespaced=False,
)  # fmt: skip
MWC = Resource(
    "admissionregistration.k8s.io", "v1", "mutatingwebhookconfigurations", "MutatingWebhookConfiguration",
    namespaced=False,
)  # fmt: skip

#: values users commonly set, per addon and chart: every kind they render must be served
LIKELY_VALUES: list[tuple[str, str, dict[str, Any]]] = [
    ("istio", "gateway", {"autoscaling": {"enabled": True}, "podDisruptionBudget": {"minAvailable": 1}}),
    ("istio", "gateway", {"autoscaling": {"enabled": False}, "service": {"type": "NodePort"}}),
    (
        "istio",
        "istiod",
        {"autoscaleEnabled": True, "global": {"defaultPodDisruptionBudget": {"enabled": True}}},
    ),
    (
        "prometheus",
        "prometheus",
        {
            "server": {
                "persistentVolume": {"enabled": True, "size": "8Gi"},
                "podDisruptionBudget": {"enabled": True},
                "ingress": {"enabled": True, "hosts": ["prometheus.example.com"]},
            },
            "networkPolicy": {"enabled": True},
        },
    ),
    ("flagger", "flagger", {"podDisruptionBudget": {"enabled": True}, "leaderElection": {"enabled": True}}),
    ("grafana", "grafana", {"password": "change-me", "service": {"type": "LoadBalancer"}}),
    (
        "loadtester",
        "loadtester",
        {
            "rbac": {"create": True, "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]},
            "podDisruptionBudget": {"enabled": True},
            "istio": {"enabled": True, "gateway": {"enabled": True}},
        },
    ),
    ("loadtester", "loadtester", {"rbac": {"create": True, "scope": "cluster"}}),
]


@pytest.fixture(scope="module")
def mirror() -> Iterator[str]:
    """``../shared/charts-mirror`` served on a free loopback port."""
    if not (MIRROR / "index.yaml").is_file():
        pytest.skip(f"{MIRROR} is absent: the real upstream charts are not beside this clone")
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietHandler, directory=str(MIRROR)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(params=["helm", "sdk"])
def helm_engine(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The helm CLI on the PATH, or only helm-python-sdk."""
    from progdel.addons.render import engine

    if request.param == "helm":
        monkeypatch.setenv("PATH", f"{HELM_DIR}{os.pathsep}{os.environ.get('PATH', '')}")
    else:
        pytest.importorskip("helm_python", reason="the SDK engine needs helm-python-sdk")
        _without_helm(monkeypatch)
    assert engine() == request.param
    return str(request.param)


def chart_defaults(archive: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """A chart archive's ``values.yaml`` and ``values.schema.json`` (empty when it has none)."""
    values: dict[str, Any] = {}
    schema: dict[str, Any] = {}
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            parts = member.name.split("/")
            if len(parts) != 2:
                continue
            f = tar.extractfile(member)
            if f is None:
                continue
            if parts[1] == "values.yaml":
                values = yaml.safe_load(f.read()) or {}
            elif parts[1] == "values.schema.json":
                schema = json.loads(f.read())
    return values, schema


def undefined_keys(values: dict[str, Any], defaults: dict[str, Any], schema: dict[str, Any]) -> list[str]:
    """Paths in ``values`` the chart does not define.

    Defined: a path of the chart's ``values.yaml`` (Istio's charts keep theirs under
    ``_internal_defaults_do_not_set``), a key of a free-form map the chart leaves empty (``{}``,
    ``null``), or a property its ``values.schema.json`` declares.
    """
    istio = defaults.get("_internal_defaults_do_not_set")
    if isinstance(istio, dict):
        defaults = deep_merge(
            istio, {k: v for k, v in defaults.items() if k != "_internal_defaults_do_not_set"}
        )
    declared = ((schema.get("$defs") or {}).get("values") or schema).get("properties") or {}
    out: list[str] = []

    def walk(value: Any, default: Any, path: str) -> None:
        if not isinstance(value, dict):
            return
        if default is None or default == {}:
            return  # a free-form map
        if not isinstance(default, dict):
            out.append(path)
            return
        for k, v in value.items():
            sub = f"{path}.{k}" if path else k
            if k in default:
                walk(v, default[k], sub)
            elif not path and k in declared:
                continue
            else:
                out.append(sub)

    walk(values, defaults, "")
    return out


def test_catalog_pins_charts_the_mirror_has(mirror: str) -> None:
    index = yaml.safe_load((MIRROR / "index.yaml").read_text())["entries"]
    for addon in CATALOG.values():
        for spec in addon.charts:
            versions = {str(e["version"]) for e in index.get(spec.chart, [])}
            assert addon.version in versions, f"{addon.name}: {spec.chart} {addon.version} not in the mirror"


def test_catalog_values_are_keys_the_charts_define(mirror: str) -> None:
    namespaces = {n: a.namespace or "test" for n, a in CATALOG.items()}
    for addon in CATALOG.values():
        for spec in addon.charts:
            archive = MIRROR / f"{spec.chart}-{addon.version}.tgz"
            defaults, schema = chart_defaults(archive)
            values = chart_values(addon, spec, namespaces)
            assert undefined_keys(values, defaults, schema) == [], f"{addon.name}/{spec.chart}"
    for name, chart, likely in LIKELY_VALUES:
        defaults, schema = chart_defaults(MIRROR / f"{chart}-{CATALOG[name].version}.tgz")
        assert undefined_keys(likely, defaults, schema) == [], f"{name}/{chart}: {likely}"


def _scrape_jobs(values: dict[str, Any]) -> dict[str, dict[str, Any]]:
    from progdel.addons.render import render

    objects = render(
        MIRROR / f"prometheus-{CATALOG['prometheus'].version}.tgz", values, release="p", namespace="t"
    )
    config = next(o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "prometheus")
    jobs = yaml.safe_load(config["data"]["prometheus.yml"])["scrape_configs"]
    return {j["job_name"]: j for j in jobs}


def test_the_prometheus_addon_labels_pod_series_as_flaggers_queries_select_them(
    mirror: str, helm_engine: str
) -> None:
    """Flagger's HTTP observer (pkg/metrics/observers/http.go), used for the ``kubernetes`` and
    ``gatewayapi`` providers, selects an application's series by ``kubernetes_namespace`` and
    ``kubernetes_pod_name``; the chart labels them ``namespace`` and ``pod``. With the catalog's
    values every job that discovers pods copies the pod's namespace and name into both, and
    every job and rule of the chart is still there."""
    from progdel.addons.charts import default_values

    addon = CATALOG["prometheus"]
    spec = addon.charts[0]
    archive = MIRROR / f"prometheus-{addon.version}.tgz"
    plain = _scrape_jobs(chart_values(addon, spec, {}))
    jobs = _scrape_jobs(chart_values(addon, spec, {}, default_values(archive)))
    assert jobs.keys() == plain.keys()
    pod_jobs = [
        name
        for name, job in jobs.items()
        if any(sd.get("role") == "pod" for sd in job.get("kubernetes_sd_configs") or [])
    ]
    assert "kubernetes-pods" in pod_jobs
    for name, job in jobs.items():
        rules = job.get("relabel_configs") or []
        before = plain[name].get("relabel_configs") or []
        assert rules[: len(before)] == before, f"{name}: the chart's own rules are kept, in order"
        if name not in pod_jobs:
            assert rules == before, name
            continue
        copied = {
            r["target_label"]: r["source_labels"]
            for r in rules[len(before) :]
            if r.get("action", "replace") == "replace" and "regex" not in r and "replacement" not in r
        }
        assert copied == {
            "kubernetes_namespace": ["__meta_kubernetes_namespace"],
            "kubernetes_pod_name": ["__meta_kubernetes_pod_name"],
        }, name
        # the chart's labels stay for whatever else reads them
        assert {r.get("target_label") for r in before} >= {"namespace", "pod"}, name


def test_the_key_check_catches_what_it_should() -> None:
    defaults = {"crd": {"create": False}, "podAnnotations": {}, "password": None, "image": {"tag": "1"}}
    assert undefined_keys({"crd": {"create": True}, "podAnnotations": {"a": "b"}}, defaults, {}) == []
    assert undefined_keys({"crds": {"create": True}, "image": {"tga": "2"}}, defaults, {}) == [
        "crds",
        "image.tga",
    ]
    istio = {"_internal_defaults_do_not_set": {"pilot": {"replicaCount": 1}}}
    assert undefined_keys({"pilot": {"replicaCount": 2}}, istio, {}) == []
    assert undefined_keys({"pilot": {"replicas": 2}}, istio, {}) == ["pilot.replicas"]


def _plan_all(
    kube: Any, mirror: str, extra: dict[tuple[str, str], dict[str, Any]], only: str | None = None
) -> dict[str, Any]:
    namespaces = {n: a.namespace or "test" for n, a in CATALOG.items()}
    discovery = ApiDiscovery(kube)
    plans = {}
    for name, addon in CATALOG.items():
        if only is not None and name != only:
            continue
        chart_extra = {c: v for (a, c), v in extra.items() if a == name}
        opts = InstallOptions(repo=mirror, chart_values=chart_extra)
        plans[name] = plan(kube, addon, namespaces[name], opts, namespaces, discovery)
    return plans


def test_every_real_chart_renders_cleanly_with_the_catalogs_values(
    sandbox: Any, kube: Any, mirror: str, helm_engine: str
) -> None:
    """plan() refuses an object rendered twice and a kind the cluster does not serve."""
    plans = _plan_all(kube, mirror, {})
    flagger = plans["flagger"].manifest()
    crds = [o["metadata"]["name"] for o in flagger if o["kind"] == "CustomResourceDefinition"]
    assert sorted(crds) == [
        "alertproviders.flagger.app",
        "canaries.flagger.app",
        "metrictemplates.flagger.app",
    ]
    kinds = {o["kind"] for p in plans.values() for o in p.manifest()}
    assert {"ValidatingWebhookConfiguration", "MutatingWebhookConfiguration", "PodDisruptionBudget"} <= kinds
    deployment = next(o for o in flagger if o["kind"] == "Deployment")
    args = deployment["spec"]["template"]["spec"]["containers"][0]["command"]
    assert "-metrics-server=http://prometheus.istio-system:9090" in args and "-mesh-provider=istio" in args
    datasources = next(
        o for o in plans["grafana"].manifest() if o["metadata"]["name"] == "flagger-grafana-datasources"
    )
    assert "url: http://prometheus.istio-system:9090" in datasources["data"]["datasources.yaml"]
    loadtester = plans["loadtester"]
    assert loadtester.namespace == "test"
    assert {(q.ref.kind, q.ref.name) for q in loadtester.objects} == {
        ("Deployment", "flagger-loadtester"),
        ("Service", "flagger-loadtester"),
    }


def test_values_users_commonly_set_render_only_served_kinds(
    sandbox: Any, kube: Any, mirror: str, helm_engine: str
) -> None:
    for name, chart, likely in LIKELY_VALUES:
        plans = _plan_all(kube, mirror, {(name, chart): likely}, only=name)
        assert plans[name].objects, (name, likely)


# ---- the whole life of the addons ---------------------------------------------------------------

#: what a dump of the cluster leaves out, each because a real cluster changes it too
VOLATILE_KINDS = {"Event"}  # records of what happened, not state


def dump(kube: Any) -> dict[tuple[str, str, str, str], dict[str, Any]]:
    """Every object of every listable resource, by (group, kind, namespace, name)."""
    discovery = ApiDiscovery(kube)
    out: dict[tuple[str, str, str, str], dict[str, Any]] = {}
    for api_version in kube.group_versions():
        for namespaced in (True, False):
            for res in discovery.listable(api_version, namespaced=namespaced):
                if res.kind in VOLATILE_KINDS:
                    continue
                for obj in kube.items(res, all_namespaces=namespaced):
                    meta = obj["metadata"]
                    key = (res.group, res.kind, meta.get("namespace", ""), meta["name"])
                    out.setdefault(key, obj)  # the preferred version only
    return out


def act_as_istiod(api_client: Any, kube: Any, istio_ns: str, app_ns: str) -> None:
    """What istiod does on a real cluster once it runs (the sandbox runs no istiod), with its field
    manager: it fails its validating webhook closed and patches in its CA bundle, creates its CA
    Secret, leader-election ConfigMaps and Leases, and the root certificate in every namespace."""
    from kubernetes import client

    manager = "pilot-discovery"
    admission = client.AdmissionregistrationV1Api(api_client)
    validator = kube.get(VWC, "istiod-default-validator")
    for hook in validator["webhooks"]:
        hook["failurePolicy"] = "Fail"
        hook["clientConfig"]["caBundle"] = "Q0EgYnVuZGxl"
    admission.replace_validating_webhook_configuration(
        "istiod-default-validator", validator, field_manager=manager
    )
    injector_name = f"istio-sidecar-injector-{istio_ns}"  # the chart's name outside istio-system
    injector = kube.get(MWC, injector_name)
    for hook in injector["webhooks"]:
        hook["clientConfig"]["caBundle"] = "Q0EgYnVuZGxl"
    admission.replace_mutating_webhook_configuration(injector_name, injector, field_manager=manager)
    core = client.CoreV1Api(api_client)
    root = {
        "metadata": {"name": "istio-ca-root-cert", "labels": {"istio.io/config": "true"}},
        "data": {"root-cert.pem": "x"},
    }
    for ns in (istio_ns, app_ns):
        core.create_namespaced_config_map(ns, root, field_manager=manager)
    core.create_namespaced_config_map(istio_ns, {"metadata": {"name": "istio-leader"}}, field_manager=manager)
    core.create_namespaced_secret(
        istio_ns,
        {
            "metadata": {"name": "istio-ca-secret"},
            "type": "istio.io/ca-root",
            "data": {"ca-cert.pem": "eA=="},
        },
        field_manager=manager,
    )
    client.CoordinationV1Api(api_client).create_namespaced_lease(
        istio_ns,
        {"metadata": {"name": "istio-gateway-deployment-default"}, "spec": {"holderIdentity": "istiod-1"}},
        field_manager=manager,
    )


def run_with_terminal(args: list[str], env: dict[str, str]) -> tuple[int, str, str]:
    """progdel as a subprocess whose stderr is a terminal, so the live progress display is drawn."""
    primary, secondary = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "progdel", *args], stdout=subprocess.PIPE, stderr=secondary, env=env, text=True
    )
    os.close(secondary)
    chunks: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                data = os.read(primary, 65536)
            except OSError:
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    out, _ = proc.communicate(timeout=600)
    reader.join(timeout=10)
    os.close(primary)
    return proc.returncode, out, b"".join(chunks).decode(errors="replace")


def test_install_status_reinstall_and_remove_the_real_addons(
    sandbox: Any, kube: Any, api_client: Any, mirror: str, helm_engine: str, tmp_path: Path
) -> None:
    ns = f"mesh-{uuid.uuid4().hex[:6]}"
    app_ns = f"test-{uuid.uuid4().hex[:6]}"
    kube.create(NAMESPACES, {"metadata": {"name": app_ns}})
    # the cluster gives a new namespace its default ServiceAccount shortly after: wait for it, so
    # that it is part of the state before
    assert _settled(lambda: kube.get_or_none(SERVICE_ACCOUNTS, "default", app_ns) is not None)
    before = dump(kube)

    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache"), "COLUMNS": "200"}
    base = ["--kubeconfig", str(sandbox.kubeconfig)]
    install = ["addon", "install", "--chart-repo", mirror, "--ingress-timeout", "0", "--timeout", "120"]
    code, out, err = run_with_terminal(
        [*base, "-n", ns, *install, "flagger", "grafana", "istio", "prometheus"], env
    )
    assert code == 0, err
    for addon in ("istio", "prometheus", "flagger", "grafana"):
        assert f"{addon} {CATALOG[addon].version} in {ns}: installed" in out
    for addon in ("istio", "prometheus", "flagger", "grafana"):
        assert f"{addon}: all deployments Available" in err
    assert out.index("istio ") < out.index("prometheus ") < out.index("flagger ")
    code, out, err = run_with_terminal([*base, "-n", app_ns, *install, "loadtester"], env)
    assert code == 0, err
    assert f"loadtester 0.38.0 in {app_ns}: installed" in out

    act_as_istiod(api_client, kube, ns, app_ns)

    code, out, _ = cli(sandbox, "-o", "json", "addon", "list")
    rows = {r["name"]: r for r in json.loads(out)}
    for addon in CATALOG:
        assert rows[addon]["installed"] == CATALOG[addon].version, addon
        assert rows[addon]["health"] == "healthy", (addon, rows[addon])
    assert rows["loadtester"]["namespace"] == app_ns and rows["grafana"]["namespace"] == ns
    code, out, _ = cli(sandbox, "-n", ns, "-o", "json", "addon", "status", "istio")
    assert code == 0 and json.loads(out)["health"] == "healthy", out

    # installing again writes nothing: istiod's webhook fields are its own, not drift
    managed = {k: o["metadata"]["resourceVersion"] for k, o in dump(kube).items() if k not in before}
    code, out, err = cli(sandbox, "-n", ns, *install, "istio", "prometheus", "flagger", "grafana")
    assert code == 0, err
    assert out.count(": unchanged") == 4, out
    code, out, err = cli(sandbox, "-n", app_ns, *install, "loadtester")
    assert code == 0 and ": unchanged" in out, err
    after = {k: o["metadata"]["resourceVersion"] for k, o in dump(kube).items() if k not in before}
    assert after == managed
    validator = kube.get(VWC, "istiod-default-validator")
    assert validator["webhooks"][0]["failurePolicy"] == "Fail"

    # several names, any order: dependents go first
    code, out, err = cli(sandbox, "-n", ns, "addon", "remove", "istio", "grafana", "prometheus", "flagger")
    assert code == 0, err
    order = [line.split(":")[0] for line in err.splitlines() if ": removed " in line]
    assert order == ["flagger", "grafana", "prometheus", "istio"], err
    assert "istio: deleted 5 objects its controller created" in err
    code, out, err = cli(sandbox, "-n", app_ns, "addon", "remove", "loadtester")
    assert code == 0, err
    # a deleted namespace or CRD goes once the cluster has deleted what it holds: wait for that
    left = _settled_dump(kube, set(before))
    assert set(left) == set(before), {
        "left behind": sorted(set(left) - set(before)),
        "gone": sorted(set(before) - set(left)),
    }
    changed = [k for k in before if left[k] != before[k]]
    assert changed == [], changed


def _settled(ready: Any, timeout: float = 30) -> bool:
    import time

    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def _settled_dump(kube: Any, want: set[Any], timeout: float = 90) -> dict[Any, dict[str, Any]]:
    import time

    deadline = time.monotonic() + timeout
    while True:
        left = dump(kube)
        if set(left) == want or time.monotonic() > deadline:
            return left
        time.sleep(0.5)
