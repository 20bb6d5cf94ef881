"""Alerts about a canary's run: Slack-compatible, Microsoft Teams and generic JSON webhooks.

Which alerts go where is Flagger's model: ``spec.analysis.alerts`` names ``AlertProvider``
objects (``flagger.app/v1beta1``; ``spec.type``, and ``spec.address`` or a Secret named by
``spec.secretRef`` whose key ``address`` holds the URL), each with a severity: an ``info``
provider gets every alert, ``warn`` gets warnings and errors, ``error`` only errors. Targets can
also come from progdel's own configuration (``target_from_config``), with the URL in a file or
an environment variable.

The URLs of such webhooks are secrets (whoever has one can post to the channel): they are never
printed, and every error names a masked URL.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx

from progdel.canary.webhooks import mask_url
from progdel.config.canary import Canary
from progdel.errors import InvalidInput
from progdel.kube.client import Kube
from progdel.kube.errors import KubeError
from progdel.kube.resources import SECRETS, Resource

ALERTPROVIDERS = Resource("flagger.app", "v1beta1", "alertproviders", "AlertProvider")

Severity = Literal["info", "warn", "error"]
_RANK = {"info": 0, "warn": 1, "error": 2}
SLACK_COMPATIBLE = ("slack", "discord", "rocket")
KINDS = (*SLACK_COMPATIBLE, "msteams", "gchat", "generic")
_COLORS = {"info": "#2eb886", "warn": "#daa038", "error": "#a30200"}


def wants(target: Severity, alert: Severity) -> bool:
    """Whether a target subscribed at ``target`` severity receives an alert of ``alert``."""
    return _RANK[alert] >= _RANK[target]


@dataclass(frozen=True)
class AlertTarget:
    name: str
    kind: str
    address: str = field(repr=False)
    severity: Severity = "info"
    channel: str | None = None
    username: str | None = None

    def __repr__(self) -> str:
        return f"AlertTarget({self.name!r}, {self.kind!r}, {mask_url(self.address)!r}, {self.severity!r})"


@dataclass(frozen=True)
class AlertMessage:
    canary: str
    namespace: str
    message: str
    severity: Severity
    phase: str = ""
    facts: Mapping[str, str] = field(default_factory=dict)


def render(target: AlertTarget, msg: AlertMessage) -> dict[str, Any]:
    """The request body for ``target``'s kind."""
    title = f"{msg.canary}.{msg.namespace}"
    if target.kind in SLACK_COMPATIBLE:
        body: dict[str, Any] = {
            "username": target.username or "progdel",
            "text": f"{title}: {msg.message}",
            "attachments": [
                {
                    "color": _COLORS[msg.severity],
                    "title": title,
                    "text": msg.message,
                    "fields": [{"title": k, "value": v, "short": True} for k, v in msg.facts.items()],
                    "mrkdwn_in": ["text"],
                }
            ],
        }
        if target.channel:
            body["channel"] = target.channel
        return body
    if target.kind == "msteams":
        return {
            "@type": "MessageCard",
            "@context": "http://schema.org/extensions",
            "themeColor": _COLORS[msg.severity].lstrip("#"),
            "summary": f"{title}: {msg.message}",
            "sections": [
                {
                    "activityTitle": title,
                    "activitySubtitle": msg.message,
                    "facts": [{"name": k, "value": v} for k, v in msg.facts.items()],
                }
            ],
        }
    if target.kind == "gchat":
        return {"text": f"*{title}*: {msg.message}"}
    return {
        "canary": msg.canary,
        "namespace": msg.namespace,
        "severity": msg.severity,
        "phase": msg.phase,
        "message": msg.message,
        "facts": dict(msg.facts),
    }


def _kind(word: str, where: str) -> str:
    kind = (word or "").strip().lower()
    if kind in ("json", "webhook"):
        kind = "generic"
    if kind not in KINDS:
        raise InvalidInput(f"{where}: alert provider type {word!r} is not supported ({', '.join(KINDS)})")
    return kind


def target_from_config(
    name: str,
    type_: str,
    severity: Severity = "info",
    *,
    address_file: str | None = None,
    address_env: str | None = None,
    channel: str | None = None,
    env: Mapping[str, str] = os.environ,
) -> AlertTarget:
    """A target from progdel's configuration: the URL comes from a file or an environment
    variable, never from the configuration file itself."""
    where = f"alert {name}"
    if address_file:
        try:
            address = Path(address_file).expanduser().read_text().strip()
        except OSError as err:
            raise InvalidInput(f"{where}: cannot read {address_file}: {err.strerror}") from None
    elif address_env:
        address = env.get(address_env, "").strip()
        if not address:
            raise InvalidInput(f"{where}: ${address_env} is not set")
    else:
        raise InvalidInput(f"{where}: give addressFile or addressEnv")
    return AlertTarget(name, _kind(type_, where), address, severity, channel)


def targets_from_project(alerts: Sequence[Any], env: Mapping[str, str] = os.environ) -> list[AlertTarget]:
    """Targets for progdel.yaml's ``defaults.alerts`` (``progdel.config.project.AlertConfig``)."""
    return [
        target_from_config(
            a.name,
            a.type,
            a.severity,
            address_file=a.address_file,
            address_env=a.address_env,
            channel=a.channel,
            env=env,
        )
        for a in alerts
    ]


def resolve_targets(kube: Kube, canary: Canary) -> tuple[list[AlertTarget], list[str]]:
    """The targets of ``spec.analysis.alerts`` (reading AlertProviders and Secrets), and the
    problems met (a missing provider or secret); problems never name an address."""
    targets: list[AlertTarget] = []
    problems: list[str] = []
    for alert in canary.analysis.alerts:
        ns = alert.provider_ref.namespace or canary.namespace
        where = f"alert {alert.name}: alertprovider {ns}/{alert.provider_ref.name}"
        try:
            obj = kube.get_or_none(ALERTPROVIDERS, alert.provider_ref.name, ns)
            if obj is None:
                problems.append(f"{where} not found")
                continue
            spec = obj.get("spec") or {}
            address = str(spec.get("address") or "")
            ref = spec.get("secretRef") or {}
            if ref.get("name"):
                secret = kube.get_or_none(SECRETS, ref["name"], ref.get("namespace") or ns)
                raw = ((secret or {}).get("data") or {}).get("address")
                if not raw:
                    problems.append(f"{where}: secret {ref['name']} has no key 'address'")
                    continue
                address = base64.b64decode(raw).decode().strip()
            if not address:
                problems.append(f"{where} has no address")
                continue
            targets.append(
                AlertTarget(
                    alert.name,
                    _kind(str(spec.get("type") or ""), where),
                    address,
                    alert.severity,
                    spec.get("channel"),
                    spec.get("username"),
                )
            )
        except (KubeError, InvalidInput, ValueError) as err:
            problems.append(f"{where}: {err}")
    return targets, problems


ALERT_TIMEOUT = 10.0
"""Seconds an alert's POST may take."""


class AlertSender:
    """Posts alerts; a failure is returned as a masked message, never raised."""

    def __init__(self, timeout: float = ALERT_TIMEOUT, transport: httpx.BaseTransport | None = None) -> None:
        self._client = httpx.Client(timeout=timeout, transport=transport)

    def close(self) -> None:
        self._client.close()

    def send(self, targets: Sequence[AlertTarget], msg: AlertMessage) -> list[str]:
        errors: list[str] = []
        for t in targets:
            if not wants(t.severity, msg.severity):
                continue
            try:
                resp = self._client.post(t.address, json=render(t, msg))
            except httpx.HTTPError as err:
                errors.append(f"alert {t.name} to {mask_url(t.address)} failed: {type(err).__name__}")
                continue
            if resp.status_code >= 300:
                errors.append(f"alert {t.name} to {mask_url(t.address)} failed: HTTP {resp.status_code}")
        return errors


__all__ = [
    "ALERTPROVIDERS",
    "AlertMessage",
    "AlertSender",
    "AlertTarget",
    "render",
    "resolve_targets",
    "target_from_config",
    "wants",
]
