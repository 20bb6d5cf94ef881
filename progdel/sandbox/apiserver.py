"""The HTTP face of the sandbox: Kubernetes REST routing, Status bodies, chunked watch streams.

Built on ``http.server`` with HTTP/1.1 keep-alive, over TLS only: each connection's
handshake runs on its own thread (a slow client holds up no other), and a client speaking
plain HTTP gets the answer Go's servers give it. Responses are written as one buffer (status
line, headers and body together) on a socket with Nagle turned off, and GETs serve the
object's stored JSON bytes as they are, which is what keeps a GET well under a millisecond.

Before anything else a request must come from a program, not a web page: a ``Host`` other than
an address the sandbox serves on (DNS rebinding) or any ``Origin`` header (a browser) is
refused. Its body is bounded by kube-apiserver's limit (3 MiB, a 413 beyond). Then it is
authenticated (``auth.py``: the kubeconfig's token is the admin, other bearer tokens come from
``<data dir>/tokens.csv``, no credentials is a 401 outside the health and version endpoints),
then, unless the user is in ``system:masters``, authorized by RBAC (``rbac.py``) before it is
routed, as kube-apiserver does. The admin's requests never touch the RBAC code. Bodies are
read in the media types the real server reads (JSON, YAML, protobuf for built-in kinds, the
patch types for PATCH): anything else, a form or ``text/plain``, is its 415.

``services/{ref}/proxy[/...]`` requests are forwarded to a backend of the Service
(``proxy.py``), as kubectl's ``get --raw .../services/NAME:PORT/proxy/...`` expects: only to
the sandbox's own replicas and the backends it registered itself, never to its own address.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import select
import socket
import ssl
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from progdel.sandbox import auth, discovery, httphead, proxy, rbac, yamlbody
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
from progdel.sandbox.resources import NAMESPACE_KEY, SSAR_KEY, ResourceType
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
MAX_BODY_BYTES = 3 * 1024 * 1024  # kube-apiserver's limit on a request body
DRAIN_LIMIT = 64 * 1024 * 1024  # past this, a too large body is not read to its end: the connection closes
HANDSHAKE_TIMEOUT = 10.0
# What Go's HTTP servers answer a client that speaks plain HTTP to a TLS port.
PLAIN_HTTP_ANSWER = b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"
JSON, YAML, PROTOBUF = "application/json", "application/yaml", "application/vnd.kubernetes.protobuf"
PATCH_TYPES = (
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    APPLY_PATCH,
)


def _not_found_path() -> ApiError:
    return ApiError(404, "NotFound", "the server could not find the requested resource", {})


def _method_not_allowed() -> ApiError:
    return ApiError(
        405, "MethodNotAllowed", "the server does not allow this method on the requested resource", {}
    )


def _too_large() -> ApiError:
    return ApiError(413, "RequestEntityTooLarge", f"Request entity too large: limit is {MAX_BODY_BYTES}")


def unsupported_media_type(accepted: tuple[str, ...] | list[str]) -> ApiError:
    """The 415 kube-apiserver answers a body in a media type it does not read."""
    return ApiError(
        415,
        "UnsupportedMediaType",
        "the body of the request was in an unknown format - accepted media types include: "
        + ", ".join(accepted),
    )


def media_type(header: str | None) -> str:
    """The media type of a ``Content-Type`` header, without parameters, in lower case."""
    return (header or "").split(";", 1)[0].strip().lower()


def host_name(host: str) -> str:
    """The name or address part of a ``Host`` header (``[::1]:8443`` -> ``::1``)."""
    host = host.strip()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _is_local(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address == "localhost"
    return ip.is_loopback or ip.is_unspecified


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
        authenticator: auth.TokenAuthenticator,
        tls: ssl.SSLContext,
        replica_endpoints: proxy.ReplicaEndpoints | None = None,
        backends: proxy.Backends | None = None,
    ) -> None:
        """``tls``: the server's TLS context (its certificate); every connection speaks TLS.

        ``replica_endpoints``: the replica backend's ready addresses, where the service proxy
        sends requests for Services with a selector (None: the backend has no addresses).
        ``backends``: the addresses the sandbox itself put behind Services.
        """
        self.objects = objects
        self.replica_endpoints = replica_endpoints
        self.backends = backends if backends is not None else proxy.Backends()
        self.openapi = discovery.OpenAPICache(objects.registry)
        self.authenticator = authenticator
        self.tls = tls
        self.stopping = False
        super().__init__(address, ApiHandler)
        bound = str(self.server_address[0])
        # The names a request's Host may use: the local ones, and the address served on.
        self.host_names = {"localhost", "127.0.0.1", "::1", bound.lower()}

    def get_request(self) -> tuple[socket.socket, Any]:
        conn, addr = super().get_request()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn, addr

    def finish_request(self, request: Any, client_address: Any) -> None:
        """Speak TLS on the connection (on its own thread), then serve its requests."""
        try:
            request.settimeout(HANDSHAKE_TIMEOUT)
            first = request.recv(1, socket.MSG_PEEK)
            if first != b"\x16":  # not a TLS handshake record
                if first:
                    request.sendall(PLAIN_HTTP_ANSWER)
                return
            conn = self.tls.wrap_socket(request, server_side=True)
            conn.settimeout(None)
        except (OSError, ssl.SSLError):
            return
        try:
            ApiHandler(conn, client_address, self)
        finally:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_WR)
            conn.close()

    def is_own_address(self, host: str, port: int) -> bool:
        """Whether ``host:port`` reaches this server."""
        if port != self.server_address[1]:
            return False
        bound = str(self.server_address[0])
        return _is_local(host) or host == bound or _is_local(bound)


class ApiHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "progdel-sandbox"
    sys_version = ""
    server: SandboxHTTPServer
    user: auth.User = auth.ANONYMOUS  # who sent the request being handled (set per request)
    warnings: list[str]  # what the answer's ``Warning`` headers say (set per request)
    raw_requestline: bytes  # set by ``http.server`` before ``parse_request``

    def log_message(self, format: str, *args: Any) -> None:
        return

    def parse_request(self) -> bool:
        """The request line and the headers (``httphead``), with ``http.server``'s rules for
        versions, keep-alive and ``Expect: 100-continue``; False when an error was answered."""
        self.command = ""
        self.request_version = "HTTP/1.1"  # errors below are answered with a status line
        self.close_connection = True
        self.requestline = str(self.raw_requestline, "iso-8859-1").rstrip("\r\n")
        words = self.requestline.split()
        if len(words) != 3:  # HTTP/0.9's two-word form is not spoken here
            self.send_error(400, f"Bad request syntax ({self.requestline[:200]!r})")
            return False
        command, path, version = words
        major, dot, minor = version.removeprefix("HTTP/").partition(".")
        if not version.startswith("HTTP/") or not dot or not (major + minor).isdigit():
            self.send_error(400, f"Bad request version ({version[:40]!r})")
            return False
        if int(major) >= 2:
            self.send_error(505, f"Invalid HTTP version ({version})")
            return False
        self.request_version = version
        http11 = (int(major), int(minor)) >= (1, 1)
        self.close_connection = not http11
        self.command = command
        self.path = "/" + path.lstrip("/") if path.startswith("//") else path
        try:
            self.headers = httphead.read_headers(self.rfile)  # type: ignore[assignment]
        except httphead.HeaderError as err:
            self.send_error(err.status, str(err))
            return False
        connection = (self.headers.get("Connection") or "").lower()
        if connection == "close":
            self.close_connection = True
        elif connection == "keep-alive":
            self.close_connection = False
        if http11 and (self.headers.get("Expect") or "").lower() == "100-continue":
            return self.handle_expect_100()
        return True

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
        """The request body, sent with a ``Content-Length`` or chunked (kubectl ``create --raw`` does).

        A body over ``MAX_BODY_BYTES`` is read on and dropped (up to ``DRAIN_LIMIT``, so that
        the client reads the 413 instead of a reset connection) and answered with a 413.
        """
        if "chunked" not in (self.headers.get("Transfer-Encoding") or "").lower():
            length = int(self.headers.get("Content-Length") or 0)
            if length < 0:
                raise ValueError("negative Content-Length")
            if length > MAX_BODY_BYTES:
                self._discard(length)
                raise _too_large()
            return self.rfile.read(length) if length else b""
        chunks: list[bytes] = []
        total = 0
        while True:
            size = int(self.rfile.readline(1024).split(b";", 1)[0].strip() or b"0", 16)
            if size <= 0:
                while self.rfile.readline(65536).strip():  # trailers, up to the empty line
                    pass
                if total > MAX_BODY_BYTES:
                    raise _too_large()
                return b"".join(chunks)
            total += size
            if total > MAX_BODY_BYTES:
                chunks = []
                if total > DRAIN_LIMIT:
                    self.close_connection = True
                    raise _too_large()
                self._discard(size)
            else:
                chunks.append(self.rfile.read(size))
            self.rfile.readline(3)  # the CRLF after the chunk

    def _discard(self, length: int) -> None:
        """Read ``length`` bytes of body and drop them; past ``DRAIN_LIMIT``, close the connection."""
        if length > DRAIN_LIMIT:
            self.close_connection = True
            return
        while length > 0:
            got = self.rfile.read(min(length, 65536))
            if not got:
                break
            length -= len(got)

    def _check_caller(self) -> None:
        """Refuse requests a web page could have sent: a foreign ``Host`` (DNS rebinding) or any
        ``Origin`` (browsers send one with every cross-origin request; kubectl and the client
        libraries never do)."""
        origin = self.headers.get("Origin")
        if origin is not None:
            raise ApiError(
                403,
                "Forbidden",
                f"requests from web pages are refused (Origin: {origin!r}): the sandbox serves programs only",
            )
        host = self.headers.get("Host")
        if not host:
            raise bad_request("missing required Host header")
        if host_name(host).lower() not in self.server.host_names:
            raise ApiError(
                403,
                "Forbidden",
                f"host {host!r} is not an address this server serves on "
                f"(use {', '.join(sorted(self.server.host_names))})",
            )

    def _dispatch(self, method: str) -> None:
        self.warnings = []
        try:
            try:
                body = self._read_body()
            except ValueError:
                self.close_connection = True
                raise bad_request("invalid request body framing") from None
            self._check_caller()
            split = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
            user = self.server.authenticator.authenticate(self.headers.get("Authorization"), split.path)
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
        if media_type(self.headers.get("Content-Type")) not in ("", JSON) or validation.directive == IGNORE:
            return self._json_body(body)
        try:
            data, duplicates = load_json(body or b"null")
        except (ValueError, RecursionError):
            return self._json_body(body)
        validation.decode_errors = [f'duplicate field "{d}"' for d in duplicates]
        return data

    def _json_body(self, body: bytes) -> Any:
        """The body as data, decoded as its ``Content-Type`` says (checked by ``_check_body_type``)."""
        ctype = media_type(self.headers.get("Content-Type"))
        if ctype == PROTOBUF:
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
        if ctype == YAML:
            return yamlbody.load(body)[0]
        try:
            return json.loads(body or b"null")
        except (ValueError, RecursionError) as err:
            raise bad_request(f"couldn't get version/kind; json parse error: {err}") from err

    def _check_body_type(self, method: str, r: Route, body: bytes) -> None:
        """The 415 kube-apiserver answers a body it cannot read (forms and ``text/plain`` included)."""
        ctype = media_type(self.headers.get("Content-Type"))
        if method == "PATCH":
            accepted = PATCH_TYPES if r.rt.builtin else tuple(t for t in PATCH_TYPES if "strategic" not in t)
            if ctype not in accepted:
                raise unsupported_media_type(accepted)
        elif method in ("POST", "PUT") or body:
            accepted = (JSON, YAML, PROTOBUF) if r.rt.builtin else (JSON, YAML)
            if ctype and ctype not in accepted:
                raise unsupported_media_type(accepted)

    def _handle_resource(self, method: str, r: Route, query: dict[str, str], body: bytes) -> None:
        if r.sub == "proxy":
            return self._proxy(method, r, body)
        self._check_body_type(method, r, body)
        if r.rt.key == SSAR_KEY:
            return self._access_review(method, r, body)
        dry_run, validation = (
            (False, FieldValidation()) if method == "GET" else self._write_options(method, r.sub)
        )
        if method in ("POST", "PUT", "PATCH"):
            store = self.server.objects.store
            validation.admit = rbac.escalation_guard(
                self.user,
                r.rt.key,
                r.namespace or "",
                r.name or "",
                policy=lambda ns: rbac.policy_from_store(store, ns),
                allowed=lambda attrs: self._decide(self.user, attrs).allowed,
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

    def _proxy(self, method: str, r: Route, body: bytes) -> None:
        """Forward the request to a backend of the Service and relay its answer."""
        objects = self.server.objects
        ns = r.namespace or ""
        ref = proxy.parse_ref(r.name or "")
        service = objects.get(r.rt, ns, ref.name).obj
        replicas = self.server.replica_endpoints() if self.server.replica_endpoints is not None else None
        target = proxy.resolve(ns, ref, service, self.server.backends.of(ns, ref.name), replicas)
        if self.server.is_own_address(target.host, target.port):
            raise bad_request("address not allowed")
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
        """Whether the client of a watch closed its end (it sends nothing more on a watch)."""
        conn = self.connection
        try:
            readable, _, _ = select.select([conn], [], [], 0)
            if not readable:
                return False
            conn.setblocking(False)
            try:
                return bool(conn.recv(1) == b"")
            finally:
                conn.setblocking(True)
        except (ssl.SSLWantReadError, BlockingIOError):
            return False
        except OSError:
            return True

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
