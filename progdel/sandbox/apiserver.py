"""The HTTP face of the sandbox: Kubernetes REST routing, Status bodies, chunked watch streams.

Built on ``http.server`` with HTTP/1.1 keep-alive. Responses are written as one
buffer (status line, headers and body together) on a socket with Nagle turned
off, and GETs serve the object's stored JSON bytes as they are, which is what
keeps a GET well under a millisecond.

Every request is authenticated first (``auth.py``: no credentials or the
kubeconfig's token is the admin, other bearer tokens come from
``<data dir>/tokens.csv``), then, unless the user is in ``system:masters``,
authorized by RBAC (``rbac.py``) before it is routed, as kube-apiserver does.
The admin's requests never touch the RBAC code.

``services/{ref}/proxy[/...]`` requests are forwarded to a backend of the Service
(``proxy.py``), as kubectl's ``get --raw .../services/NAME:PORT/proxy/...`` expects.
"""

from __future__ import annotations

import json
import select
import socket
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from progdel.sandbox import auth, discovery, proxy, rbac
from progdel.sandbox.objects import (
    APPLY_PATCH,
    IGNORE,
    STRICT,
    WARN,
    ApiError,
    FieldValidation,
    Objects,
    bad_request,
    load_json,
)
from progdel.sandbox.resources import ENDPOINTS_KEY, NAMESPACE_KEY, SSAR_KEY, ResourceType
from progdel.sandbox.selectors import (
    SelectorError,
    fields_match,
    labels_match,
    parse_field_selector,
    parse_label_selector,
)
from progdel.sandbox.store import ADDED, DELETED, MODIFIED, Entry, Expired, encode

TABLE_ACCEPT = "as=Table;v=v1;g=meta.k8s.io"
OPTIONS_KIND = {
    "POST": "CreateOptions",
    "PUT": "UpdateOptions",
    "PATCH": "PatchOptions",
    "DELETE": "DeleteOptions",
}
BOOKMARK_INTERVAL = 10.0


def _not_found_path() -> ApiError:
    return ApiError(404, "NotFound", "the server could not find the requested resource", {})


def _method_not_allowed() -> ApiError:
    return ApiError(
        405, "MethodNotAllowed", "the server does not allow this method on the requested resource", {}
    )


class Route:
    __slots__ = ("name", "namespace", "proxy_rest", "rt", "sub", "version")

    def __init__(
        self,
        rt: ResourceType,
        version: str,
        namespace: str | None,
        name: str | None,
        sub: str,
        proxy_rest: str = "",
    ) -> None:
        self.rt = rt
        self.version = version
        self.namespace = namespace
        self.name = name  # for ``proxy``: the ``{ref}`` segment as sent (``name:port``, maybe escaped)
        self.sub = sub
        self.proxy_rest = proxy_rest  # for ``proxy``: the path segments after ``/proxy``, joined


class SandboxHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(
        self,
        address: tuple[str, int],
        objects: Objects,
        token_file: Path | None = None,
        replica_endpoints: proxy.ReplicaEndpoints | None = None,
    ) -> None:
        """``token_file``: the static tokens (``tokens.csv`` in the data dir); None: the admin token only.

        ``replica_endpoints``: the replica backend's ready addresses, where the service proxy
        sends requests for Services with a selector (None: the backend has no addresses).
        """
        self.objects = objects
        self.replica_endpoints = replica_endpoints
        self.openapi = discovery.OpenAPICache(objects.registry)
        self.authenticator = auth.TokenAuthenticator(token_file)
        self.stopping = False
        super().__init__(address, ApiHandler)

    def get_request(self) -> tuple[socket.socket, Any]:
        conn, addr = super().get_request()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn, addr


class ApiHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "progdel-sandbox"
    sys_version = ""
    server: SandboxHTTPServer
    user: auth.User = auth.ADMIN  # who sent the request being handled (set per request)
    warnings: list[str]  # what the answer's ``Warning`` headers say (set per request)

    def log_message(self, format: str, *args: Any) -> None:
        return

    # ---- response helpers -----------------------------------------------------------------
    def _send(self, code: int, body: bytes, content_type: str = "application/json") -> None:
        if content_type == "application/json":
            body += b"\n"  # kube-apiserver's JSON encoder ends every document with a newline
        reason = self.responses.get(code, ("",))[0]
        head = (
            f"HTTP/1.1 {code} {reason}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\nCache-Control: no-cache, private\r\n"
        )
        for text in self.warnings:
            head += "Warning: 299 - " + json.dumps(text, ensure_ascii=False) + "\r\n"
        if self.close_connection:
            head += "Connection: close\r\n"
        self.wfile.write(head.encode() + b"\r\n" + (b"" if self.command == "HEAD" else body))

    def _send_json(self, code: int, obj: Any) -> None:
        self._send(code, encode(obj))

    def _send_error(self, err: ApiError) -> None:
        self._send_json(err.code, err.status())

    # ---- dispatch -------------------------------------------------------------------------
    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def _read_body(self) -> bytes:
        """The request body, sent with a ``Content-Length`` or chunked (kubectl ``create --raw`` does)."""
        if "chunked" not in (self.headers.get("Transfer-Encoding") or "").lower():
            length = self.headers.get("Content-Length")
            return self.rfile.read(int(length)) if length else b""
        chunks: list[bytes] = []
        while True:
            size = int(self.rfile.readline(1024).split(b";", 1)[0].strip() or b"0", 16)
            if size <= 0:
                while self.rfile.readline(65536).strip():  # trailers, up to the empty line
                    pass
                return b"".join(chunks)
            chunks.append(self.rfile.read(size))
            self.rfile.readline(3)  # the CRLF after the chunk

    def _dispatch(self, method: str) -> None:
        self.warnings = []
        try:
            body = self._read_body()
        except ValueError:
            self.close_connection = True
            return self._send_error(bad_request("invalid request body framing"))
        try:
            split = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
            user = self.server.authenticator.authenticate(self.headers.get("Authorization"))
            if user is None:
                raise auth.unauthorized()
            if self.headers.get("Impersonate-User") is not None or self.headers.get("Impersonate-Group"):
                user = self._impersonate(user)
            self.user = user
            if not user.is_admin:
                attrs = rbac.request_attributes(method, split.path, query)
                if not self._decide(user, attrs).allowed:
                    raise rbac.forbidden(user, attrs)
            self._route(method, split.path, query, body)
        except ApiError as err:
            self._send_error(err)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as err:  # a bug: answer 500 as a Status so clients show it
            self._send_error(
                ApiError(500, "InternalError", f"Internal error occurred: {type(err).__name__}: {err}")
            )

    def _decide(self, user: auth.User, attrs: rbac.Attributes) -> rbac.Decision:
        """RBAC's answer for ``user`` (the admin is allowed without reading any policy)."""
        if user.is_admin:
            return rbac.Decision(True)
        policy = rbac.policy_from_store(self.server.objects.store, attrs.namespace)
        return rbac.authorize(user, attrs, policy)

    def _impersonate(self, requester: auth.User) -> auth.User:
        """The user named by the ``Impersonate-*`` headers, if ``requester`` may impersonate it."""
        name = self.headers.get("Impersonate-User") or ""
        groups = [g.strip() for g in self.headers.get_all("Impersonate-Group") or [] if g.strip()]
        uid = self.headers.get("Impersonate-Uid") or ""
        if not name:
            raise bad_request(f"requested groups {groups} without impersonating a user")
        for attrs in rbac.impersonation_attributes(name, groups, uid):
            if not self._decide(requester, attrs).allowed:
                raise rbac.forbidden(requester, attrs)
        return auth.impersonated(name, groups, uid)

    def _route(self, method: str, path: str, query: dict[str, str], body: bytes) -> None:
        parts = [p for p in path.split("/") if p]
        objects = self.server.objects
        reg = objects.registry
        if not parts:
            return self._send_json(
                200,
                {
                    "paths": [
                        "/api",
                        "/api/v1",
                        "/apis",
                        "/healthz",
                        "/livez",
                        "/openapi/v3",
                        "/readyz",
                        "/version",
                    ]
                },
            )
        head = parts[0]
        if head in ("healthz", "readyz", "livez") and len(parts) == 1:
            return self._send(200, b"ok", "text/plain; charset=utf-8")
        if head == "version" and len(parts) == 1:
            return self._send_json(200, discovery.KUBE_VERSION)
        if head == "openapi":
            if parts[1:2] == ["v3"]:
                if len(parts) == 2:
                    return self._send_json(200, self.server.openapi.index())
                doc = self.server.openapi.document("/".join(parts[2:]))
                if doc is not None:
                    return self._send(200, doc)
            raise _not_found_path()
        if head == "api":
            if len(parts) == 1:
                return self._send_json(
                    200,
                    discovery.api_versions(
                        f"{self.server.server_address[0]!s}:{self.server.server_address[1]}"
                    ),
                )
            group, version, rest = "", parts[1], parts[2:]
        elif head == "apis":
            if len(parts) == 1:
                return self._send_json(200, discovery.api_group_list(reg))
            if len(parts) == 2:
                g = discovery.api_group(reg, parts[1])
                if g is None:
                    raise _not_found_path()
                return self._send_json(200, g)
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise _not_found_path()
        if not rest:
            if method != "GET":
                raise _method_not_allowed()
            rl = discovery.api_resource_list(reg, group, version)
            if rl is None:
                raise _not_found_path()
            return self._send_json(200, rl)
        route = self._parse_resource_path(group, version, rest)
        self._handle_resource(method, route, query, body)
        return None

    def _parse_resource_path(self, group: str, version: str, rest: list[str]) -> Route:
        reg = self.server.objects.registry
        ns: str | None = None
        if (
            rest[0] == "namespaces"
            and len(rest) >= 3
            and not (len(rest) == 3 and rest[2] in ("status", "finalize"))
        ):
            ns, rest = rest[1], rest[2:]
        rt = reg.get(group, version, rest[0])
        if rt is None:
            raise _not_found_path()
        if rt.proxy_subresource and ns is not None and len(rest) >= 3 and rest[2] == "proxy":
            return Route(rt, version, ns, rest[1], "proxy", "/".join(rest[3:]))
        if len(rest) > 3:
            raise _not_found_path()
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else ""
        if ns is not None and not rt.namespaced:
            raise _not_found_path()
        if ns is None and rt.namespaced and name is not None:
            raise _not_found_path()
        if sub and not (
            (sub == "status" and rt.status_subresource)
            or (sub == "scale" and rt.scale_subresource)
            or (sub == "finalize" and rt.key == NAMESPACE_KEY)
        ):
            raise _not_found_path()
        return Route(rt, version, ns, name, sub)

    # ---- resources ------------------------------------------------------------------------
    def _manager(self, query: dict[str, str]) -> str:
        if query.get("fieldManager"):
            return query["fieldManager"]
        ua = self.headers.get("User-Agent") or "unknown"
        return ua.split("/", 1)[0] or "unknown"

    def _write_options(self, method: str, sub: str) -> tuple[bool, FieldValidation]:
        """The ``dryRun`` and ``fieldValidation`` of a write, checked as the real server checks them."""
        params = parse_qs(urlsplit(self.path).query, keep_blank_values=True)
        dry_run = params.get("dryRun") or []
        directive = (params.get("fieldValidation") or [""])[-1]
        errors = []
        if any(v != "All" for v in dry_run):
            shown = json.dumps(dry_run, separators=(",", ":"))
            errors.append(
                ("dryRun", "FieldValueNotSupported", f'Unsupported value: {shown}: supported values: "All"')
            )
        if method != "DELETE" and directive not in ("", IGNORE, STRICT, WARN):
            errors.append(
                (
                    "fieldValidation",
                    "FieldValueNotSupported",
                    f"Unsupported value: {json.dumps(directive)}: "
                    'supported values: "", "Ignore", "Strict", "Warn"',
                )
            )
        if errors:
            kind = OPTIONS_KIND.get(method, "CreateOptions")
            text = ", ".join(f"{f}: {m}" for f, _, m in errors)
            raise ApiError(
                422,
                "Invalid",
                f'{kind}.meta.k8s.io "" is invalid: {text if len(errors) == 1 else "[" + text + "]"}',
                {
                    "group": "meta.k8s.io",
                    "kind": kind,
                    "causes": [{"reason": r, "message": m, "field": f} for f, r, m in errors],
                },
            )
        return bool(dry_run), FieldValidation(directive or WARN)

    def _body_with_duplicates(self, body: bytes, validation: FieldValidation) -> Any:
        """The JSON body; its duplicate fields become strict decoding errors of ``validation``."""
        ctype = (self.headers.get("Content-Type") or "application/json").split(";")[0].strip()
        if ctype != "application/json" or validation.directive == IGNORE:
            return self._json_body(body)
        try:
            data, duplicates = load_json(body or b"null")
        except ValueError:
            return self._json_body(body)
        validation.decode_errors = [f'duplicate field "{d}"' for d in duplicates]
        return data

    def _json_body(self, body: bytes) -> Any:
        ctype = (self.headers.get("Content-Type") or "application/json").split(";")[0].strip()
        if ctype == "application/vnd.kubernetes.protobuf":
            from progdel.sandbox import protobuf

            try:
                return protobuf.decode(body)
            except protobuf.Unsupported as err:
                raise ApiError(
                    415,
                    "UnsupportedMediaType",
                    f"the sandbox cannot decode {err} from protobuf; send it as JSON "
                    "(e.g. kubectl create ... --dry-run=client -o yaml | kubectl apply -f -)",
                ) from err
            except (ValueError, IndexError, UnicodeDecodeError) as err:
                raise bad_request(f"invalid protobuf body: {err}") from err
        try:
            if ctype in ("application/yaml", "application/x-yaml"):
                import yaml

                return yaml.safe_load(body.decode())
            return json.loads(body or b"null")
        except Exception as err:
            raise bad_request(f"couldn't get version/kind; json parse error: {err}") from err

    def _handle_resource(self, method: str, r: Route, query: dict[str, str], body: bytes) -> None:
        if r.sub == "proxy":
            return self._proxy(method, r, body)
        if r.rt.key == SSAR_KEY:
            return self._access_review(method, r, body)
        dry_run, validation = (
            (False, FieldValidation()) if method == "GET" else self._write_options(method, r.sub)
        )
        try:
            self._serve_resource(method, r, query, body, dry_run, validation)
        finally:
            self.warnings = validation.warnings
        return None

    def _serve_resource(
        self,
        method: str,
        r: Route,
        query: dict[str, str],
        body: bytes,
        dry_run: bool,
        validation: FieldValidation,
    ) -> None:
        objects = self.server.objects
        rt = r.rt
        ns = r.namespace or ""
        if r.sub == "finalize" and method != "PUT":  # the namespace finalize subresource is update-only
            raise _method_not_allowed()
        if method in ("POST", "PUT", "PATCH") and rt.key in rbac.ESCALATION_KEYS and not self.user.is_admin:
            self._check_escalation(method, r, query, body)
        if method == "GET":
            if r.name is None:
                if query.get("watch") in ("1", "true", "True"):
                    return self._watch(r, query)
                return self._list(r, query)
            entry = objects.get(rt, ns, r.name)
            if r.sub == "scale":
                return self._send_json(200, objects.scale_of(rt, entry.obj))
            if self._wants_table():
                return self._send_json(
                    200,
                    discovery.table(
                        rt,
                        r.version,
                        [self._obj_at(r, entry)],
                        {"resourceVersion": str(entry.rv)},
                        query.get("includeObject", "Metadata"),
                    ),
                )
            return self._send(200, objects.present(rt, r.version, entry))
        if method == "POST":
            if r.name is not None:
                raise _method_not_allowed()
            if rt.namespaced and r.namespace is None:
                raise _method_not_allowed()
            data = self._body_with_duplicates(body, validation)
            obj = objects.create(rt, r.version, ns, data, self._manager(query), dry_run, checks=validation)
            self.warnings = validation.warnings
            return self._send_json(201, objects.present_obj(rt, r.version, obj))
        if method == "PUT":
            if r.name is None:
                raise _method_not_allowed()
            data = self._body_with_duplicates(body, validation)
            if r.sub == "scale":
                return self._send_json(
                    200, objects.update_scale(rt, r.version, ns, r.name, data, self._manager(query), dry_run)
                )
            obj = objects.update(
                rt, r.version, ns, r.name, data, self._manager(query), r.sub, dry_run, checks=validation
            )
            self.warnings = validation.warnings
            return self._send_json(200, objects.present_obj(rt, r.version, obj))
        if method == "PATCH":
            if r.name is None:
                raise _method_not_allowed()
            ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
            force = query.get("force") in ("true", "1", "True")
            manager = query.get("fieldManager") or (None if ctype == APPLY_PATCH else self._manager(query))
            if r.sub == "scale":
                return self._patch_scale(r, ctype, body, manager or "unknown", dry_run)
            obj, created = objects.patch(
                rt, r.version, ns, r.name, ctype, body, manager, force, r.sub, dry_run, validation
            )
            self.warnings = validation.warnings
            return self._send_json(201 if created else 200, objects.present_obj(rt, r.version, obj))
        if method == "DELETE":
            options = self._json_body(body) if body.strip() else {}
            if not isinstance(options, dict):
                raise bad_request("DeleteOptions must be an object")
            if r.sub:
                raise _method_not_allowed()
            if r.name is None:
                return self._delete_collection(r, query, options, dry_run)
            obj, finished = objects.delete(rt, ns, r.name, options, dry_run)
            if finished and not rt.returns_deleted_object:
                # What the generic registry answers once an object is gone; an object that
                # waits on finalizers is answered as it now is, with its deletionTimestamp.
                details: dict[str, Any] = {"name": r.name}
                if rt.group:
                    details["group"] = rt.group
                details["kind"] = rt.plural
                details["uid"] = obj["metadata"].get("uid", "")
                return self._send_json(
                    200,
                    {
                        "kind": "Status",
                        "apiVersion": "v1",
                        "metadata": {},
                        "status": "Success",
                        "details": details,
                    },
                )
            return self._send_json(200, objects.present_obj(rt, r.version, obj))
        raise _method_not_allowed()

    def _check_escalation(self, method: str, r: Route, query: dict[str, str], body: bytes) -> None:
        """Refuse a role or binding that grants what the user does not hold (see rbac.py): the
        write is first carried out as a dry run, to judge the object it would store."""
        objects = self.server.objects
        rt, ns, manager = r.rt, r.namespace or "", self._manager(query)
        if method == "POST":
            obj = objects.create(rt, r.version, ns, self._json_body(body), manager, dry_run=True)
        elif method == "PUT" and r.name is not None:
            obj = objects.update(rt, r.version, ns, r.name, self._json_body(body), manager, r.sub, True)
        elif method == "PATCH" and r.name is not None:
            ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
            force = query.get("force") in ("true", "1", "True")
            field_manager = query.get("fieldManager") or (None if ctype == APPLY_PATCH else manager)
            obj, _ = objects.patch(rt, r.version, ns, r.name, ctype, body, field_manager, force, r.sub, True)
        else:
            return
        error = rbac.escalation_error(self.user, rt.key, rt.plural, obj, objects.store)
        if error is not None:
            raise error

    def _proxy(self, method: str, r: Route, body: bytes) -> None:
        """Forward the request to a backend of the Service and relay its answer."""
        objects = self.server.objects
        ns = r.namespace or ""
        ref = proxy.parse_ref(r.name or "")
        service = objects.get(r.rt, ns, ref.name).obj
        endpoints = objects.store.get(ENDPOINTS_KEY, ns, ref.name)
        replicas = self.server.replica_endpoints() if self.server.replica_endpoints is not None else None
        target = proxy.resolve(ns, ref, service, endpoints.obj if endpoints else None, replicas)
        raw = urlsplit(self.path)
        path = proxy.forward_path(r.proxy_rest, raw.path.endswith("/"))
        if raw.query:
            path += f"?{raw.query}"
        answer = proxy.forward(target, method, path, proxy.forwarded_headers(self.headers.items()), body)
        base = f"/api/{r.version}/namespaces/{ns}/services/{r.name}/proxy"
        headers = proxy.relayed_headers(answer.headers, target, base)
        payload = answer.body
        if method == "HEAD":
            length = [(k, v) for k, v in answer.headers if k.lower() == "content-length"]
            headers += length[:1]
            payload = b""
        elif answer.status < 200 or answer.status in (204, 304):
            payload = b""
        else:
            headers.append(("Content-Length", str(len(payload))))
        if self.close_connection:
            headers.append(("Connection", "close"))
        head = f"HTTP/1.1 {answer.status} {answer.reason}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers)
        self.wfile.write(head.encode("latin-1") + b"\r\n" + payload)

    def _access_review(self, method: str, r: Route, body: bytes) -> None:
        """A SelfSubjectAccessReview: answered for the requesting user, not stored."""
        if method != "POST" or r.name is not None:
            raise _method_not_allowed()
        data = self._json_body(body)
        decision = self._decide(self.user, rbac.review_attributes(data))
        self._send_json(201, rbac.review_response(data, decision))

    def _patch_scale(self, r: Route, ctype: str, body: bytes, manager: str, dry_run: bool) -> None:
        from progdel.sandbox import patch as patches

        objects = self.server.objects
        with objects.store.lock:
            current = objects.scale_of(r.rt, objects.get(r.rt, r.namespace or "", r.name or "").obj)
            try:
                data = json.loads(body or b"null")
            except ValueError as err:
                raise bad_request(f"error decoding patch: {err}") from err
            try:
                if ctype == "application/json-patch+json":
                    new = patches.json_patch(current, data)
                elif ctype in ("application/merge-patch+json", "application/strategic-merge-patch+json"):
                    new = patches.merge_patch(current, data)
                else:
                    raise ApiError(415, "UnsupportedMediaType", f"unsupported patch type {ctype!r} for scale")
            except patches.PatchError as err:
                raise ApiError(422, "Invalid", str(err)) from err
            if (
                isinstance(new, dict)
                and (new.get("metadata") or {}).get("resourceVersion")
                == current["metadata"]["resourceVersion"]
            ):
                new["metadata"].pop("resourceVersion", None)
            self._send_json(
                200,
                objects.update_scale(r.rt, r.version, r.namespace or "", r.name or "", new, manager, dry_run),
            )

    def _wants_table(self) -> bool:
        return TABLE_ACCEPT in (self.headers.get("Accept") or "")

    def _obj_at(self, r: Route, entry: Entry) -> dict[str, Any]:
        objects = self.server.objects
        return objects.present_obj(r.rt, r.version, objects.stored(r.rt, entry).obj)

    def _selectors(self, r: Route, query: dict[str, str]) -> tuple[Any, Any]:
        try:
            return (
                parse_label_selector(query.get("labelSelector")),
                parse_field_selector(query.get("fieldSelector"), r.rt.key),
            )
        except SelectorError as err:
            raise bad_request(str(err)) from err

    def _list(self, r: Route, query: dict[str, str]) -> None:
        objects = self.server.objects
        labels, fields = self._selectors(r, query)
        try:
            limit = int(query.get("limit") or 0)
        except ValueError as err:
            raise bad_request(f"invalid limit: {err}") from err
        entries, rv, cont, remaining = objects.list(
            r.rt, r.namespace, labels, fields, limit, query.get("continue") or None
        )
        meta: dict[str, Any] = {"resourceVersion": str(rv)}
        if cont:
            meta["continue"] = cont
            meta["remainingItemCount"] = remaining
        if self._wants_table():
            return self._send_json(
                200,
                discovery.table(
                    r.rt,
                    r.version,
                    [self._obj_at(r, e) for e in entries],
                    meta,
                    query.get("includeObject", "Metadata"),
                ),
            )
        head = encode({"kind": r.rt.list_kind, "apiVersion": r.rt.api_version(r.version), "metadata": meta})
        items = b",".join(objects.present(r.rt, r.version, e) for e in entries)
        self._send(200, head[:-1] + b',"items":[' + items + b"]}")
        return None

    def _delete_collection(
        self, r: Route, query: dict[str, str], options: dict[str, Any], dry_run: bool
    ) -> None:
        if "deletecollection" not in r.rt.verbs():
            raise _method_not_allowed()
        objects = self.server.objects
        labels, fields = self._selectors(r, query)
        if r.rt.namespaced and r.namespace is None:
            raise _method_not_allowed()
        entries, _, _, _ = objects.list(r.rt, r.namespace, labels, fields)
        deleted = []
        for e in entries:
            try:
                obj, _ = objects.delete(r.rt, r.namespace or "", e.obj["metadata"]["name"], options, dry_run)
                deleted.append(objects.present_obj(r.rt, r.version, obj))
            except ApiError as err:
                if err.code != 404:
                    raise
        self._send_json(
            200,
            {
                "kind": r.rt.list_kind,
                "apiVersion": r.rt.api_version(r.version),
                "metadata": {"resourceVersion": str(objects.store.rv)},
                "items": deleted,
            },
        )

    # ---- watch ----------------------------------------------------------------------------
    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")

    def _client_gone(self) -> bool:
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            if readable:
                return self.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True
        return False

    def _watch(self, r: Route, query: dict[str, str]) -> None:
        objects = self.server.objects
        store = objects.store
        labels, fields = self._selectors(r, query)
        table = self._wants_table()
        include = query.get("includeObject", "Metadata")
        bookmarks = query.get("allowWatchBookmarks") in ("true", "1")
        try:
            timeout = float(query.get("timeoutSeconds") or 1800)
        except ValueError as err:
            raise bad_request(f"invalid timeoutSeconds: {err}") from err
        rv_param = query.get("resourceVersion") or ""
        try:
            since = int(rv_param) if rv_param not in ("", "0") else None
        except ValueError as err:
            raise bad_request(f"invalid resource version: {rv_param}") from err
        self.wfile.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
            b"Cache-Control: no-cache, private\r\n\r\n"
        )
        first = [True]

        def emit(kind: str, obj: dict[str, Any]) -> None:
            if table:
                out: Any = discovery.table(
                    r.rt,
                    r.version,
                    [obj],
                    {"resourceVersion": obj["metadata"].get("resourceVersion", "")},
                    include,
                    headers=first[0],
                )
                first[0] = False
            else:
                out = obj
            self._chunk(encode({"type": kind, "object": out}) + b"\n")

        def matches(entry: Entry | None) -> bool:
            if entry is None:
                return False
            m = entry.obj.get("metadata") or {}
            if r.namespace is not None and m.get("namespace", "") != r.namespace:
                return False
            return labels_match(labels, entry.obj) and fields_match(fields, entry.obj)

        deadline = time.monotonic() + timeout
        try:
            if since is None:
                with store.lock:
                    entries, since = store.list(r.rt.key, r.namespace)
                for e in entries:
                    if matches(e):
                        emit(ADDED, self._obj_at(r, e))
            last = since
            idle_since = time.monotonic()
            while not store.closed and not self.server.stopping:
                try:
                    events = store.events_after(last)
                except Expired:
                    emit_err = ApiError(
                        410, "Expired", f"too old resource version: {last} ({store.compacted_rv})"
                    )
                    self._chunk(encode({"type": "ERROR", "object": emit_err.status()}) + b"\n")
                    break
                for ev in events:
                    last = ev.rv
                    if ev.key != r.rt.key:
                        continue
                    now_match, before = matches(ev.entry), matches(ev.prev)
                    if ev.type == MODIFIED:
                        if now_match and not before:
                            emit(ADDED, self._obj_at(r, ev.entry))
                        elif now_match:
                            emit(MODIFIED, self._obj_at(r, ev.entry))
                        elif before:
                            emit(DELETED, self._obj_at(r, ev.entry))
                    elif now_match:
                        emit(ev.type if ev.type != DELETED else DELETED, self._obj_at(r, ev.entry))
                    idle_since = time.monotonic()
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                if not store.wait_newer(last, min(remaining, 1.0)):
                    if self._client_gone():
                        break
                    if bookmarks and time.monotonic() - idle_since > BOOKMARK_INTERVAL:
                        idle_since = time.monotonic()
                        self._chunk(
                            encode(
                                {
                                    "type": "BOOKMARK",
                                    "object": {
                                        "kind": r.rt.kind,
                                        "apiVersion": r.rt.api_version(r.version),
                                        "metadata": {"resourceVersion": str(last)},
                                    },
                                }
                            )
                            + b"\n"
                        )
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError, OSError):
            pass
        self.close_connection = True
