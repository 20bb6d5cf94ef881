"""Calling a canary's webhooks: Flagger's JSON payload over HTTP POST, with timeouts and retries.

The engine decides *when* hooks are called and what their answers mean; this module only makes
the calls. A call succeeds on any 2xx answer (Flagger accepts only up to 202: progdel treats
203-299 as success too, deliberately, since they are successes in HTTP). Connection errors,
timeouts and 5xx answers are retried ``retries`` times; a 4xx answer is final (a closed gate
answers 403, and asking again at once would not open it). The hooks of one type are called
concurrently.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from progdel.canary.engine import CanaryStatus, HookResult, HookType, webhooks_of
from progdel.config.canary import Canary, CanaryWebhook, parse_duration

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
    """A hash of the applied revision and the tracked configs, as the payload's ``checksum``."""
    text = json.dumps({"spec": status.last_applied_spec, "configs": status.tracked_configs}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


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


class WebhookCaller:
    """One httpx client per run; ``call_type`` runs all hooks of a type concurrently."""

    def __init__(self, transport: httpx.BaseTransport | None = None) -> None:
        self._clients: dict[bool, httpx.Client] = {}
        self._transport = transport

    def _client(self, verify: bool) -> httpx.Client:
        if verify not in self._clients:
            self._clients[verify] = httpx.Client(verify=verify, transport=self._transport)
        return self._clients[verify]

    def close(self) -> None:
        for c in self._clients.values():
            c.close()
        self._clients.clear()

    def call(self, hook: CanaryWebhook, body: Mapping[str, Any]) -> HookResult:
        timeout = parse_duration(hook.timeout) or 10.0
        client = self._client(not hook.disable_tls)
        attempts = max(0, hook.retries) + 1
        last = HookResult(hook.name, False, "not called")
        for attempt in range(attempts):
            if attempt:
                time.sleep(min(0.2 * attempt, 1.0))
            try:
                resp = client.post(hook.url, json=dict(body), timeout=timeout)
            except httpx.TimeoutException:
                last = HookResult(
                    hook.name, False, f"POST {mask_url(hook.url)} timed out after {hook.timeout}"
                )
                continue
            except httpx.HTTPError as err:
                last = HookResult(hook.name, False, f"POST {mask_url(hook.url)}: {type(err).__name__}")
                continue
            if 200 <= resp.status_code < 300:
                return HookResult(hook.name, True, "", resp.status_code)
            text = resp.text.strip()[:_BODY_LIMIT] or resp.reason_phrase
            last = HookResult(hook.name, False, f"{resp.status_code} {text}".strip(), resp.status_code)
            if resp.status_code < 500:
                break
        return last

    def call_many(self, calls: Sequence[tuple[CanaryWebhook, Mapping[str, Any]]]) -> list[HookResult]:
        if len(calls) == 1:
            return [self.call(*calls[0])]
        with ThreadPoolExecutor(max_workers=min(8, len(calls))) as pool:
            return list(pool.map(lambda c: self.call(*c), calls))

    def call_type(
        self,
        canary: Canary,
        hook_type: HookType,
        phase: str,
        status: CanaryStatus,
        event: tuple[str, str, int] | None = None,
    ) -> list[HookResult]:
        hooks = webhooks_of(canary, hook_type)
        return self.call_many([(h, payload(canary, phase, status, h, event)) for h in hooks])


__all__ = ["WebhookCaller", "checksum", "mask_url", "payload"]
