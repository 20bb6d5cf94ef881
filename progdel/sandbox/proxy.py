"""The ``services/proxy`` subresource: reaching a Service's backend through the API server.

``/api/v1/namespaces/{ns}/services/{ref}/proxy[/{path}]`` forwards the request (method, path,
query string, body and headers, less the hop-by-hop ones and the ``Authorization`` header,
which was meant for the API server) to one backend of the Service and relays the answer.
``ref`` is ``name``, ``name:port`` or ``scheme:name:port``; the port is a service port's name
or number, and the scheme ``http`` (the default) or ``https`` (certificates are not checked,
the backend is addressed by IP).

Where the backend is:

1. an Endpoints object named like the Service: its ``subsets[].addresses[].ip`` with the
   subset port named like the service port (how a Service without a selector points
   outside the cluster, e.g. at a Prometheus on the developer's machine);
2. else the ready replicas whose pod labels the Service's selector matches, as the replica
   backend lists them (``endpoints()`` of the mesh mode's process backend). A replica's own
   loopback address stands for its pod IP and the service port's ``targetPort``;
3. else nothing: 503 ``no endpoints available for service "NAME"``.

Requests and answers are buffered whole (no streaming, no upgrades); links inside HTML
bodies are not rewritten, ``Location`` headers that point at the backend are.
"""

from __future__ import annotations

import http.client
import random
import ssl
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


def endpoints_addresses(
    endpoints: Mapping[str, Any], port_name: str, single_port: bool
) -> list[tuple[str, int]]:
    """(ip, port) of every ready address of an Endpoints object for the service port ``port_name``.

    A subset's port is the one named ``port_name``, else its only port when that one is
    unnamed or the Service has a single port.
    """
    out: list[tuple[str, int]] = []
    for subset in endpoints.get("subsets") or []:
        if not isinstance(subset, Mapping):
            continue
        ports = [
            p
            for p in subset.get("ports") or []
            if isinstance(p, Mapping) and isinstance(p.get("port"), int) and not isinstance(p["port"], bool)
        ]
        chosen = next((p for p in ports if str(p.get("name") or "") == port_name), None)
        if chosen is None and len(ports) == 1 and (single_port or not ports[0].get("name")):
            chosen = ports[0]
        if chosen is None:
            continue
        for address in subset.get("addresses") or []:
            if isinstance(address, Mapping) and address.get("ip"):
                out.append((str(address["ip"]), int(chosen["port"])))
    return out


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


def resolve(
    namespace: str,
    ref: ServiceRef,
    service: Mapping[str, Any],
    endpoints: Mapping[str, Any] | None,
    replicas: Mapping[ReplicaSetKey, Iterable[Endpoint]] | None,
) -> Target:
    """The backend a request through ``ref`` goes to (one of several, picked at random)."""
    port = service_port(service, ref)
    port_name = str((port or {}).get("name") or "")
    if endpoints is not None:
        addresses = endpoints_addresses(endpoints, port_name, len(_ports(service)) <= 1)
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
