"""The one Kubernetes client wrapper.

It works on plain dicts (what the API sends) for every resource, built-in or
custom, through the official client's ``ApiClient``: its configuration, auth
plugins and TLS handling are reused, only (de)serialisation is ours, so a
Deployment and a VirtualService are handled the same way.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from progdel.errors import InvalidInput, check_credential, printable
from progdel.kube.errors import Conflict, KubeError, NotFound, from_status, unreachable
from progdel.kube.resources import Resource

JSON = "application/json"
MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"

FIELD_MANAGER = "progdel"

_IN_CLUSTER_NS = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


@dataclass
class WatchEvent:
    type: str  # ADDED, MODIFIED, DELETED, BOOKMARK, ERROR
    object: dict[str, Any]


class Kube:
    """A connection to one cluster, with a default namespace.

    ``context`` is the kubeconfig context it was made from (``in-cluster`` inside a pod, empty
    when unknown); errors about the cluster name it beside the server's address, so that with
    several clusters at hand a message says which one failed.
    """

    def __init__(self, api_client: Any, namespace: str = "default", context: str = "") -> None:
        self.api = api_client
        self.namespace = namespace
        self.server: str = api_client.configuration.host
        self.context = context
        self.requests = 0  # API calls made, for -v and the benchmarks
        self.timeout: float | None = None  # seconds per request unless a call says (None: no limit)
        self._reads: dict[tuple[str, str, str, str], tuple[str, dict[str, Any]]] | None = None

    @property
    def where(self) -> str:
        """The server's address, and the context it came from: ``https://10.0.0.1:6443 (context prod)``."""
        return f"{self.server} (context {self.context})" if self.context else self.server

    # -- plumbing --------------------------------------------------------------------------

    def _send(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, Any] | None = None,
        body: Any = None,
        content_type: str | None = None,
        resource: Resource | None = None,
        name: str | None = None,
        namespace: str | None = None,
        stream: bool = False,
        timeout: float | tuple[float, float] | None = None,
    ) -> Any:
        params = [(k, v) for k, v in (query or {}).items() if v is not None]
        headers = {"Accept": JSON}
        if body is not None:
            headers["Content-Type"] = content_type or JSON
        self.requests += 1
        method_, url, headers, body, _ = self.api.param_serialize(
            method=method,
            resource_path=path,
            query_params=params,
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        try:
            resp = self.api.call_api(
                method_, url, header_params=headers, body=body, _request_timeout=timeout or self.timeout
            )
        except KubeError:
            raise
        except Exception as err:
            if _is_connection_error(err):
                raise unreachable(self.where, err) from None
            raise
        if not 200 <= resp.status <= 299:
            data = resp.read()
            raise from_status(
                resp.status,
                data,
                method=method,
                resource=resource,
                name=name,
                namespace=namespace,
                server=self.where,
            )
        if stream:
            return resp.response
        data = resp.read()
        return json.loads(data) if data else {}

    # -- reads within one unit of work ----------------------------------------------------

    @contextlib.contextmanager
    def reads_cached(self) -> Iterator[None]:
        """Within the block, an object read before is answered from memory until progdel writes it.

        For a unit of work that reads the same objects several times (one canary
        tick reads its VirtualService in the router and again for the weight
        update) and does not poll. A write forgets the object, so the next read
        sees the server's answer, controllers' changes included. Writes carry the
        resourceVersion that was read, so a change made by someone else meanwhile
        is a 409, and ``update`` then reads afresh.
        """
        if self._reads is not None:
            yield
            return
        self._reads = {}
        try:
            yield
        finally:
            self._reads = None

    @staticmethod
    def _read_key(resource: Resource, namespace: str | None, name: str) -> tuple[str, str, str, str]:
        return (resource.group, resource.plural, namespace or "", name)

    def _forget(self, resource: Resource, namespace: str | None, name: str) -> None:
        if self._reads is not None:
            self._reads.pop(self._read_key(resource, namespace, name), None)

    def _ns(self, resource: Resource, namespace: str | None) -> str | None:
        if not resource.namespaced:
            return None
        return namespace or self.namespace

    # -- verbs ---------------------------------------------------------------------------

    def get(self, resource: Resource, name: str, namespace: str | None = None) -> dict[str, Any]:
        ns = self._ns(resource, namespace)
        if self._reads is not None:
            hit = self._reads.get(self._read_key(resource, ns, name))
            if hit is not None and hit[0] == resource.version:
                return copy.deepcopy(hit[1])
        obj = self._send("GET", resource.path(ns, name), resource=resource, name=name, namespace=ns)
        if self._reads is not None:
            self._reads[self._read_key(resource, ns, name)] = (resource.version, copy.deepcopy(obj))
        return obj

    def get_or_none(
        self, resource: Resource, name: str, namespace: str | None = None
    ) -> dict[str, Any] | None:
        try:
            return self.get(resource, name, namespace)
        except NotFound:
            return None

    def get_list(
        self,
        resource: Resource,
        namespace: str | None = None,
        *,
        all_namespaces: bool = False,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> dict[str, Any]:
        """The list object (``items`` and ``metadata.resourceVersion``), all pages joined."""
        ns = None if all_namespaces else self._ns(resource, namespace)
        query: dict[str, Any] = {
            "labelSelector": label_selector,
            "fieldSelector": field_selector,
            "limit": 500,
        }
        result: dict[str, Any] | None = None
        while True:
            page = self._send("GET", resource.path(ns), query=query, resource=resource, namespace=ns)
            if result is None:
                result = page
            else:
                result["items"].extend(page.get("items") or [])
                result["metadata"] = page.get("metadata", {})
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                break
            query["continue"] = token
        assert result is not None
        result.setdefault("items", [])
        return result

    def items(self, resource: Resource, namespace: str | None = None, **kw: Any) -> list[dict[str, Any]]:
        return self.get_list(resource, namespace, **kw)["items"]

    def create(
        self, resource: Resource, obj: dict[str, Any], namespace: str | None = None, *, dry_run: bool = False
    ) -> dict[str, Any]:
        """POST ``obj``. With ``dry_run`` the server judges it (schema, admission webhooks, and
        unknown fields, refused as with ``kubectl --validate=strict``) and stores nothing."""
        ns = self._ns(resource, namespace or obj.get("metadata", {}).get("namespace"))
        body = _with_type(resource, obj)
        name = body.get("metadata", {}).get("name")
        return self._send(
            "POST",
            resource.path(ns),
            body=body,
            resource=resource,
            name=name,
            namespace=ns,
            query=_write_query(dry_run),
        )

    def replace(
        self,
        resource: Resource,
        obj: dict[str, Any],
        *,
        subresource: str | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """PUT ``obj``; its ``metadata.resourceVersion`` makes this a conditional update (409 if
        stale). ``dry_run`` as for ``create``."""
        meta = obj.get("metadata") or {}
        ns = self._ns(resource, meta.get("namespace"))
        name = meta["name"]
        if not dry_run:
            self._forget(resource, ns, name)
        return self._send(
            "PUT",
            resource.path(ns, name, subresource),
            body=_with_type(resource, obj),
            resource=resource,
            name=name,
            namespace=ns,
            query=_write_query(dry_run),
        )

    def patch(
        self,
        resource: Resource,
        name: str,
        patch: dict[str, Any] | list[dict[str, Any]],
        namespace: str | None = None,
        *,
        content_type: str | None = None,
        subresource: str | None = None,
    ) -> dict[str, Any]:
        """Merge patch for dicts, JSON patch for lists, unless ``content_type`` says otherwise."""
        ns = self._ns(resource, namespace)
        ctype = content_type or (JSON_PATCH if isinstance(patch, list) else MERGE_PATCH)
        self._forget(resource, ns, name)
        return self._send(
            "PATCH",
            resource.path(ns, name, subresource),
            body=patch,
            content_type=ctype,
            resource=resource,
            name=name,
            namespace=ns,
            query={"fieldManager": FIELD_MANAGER},
        )

    def apply(
        self,
        resource: Resource,
        obj: dict[str, Any],
        *,
        field_manager: str = FIELD_MANAGER,
        force: bool = False,
    ) -> dict[str, Any]:
        """Server-side apply: create or update ``obj`` with this field manager's intent."""
        meta = obj.get("metadata") or {}
        ns = self._ns(resource, meta.get("namespace"))
        name = meta["name"]
        body = _with_type(resource, obj)
        if resource.namespaced:
            body["metadata"] = {**body["metadata"], "namespace": ns}
        self._forget(resource, ns, name)
        return self._send(
            "PATCH",
            resource.path(ns, name),
            body=body,
            content_type=APPLY_PATCH,
            query={"fieldManager": field_manager, "force": "true" if force else None},
            resource=resource,
            name=name,
            namespace=ns,
        )

    def delete(
        self,
        resource: Resource,
        name: str,
        namespace: str | None = None,
        *,
        missing_ok: bool = False,
        propagation: str | None = None,
    ) -> bool:
        """Delete one object; ``propagation`` (``Foreground``, ``Background``, ``Orphan``) says what
        happens to its dependents. Returns False when it was already gone (with ``missing_ok``)."""
        ns = self._ns(resource, namespace)
        self._forget(resource, ns, name)
        body = {"propagationPolicy": propagation} if propagation else None
        try:
            self._send(
                "DELETE", resource.path(ns, name), body=body, resource=resource, name=name, namespace=ns
            )
        except NotFound:
            if missing_ok:
                return False
            raise
        return True

    def update(
        self,
        resource: Resource,
        name: str,
        mutate: Callable[[dict[str, Any]], dict[str, Any] | None],
        namespace: str | None = None,
        *,
        subresource: str | None = None,
        attempts: int = 8,
    ) -> dict[str, Any]:
        """Read-modify-write: GET, ``mutate`` (in place, or return a new object), PUT; retry on 409.

        ``mutate`` returning the object unchanged (equal to what was read) skips the write.
        """
        for _ in range(attempts):
            current = self.get(resource, name, namespace)
            before = json.dumps(current, sort_keys=True)
            changed = mutate(current)
            obj = current if changed is None else changed
            if json.dumps(obj, sort_keys=True) == before:
                return obj
            try:
                return self.replace(resource, obj, subresource=subresource)
            except Conflict:
                continue
        raise Conflict(
            f'{resource.kind.lower()} "{name}" kept changing under progdel\'s update ({attempts} conflicts)',
            409,
        )

    def watch(
        self,
        resource: Resource,
        namespace: str | None = None,
        *,
        name: str | None = None,
        resource_version: str | None = None,
        timeout_seconds: int = 60,
        label_selector: str | None = None,
    ) -> Iterator[WatchEvent]:
        """Stream changes until the server closes the watch (after ``timeout_seconds``)."""
        ns = self._ns(resource, namespace)
        query = {
            "watch": "1",
            "resourceVersion": resource_version,
            "timeoutSeconds": timeout_seconds,
            "labelSelector": label_selector,
            "fieldSelector": f"metadata.name={name}" if name else None,
            "allowWatchBookmarks": "true",
        }
        raw = self._send(
            "GET",
            resource.path(ns),
            query=query,
            resource=resource,
            namespace=ns,
            stream=True,
            timeout=(10, timeout_seconds + 10),
        )
        try:
            buffer = b""
            for chunk in raw.stream(amt=None, decode_content=False):
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if line.strip():
                        event = json.loads(line)
                        yield WatchEvent(event.get("type", ""), event.get("object") or {})
        finally:
            raw.release_conn()

    def group_versions(self) -> list[str]:
        """The preferred version of every API group served (``v1``, ``apps/v1``, ...)."""
        core = (self._send("GET", "/api").get("versions") or ["v1"])[:1]
        groups = self._send("GET", "/apis").get("groups") or []
        return core + [g["preferredVersion"]["groupVersion"] for g in groups if g.get("preferredVersion")]

    def discover(self, api_version: str) -> dict[str, Any]:
        """The APIResourceList of a group version (``v1``, ``apps/v1``): which kinds it serves."""
        path = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
        return self._send("GET", path)


def _write_query(dry_run: bool) -> dict[str, Any]:
    if dry_run:
        return {"fieldManager": FIELD_MANAGER, "dryRun": "All", "fieldValidation": "Strict"}
    return {"fieldManager": FIELD_MANAGER}


def _with_type(resource: Resource, obj: dict[str, Any]) -> dict[str, Any]:
    body = dict(obj)
    body.setdefault("apiVersion", resource.api_version)
    body.setdefault("kind", resource.kind)
    return body


def _is_connection_error(err: BaseException) -> bool:
    import urllib3.exceptions

    return isinstance(err, urllib3.exceptions.HTTPError | ConnectionError | OSError)


def connect(
    kubeconfig: str | None = None,
    context: str | None = None,
    namespace: str | None = None,
) -> Kube:
    """A ``Kube`` for the cluster named by flags, ``$KUBECONFIG``, ``~/.kube/config`` or in-cluster config.

    The namespace is ``namespace`` if given, else the context's, else the
    in-cluster service account's, else ``default``.
    """
    from kubernetes import client as k8s_client
    from kubernetes import config as k8s_config
    from kubernetes.config.config_exception import ConfigException

    path = kubeconfig or os.environ.get("KUBECONFIG") or None
    default_path = Path("~/.kube/config").expanduser()
    candidates = [p for p in (path or "").split(os.pathsep) if p] if path else []
    if kubeconfig and not Path(kubeconfig).expanduser().exists():
        raise InvalidInput(f"kubeconfig {kubeconfig}: no such file")
    for file in candidates or [str(default_path)]:
        if Path(file).expanduser().exists():
            check_kubeconfig(Path(file).expanduser())
    in_cluster = not candidates and not default_path.exists() and "KUBERNETES_SERVICE_HOST" in os.environ
    context_ns: str | None = None
    context_name = "in-cluster" if in_cluster else ""
    try:
        if in_cluster:
            if context:
                raise InvalidInput("--context needs a kubeconfig; none was found (running in-cluster)")
            configuration = k8s_client.Configuration()
            k8s_config.load_incluster_config(client_configuration=configuration)
            api_client = k8s_client.ApiClient(configuration)
            if _IN_CLUSTER_NS.exists():
                context_ns = _IN_CLUSTER_NS.read_text().strip()
        else:
            config_file = path or str(default_path)
            if not candidates and not default_path.exists():
                raise InvalidInput(
                    "no kubeconfig found: pass --kubeconfig, set KUBECONFIG, or start the sandbox "
                    "with 'progdel sandbox up --detach'"
                )
            contexts, current = k8s_config.list_kube_config_contexts(config_file)
            chosen = current
            if context:
                chosen = next((c for c in contexts if c["name"] == context), None)
                if chosen is None:
                    names = ", ".join(c["name"] for c in contexts) or "none"
                    raise InvalidInput(f'context "{context}" not found in {config_file} (contexts: {names})')
            if chosen:
                context_ns = (chosen.get("context") or {}).get("namespace")
                context_name = str(chosen.get("name") or "")
            api_client = k8s_config.new_client_from_config(config_file=config_file, context=context)
    except ConfigException as err:
        raise InvalidInput(f"invalid kubeconfig: {printable(str(err))}") from None
    except (TypeError, KeyError, AttributeError, ValueError) as err:  # a shape the client trips over
        raise InvalidInput(f"invalid kubeconfig: {type(err).__name__}: {printable(str(err))}") from None
    return Kube(api_client, namespace or context_ns or "default", context_name)


def _kind(value: Any) -> str:
    for kind, name in ((dict, "a mapping"), (list, "a list"), (str, "a string")):
        if isinstance(value, kind):
            return name
    return type(value).__name__


def check_kubeconfig(path: Path) -> None:
    """Read a kubeconfig as every user file is read (at most 3 MiB of UTF-8, bounded aliases, no
    duplicate keys) and check its shape and its users' credentials, so that a broken one ends in
    one line (exit 2) naming the file, never in what the client trips over, and a token with a
    control character is refused before it is sent or printed."""
    from progdel.config.yamlfile import load_yaml, read_text

    where = f"kubeconfig {path}"
    data = load_yaml(read_text(path, where), where)
    if data is None:
        return
    if not isinstance(data, dict):
        raise InvalidInput(
            f"{where}: expected a mapping (apiVersion, clusters, contexts, users), got {_kind(data)}"
        )
    for section in ("clusters", "contexts", "users"):
        items = data.get(section)
        if items is None:
            continue
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise InvalidInput(f"{where}: {section}: expected a list of mappings, got {_kind(items)}")
        for item in items:
            body = item.get(section[:-1])
            if body is not None and not isinstance(body, dict):
                name = printable(str(item.get("name", "")))
                raise InvalidInput(f"{where}: {section} {name!r}: {section[:-1]}: expected a mapping")
    current = data.get("current-context")
    if current is not None and not isinstance(current, str):
        raise InvalidInput(f"{where}: current-context: expected a string, got {_kind(current)}")
    for item in data.get("users") or []:
        user = item.get("user") or {}
        name = printable(str(item.get("name", "")))
        for key in ("token", "username", "password"):
            value = user.get(key)
            if isinstance(value, str):
                check_credential(value, f"{where}: user {name!r}: {key}")
