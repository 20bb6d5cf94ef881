"""progdel addon: install, re-install, upgrade, status, remove, errors; against the sandbox over HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from progdel.addons.inventory import Inventory
from progdel.cli.main import app
from progdel.errors import ProgdelError
from progdel.kube.resources import CONFIGMAPS, CRDS, DEPLOYMENTS, GATEWAYS, NAMESPACES, SERVICES, Resource

pytest.importorskip("helm_python", reason="rendering needs helm-python-sdk (or the helm CLI)")


def cli(sandbox: Any, *args: str) -> tuple[int, str, str]:
    """Run progdel in-process; errors become their exit code and message as the entry point maps them."""
    result = CliRunner().invoke(app, ["--kubeconfig", str(sandbox.kubeconfig), *args])
    if isinstance(result.exception, ProgdelError):
        return int(result.exception.exit_code), result.stdout, result.stderr + str(result.exception)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def run_progdel(sandbox: Any, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "progdel", "--kubeconfig", str(sandbox.kubeconfig), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ},
    )


def inventory_of(kube: Any, addon: str, ns: str) -> Inventory | None:
    cm = kube.get_or_none(CONFIGMAPS, f"progdel-addon-{addon}", ns)
    return Inventory.from_configmap(cm) if cm else None


def live_versions(kube: Any, inv: Inventory) -> dict[str, str]:
    out = {}
    for ref in inv.objects:
        obj = kube.get(ref.resource, ref.name, ref.namespace or None)
        out[ref.key] = obj["metadata"]["resourceVersion"]
    return out


def install_istio(sandbox: Any, repo: str, ns: str, *extra: str) -> tuple[int, str, str]:
    return cli(
        sandbox, "-n", ns, "addon", "install", "istio", "--chart-repo", repo, "--ingress-timeout", "0", *extra
    )


@pytest.fixture
def app_namespace(kube: Any) -> Any:
    name = f"app-{uuid.uuid4().hex[:8]}"
    kube.create(NAMESPACES, {"metadata": {"name": name, "labels": {"team": "web"}}})
    yield name
    kube.delete(NAMESPACES, name, missing_ok=True)


def test_install_istio_applies_everything_and_records_it(sandbox, kube, chart_repo, namespace, app_namespace):
    code, _out, err = install_istio(sandbox, chart_repo.url, namespace, "--inject", app_namespace)
    assert code == 0, err
    crd = kube.get(CRDS, f"meshprobes.{namespace}.test.progdel.dev")
    assert crd["spec"]["group"] == f"{namespace}.test.progdel.dev"
    for name in ("istiod", "istio-ingressgateway"):
        dep = kube.get(DEPLOYMENTS, name, namespace)
        assert any(c["type"] == "Available" and c["status"] == "True" for c in dep["status"]["conditions"])
        assert dep["metadata"]["labels"]["progdel.dev/addon"] == "istio"
    gw = kube.get(GATEWAYS, "public-gateway", namespace)
    assert gw["spec"]["selector"] == {"istio": "ingressgateway"}
    assert gw["spec"]["servers"][0]["port"] == {"number": 80, "name": "http", "protocol": "HTTP"}
    assert gw["spec"]["servers"][0]["hosts"] == ["*"]
    labels = kube.get(NAMESPACES, app_namespace)["metadata"]["labels"]
    assert labels["istio-injection"] == "enabled"
    # the inventory lists every object, the Gateway and the label
    cm = kube.get(CONFIGMAPS, "progdel-addon-istio", namespace)
    assert cm["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "progdel"
    inv = Inventory.from_configmap(cm)
    assert inv.state == "installed" and inv.version == "1.27.1"
    kinds = [(o.kind, o.name) for o in inv.objects]
    assert kinds[0] == ("CustomResourceDefinition", f"meshprobes.{namespace}.test.progdel.dev")
    assert {("Gateway", "public-gateway"), ("Deployment", "istiod"), ("ConfigMap", "istio")} <= set(kinds)
    assert [(lb.namespace, lb.key, lb.value, lb.previous) for lb in inv.labels] == [
        (app_namespace, "istio-injection", "enabled", None)
    ]
    assert "still pending" in err


def test_reinstall_is_unchanged_and_writes_nothing(sandbox, kube, chart_repo, namespace, app_namespace):
    assert install_istio(sandbox, chart_repo.url, namespace, "--inject", app_namespace)[0] == 0
    inv = inventory_of(kube, "istio", namespace)
    assert inv is not None
    before = live_versions(kube, inv)
    inv_rv = kube.get(CONFIGMAPS, "progdel-addon-istio", namespace)["metadata"]["resourceVersion"]
    ns_rv = kube.get(NAMESPACES, app_namespace)["metadata"]["resourceVersion"]
    code, out, err = install_istio(sandbox, chart_repo.url, namespace, "--inject", app_namespace)
    assert code == 0, err
    assert "unchanged" in out
    assert live_versions(kube, inv) == before
    assert kube.get(CONFIGMAPS, "progdel-addon-istio", namespace)["metadata"]["resourceVersion"] == inv_rv
    assert kube.get(NAMESPACES, app_namespace)["metadata"]["resourceVersion"] == ns_rv


def test_ingress_address_is_printed_once_the_load_balancer_has_one(sandbox, kube, chart_repo, namespace):
    assert install_istio(sandbox, chart_repo.url, namespace)[0] == 0
    kube.patch(
        SERVICES,
        "istio-ingressgateway",
        {"status": {"loadBalancer": {"ingress": [{"hostname": "lb.example.test"}]}}},
        namespace,
        subresource="status",
    )
    code, _, err = install_istio(sandbox, chart_repo.url, namespace)
    assert code == 0
    assert "ingress address lb.example.test" in err


def test_upgrade_prunes_what_the_new_version_no_longer_renders(sandbox, kube, chart_repo, namespace):
    args = ("-n", namespace, "addon", "install", "prometheus", "--chart-repo", chart_repo.url)
    assert cli(sandbox, *args)[0] == 0
    assert kube.get_or_none(CONFIGMAPS, "prometheus-istio-rules", namespace) is not None
    svc = kube.get(SERVICES, "prometheus", namespace)  # the catalog's values name it prometheus:9090
    assert svc["spec"]["ports"][0]["port"] == 9090
    assert kube.get_or_none(CONFIGMAPS, "alertmanager", namespace) is None  # disabled by the catalog
    code, out, err = cli(sandbox, *args, "--version", "27.38.0")
    assert code == 0, err
    assert "upgraded" in out
    assert kube.get_or_none(CONFIGMAPS, "prometheus-istio-rules", namespace) is None
    assert kube.get_or_none(DEPLOYMENTS, "prometheus", namespace) is not None
    inv = inventory_of(kube, "prometheus", namespace)
    assert inv is not None and inv.version == "27.38.0"
    assert "prometheus-istio-rules" not in {o.name for o in inv.objects}


def test_status_reports_drift_and_missing_objects(sandbox, kube, chart_repo, namespace):
    assert install_istio(sandbox, chart_repo.url, namespace)[0] == 0
    code, out, _ = cli(sandbox, "-n", namespace, "-o", "json", "addon", "status", "istio")
    assert code == 0 and json.loads(out)["health"] == "healthy"

    kube.patch(
        DEPLOYMENTS,
        "istiod",
        {"spec": {"template": {"spec": {"containers": [{"name": "discovery", "image": "evil:1"}]}}}},
        namespace,
    )
    code, out, _ = cli(sandbox, "-n", namespace, "-o", "json", "addon", "status", "istio")
    data = json.loads(out)
    assert code == 5
    drifted = [o for o in data["objects"] if o["state"] == "drifted"]
    assert [o["object"] for o in drifted] == [f"Deployment {namespace}/istiod"]
    assert "spec.template.spec.containers[0].image" in drifted[0]["detail"]

    kube.delete(CONFIGMAPS, "istio", namespace)
    code, out, _ = cli(sandbox, "-n", namespace, "-o", "json", "addon", "status", "istio")
    missing = [o["object"] for o in json.loads(out)["objects"] if o["state"] == "missing"]
    assert code == 5 and missing == [f"ConfigMap {namespace}/istio"]

    # a re-install repairs both
    code, out, _ = install_istio(sandbox, chart_repo.url, namespace)
    assert code == 0 and "updated" in out
    assert kube.get(DEPLOYMENTS, "istiod", namespace)["spec"]["template"]["spec"]["containers"][0][
        "image"
    ] == ("registry.example.com/pilot:1.27.1")
    assert cli(sandbox, "-n", namespace, "addon", "status", "istio")[0] == 0


def test_remove_deletes_exactly_the_inventory(sandbox, kube, chart_repo, namespace, app_namespace):
    kube.create(CONFIGMAPS, {"metadata": {"name": "unrelated", "namespace": namespace}, "data": {"a": "b"}})
    assert install_istio(sandbox, chart_repo.url, namespace, "--inject", app_namespace)[0] == 0
    inv = inventory_of(kube, "istio", namespace)
    assert inv is not None and len(inv.objects) >= 7
    code, _out, err = cli(sandbox, "-n", namespace, "addon", "remove", "istio")
    assert code == 0, err
    for ref in inv.objects:
        if ref.kind == "CustomResourceDefinition":
            assert gone(kube, CRDS, ref.name)  # a deleted CRD goes once its custom objects have
        else:
            assert kube.get_or_none(ref.resource, ref.name, ref.namespace) is None, ref.describe()
    assert kube.get_or_none(CONFIGMAPS, "progdel-addon-istio", namespace) is None
    labels = kube.get(NAMESPACES, app_namespace)["metadata"]["labels"]
    assert "istio-injection" not in labels and labels["team"] == "web"
    assert kube.get(CONFIGMAPS, "unrelated", namespace)["data"] == {"a": "b"}
    assert kube.get_or_none(NAMESPACES, namespace) is not None
    # removing again has nothing to do
    assert cli(sandbox, "-n", namespace, "addon", "remove", "istio")[0] == 0


def test_remove_deletes_the_namespace_install_created_once_nothing_else_is_in_it(sandbox, kube, chart_repo):
    ns = f"t-own-{uuid.uuid4().hex[:6]}"
    try:
        assert install_istio(sandbox, chart_repo.url, ns)[0] == 0
        repo = chart_repo.url
        code, _, err = cli(sandbox, "-n", ns, "addon", "install", "prometheus", "--chart-repo", repo)
        assert code == 0, err
        labels = kube.get(NAMESPACES, ns)["metadata"]["labels"]
        assert labels["app.kubernetes.io/managed-by"] == "progdel" and labels["progdel.dev/addon"] == "istio"

        # prometheus still lives there: the namespace stays, and says why
        code, _, err = cli(sandbox, "-n", ns, "addon", "remove", "istio")
        assert code == 0, err
        assert kube.get_or_none(NAMESPACES, ns) is not None
        assert f"kept namespace {ns}" in err and "ConfigMap progdel-addon-prometheus" in err

        # so do the user's own objects
        kube.create(CONFIGMAPS, {"metadata": {"name": "mine", "namespace": ns}, "data": {"k": "v"}})
        code, out, err = cli(sandbox, "-n", ns, "-o", "json", "addon", "remove", "prometheus")
        assert code == 0, err
        assert json.loads(out)[0]["namespace_kept_for"] == ["ConfigMap mine"]
        assert kube.get(CONFIGMAPS, "mine", ns)["data"] == {"k": "v"}

        kube.delete(CONFIGMAPS, "mine", ns)
        assert install_istio(sandbox, chart_repo.url, ns)[0] == 0
        code, out, err = cli(sandbox, "-n", ns, "-o", "json", "addon", "remove", "istio")
        assert code == 0, err
        assert json.loads(out)[0]["namespace_deleted"] is True
        assert gone(kube, NAMESPACES, ns)  # a deleted namespace goes once the cluster emptied it
    finally:
        kube.delete(NAMESPACES, ns, missing_ok=True)


def gone(kube: Any, resource: Resource, name: str, timeout: float = 30) -> bool:
    """Wait for a deleted namespace or CRD to go: the cluster first deletes what it holds."""
    deadline = time.monotonic() + timeout
    while kube.get_or_none(resource, name) is not None:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_install_right_after_remove_waits_for_the_namespace_to_go(sandbox, kube, chart_repo):
    """The namespace `remove` deletes is Terminating while the cluster deletes its content (and
    nothing can be created in it): an `install` at once waits for it to go, saying so, or stops
    after --timeout saying what holds it."""
    ns = f"t-again-{uuid.uuid4().hex[:6]}"
    install = [
        sys.executable, "-m", "progdel", "--kubeconfig", str(sandbox.kubeconfig), "-n", ns,
        "addon", "install", "istio", "--chart-repo", chart_repo.url, "--ingress-timeout", "0",
    ]  # fmt: skip
    try:
        assert install_istio(sandbox, chart_repo.url, ns)[0] == 0
        first_uid = kube.get(NAMESPACES, ns)["metadata"]["uid"]
        owner = kube.get(DEPLOYMENTS, "istiod", ns)["metadata"]
        # an owned object (not the user's: remove still deletes the namespace) whose finalizer
        # keeps the namespace Terminating until the test lets it go
        kube.create(
            CONFIGMAPS,
            {
                "metadata": {
                    "name": "held",
                    "finalizers": ["example.com/hold"],
                    "ownerReferences": [
                        {"apiVersion": "apps/v1", "kind": "Deployment", "name": "istiod", "uid": owner["uid"]}
                    ],
                }
            },
            ns,
        )
        code, _, err = cli(sandbox, "-n", ns, "addon", "remove", "istio")
        assert code == 0, err

        timed_out = subprocess.run([*install, "--timeout", "1"], capture_output=True, text=True, timeout=60)
        assert timed_out.returncode == 7, timed_out.stderr
        assert f"namespace {ns} is still being deleted after 1s" in timed_out.stderr
        assert "finalizers remaining: example.com/hold in 1 resource instances" in timed_out.stderr
        assert "Traceback" not in timed_out.stderr

        proc = subprocess.Popen(install, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert proc.stderr is not None
            waiting = proc.stderr.readline()  # its first line: it waits
            assert f"istio: namespace {ns} is being deleted; waiting for it to go" in waiting
            kube.patch(CONFIGMAPS, "held", {"metadata": {"finalizers": None}}, ns)
            _, rest = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 0, waiting + rest
        fresh = kube.get(NAMESPACES, ns)
        assert fresh["metadata"]["uid"] != first_uid and fresh["status"]["phase"] == "Active"
        assert deployment_available(kube.get(DEPLOYMENTS, "istiod", ns))
        assert inventory_of(kube, "istio", ns).state == "installed"  # type: ignore[union-attr]
    finally:
        kube.delete(NAMESPACES, ns, missing_ok=True)


def deployment_available(dep: dict[str, Any]) -> bool:
    return any(c["type"] == "Available" and c["status"] == "True" for c in dep["status"]["conditions"])


def test_remove_keeps_crds_that_hold_objects_unless_told(sandbox, kube, chart_repo, namespace):
    crd = f"meshprobes.{namespace}.test.progdel.dev"
    probes = Resource(f"{namespace}.test.progdel.dev", "v1", "meshprobes", "MeshProbe")
    assert install_istio(sandbox, chart_repo.url, namespace)[0] == 0
    kube.create(probes, {"metadata": {"name": "mine"}, "spec": {"target": "x"}}, namespace)
    code, _, err = cli(sandbox, "-n", namespace, "addon", "remove", "istio")
    assert code == 0, err
    assert f"kept 1 CRDs: CustomResourceDefinition {crd} (1 object of its kind remain)" in err
    assert kube.get(probes, "mine", namespace)["spec"] == {"target": "x"}
    assert kube.get_or_none(DEPLOYMENTS, "istiod", namespace) is None

    # installed again, the kept CRD is still the addon's own (progdel applied it before): it is
    # updated, not left alone; --delete-crds says what goes, then deletes
    code, _, err = install_istio(sandbox, chart_repo.url, namespace)
    assert code == 0 and "already on the cluster" not in err, err
    code, _, err = cli(sandbox, "-n", namespace, "addon", "remove", "istio", "--delete-crds")
    assert code == 0, err
    assert f"deleting CustomResourceDefinition {crd} although 1 object of its kind remain" in err
    assert gone(kube, CRDS, crd)  # once the cluster has deleted its objects


def test_a_crd_on_the_cluster_before_is_neither_taken_over_nor_deleted(sandbox, kube, chart_repo, namespace):
    crd = f"meshprobes.{namespace}.test.progdel.dev"
    code, out, _ = cli(
        sandbox, "-n", namespace, "-o", "yaml", "addon", "install", "istio", "--chart-repo", chart_repo.url,
        "--dry-run",
    )  # fmt: skip
    theirs = next(d for d in yaml.safe_load_all(out) if d["kind"] == "CustomResourceDefinition")
    theirs["metadata"]["labels"] = {"owner": "platform-team"}
    kube.apply(CRDS, theirs, field_manager="platform-team")
    before = kube.get(CRDS, crd)
    code, _, err = install_istio(sandbox, chart_repo.url, namespace)
    assert code == 0, err
    assert "1 CRDs already on the cluster left as they are" in err
    after = kube.get(CRDS, crd)
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert {e["manager"] for e in after["metadata"]["managedFields"]} == {"platform-team"}
    code, out, _ = cli(sandbox, "-n", namespace, "-o", "json", "addon", "status", "istio")
    assert code == 0 and json.loads(out)["health"] == "healthy"
    code, _, err = cli(sandbox, "-n", namespace, "addon", "remove", "istio")
    assert code == 0, err
    assert f"CustomResourceDefinition {crd} (it was on the cluster before the install)" in err
    assert kube.get(CRDS, crd)["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]


def test_dry_run_prints_ordered_documents_and_creates_nothing(sandbox, kube, chart_repo):
    ns = f"t-dry-{uuid.uuid4().hex[:6]}"
    code, out, err = cli(
        sandbox, "-n", ns, "-o", "yaml", "addon", "install", "istio", "prometheus", "flagger",
        "--chart-repo", chart_repo.url, "--dry-run",
    )  # fmt: skip
    assert code == 0, err
    docs = list(yaml.safe_load_all(out))
    kinds = [d["kind"] for d in docs]
    assert kinds.index("CustomResourceDefinition") == 0
    assert {"Deployment", "Service", "ConfigMap", "Gateway"} <= set(kinds)
    # istio's objects first, then prometheus, then flagger: dependencies before dependents
    names = [d["metadata"]["name"] for d in docs]
    assert names.index("istiod") < names.index("prometheus") < names.index("flagger")
    assert kube.get_or_none(NAMESPACES, ns) is None
    assert kube.get_or_none(CRDS, f"meshprobes.{ns}.test.progdel.dev") is None


def test_flagger_is_pointed_at_the_prometheus_addon(sandbox, kube, chart_repo):
    code, out, err = cli(
        sandbox, "-o", "yaml", "addon", "install", "flagger", "--with-deps", "--chart-repo", chart_repo.url,
        "--dry-run",
    )  # fmt: skip
    assert code == 0, err
    flagger = next(
        d for d in yaml.safe_load_all(out) if d["kind"] == "Deployment" and d["metadata"]["name"] == "flagger"
    )
    args = flagger["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "-metrics-server=http://prometheus.istio-system:9090" in args
    assert "-mesh-provider=istio" in args
    assert flagger["metadata"]["namespace"] == "istio-system"


def test_flagger_installs_with_its_dependencies(sandbox, kube, chart_repo, namespace):
    code, _, err = cli(
        sandbox, "-n", namespace, "addon", "install", "flagger", "--chart-repo", chart_repo.url
    )
    assert code == 2
    assert "needs istio, prometheus" in err and "progdel addon install istio prometheus flagger" in err
    assert inventory_of(kube, "flagger", namespace) is None
    code, out, err = cli(
        sandbox, "-n", namespace, "addon", "install", "flagger", "--with-deps",
        "--chart-repo", chart_repo.url, "--ingress-timeout", "0",
    )  # fmt: skip
    assert code == 0, err
    try:
        for addon in ("istio", "prometheus", "flagger"):
            assert inventory_of(kube, addon, namespace) is not None
        args = kube.get(DEPLOYMENTS, "flagger", namespace)["spec"]["template"]["spec"]["containers"][0][
            "args"
        ]
        assert f"-metrics-server=http://prometheus.{namespace}:9090" in args
        crd = f"rollouttests.{namespace}.test.progdel.dev"
        assert kube.get_or_none(CRDS, crd) is not None
        code, out, _ = cli(sandbox, "-n", namespace, "-o", "json", "addon", "list")
        rows = {r["name"]: r for r in json.loads(out)}
        assert rows["flagger"]["installed"] == "1.44.0" and rows["flagger"]["health"] == "healthy"
    finally:
        for addon in ("flagger", "prometheus", "istio"):
            cli(sandbox, "-n", namespace, "addon", "remove", addon)
    assert gone(kube, CRDS, f"rollouttests.{namespace}.test.progdel.dev")


def test_unknown_version_lists_available_ones(sandbox, kube, chart_repo, namespace):
    code, _, err = cli(
        sandbox, "-n", namespace, "addon", "install", "prometheus", "--chart-repo", chart_repo.url,
        "--version", "9.9.9",
    )  # fmt: skip
    assert code == 2
    assert "version 9.9.9 of chart prometheus" in err and "27.38.0, 27.37.0" in err
    assert inventory_of(kube, "prometheus", namespace) is None


def test_digest_mismatch_is_refused(sandbox, kube, chart_repo, namespace):
    code, _, err = cli(
        sandbox, "-n", namespace, "addon", "install", "prometheus", "--chart-repo", chart_repo.tampered_url
    )
    assert code == 6
    assert "digest mismatch" in err and f"{chart_repo.tampered_url}/prometheus-27.37.0.tgz" in err
    assert kube.get_or_none(DEPLOYMENTS, "prometheus", namespace) is None
    assert inventory_of(kube, "prometheus", namespace) is None


def test_unserved_kind_is_refused_before_anything_is_applied(sandbox, kube, chart_repo, namespace):
    code, _, err = install_istio(
        sandbox, chart_repo.url, namespace, "--set", "istiod:podSecurityPolicy.enabled=true"
    )
    assert code == 2
    assert "does not serve PodSecurityPolicy (policy/v1beta1)" in err
    assert inventory_of(kube, "istio", namespace) is None
    assert kube.get_or_none(CRDS, f"meshprobes.{namespace}.test.progdel.dev") is None


def test_failure_midway_says_what_was_applied_and_remove_cleans_up(sandbox, kube, chart_repo, namespace):
    code, _, err = install_istio(
        sandbox, chart_repo.url, namespace, "--set", "istiod:extraConfigMap=Bad_Name"
    )
    assert code == 2
    assert f"CustomResourceDefinition meshprobes.{namespace}.test.progdel.dev" in err
    assert f"ConfigMap {namespace}/istio" in err
    assert "progdel addon remove istio" in err
    inv = inventory_of(kube, "istio", namespace)
    assert inv is not None and inv.state == "applying"
    assert kube.get_or_none(CONFIGMAPS, "istio", namespace) is not None
    assert cli(sandbox, "-n", namespace, "addon", "remove", "istio")[0] == 0
    assert kube.get_or_none(CONFIGMAPS, "istio", namespace) is None
    assert gone(kube, CRDS, f"meshprobes.{namespace}.test.progdel.dev")


def namespace_admin(sandbox: Any, kube: Any, namespace: str, tmp_path: Any) -> str:
    """A kubeconfig for a new user who may do anything in ``namespace`` and nothing at cluster scope."""
    user, token = f"dev-{uuid.uuid4().hex[:6]}", uuid.uuid4().hex
    with (sandbox.data_dir / "tokens.csv").open("a") as f:
        f.write(f"{token},{user},{user}\n")
    role = Resource("rbac.authorization.k8s.io", "v1", "roles", "Role")
    binding = Resource("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding")
    rules = [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]
    kube.create(role, {"metadata": {"name": f"all-{user}"}, "rules": rules}, namespace)
    ref = {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": f"all-{user}"}
    subjects = [{"kind": "User", "name": user}]
    kube.create(binding, {"metadata": {"name": user}, "roleRef": ref, "subjects": subjects}, namespace)
    config = yaml.safe_load(sandbox.kubeconfig.read_text())
    config["users"][0]["user"]["token"] = token
    path = tmp_path / f"kubeconfig-{user}"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def test_missing_rbac_is_listed_before_anything_is_applied(sandbox, kube, chart_repo, namespace, tmp_path):
    restricted = namespace_admin(sandbox, kube, namespace, tmp_path)
    result = CliRunner().invoke(
        app,
        ["--kubeconfig", restricted, "-n", namespace, "addon", "install", "istio", "--chart-repo",
         chart_repo.url, "--ingress-timeout", "0"],
    )  # fmt: skip
    assert isinstance(result.exception, ProgdelError) and result.exception.exit_code == 2
    message = str(result.exception)
    assert message.startswith("installing istio needs what RBAC does not allow you: ")
    assert "get namespaces at cluster scope; " in message  # the namespace exists: no need to create it
    assert "get, create, patch customresourcedefinitions.apiextensions.k8s.io at cluster scope" in message
    assert "configmaps" not in message, "what the user may do is not listed"
    assert "Nothing was applied" in message
    assert inventory_of(kube, "istio", namespace) is None
    assert kube.get_or_none(CRDS, f"meshprobes.{namespace}.test.progdel.dev") is None
    assert kube.get_or_none(DEPLOYMENTS, "istiod", namespace) is None


def test_remove_without_the_rights_deletes_nothing(sandbox, kube, chart_repo, namespace, tmp_path):
    assert install_istio(sandbox, chart_repo.url, namespace)[0] == 0
    restricted = namespace_admin(sandbox, kube, namespace, tmp_path)
    result = CliRunner().invoke(
        app, ["--kubeconfig", restricted, "-n", namespace, "addon", "remove", "istio"]
    )
    assert isinstance(result.exception, ProgdelError) and result.exception.exit_code == 2
    message = str(result.exception)
    assert message.startswith("removing istio needs what RBAC does not allow you: delete ")
    assert "customresourcedefinitions.apiextensions.k8s.io at cluster scope" in message
    assert message.endswith("Nothing was deleted")
    assert kube.get_or_none(DEPLOYMENTS, "istiod", namespace) is not None
    assert inventory_of(kube, "istio", namespace) is not None
    assert cli(sandbox, "-n", namespace, "addon", "remove", "istio")[0] == 0  # an admin may


def test_unknown_addon(sandbox):
    code, _, err = cli(sandbox, "addon", "install", "linkerd")
    assert code == 2 and 'unknown addon "linkerd"' in err


@pytest.mark.e2e
def test_cli_end_to_end(sandbox, kube, chart_repo, namespace):
    res = run_progdel(
        sandbox,
        "-n",
        namespace,
        "addon",
        "install",
        "prometheus",
        "--chart-repo",
        chart_repo.url,
        "--timeout",
        "30",
    )
    assert res.returncode == 0, res.stderr
    assert f"prometheus 27.37.0 in {namespace}: installed" in res.stdout
    assert "all deployments Available" in res.stderr
    res = run_progdel(
        sandbox, "-n", namespace, "addon", "install", "prometheus", "--chart-repo", chart_repo.url
    )
    assert res.returncode == 0 and "unchanged" in res.stdout
    res = run_progdel(sandbox, "-n", namespace, "addon", "status", "prometheus")
    assert res.returncode == 0 and "healthy" in res.stdout
    res = run_progdel(sandbox, "-n", namespace, "addon", "remove", "prometheus")
    assert res.returncode == 0, res.stderr
    assert kube.get_or_none(DEPLOYMENTS, "prometheus", namespace) is None


@pytest.mark.e2e
def test_cli_unreachable_repository(sandbox, namespace):
    url = "http://127.0.0.1:9/charts"
    res = run_progdel(sandbox, "-n", namespace, "addon", "install", "prometheus", "--chart-repo", url)
    assert res.returncode == 6
    assert (
        res.stderr.strip()
        .splitlines()[-1]
        .startswith(f"error: cannot reach the chart repository {url}/index.yaml")
    )


def test_wait_times_out_naming_what_is_not_ready(sandbox, kube, chart_repo, namespace):
    # images under .invalid never become ready in the sandbox (they cannot be pulled)
    code, _, err = install_istio(
        sandbox,
        chart_repo.url,
        namespace,
        "--set",
        "istiod:pilot.image=registry.invalid/pilot:1",
        "--timeout",
        "1",
    )
    assert code == 7
    assert f"not Available after 1s: deployment {namespace}/istiod" in err
    assert inventory_of(kube, "istio", namespace).state == "installed"


def installer(sandbox: Any, kube: Any, namespace: str, tmp_path: Any, *extra_rules: dict[str, Any]) -> str:
    """A kubeconfig for a user who may write every kind the istio test charts render, cluster-wide,
    but holds none of the rights the charts' ClusterRole grants (pods), unless ``extra_rules``."""
    user, token = f"installer-{uuid.uuid4().hex[:6]}", uuid.uuid4().hex
    with (sandbox.data_dir / "tokens.csv").open("a") as f:
        f.write(f"{token},{user},{user}\n")
    cluster_role = Resource("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", False)
    cluster_binding = Resource(
        "rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", False
    )
    groups = ["", "apps", "apiextensions.k8s.io", "rbac.authorization.k8s.io", "networking.istio.io"]
    resources = ["namespaces", "configmaps", "services", "deployments", "customresourcedefinitions"]
    resources += ["clusterroles", "clusterrolebindings", "gateways", "meshprobes"]
    rules = [
        {
            "apiGroups": [*groups, f"{namespace}.test.progdel.dev"],
            "resources": resources,
            "verbs": ["get", "list", "create", "patch", "update", "delete"],
        },
        *extra_rules,
    ]
    kube.create(cluster_role, {"metadata": {"name": user}, "rules": rules})
    ref = {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": user}
    subjects = [{"kind": "User", "name": user}]
    kube.create(cluster_binding, {"metadata": {"name": user}, "roleRef": ref, "subjects": subjects})
    config = yaml.safe_load(sandbox.kubeconfig.read_text())
    config["users"][0]["user"]["token"] = token
    path = tmp_path / f"kubeconfig-{user}"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def test_rbac_precheck_asks_for_escalate_and_bind(sandbox, kube, chart_repo, namespace, tmp_path):
    """Creating a ClusterRole with rights one does not hold needs escalate, binding it needs bind
    (kube-apiserver's RBAC escalation prevention): the pre-check names both before anything is applied,
    and with them granted the install goes through on the server too."""
    role_name = f"istiod-{namespace}"
    args = ["-n", namespace, "addon", "install", "istio", "--chart-repo", chart_repo.url,
            "--ingress-timeout", "0", "--set", "istiod:clusterRBAC.enabled=true"]  # fmt: skip
    restricted = installer(sandbox, kube, namespace, tmp_path)
    result = CliRunner().invoke(app, ["--kubeconfig", restricted, *args])
    assert isinstance(result.exception, ProgdelError) and result.exception.exit_code == 2
    message = str(result.exception)
    assert f'escalate, bind clusterroles.rbac.authorization.k8s.io "{role_name}" at cluster scope' in message
    assert "Nothing was applied" in message
    assert inventory_of(kube, "istio", namespace) is None

    may_escalate = {
        "apiGroups": ["rbac.authorization.k8s.io"],
        "resources": ["clusterroles"],
        "verbs": ["escalate", "bind"],
        "resourceNames": [role_name],
    }
    allowed = installer(sandbox, kube, namespace, tmp_path, may_escalate)
    result = CliRunner().invoke(app, ["--kubeconfig", allowed, *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 0, result.stderr
    assert cli(sandbox, "-n", namespace, "addon", "remove", "istio")[0] == 0

    # who holds the rights the role grants needs neither
    holds = {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}
    holder = installer(sandbox, kube, namespace, tmp_path, holds)
    result = CliRunner().invoke(app, ["--kubeconfig", holder, *args])
    assert result.exit_code == 0, (result.exception, result.stderr)
    assert cli(sandbox, "-n", namespace, "addon", "remove", "istio")[0] == 0
