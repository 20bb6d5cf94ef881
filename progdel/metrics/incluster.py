"""Reaching in-cluster Services (Prometheus, webhooks) from outside the cluster, through the
Kubernetes API.

progdel runs the canary loop from a laptop or a CI job, but Prometheus usually lives in the
cluster, at a Service address (``http://prometheus.istio-system:9090``, the default) that resolves
only inside it. When such an address does not resolve here, progdel sends its queries through
the API server's service proxy instead (``/api/v1/namespaces/istio-system/services/
http:prometheus:9090/proxy``), with the kubeconfig's own credentials, as ``kubectl get --raw``
would. Nothing has to be port-forwarded; the user needs RBAC ``get`` on ``services/proxy`` there.
Webhooks are the same: Flagger's canaries call ``http://flagger-loadtester.test/`` and the like,
which progdel POSTs to that Service's proxy (RBAC ``create`` on ``services/proxy``), keeping
the path, the query, the body and the timeout.

Prometheus credentials (``PROGDEL_PROMETHEUS_TOKEN``...) are not used on that path: the
``Authorization`` header belongs to the API server, which does not pass it on.
"""

from __future__ import annotations

import socket
from collections.abc import Generator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from progdel.kube.client import Kube
from progdel.metrics.prometheus import (
    QUERY_TIMEOUT,
    PrometheusCredentials,
    PrometheusProvider,
    ServiceAddress,
    service_address,
)


def resolves(host: str) -> bool:
    try:
        socket.getaddrinfo(host, None)
    except (OSError, UnicodeError):
        return False
    return True


class _KubeAuth(httpx.Auth):
    """The kubeconfig's credentials on every request, fresh each time (exec plugins and
    token files refresh them)."""

    def __init__(self, configuration: Any) -> None:
        self.configuration = configuration

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        bearer = (self.configuration.auth_settings().get("BearerToken") or {}).get("value")
        if bearer:
            request.headers["Authorization"] = bearer
        yield request


@dataclass(frozen=True)
class ClusterRoute:
    """How to reach a cluster Service from outside: the API server's service proxy for it
    (``https://API/api/v1/namespaces/NS/services/SCHEME:NAME:PORT/proxy``), with the kubeconfig's
    credentials and the API server's CA."""

    base: str
    auth: httpx.Auth
    verify: bool | str
    cert: tuple[str, str] | None

    def url_for(self, url: str) -> str:
        """``url`` (which names the Service) rewritten onto the proxy: path and query kept."""
        parsed = httpx.URL(url)
        path = parsed.raw_path.decode("ascii") or "/"
        return self.base + path


def cluster_route(kube: Kube, address: ServiceAddress) -> ClusterRoute:
    """The API server's proxy for the Service at ``address``."""
    config = kube.api.configuration
    verify: bool | str = config.ssl_ca_cert or bool(config.verify_ssl)
    cert = (config.cert_file, config.key_file) if config.cert_file and config.key_file else None
    return ClusterRoute(kube.server.rstrip("/") + address.proxy_path(), _KubeAuth(config), verify, cert)


def route_for(url: str, kube: Kube | None) -> ClusterRoute | None:
    """The service-proxy route for ``url`` when it names a cluster Service
    (``http://NAME.NAMESPACE[.svc[.cluster.local]][:PORT]/...``) that does not resolve here and a
    cluster connection is at hand; None when ``url`` is to be reached directly."""
    address = service_address(url)
    if kube is None or address is None or resolves(address.host):
        return None
    return cluster_route(kube, address)


def through_cluster(
    kube: Kube,
    url: str,
    address: ServiceAddress,
    timeout: float = QUERY_TIMEOUT,
    headers: Mapping[str, str] | None = None,
) -> PrometheusProvider:
    """A provider for ``url`` whose requests go through the API server's service proxy, under
    ``url``'s path as Flagger joins it (``http://prometheus.monitoring:9009/prometheus`` queries
    ``.../proxy/prometheus/api/v1/query``)."""
    route = cluster_route(kube, address)
    path = httpx.URL(url).raw_path.decode("ascii").split("?", 1)[0]
    return PrometheusProvider(
        url,
        via=route.base + path.rstrip("/"),
        auth=route.auth,
        verify=route.verify,
        cert=route.cert,
        timeout=timeout,
        headers=headers,
    )


def prometheus_for(
    url: str,
    kube: Kube | None,
    credentials: PrometheusCredentials | None = None,
    headers: Mapping[str, str] | None = None,
) -> PrometheusProvider:
    """A provider for ``url`` (sending ``headers`` with every query): directly with
    ``credentials`` (none by default), or through the cluster when ``url`` is a Service address
    that does not resolve here and a cluster connection is at hand (then with the kubeconfig's
    credentials only)."""
    address = service_address(url)
    if kube is not None and address is not None and not resolves(address.host):
        return through_cluster(kube, url, address, headers=headers)
    creds = credentials or PrometheusCredentials()
    return PrometheusProvider(
        url,
        bearer_token=creds.bearer_token,
        basic_auth=creds.basic_auth,
        verify=creds.verify,
        headers=headers,
    )
