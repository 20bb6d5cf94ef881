"""Reaching an in-cluster Prometheus from outside the cluster, through the Kubernetes API.

progdel runs the canary loop from a laptop or a CI job, but Prometheus usually lives in the
cluster, at a Service address (``http://prometheus.istio-system:9090``, the default) that resolves
only inside it. When such an address does not resolve here, progdel sends its queries through
the API server's service proxy instead (``/api/v1/namespaces/istio-system/services/
http:prometheus:9090/proxy``), with the kubeconfig's own credentials, as ``kubectl get --raw``
would. Nothing has to be port-forwarded; the user needs RBAC ``get`` on ``services/proxy`` there.

Prometheus credentials (``PROGDEL_PROMETHEUS_TOKEN``...) are not used on that path: the
``Authorization`` header belongs to the API server, which does not pass it on.
"""

from __future__ import annotations

import socket
from collections.abc import Generator, Mapping
from typing import Any

import httpx

from progdel.kube.client import Kube
from progdel.metrics.prometheus import QUERY_TIMEOUT, PrometheusProvider, ServiceAddress, service_address


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


def through_cluster(
    kube: Kube,
    url: str,
    address: ServiceAddress,
    timeout: float = QUERY_TIMEOUT,
    headers: Mapping[str, str] | None = None,
) -> PrometheusProvider:
    """A provider for ``url`` whose requests go through the API server's service proxy."""
    config = kube.api.configuration
    verify: bool | str = config.ssl_ca_cert or bool(config.verify_ssl)
    cert = (config.cert_file, config.key_file) if config.cert_file and config.key_file else None
    return PrometheusProvider(
        url,
        via=kube.server.rstrip("/") + address.proxy_path(),
        auth=_KubeAuth(config),
        verify=verify,
        cert=cert,
        timeout=timeout,
        headers=headers,
    )


def prometheus_for(
    url: str, kube: Kube | None, headers: Mapping[str, str] | None = None
) -> PrometheusProvider:
    """A provider for ``url`` (sending ``headers`` with every query): directly, or through the
    cluster when ``url`` is a Service address that does not resolve here and a cluster
    connection is at hand."""
    address = service_address(url)
    if kube is not None and address is not None and not resolves(address.host):
        return through_cluster(kube, url, address, headers=headers)
    return PrometheusProvider.from_env(url, headers=headers)
