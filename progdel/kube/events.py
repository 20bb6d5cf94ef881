"""Kubernetes Events on the objects progdel acts on, so ``kubectl describe`` tells the story.

Repeated identical events are folded into one whose ``count`` goes up, as the
cluster's own components do.
"""

from __future__ import annotations

import os
import socket
import uuid
from datetime import UTC, datetime
from typing import Any

from progdel.kube.client import Kube
from progdel.kube.errors import KubeError
from progdel.kube.resources import EVENTS

COMPONENT = "progdel"


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_micro() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class EventRecorder:
    def __init__(self, kube: Kube, component: str = COMPONENT) -> None:
        self.kube = kube
        self.component = component
        self.instance = f"{socket.gethostname()}-{os.getpid()}"
        self._seen: dict[tuple[str, str, str, str], str] = {}

    def record(
        self, involved: dict[str, Any], type_: str, reason: str, message: str
    ) -> dict[str, Any] | None:
        """Record an event about ``involved`` (an object as read from the API).

        Failing to record an event never fails the caller's operation: it returns None.
        """
        meta = involved.get("metadata") or {}
        namespace = meta.get("namespace") or self.kube.namespace
        key = (meta.get("uid", meta.get("name", "")), type_, reason, message)
        stamp = now_rfc3339()
        try:
            existing = self._seen.get(key)
            if existing:

                def bump(ev: dict[str, Any]) -> None:
                    ev["count"] = int(ev.get("count") or 1) + 1
                    ev["lastTimestamp"] = stamp

                try:
                    return self.kube.update(EVENTS, existing, bump, namespace)
                except KubeError:
                    self._seen.pop(key, None)
            event = {
                "metadata": {"name": f"{meta.get('name')}.{uuid.uuid4().hex[:16]}", "namespace": namespace},
                "involvedObject": {
                    "apiVersion": involved.get("apiVersion"),
                    "kind": involved.get("kind"),
                    "name": meta.get("name"),
                    "namespace": namespace,
                    "uid": meta.get("uid"),
                    "resourceVersion": meta.get("resourceVersion"),
                },
                "reason": reason,
                "message": message,
                "type": type_,
                "source": {"component": self.component},
                "reportingComponent": self.component,
                "reportingInstance": self.instance,
                "firstTimestamp": stamp,
                "lastTimestamp": stamp,
                "count": 1,
            }
            created = self.kube.create(EVENTS, event, namespace)
            self._seen[key] = created["metadata"]["name"]
            return created
        except KubeError:
            return None


def list_events(kube: Kube, kind: str, name: str, namespace: str | None = None) -> list[dict[str, Any]]:
    """Events about one object, oldest first."""
    items = kube.items(
        EVENTS, namespace, field_selector=f"involvedObject.kind={kind},involvedObject.name={name}"
    )
    return sorted(
        items, key=lambda e: (e.get("lastTimestamp") or "", e["metadata"].get("resourceVersion", ""))
    )
