"""The Prometheus servers a canary's queries go to, each with the credentials that belong to it.

progdel's own credentials (``PROGDEL_PROMETHEUS_TOKEN``, ``..._TOKEN_FILE``, basic auth, the CA
file, all from its environment) are for the Prometheus URL the operator configured: the
``--prometheus-url`` flag, ``$PROGDEL_PROMETHEUS_URL`` or progdel.yaml, else the default. A
Canary's ``spec.metricsServer`` and a MetricTemplate's ``provider.address`` are written by whoever
may edit those objects, so a server they name gets progdel's credentials only when it is that same
server (scheme, host and port); otherwise only what the template's own ``secretRef`` holds
(Flagger's keys: ``token``, or ``username`` and ``password``), or nothing.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING

from progdel.errors import InvalidInput
from progdel.metrics.incluster import prometheus_for
from progdel.metrics.prometheus import (
    PrometheusCredentials,
    PrometheusProvider,
    resolve_prometheus_credentials,
    same_origin,
)
from progdel.metrics.window import Prefetch, TickWindow

if TYPE_CHECKING:
    from progdel.kube.client import Kube

SecretName = tuple[str, str]
"""(namespace, name) of a Secret."""
Headers = tuple[tuple[str, str], ...]
"""A MetricTemplate's ``provider.headers`` (see ``templates.header_items``)."""


class MetricsServers:
    """One provider per server and set of credentials, built on first use and kept for the run.

    Building it reads progdel's credentials from the environment, so a bad one is refused before
    anything else happens. With ``window`` (a replay's ticks), each provider answers the queries
    of those ticks from range queries over the whole window (``progdel.metrics.window``)."""

    def __init__(
        self,
        kube: Kube | None,
        configured_url: str,
        env: Mapping[str, str] = os.environ,
        window: TickWindow | None = None,
    ) -> None:
        self.kube = kube
        self.configured_url = configured_url
        self.window = window
        self.own = resolve_prometheus_credentials(env)
        self._providers: dict[
            tuple[str, SecretName | None, Headers, bool], tuple[PrometheusCredentials, PrometheusProvider]
        ] = {}

    def credentials_for(self, url: str, secret: SecretName | None = None) -> PrometheusCredentials:
        """What is sent to ``url``: the ``secret``'s credentials when a template names one, else
        progdel's own when ``url`` is the configured server, else none."""
        if secret is not None:
            return self._from_secret(secret)
        if same_origin(url, self.configured_url):
            return self.own
        return PrometheusCredentials()

    def provider(
        self,
        url: str,
        secret: SecretName | None = None,
        headers: Headers = (),
        insecure_skip_verify: bool = False,
    ) -> PrometheusProvider:
        """The provider for ``url``, with the credentials that belong there and a template's own
        ``headers`` (which go only with that template's queries).

        A template's Secret is read at every call, as Flagger reads it at every check: one
        deleted mid-run fails the next check, a rotated one is used from the next tick on.
        ``insecure_skip_verify`` (the template's ``provider.insecureSkipVerify``) skips the check
        of the server's certificate, as Flagger's provider does."""
        creds = self.credentials_for(url, secret)
        if insecure_skip_verify:
            creds = replace(creds, verify=False)
        key = (url, secret, headers, insecure_skip_verify)
        known = self._providers.get(key)
        if known is not None and known[0] == creds:
            return known[1]
        if known is not None:
            known[1].close()
        provider = prometheus_for(url, self.kube, creds, dict(headers))
        if self.window is not None:
            provider.prefetch = Prefetch(provider, self.window)
        self._providers[key] = (creds, provider)
        return provider

    def _from_secret(self, secret: SecretName) -> PrometheusCredentials:
        from progdel.kube.resources import SECRETS

        namespace, name = secret
        where = f"secret {namespace}/{name} (a MetricTemplate's secretRef)"
        if self.kube is None:
            raise InvalidInput(f"{where}: reading it needs the cluster")
        obj = self.kube.get_or_none(SECRETS, name, namespace)
        if obj is None:
            raise InvalidInput(f"{where}: not found")
        data: dict[str, bytes] = {}
        for key, value in (obj.get("data") or {}).items():
            try:
                data[key] = base64.b64decode(str(value), validate=True)
            except (binascii.Error, ValueError):
                raise InvalidInput(f"{where}: key {key} is not base64") from None
        return PrometheusCredentials.from_secret(data, where)

    def queries_sent(self) -> int:
        """How many requests the providers sent so far."""
        return sum(provider.sent for _creds, provider in self._providers.values())

    def close(self) -> None:
        for _creds, provider in self._providers.values():
            provider.close()
        self._providers.clear()
