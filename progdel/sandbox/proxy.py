"""The ``services/proxy`` subresource: reaching a Service's backend through the API server.

``/api/v1/namespaces/{ns}/services/{ref}/proxy[/{path}]`` forwards the request (method, path,
query string, body and headers, less the hop-by-hop ones, the ``Authorization`` header, which
was meant for the API server, and the impersonation headers) to one backend of the Service and
relays the answer. ``ref`` is ``name``, ``name:port`` or ``scheme:name:port``; the port is a
service port's name or number, and the scheme ``http`` (the default) or ``https``
(certificates are not checked, the backend is addressed by IP).

The proxy goes only where the sandbox itself put a backend, as kube-apiserver's goes only to
the addresses of Pods (an Endpoints address without a Pod behind it is skipped, and loopback
and link-local addresses cannot even be written into Endpoints):

1. the backends the sandbox registered for the Service (``Backends``: its data plane's
   Prometheus). Only code holding the running server can register one; no API request can;
2. else the ready replicas whose pod labels the Service's selector matches, as the replica
   backend lists them (``endpoints()`` of the mesh mode's process backend). A replica's own
   loopback address stands for its pod IP and the service port's ``targetPort``;
3. else nothing: 503 ``no endpoints available for service "NAME"``. Endpoints objects are
   served and stored, but never followed: the sandbox has no Pods they could point at.

Whatever the backend, a request never goes to the API server's own address. A proxied request
carries no credentials, so one that comes back to the API server some other way is a 401.

Requests and answers are buffered whole (no streaming, no upgrades); links inside HTML
bodies are not rewritten, ``Location`` headers that point at the backend are.
"""

from __future__ import annotations

import http.client
import random
import ssl
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from progdel.sandbox.backend import ReplicaSetKey
from progdel.sandbox.mesh import selector_matches, target_port
from progdel.sandbox.objects import ApiError, bad_request
from progdel.sandbox.processes import Endpoint

TIMEOUT = 30.0
SCHEMES = ("", "http", "https")
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)
# Request headers that were for the API server, or that the forwarded request sets itself.
NOT_FORWARDED = HOP_BY_HOP | {"authorization", "host", "content-length", "expect"}
IMPERSONATION_PREFIX = "impersonate-"
# Characters a forwarded path keeps as they are (besides letters, digits and ``_.-~``).
PATH_SAFE = "/:@!$&'()*+,;="

ReplicaEndpoints = Callable[[], Mapping[ReplicaSetKey, Sequence[Endpoint]]]


def unavailable(message: str) -> ApiError:
    return ApiError(503, "ServiceUnavailable", message)


@dataclass(frozen=True)
class ServiceRef:
    """The ``{ref}`` of a proxy URL: ``name``, ``name:port`` or ``scheme:name:port``."""

    scheme: str
    name: str
    port: str


def parse_ref(text: str) -> ServiceRef:
    parts = unquote(text).split(":")
    if len(parts) == 1:
        scheme, name, port = "", parts[0], ""
    elif len(parts) == 2:
        scheme, (name, port) = "", parts
    elif len(parts) == 3:
        scheme, name, port = parts
    else:
        raise bad_request(f'invalid service request "{text}"')
    if scheme not in SCHEMES or not name:
        raise bad_request(f'invalid service request "{text}"')
    return ServiceRef(scheme, name, port)


@dataclass(frozen=True)
class Target:
    """Where one proxied request goes."""

    scheme: str
    host: str
    port: int

    @property
    def netloc(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def _ports(service: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [p for p in (service.get("spec") or {}).get("ports") or [] if isinstance(p, Mapping)]


def service_port(service: Mapping[str, Any], ref: ServiceRef) -> Mapping[str, Any] | None:
    """The service port ``ref`` names (by name or number), else the unnamed or first one.

    None when the Service has no ports and ``ref`` names none.
    """
    ports = _ports(service)
    if ref.port:
        for p in ports:
            if str(p.get("name") or "") == ref.port or str(p.get("port")) == ref.port:
                return p
        raise unavailable(f'no service port "{ref.port}" found for service "{ref.name}"')
    if not ports:
        return None
    return next((p for p in ports if not p.get("name")), ports[0])


def replica_addresses(
    namespace: str,
    selector: Mapping[str, str],
    replicas: Mapping[ReplicaSetKey, Iterable[Endpoint]],
    target: int | str | None = None,
) -> list[tuple[str, int]]:
    """(host, port) of every ready replica in ``namespace`` whose pod labels ``selector`` matches,
    on the replica's local port for the container port ``target`` (a number or a name)."""
    out = []
    for key, eps in replicas.items():
        if key.namespace != namespace:
            continue
        for e in eps:
            port = e.local_port(target)
            if e.ready and port is not None and selector_matches(selector, e.labels):
                out.append((e.host, port))
    return out


@dataclass(frozen=True)
class Backend:
    """An address the sandbox put behind one port of a Service (``port_name`` "": every port)."""

    host: str
    port: int
    port_name: str = ""


class Backends:
    """The backends the sandbox itself registered, by Service. Held by the running server, out
    of reach of API requests: a user who may write Services and Endpoints cannot add one."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_service: dict[tuple[str, str], tuple[Backend, ...]] = {}

    def register(self, namespace: str, service: str, backend: Backend) -> None:
        with self._lock:
            others = tuple(
                b for b in self._by_service.get((namespace, service), ()) if b.port_name != backend.port_name
            )
            self._by_service[(namespace, service)] = (*others, backend)

    def forget(self, namespace: str, service: str) -> None:
        with self._lock:
            self._by_service.pop((namespace, service), None)

    def of(self, namespace: str, service: str) -> tuple[Backend, ...]:
        return self._by_service.get((namespace, service), ())


def resolve(
    namespace: str,
    ref: ServiceRef,
    service: Mapping[str, Any],
    registered: Sequence[Backend],
    replicas: Mapping[ReplicaSetKey, Iterable[Endpoint]] | None,
) -> Target:
    """The backend a request through ``ref`` goes to (one of several, picked at random)."""
    port = service_port(service, ref)
    port_name = str((port or {}).get("name") or "")
    if registered:
        addresses = [(b.host, b.port) for b in registered if b.port_name in ("", port_name)]
    else:
        selector = (service.get("spec") or {}).get("selector") or {}
        target = target_port(port) if port is not None else None
        addresses = replica_addresses(namespace, selector, replicas or {}, target) if selector else []
    if not addresses:
        raise unavailable(f'no endpoints available for service "{ref.name}"')
    host, number = random.choice(addresses)
    return Target(ref.scheme or "http", host, number)


def forward_path(rest: str, trailing_slash: bool) -> str:
    """The backend path for the part of the URL after ``/proxy`` (``rest``: its segments, joined)."""
    path = "/" + unquote(rest)
    if trailing_slash and rest:
        path += "/"
    return quote(path, safe=PATH_SAFE)


def _connection_tokens(headers: list[tuple[str, str]]) -> set[str]:
    """Header names a ``Connection`` header lists: hop-by-hop for this message only."""
    return {t.strip().lower() for k, v in headers if k.lower() == "connection" for t in v.split(",")}


def forwarded_headers(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The request headers the backend gets."""
    pairs = list(headers)
    named = _connection_tokens(pairs)
    return [
        (k, v)
        for k, v in pairs
        if k.lower() not in NOT_FORWARDED
        and k.lower() not in named
        and not k.lower().startswith(IMPERSONATION_PREFIX)
    ]


@dataclass
class Answer:
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes


def relayed_headers(
    headers: Iterable[tuple[str, str]], target: Target, proxy_base: str
) -> list[tuple[str, str]]:
    """The backend's response headers, less hop-by-hop ones; ``Location`` made to go through the proxy."""
    pairs = list(headers)
    named = _connection_tokens(pairs)
    out: list[tuple[str, str]] = []
    for k, v in pairs:
        low = k.lower()
        if low in HOP_BY_HOP or low in named or low == "content-length":
            continue
        if low == "location":
            v = _through_proxy(v, target, proxy_base)
        out.append((k, v))
    return out


def _through_proxy(location: str, target: Target, proxy_base: str) -> str:
    if location.startswith("/") and not location.startswith("//"):
        return proxy_base + location
    split = urlsplit(location)
    if split.scheme in ("http", "https") and split.netloc == target.netloc:
        rest = split.path or "/"
        return proxy_base + rest + (f"?{split.query}" if split.query else "")
    return location


def forward(
    target: Target,
    method: str,
    path: str,
    headers: list[tuple[str, str]],
    body: bytes,
    timeout: float = TIMEOUT,
) -> Answer:
    """Send one request to ``target`` and read the whole answer (503 Status when unreachable)."""
    conn: http.client.HTTPConnection
    if target.scheme == "https":
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        conn = http.client.HTTPSConnection(target.host, target.port, timeout=timeout, context=context)
    else:
        conn = http.client.HTTPConnection(target.host, target.port, timeout=timeout)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", target.netloc)
        for k, v in headers:
            conn.putheader(k, v)
        if body or method in ("POST", "PUT", "PATCH"):
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body or None)
        resp = conn.getresponse()
        data = resp.read()
        return Answer(resp.status, resp.reason, resp.getheaders(), data)
    except (OSError, http.client.HTTPException) as err:
        raise unavailable(
            f"error trying to reach service: {target.scheme}://{target.netloc}: {_describe(err, timeout)}"
        ) from err
    finally:
        conn.close()


def _describe(err: BaseException, timeout: float) -> str:
    if isinstance(err, TimeoutError):
        return f"no answer within {timeout:g}s"
    text = getattr(err, "strerror", None) or str(err) or type(err).__name__
    return str(text)
