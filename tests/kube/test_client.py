"""The one Kubernetes client wrapper, through the real kubernetes client against the sandbox."""

from __future__ import annotations

import socket
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml

from progdel.errors import ExitCode, InvalidInput, Unreachable
from progdel.kube.client import Kube, connect
from progdel.kube.errors import AlreadyExists, Conflict, Forbidden, Invalid, NotFound, from_status
from progdel.kube.resources import CANARIES, CONFIGMAPS, DEPLOYMENTS, VIRTUALSERVICES


@pytest.fixture
def kube(sandbox: Any, namespace: str) -> Kube:
    return connect(str(sandbox.kubeconfig), None, namespace)


def configmap(name: str, **data: str) -> dict[str, Any]:
    return {"metadata": {"name": name}, "data": data}


def test_not_found_names_the_object_and_exits_2(kube: Kube, namespace: str) -> None:
    with pytest.raises(NotFound) as err:
        kube.get(DEPLOYMENTS, "web")
    assert str(err.value) == f'deployment "web" not found in namespace "{namespace}"'
    assert err.value.exit_code is ExitCode.INVALID_INPUT


def test_missing_namespace_is_named(kube: Kube) -> None:
    with pytest.raises(NotFound, match='namespace "nope" not found'):
        kube.create(CONFIGMAPS, configmap("x"), "nope")


def test_already_exists_and_invalid(kube: Kube) -> None:
    kube.create(CONFIGMAPS, configmap("x"))
    with pytest.raises(AlreadyExists, match='"x" already exists'):
        kube.create(CONFIGMAPS, configmap("x"))
    with pytest.raises(Invalid, match=r"spec\.targetRef"):
        kube.create(CANARIES, {"metadata": {"name": "c"}, "spec": {"service": {"port": 80}}})


def test_update_retries_on_conflict_and_keeps_both_changes(kube: Kube) -> None:
    kube.create(CONFIGMAPS, configmap("shared", a="1"))
    interfered = threading.Event()

    def mutate(obj: dict[str, Any]) -> None:
        if not interfered.is_set():
            # someone else writes between our read and our write: our PUT must get 409 and retry
            interfered.set()
            other = kube.get(CONFIGMAPS, "shared")
            other["data"]["b"] = "2"
            kube.replace(CONFIGMAPS, other)
        obj["data"]["c"] = "3"

    result = kube.update(CONFIGMAPS, "shared", mutate)
    assert result["data"] == {"a": "1", "b": "2", "c": "3"}


def test_reads_cached_fetches_each_object_once_until_it_is_written(
    kube: Kube, sandbox: Any, namespace: str
) -> None:
    kube.create(CONFIGMAPS, configmap("cached", a="1"))
    other = connect(str(sandbox.kubeconfig), None, namespace)
    with kube.reads_cached():
        before = kube.requests
        first = kube.get(CONFIGMAPS, "cached")
        first["data"]["a"] = "mutated by the caller"  # answers are copies
        assert kube.get(CONFIGMAPS, "cached")["data"] == {"a": "1"}
        assert kube.requests == before + 1

        kube.patch(CONFIGMAPS, "cached", {"data": {"b": "2"}})
        assert kube.get(CONFIGMAPS, "cached")["data"] == {"a": "1", "b": "2"}  # a write: read afresh
        assert kube.requests == before + 3

        # someone else writes: the block does not see it, but our update conflicts, re-reads, keeps both
        other.patch(CONFIGMAPS, "cached", {"data": {"c": "3"}})
        assert "c" not in kube.get(CONFIGMAPS, "cached")["data"]
        updated = kube.update(CONFIGMAPS, "cached", lambda o: o["data"].update(d="4"))
        assert updated["data"] == {"a": "1", "b": "2", "c": "3", "d": "4"}

        kube.delete(CONFIGMAPS, "cached")
        with pytest.raises(NotFound):
            kube.get(CONFIGMAPS, "cached")
    kube.create(CONFIGMAPS, configmap("cached", a="again"))
    before = kube.requests
    kube.get(CONFIGMAPS, "cached")
    kube.get(CONFIGMAPS, "cached")
    assert kube.requests == before + 2  # outside the block every read goes to the server


def test_replace_with_a_stale_resource_version_conflicts(kube: Kube) -> None:
    created = kube.create(CONFIGMAPS, configmap("cm", a="1"))
    kube.replace(CONFIGMAPS, {**created, "data": {"a": "2"}})
    with pytest.raises(Conflict, match="the object has been modified"):
        kube.replace(CONFIGMAPS, {**created, "data": {"a": "3"}})


def test_json_patch_is_sent_as_json_patch(kube: Kube) -> None:
    kube.create(
        VIRTUALSERVICES,
        {
            "metadata": {"name": "vs"},
            "spec": {"hosts": ["a"], "http": [{"route": [{"destination": {"host": "a"}}]}]},
        },
    )
    out = kube.patch(VIRTUALSERVICES, "vs", [{"op": "add", "path": "/spec/hosts/-", "value": "b"}])
    assert out["spec"]["hosts"] == ["a", "b"]


def test_server_side_apply_creates_then_updates(kube: Kube, namespace: str) -> None:
    body = {"metadata": {"name": "applied", "namespace": namespace}, "data": {"k": "v1"}}
    kube.apply(CONFIGMAPS, body)
    kube.apply(CONFIGMAPS, {**body, "data": {"k": "v2"}})
    obj = kube.get(CONFIGMAPS, "applied")
    assert obj["data"] == {"k": "v2"}
    assert any(m.get("manager") == "progdel" for m in obj["metadata"]["managedFields"])


def test_watch_sees_a_change(kube: Kube) -> None:
    created = kube.create(CONFIGMAPS, configmap("w", a="1"))
    kube.patch(CONFIGMAPS, "w", {"data": {"a": "2"}})
    events = kube.watch(
        CONFIGMAPS, name="w", resource_version=created["metadata"]["resourceVersion"], timeout_seconds=2
    )
    first = next(events)
    assert first.type == "MODIFIED" and first.object["data"] == {"a": "2"}


def test_connection_refused_names_the_server_and_its_context_and_exits_6(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "u", "namespace": "team"}}],
        "current-context": "ctx",
    }
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(cfg))
    kube = connect(str(path), None, None)
    assert kube.namespace == "team", "the context's namespace is the default"
    assert kube.context == "ctx"
    with pytest.raises(Unreachable) as err:
        kube.get(DEPLOYMENTS, "web")
    assert str(err.value) == (
        f"cannot reach the Kubernetes API at http://127.0.0.1:{port} (context ctx): connection refused"
    )
    assert err.value.exit_code is ExitCode.UNREACHABLE


def test_context_and_kubeconfig_errors(sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(InvalidInput, match='context "nope" not found'):
        connect(str(sandbox.kubeconfig), "nope", None)
    with pytest.raises(InvalidInput, match="no such file"):
        connect(str(tmp_path / "missing"), None, None)
    monkeypatch.setenv("KUBECONFIG", str(sandbox.kubeconfig))
    assert connect(None, "progdel-sandbox", "ns1").namespace == "ns1"


def test_forbidden_names_verb_resource_and_namespace() -> None:
    body = b'{"kind":"Status","status":"Failure","reason":"Forbidden","code":403,"message":"denied"}'
    err = from_status(
        403, body, method="PATCH", resource=VIRTUALSERVICES, name="vs", namespace="prod", server="s"
    )
    assert isinstance(err, Forbidden)
    assert 'patch on virtualservices.networking.istio.io in namespace "prod"' in str(err)
