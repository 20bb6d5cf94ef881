"""The sandbox through the real kubernetes client: CRUD, patches, subresources, watch, selectors."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, watch
from kubernetes.client import ApiException

from progdel.sandbox.server import SandboxServer

VS_GROUP, VS_VERSION, VS_PLURAL = "networking.istio.io", "v1", "virtualservices"


def deployment(name: str, image: str = "nginx:1.27", replicas: int = 1, **labels: str) -> dict[str, Any]:
    lbl = {"app": name, **labels}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": lbl},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": image, "ports": [{"containerPort": 80}]}]},
            },
        },
    }


def settled(apps: Any, name: str, namespace: str) -> Any:
    """Read a Deployment once the controller has observed its latest generation."""
    deadline = time.monotonic() + 60
    while True:
        dep = apps.read_namespaced_deployment(name, namespace)
        if dep.status and dep.status.observed_generation == dep.metadata.generation:
            return dep
        assert time.monotonic() < deadline, "the deployment controller did not observe the deployment"
        time.sleep(0.05)


def virtual_service(name: str, primary: int = 100) -> dict[str, Any]:
    return {
        "apiVersion": f"{VS_GROUP}/{VS_VERSION}",
        "kind": "VirtualService",
        "metadata": {"name": name},
        "spec": {
            "hosts": [name],
            "http": [
                {
                    "route": [
                        {"destination": {"host": f"{name}-primary"}, "weight": primary},
                        {"destination": {"host": f"{name}-canary"}, "weight": 100 - primary},
                    ]
                }
            ],
        },
    }


def test_deployment_crud(api_client: Any, namespace: str) -> None:
    apps = client.AppsV1Api(api_client)
    created = apps.create_namespaced_deployment(namespace, deployment("web"))
    assert created.metadata.uid and created.metadata.generation == 1
    rv1 = int(created.metadata.resource_version)
    got = settled(apps, "web", namespace)
    assert got.spec.template.spec.containers[0].image == "nginx:1.27"
    got.spec.replicas = 3
    updated = apps.replace_namespaced_deployment("web", namespace, got)
    assert updated.spec.replicas == 3
    assert int(updated.metadata.resource_version) > rv1
    assert updated.metadata.generation == 2
    updated = settled(apps, "web", namespace)
    # a label change is metadata only: generation stays
    updated.metadata.labels["tier"] = "front"
    relabelled = apps.replace_namespaced_deployment("web", namespace, updated)
    assert relabelled.metadata.generation == 2
    names = [d.metadata.name for d in apps.list_namespaced_deployment(namespace).items]
    assert names == ["web"]
    assert any(d.metadata.name == "web" for d in apps.list_deployment_for_all_namespaces().items)
    apps.delete_namespaced_deployment("web", namespace)
    with pytest.raises(ApiException) as err:
        apps.read_namespaced_deployment("web", namespace)
    assert err.value.status == 404
    assert json.loads(err.value.body)["message"] == 'deployments.apps "web" not found'


def test_service_configmap_secret_lease(api_client: Any, namespace: str) -> None:
    core = client.CoreV1Api(api_client)
    svc = core.create_namespaced_service(
        namespace,
        {
            "metadata": {"name": "web"},
            "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]},
        },
    )
    assert svc.spec.cluster_ip and svc.spec.ports[0].protocol == "TCP"
    cm = core.create_namespaced_config_map(namespace, {"metadata": {"name": "cfg"}, "data": {"a": "1"}})
    cm.data["b"] = "2"
    assert core.replace_namespaced_config_map("cfg", namespace, cm).data == {"a": "1", "b": "2"}
    sec = core.create_namespaced_secret(namespace, {"metadata": {"name": "s"}, "stringData": {"k": "v"}})
    assert sec.data == {"k": "dg=="} and sec.type == "Opaque"
    coord = client.CoordinationV1Api(api_client)
    lease = coord.create_namespaced_lease(
        namespace,
        {
            "metadata": {"name": "lock"},
            "spec": {
                "holderIdentity": "me",
                "leaseDurationSeconds": 15,
                "acquireTime": "2025-01-01T00:00:00.000000Z",
            },
        },
    )
    assert lease.spec.holder_identity == "me"
    lease.spec.holder_identity = "you"
    assert coord.replace_namespaced_lease("lock", namespace, lease).spec.holder_identity == "you"
    core.delete_namespaced_config_map("cfg", namespace)
    assert core.list_namespaced_config_map(namespace).items == []
    coord.delete_namespaced_lease("lock", namespace)


def gone(read: Any, *args: Any) -> bool:
    """Wait (generously) until ``read(*args)`` answers 404."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            read(*args)
        except ApiException as err:
            if err.status == 404:
                return True
            raise
        time.sleep(0.02)
    return False


def test_namespace_termination(api_client: Any) -> None:
    """kube-apiserver's namespace registry (pkg/registry/core/namespace/storage/storage.go), the
    NamespaceLifecycle admission plugin and the namespace controller's deletion, as clients see them."""
    core = client.CoreV1Api(api_client)
    co = client.CustomObjectsApi(api_client)
    created = core.create_namespace({"metadata": {"name": "doomed"}})
    assert created.spec.finalizers == ["kubernetes"] and created.status.phase == "Active"
    core.create_namespaced_config_map(
        "doomed", {"metadata": {"name": "held", "finalizers": ["example.com/hold"]}}
    )
    core.create_namespaced_config_map("doomed", {"metadata": {"name": "plain"}})
    co.create_namespaced_custom_object(VS_GROUP, VS_VERSION, "doomed", VS_PLURAL, virtual_service("web"))

    answer = core.delete_namespace("doomed")  # the namespace itself, as it now is (typed V1Status: a dict)
    assert answer["kind"] == "Namespace" and answer["metadata"]["deletionTimestamp"]
    assert answer["status"]["phase"] == "Terminating"

    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map("doomed", {"metadata": {"name": "late"}})
    status = json.loads(err.value.body)
    assert err.value.status == 403 and status["reason"] == "Forbidden"
    assert status["message"] == (
        'configmaps "late" is forbidden: unable to create new content in namespace doomed because it is '
        "being terminated"
    )
    assert status["details"] == {
        "name": "late",
        "kind": "configmaps",
        "causes": [
            {
                "reason": "NamespaceTerminating",
                "message": "namespace doomed is being terminated",
                "field": "metadata.namespace",
            }
        ],
    }

    assert gone(core.read_namespaced_config_map, "plain", "doomed")
    assert gone(co.get_namespaced_custom_object, VS_GROUP, VS_VERSION, "doomed", VS_PLURAL, "web")
    deadline = time.monotonic() + 60
    while True:  # the finalizer holds its object, and with it the namespace
        ns = core.read_namespace("doomed")
        conditions = {c.type: c for c in ns.status.conditions or []}
        remaining = conditions.get("NamespaceFinalizersRemaining")
        if remaining is not None and remaining.status == "True":
            break
        assert time.monotonic() < deadline, "no NamespaceFinalizersRemaining condition"
        time.sleep(0.02)
    assert ns.status.phase == "Terminating"
    assert remaining.message == (
        "Some content in the namespace has finalizers remaining: example.com/hold in 1 resource instances"
    )
    assert conditions["NamespaceContentRemaining"].message == (
        "Some resources are remaining: configmaps. has 1 resource instances"
    )
    assert core.read_namespaced_config_map("held", "doomed").metadata.deletion_timestamp is not None
    # a second DELETE changes nothing and answers the namespace again
    assert core.delete_namespace("doomed")["status"]["phase"] == "Terminating"

    core.patch_namespaced_config_map("held", "doomed", {"metadata": {"finalizers": None}})
    assert gone(core.read_namespace, "doomed")
    assert core.list_config_map_for_all_namespaces(field_selector="metadata.namespace=doomed").items == []
    # the name is free again once the namespace is gone
    core.create_namespace({"metadata": {"name": "doomed"}})
    core.delete_namespace("doomed")
    assert gone(core.read_namespace, "doomed")


def test_immortal_namespaces_refuse_deletion(api_client: Any, sandbox: SandboxServer) -> None:
    """NamespaceLifecycle's immortal namespaces (plugin/namespace/lifecycle/admission.go); and no
    deletecollection of namespaces, which the namespace registry does not implement."""
    with sandbox.http_client() as http:
        assert http.delete("/api/v1/namespaces").status_code == 405
    core = client.CoreV1Api(api_client)
    for name in ("default", "kube-system", "kube-public"):
        with pytest.raises(ApiException) as err:
            core.delete_namespace(name)
        assert err.value.status == 403
        assert json.loads(err.value.body)["message"] == (
            f'namespaces "{name}" is forbidden: this namespace may not be deleted'
        )
        assert core.read_namespace(name).status.phase == "Active"


def test_finalize_subresource_releases_a_namespace(api_client: Any) -> None:
    """A namespace whose spec.finalizers another controller owns waits for it; PUT .../finalize
    (what `kubectl replace --raw` sends to unstick one) lets it go."""
    core = client.CoreV1Api(api_client)
    core.create_namespace({"metadata": {"name": "held-ns"}})
    ns = core.read_namespace("held-ns")
    ns.spec.finalizers = ["kubernetes", "example.com/other"]
    core.replace_namespace_finalize("held-ns", ns)
    core.delete_namespace("held-ns")
    deadline = time.monotonic() + 60
    while core.read_namespace("held-ns").spec.finalizers != ["example.com/other"]:
        assert time.monotonic() < deadline, "the namespace controller did not finalize"
        time.sleep(0.02)
    assert core.read_namespace("held-ns").status.phase == "Terminating"
    ns = core.read_namespace("held-ns")
    ns.spec.finalizers = []
    core.replace_namespace_finalize("held-ns", ns)
    assert gone(core.read_namespace, "held-ns")


def test_every_namespace_has_a_default_service_account(api_client: Any, namespace: str) -> None:
    """The service-account controller (pkg/controller/serviceaccount) creates `default` in every
    namespace, the ones the cluster starts with included, and recreates it when it is deleted."""
    core = client.CoreV1Api(api_client)

    def default_account(ns: str) -> Any:
        deadline = time.monotonic() + 60
        while True:
            try:
                return core.read_namespaced_service_account("default", ns)
            except ApiException as err:
                assert err.status == 404 and time.monotonic() < deadline
                time.sleep(0.02)

    for ns in (namespace, "default", "kube-system", "kube-public", "kube-node-lease"):
        assert default_account(ns).metadata.name == "default"
    uid = default_account(namespace).metadata.uid
    deleted = core.delete_namespaced_service_account("default", namespace)
    assert deleted.metadata.uid == uid  # a ServiceAccount DELETE answers the deleted object
    deadline = time.monotonic() + 60
    while default_account(namespace).metadata.uid == uid:
        assert time.monotonic() < deadline, "the default ServiceAccount was not recreated"
        time.sleep(0.02)


def test_custom_objects_and_json_patch(api_client: Any, namespace: str) -> None:
    co = client.CustomObjectsApi(api_client)
    vs = co.create_namespaced_custom_object(
        VS_GROUP, VS_VERSION, namespace, VS_PLURAL, virtual_service("podinfo")
    )
    assert vs["metadata"]["generation"] == 1
    # same object served at another version of the CRD
    old = co.get_namespaced_custom_object(VS_GROUP, "v1beta1", namespace, VS_PLURAL, "podinfo")
    assert old["apiVersion"] == "networking.istio.io/v1beta1"
    ops = [
        {"op": "test", "path": "/spec/http/0/route/0/weight", "value": 100},
        {"op": "replace", "path": "/spec/http/0/route/0/weight", "value": 80},
        {"op": "replace", "path": "/spec/http/0/route/1/weight", "value": 20},
    ]
    patched = co.patch_namespaced_custom_object(
        VS_GROUP,
        VS_VERSION,
        namespace,
        VS_PLURAL,
        "podinfo",
        ops,
        _content_type="application/json-patch+json",
    )
    assert [r["weight"] for r in patched["spec"]["http"][0]["route"]] == [80, 20]
    assert patched["metadata"]["generation"] == 2
    with pytest.raises(ApiException) as err:  # the test op now fails
        co.patch_namespaced_custom_object(
            VS_GROUP,
            VS_VERSION,
            namespace,
            VS_PLURAL,
            "podinfo",
            ops,
            _content_type="application/json-patch+json",
        )
    assert err.value.status == 422
    merged = co.patch_namespaced_custom_object(
        VS_GROUP, VS_VERSION, namespace, VS_PLURAL, "podinfo", {"spec": {"gateways": ["mesh"]}}
    )
    assert merged["spec"]["gateways"] == ["mesh"] and merged["spec"]["hosts"] == ["podinfo"]
    with pytest.raises(ApiException) as err:
        co.patch_namespaced_custom_object(
            VS_GROUP,
            VS_VERSION,
            namespace,
            VS_PLURAL,
            "podinfo",
            {"spec": {}},
            _content_type="application/strategic-merge-patch+json",
        )
    assert err.value.status == 415
    listed = co.list_namespaced_custom_object(VS_GROUP, VS_VERSION, namespace, VS_PLURAL)
    assert [i["metadata"]["name"] for i in listed["items"]] == ["podinfo"]
    co.delete_namespaced_custom_object(VS_GROUP, VS_VERSION, namespace, VS_PLURAL, "podinfo")
    assert co.list_namespaced_custom_object(VS_GROUP, VS_VERSION, namespace, VS_PLURAL)["items"] == []


def test_strategic_merge_patch_keeps_other_containers(api_client: Any, namespace: str) -> None:
    apps = client.AppsV1Api(api_client)
    body = deployment("web")
    body["spec"]["template"]["spec"]["containers"].append({"name": "sidecar", "image": "envoy:1"})
    body["spec"]["template"]["spec"]["containers"][0]["env"] = [{"name": "A", "value": "1"}]
    apps.create_namespaced_deployment(namespace, body)
    patch = {
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {"name": "app", "image": "nginx:1.28", "env": [{"name": "B", "value": "2"}]}
                    ]
                }
            }
        }
    }
    out = apps.patch_namespaced_deployment("web", namespace, patch)
    containers = {c.name: c for c in out.spec.template.spec.containers}
    assert containers["app"].image == "nginx:1.28" and containers["sidecar"].image == "envoy:1"
    assert [e.name for e in containers["app"].env] == ["A", "B"]
    delete_sidecar = {
        "spec": {
            "template": {
                "spec": {
                    "$setElementOrder/containers": [{"name": "app"}],
                    "containers": [{"name": "sidecar", "$patch": "delete"}],
                }
            }
        }
    }
    out = apps.patch_namespaced_deployment("web", namespace, delete_sidecar)
    assert [c.name for c in out.spec.template.spec.containers] == ["app"]
    assert out.metadata.generation == 3


def test_scale_and_status_subresources(api_client: Any, namespace: str) -> None:
    apps = client.AppsV1Api(api_client)
    apps.create_namespaced_deployment(namespace, deployment("web", replicas=2))
    scale = apps.read_namespaced_deployment_scale("web", namespace)
    assert scale.spec.replicas == 2 and scale.status.selector == "app=web"
    scaled = apps.patch_namespaced_deployment_scale("web", namespace, {"spec": {"replicas": 4}})
    assert scaled.spec.replicas == 4
    assert apps.read_namespaced_deployment("web", namespace).spec.replicas == 4
    # writes to the main resource ignore status; /status writes change only status
    dep = apps.read_namespaced_deployment("web", namespace)
    patched = apps.patch_namespaced_deployment("web", namespace, {"status": {"replicas": 99}})
    assert patched.status.replicas != 99
    st = apps.patch_namespaced_deployment_status(
        "web", namespace, {"status": {"replicas": 99}, "spec": {"replicas": 7}}
    )
    assert st.status.replicas == 99 and st.spec.replicas == 4
    assert st.metadata.generation == dep.metadata.generation


def test_custom_status_subresource(api_client: Any, namespace: str) -> None:
    co = client.CustomObjectsApi(api_client)
    canary = {
        "apiVersion": "flagger.app/v1beta1",
        "kind": "Canary",
        "metadata": {"name": "podinfo"},
        "spec": {
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
            "service": {"port": 9898},
            "analysis": {"interval": "1m", "threshold": 5, "iterations": 3},
        },
        "status": {"phase": "Ignored"},
    }
    created = co.create_namespaced_custom_object("flagger.app", "v1beta1", namespace, "canaries", canary)
    assert "status" not in created
    out = co.patch_namespaced_custom_object_status(
        "flagger.app",
        "v1beta1",
        namespace,
        "canaries",
        "podinfo",
        {"status": {"phase": "Progressing", "canaryWeight": 10}},
    )
    assert out["status"]["phase"] == "Progressing" and out["metadata"]["generation"] == 1
    out = co.patch_namespaced_custom_object(
        "flagger.app",
        "v1beta1",
        namespace,
        "canaries",
        "podinfo",
        {"status": {"phase": "Failed"}, "spec": {"skipAnalysis": True}},
    )
    assert out["status"]["phase"] == "Progressing" and out["metadata"]["generation"] == 2


def test_watch_sees_added_modified_deleted(api_client: Any, namespace: str) -> None:
    core = client.CoreV1Api(api_client)
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "before"}})
    seen: list[tuple[str, str]] = []
    w = watch.Watch()

    def consume() -> None:
        for ev in w.stream(core.list_namespaced_config_map, namespace, timeout_seconds=10):
            seen.append((ev["type"], ev["object"].metadata.name))
            if ev["type"] == "DELETED":
                w.stop()

    t = threading.Thread(target=consume)
    t.start()
    deadline = time.monotonic() + 60  # the watch is up once it has sent the existing object
    while ("ADDED", "before") not in seen and time.monotonic() < deadline:
        time.sleep(0.01)
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "cfg"}, "data": {"a": "1"}})
    core.patch_namespaced_config_map("cfg", namespace, {"data": {"a": "2"}})
    core.delete_namespaced_config_map("cfg", namespace)
    t.join(timeout=60)
    assert seen == [("ADDED", "before"), ("ADDED", "cfg"), ("MODIFIED", "cfg"), ("DELETED", "cfg")]


def test_watch_one_object_by_field_selector_from_resource_version(api_client: Any, namespace: str) -> None:
    apps = client.AppsV1Api(api_client)
    apps.create_namespaced_deployment(namespace, deployment("other"))
    rv = apps.create_namespaced_deployment(namespace, deployment("web")).metadata.resource_version
    apps.patch_namespaced_deployment("other", namespace, {"metadata": {"labels": {"x": "1"}}})
    apps.patch_namespaced_deployment("web", namespace, {"metadata": {"labels": {"x": "1"}}})
    events = []
    for ev in watch.Watch().stream(
        apps.list_namespaced_deployment,
        namespace,
        resource_version=rv,
        field_selector="metadata.name=web",
        timeout_seconds=1,
    ):
        events.append((ev["type"], ev["object"].metadata.name, ev["object"].metadata.labels.get("x")))
    assert ("MODIFIED", "web", "1") in events
    assert all(name == "web" for _, name, _ in events)
    assert events[0][0] == "MODIFIED"  # no synthetic ADDED when a resourceVersion is given


def test_selectors_and_pagination(api_client: Any, namespace: str) -> None:
    core = client.CoreV1Api(api_client)
    for i, (tier, env) in enumerate([("front", "prod"), ("back", "prod"), ("front", "dev"), ("db", None)]):
        labels = {"tier": tier, **({"env": env} if env else {})}
        core.create_namespaced_config_map(namespace, {"metadata": {"name": f"cm{i}", "labels": labels}})

    def names(**kw: Any) -> list[str]:
        return [c.metadata.name for c in core.list_namespaced_config_map(namespace, **kw).items]

    assert names(label_selector="tier=front") == ["cm0", "cm2"]
    assert names(label_selector="tier==front,env=prod") == ["cm0"]
    assert names(label_selector="tier!=front") == ["cm1", "cm3"]
    assert names(label_selector="tier in (back,db)") == ["cm1", "cm3"]
    assert names(label_selector="tier notin (back,db)") == ["cm0", "cm2"]
    assert names(label_selector="env") == ["cm0", "cm1", "cm2"]
    assert names(label_selector="!env") == ["cm3"]
    assert names(field_selector="metadata.name=cm1") == ["cm1"]
    assert names(field_selector="metadata.name!=cm1") == ["cm0", "cm2", "cm3"]
    first = core.list_namespaced_config_map(namespace, limit=3)
    assert [c.metadata.name for c in first.items] == ["cm0", "cm1", "cm2"]
    assert first.metadata._continue and first.metadata.remaining_item_count == 1
    rest = core.list_namespaced_config_map(namespace, limit=3, _continue=first.metadata._continue)
    assert [c.metadata.name for c in rest.items] == ["cm3"] and not rest.metadata._continue


def test_event_field_selectors(api_client: Any, namespace: str) -> None:
    core = client.CoreV1Api(api_client)
    for name, reason, kind in [
        ("e1", "Synced", "Canary"),
        ("e2", "Failed", "Canary"),
        ("e3", "Synced", "Pod"),
    ]:
        core.create_namespaced_event(
            namespace,
            {
                "metadata": {"name": name},
                "reason": reason,
                "type": "Normal",
                "message": "m",
                "involvedObject": {
                    "kind": kind,
                    "name": "podinfo",
                    "namespace": namespace,
                    "uid": "u-" + name,
                },
            },
        )
    got = core.list_namespaced_event(namespace, field_selector="involvedObject.kind=Canary,reason=Synced")
    assert [e.metadata.name for e in got.items] == ["e1"]
    got = core.list_namespaced_event(namespace, field_selector="involvedObject.uid=u-e3,type=Normal")
    assert [e.metadata.name for e in got.items] == ["e3"]


def test_generate_name(api_client: Any, namespace: str) -> None:
    core = client.CoreV1Api(api_client)
    a = core.create_namespaced_config_map(namespace, {"metadata": {"generateName": "run-"}})
    b = core.create_namespaced_config_map(namespace, {"metadata": {"generateName": "run-"}})
    assert a.metadata.name.startswith("run-") and len(a.metadata.name) == 9
    assert a.metadata.name != b.metadata.name


def test_stale_resource_version_conflicts_once(api_client: Any, namespace: str) -> None:
    apps = client.AppsV1Api(api_client)
    apps.create_namespaced_deployment(namespace, deployment("web"))
    stale = settled(apps, "web", namespace)
    results: list[int] = []
    messages: list[str] = []
    barrier = threading.Barrier(2)

    def writer(replicas: int) -> None:
        body = apps.api_client.sanitize_for_serialization(stale)
        body["spec"]["replicas"] = replicas
        barrier.wait()
        try:
            apps.replace_namespaced_deployment("web", namespace, body)
            results.append(200)
        except ApiException as err:
            results.append(err.status)
            messages.append(json.loads(err.body)["message"])

    threads = [threading.Thread(target=writer, args=(n,)) for n in (2, 3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [200, 409]
    assert messages == [
        'Operation cannot be fulfilled on deployments.apps "web": the object has been modified; please apply '
        "your changes to the latest version and try again"
    ]
    # without a resourceVersion, PUT is unconditional
    body = apps.api_client.sanitize_for_serialization(stale)
    body["metadata"].pop("resourceVersion")
    body["spec"]["replicas"] = 5
    assert apps.replace_namespaced_deployment("web", namespace, body).spec.replicas == 5


def test_finalizers_delay_deletion(api_client: Any, namespace: str) -> None:
    core = client.CoreV1Api(api_client)
    core.create_namespaced_config_map(
        namespace, {"metadata": {"name": "held", "finalizers": ["progdel.io/x"]}}
    )
    core.delete_namespaced_config_map("held", namespace)
    held = core.read_namespaced_config_map("held", namespace)
    assert held.metadata.deletion_timestamp is not None
    core.patch_namespaced_config_map("held", namespace, {"metadata": {"finalizers": None}})
    with pytest.raises(ApiException) as err:
        core.read_namespaced_config_map("held", namespace)
    assert err.value.status == 404


def test_server_side_apply(api_client: Any, namespace: str) -> None:
    co = client.CustomObjectsApi(api_client)
    body = virtual_service("podinfo")
    body["metadata"]["labels"] = {"a": "1", "b": "2"}
    # apply creates (201 Created, which this client maps to None for custom objects, as with a real cluster)
    co.patch_namespaced_custom_object(
        VS_GROUP,
        VS_VERSION,
        namespace,
        VS_PLURAL,
        "podinfo",
        body,
        field_manager="progdel",
        _content_type="application/apply-patch+yaml",
    )
    created = co.get_namespaced_custom_object(VS_GROUP, VS_VERSION, namespace, VS_PLURAL, "podinfo")
    entries = created["metadata"]["managedFields"]
    assert [(e["manager"], e["operation"]) for e in entries] == [("progdel", "Apply")]
    assert entries[0]["fieldsV1"]["f:metadata"]["f:labels"] == {".": {}, "f:a": {}, "f:b": {}}
    assert "f:hosts" in entries[0]["fieldsV1"]["f:spec"]
    # fields applied before and omitted now are removed
    body["metadata"]["labels"] = {"a": "1"}
    again = co.patch_namespaced_custom_object(
        VS_GROUP,
        VS_VERSION,
        namespace,
        VS_PLURAL,
        "podinfo",
        body,
        field_manager="progdel",
        _content_type="application/apply-patch+yaml",
    )
    assert again["metadata"]["labels"] == {"a": "1"}
    # another manager changing an owned field conflicts, unless forced
    other = {
        "apiVersion": body["apiVersion"],
        "kind": "VirtualService",
        "metadata": {"name": "podinfo"},
        "spec": {"hosts": ["elsewhere"]},
    }
    with pytest.raises(ApiException) as err:
        co.patch_namespaced_custom_object(
            VS_GROUP,
            VS_VERSION,
            namespace,
            VS_PLURAL,
            "podinfo",
            other,
            field_manager="intruder",
            _content_type="application/apply-patch+yaml",
        )
    assert err.value.status == 409
    status = json.loads(err.value.body)
    assert 'conflict with "progdel"' in status["message"] and ".spec.hosts" in status["message"]
    assert status["details"]["causes"][0]["field"] == ".spec.hosts"
    forced = co.patch_namespaced_custom_object(
        VS_GROUP,
        VS_VERSION,
        namespace,
        VS_PLURAL,
        "podinfo",
        other,
        field_manager="intruder",
        force=True,
        _content_type="application/apply-patch+yaml",
    )
    assert forced["spec"]["hosts"] == ["elsewhere"]
    assert {e["manager"] for e in forced["metadata"]["managedFields"]} == {"progdel", "intruder"}
    with pytest.raises(ApiException) as err:
        co.patch_namespaced_custom_object(
            VS_GROUP,
            VS_VERSION,
            namespace,
            VS_PLURAL,
            "podinfo",
            other,
            _content_type="application/apply-patch+yaml",
        )
    assert err.value.status == 400


def test_server_side_apply_builtin_keyed_lists(api_client: Any, namespace: str) -> None:
    apps = client.AppsV1Api(api_client)
    out = apps.patch_namespaced_deployment(
        "web",
        namespace,
        deployment("web"),
        field_manager="progdel",
        _content_type="application/apply-patch+yaml",
    )
    fields = out.metadata.managed_fields[0].fields_v1
    containers = fields["f:spec"]["f:template"]["f:spec"]["f:containers"]
    assert 'k:{"name":"app"}' in containers
    assert 'k:{"containerPort":80}' in containers['k:{"name":"app"}']["f:ports"]


def test_crd_lifecycle(api_client: Any, namespace: str) -> None:
    ext = client.ApiextensionsV1Api(api_client)
    co = client.CustomObjectsApi(api_client)
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wd"]},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {
                                    "type": "object",
                                    "required": ["size"],
                                    "properties": {"size": {"type": "integer"}},
                                }
                            },
                        }
                    },
                }
            ],
        },
    }
    ext.create_custom_resource_definition(crd)
    try:
        co.create_namespaced_custom_object(
            "example.com",
            "v1",
            namespace,
            "widgets",
            {
                "apiVersion": "example.com/v1",
                "kind": "Widget",
                "metadata": {"name": "w"},
                "spec": {"size": 3},
            },
        )
        with pytest.raises(ApiException) as err:
            co.create_namespaced_custom_object(
                "example.com",
                "v1",
                namespace,
                "widgets",
                {
                    "apiVersion": "example.com/v1",
                    "kind": "Widget",
                    "metadata": {"name": "bad"},
                    "spec": {"size": "big"},
                },
            )
        assert err.value.status == 422 and "spec.size" in err.value.body
    finally:
        ext.delete_custom_resource_definition("widgets.example.com")
    assert gone(ext.read_custom_resource_definition, "widgets.example.com")
    with pytest.raises(ApiException) as err:
        co.list_namespaced_custom_object("example.com", "v1", namespace, "widgets")
    assert err.value.status == 404


def test_crd_deletion_waits_for_its_custom_objects(api_client: Any, namespace: str) -> None:
    """apiextensions' CRD registry (pkg/registry/customresourcedefinition/etcd.go) and crdFinalizer
    (pkg/controller/finalizer): a deleted CRD is Terminating until its custom objects are gone,
    and refuses new ones meanwhile."""
    ext = client.ApiextensionsV1Api(api_client)
    co = client.CustomObjectsApi(api_client)
    crd = {
        "metadata": {"name": "gadgets.example.com"},
        "spec": {
            "group": "example.com",
            "scope": "Namespaced",
            "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
                    },
                }
            ],
        },
    }
    ext.create_custom_resource_definition(crd)
    gadget = {"apiVersion": "example.com/v1", "kind": "Gadget", "metadata": {"name": "g"}}
    held = {**gadget, "metadata": {"name": "held", "finalizers": ["example.com/hold"]}}
    co.create_namespaced_custom_object("example.com", "v1", namespace, "gadgets", gadget)
    co.create_namespaced_custom_object("example.com", "v1", namespace, "gadgets", held)

    answer = ext.delete_custom_resource_definition("gadgets.example.com")  # the CRD as it now is (a dict)
    assert answer["kind"] == "CustomResourceDefinition" and answer["metadata"]["deletionTimestamp"]
    assert "customresourcecleanup.apiextensions.k8s.io" in answer["metadata"]["finalizers"]
    assert gone(co.get_namespaced_custom_object, "example.com", "v1", namespace, "gadgets", "g")
    terminating = {
        c.type: c for c in ext.read_custom_resource_definition("gadgets.example.com").status.conditions
    }
    assert terminating["Terminating"].status == "True"
    with pytest.raises(ApiException) as err:
        co.create_namespaced_custom_object("example.com", "v1", namespace, "gadgets", gadget)
    assert err.value.status == 405
    assert json.loads(err.value.body)["message"] == (
        "create not allowed while custom resource definition is terminating"
    )

    co.patch_namespaced_custom_object(
        "example.com", "v1", namespace, "gadgets", "held", {"metadata": {"finalizers": None}}
    )
    assert gone(ext.read_custom_resource_definition, "gadgets.example.com")
    with pytest.raises(ApiException) as err:
        co.list_namespaced_custom_object("example.com", "v1", namespace, "gadgets")
    assert err.value.status == 404


def test_persistence_across_restart(sandbox: SandboxServer, tmp_path: Path) -> None:
    from kubernetes import config

    data = tmp_path / "persist"
    first = SandboxServer(data)
    first.start()
    kc = first.write_kubeconfig()
    try:
        api = config.new_client_from_config(config_file=str(kc))
        ext = client.ApiextensionsV1Api(api)
        ext.create_custom_resource_definition(
            {
                "apiVersion": "apiextensions.k8s.io/v1",
                "kind": "CustomResourceDefinition",
                "metadata": {"name": "gadgets.example.com"},
                "spec": {
                    "group": "example.com",
                    "scope": "Namespaced",
                    "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
                    "versions": [
                        {
                            "name": "v1",
                            "served": True,
                            "storage": True,
                            "schema": {
                                "openAPIV3Schema": {
                                    "type": "object",
                                    "x-kubernetes-preserve-unknown-fields": True,
                                }
                            },
                        }
                    ],
                },
            }
        )
        client.CustomObjectsApi(api).create_namespaced_custom_object(
            "example.com",
            "v1",
            "default",
            "gadgets",
            {"apiVersion": "example.com/v1", "kind": "Gadget", "metadata": {"name": "g"}, "spec": {"x": 1}},
        )
        dep = client.AppsV1Api(api).create_namespaced_deployment("default", deployment("kept"))
        rv = int(dep.metadata.resource_version)
        api.close()
    finally:
        first.stop()
    second = SandboxServer(data)
    second.start()
    kc = second.write_kubeconfig()
    try:
        api = config.new_client_from_config(config_file=str(kc))
        apps = client.AppsV1Api(api)
        kept = apps.read_namespaced_deployment("kept", "default")
        assert kept.metadata.uid == dep.metadata.uid
        g = client.CustomObjectsApi(api).get_namespaced_custom_object(
            "example.com", "v1", "default", "gadgets", "g"
        )
        assert g["spec"] == {"x": 1}
        cm = client.CoreV1Api(api).create_namespaced_config_map("default", {"metadata": {"name": "new"}})
        assert int(cm.metadata.resource_version) > rv
        # a watch from before this process started cannot be served: 410 Gone as an ERROR event
        with second.http_client() as http:
            r = http.get("/apis/apps/v1/namespaces/default/deployments?watch=1&resourceVersion=1")
        first_line = r.text.splitlines()[0]
        assert (
            '"type":"ERROR"' in first_line
            and '"code":410' in first_line
            and '"reason":"Expired"' in first_line
        )
        api.close()
    finally:
        second.stop()
