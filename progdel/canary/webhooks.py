"""Calling a canary's webhooks: Flagger's JSON payload over HTTP POST, with timeouts and retries.

The engine decides *when* hooks are called and what their answers mean; this module only makes
the calls, as Flagger makes them: the hooks of one type one after another in the spec's order,
stopping at the first that fails (at the first that answers 2xx for ``rollback`` hooks, whose
success means "roll back"; ``event`` hooks are all called), so a ``db-migrate`` pre-rollout
hook has finished before the ``smoke`` test after it starts. A call succeeds on any 2xx answer
(Flagger accepts only up to 202: progdel treats 203-299 as success too, deliberately, since
they are successes in HTTP). Connection errors, timeouts, 429 and 5xx answers other than 501
are retried ``retries`` times, as Flagger's client retries them; another 4xx answer is final (a
closed gate answers 403, and asking again at once would not open it).

A URL naming a cluster Service (``http://flagger-loadtester.test/``, ``http://svc.ns:8080/x``,
``.svc``, ``.svc.cluster.local``) that does not resolve where progdel runs is called through the
API server's service proxy with the kubeconfig's credentials (``metrics.incluster``), keeping
the path, the query, the body and the timeout.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from progdel.canary.flaggerhash import webhook_checksum
from progdel.canary.observation import HookResult, HookType, webhooks_of
from progdel.canary.status import CanaryStatus
from progdel.config.canary import Canary, CanaryWebhook, parse_duration
from progdel.metrics.prometheus import tls_context

if TYPE_CHECKING:
    from progdel.kube.client import Kube
    from progdel.metrics.incluster import ClusterRoute

_BODY_LIMIT = 200


def mask_url(url: str) -> str:
    """The URL without credentials, path, query or fragment (they may hold tokens)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<invalid url>"
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    hidden = "/***" if (parts.path not in ("", "/") or parts.query or parts.fragment) else ""
    return urlunsplit((parts.scheme, host, hidden, "", "")) if parts.scheme else "<invalid url>"


def checksum(status: CanaryStatus) -> str:
    """Flagger's ``checksum`` of the payload: its hash of the status' ``trackedConfigs`` and
    ``lastAppliedSpec`` (``pkg/controller/webhook.go``), so a hook sees the same value whether
    Flagger or progdel drives the canary."""
    return webhook_checksum(status.tracked_configs, status.last_applied_spec)


def payload(
    canary: Canary,
    phase: str,
    status: CanaryStatus,
    hook: CanaryWebhook,
    event: tuple[str, str, int] | None = None,
) -> dict[str, Any]:
    """Flagger's request body. ``event`` is (message, type, time in ms) for ``event`` hooks."""
    metadata: dict[str, str] = dict(hook.metadata or {})
    if event is not None:
        message, type_, ms = event
        metadata.update({"eventMessage": message, "eventType": type_, "timestamp": str(ms)})
    return {
        "name": canary.name,
        "namespace": canary.namespace,
        "phase": phase,
        "checksum": checksum(status),
        "metadata": metadata,
    }


def _retried(status: int) -> bool:
    """Flagger's client (go-retryablehttp) retries 429 and 5xx except 501 Not Implemented."""
    return status == 429 or (status >= 500 and status != 501)


class WebhookCaller:
    """One httpx client per run (and one per API server for hooks reached through it);
    ``call_type`` runs the hooks of a type one after another, as Flagger does."""

    def __init__(self, transport: httpx.BaseTransport | None = None) -> None:
        self._clients: dict[Any, httpx.Client] = {}
        self._transport = transport

    def _client(self, verify: bool) -> httpx.Client:
        if verify not in self._clients:
            self._clients[verify] = httpx.Client(verify=verify, transport=self._transport)
        return self._clients[verify]

    def _proxy_client(self, route: ClusterRoute) -> httpx.Client:
        key = ("proxy", route.verify, route.cert)
        if key not in self._clients:
            self._clients[key] = httpx.Client(
                auth=route.auth, verify=tls_context(route.verify, route.cert), transport=self._transport
            )
        return self._clients[key]

    def close(self) -> None:
        for c in self._clients.values():
            c.close()
        self._clients.clear()

    def call(self, hook: CanaryWebhook, body: Mapping[str, Any], kube: Kube | None = None) -> HookResult:
        """POST ``body`` to the hook; through the API server's service proxy when its URL names a
        cluster Service that does not resolve here (and ``kube`` is given)."""
        timeout = parse_duration(hook.timeout) or 10.0
        route = None
        if kube is not None:
            from progdel.metrics.incluster import route_for

            route = route_for(hook.url, kube)
        if route is not None:
            client, url = self._proxy_client(route), route.url_for(hook.url)
            where = f"{mask_url(hook.url)} (through the Kubernetes API's service proxy)"
        else:
            client, url, where = self._client(not hook.disable_tls), hook.url, mask_url(hook.url)
        attempts = max(0, hook.retries) + 1
        last = HookResult(hook.name, False, "not called")
        for attempt in range(attempts):
            if attempt:
                time.sleep(min(0.2 * attempt, 1.0))
            try:
                resp = client.post(url, json=dict(body), timeout=timeout)
            except httpx.TimeoutException:
                last = HookResult(hook.name, False, f"POST {where} timed out after {hook.timeout}")
                continue
            except httpx.HTTPError as err:
                last = HookResult(hook.name, False, f"POST {where}: {type(err).__name__}")
                continue
            if 200 <= resp.status_code < 300:
                return HookResult(hook.name, True, "", resp.status_code)
            text = resp.text.strip()[:_BODY_LIMIT] or resp.reason_phrase
            last = HookResult(hook.name, False, f"{resp.status_code} {text}".strip(), resp.status_code)
            if not _retried(resp.status_code):
                break
        return last

    def call_type(
        self,
        canary: Canary,
        hook_type: HookType,
        phase: str,
        status: CanaryStatus,
        event: tuple[str, str, int] | None = None,
        *,
        kube: Kube | None = None,
    ) -> list[HookResult]:
        """Call the hooks of ``hook_type`` in the spec's order, one after another: up to the first
        failure, up to the first success for ``rollback`` hooks, all of them for ``event`` hooks.
        The results are those of the hooks called."""
        results: list[HookResult] = []
        for hook in webhooks_of(canary, hook_type):
            result = self.call(hook, payload(canary, phase, status, hook, event), kube)
            results.append(result)
            if hook_type is HookType.EVENT:
                continue
            if result.ok == (hook_type is HookType.ROLLBACK):
                break
        return results


__all__ = ["WebhookCaller", "checksum", "mask_url", "payload"]
