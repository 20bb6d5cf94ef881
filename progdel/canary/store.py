"""Where a client-side canary keeps its state: the ``Canary`` object in the cluster.

The run's state is the object's ``.status`` (Flagger's fields plus progdel's
measurements), written through the status subresource after every
transition, so a crash, a closed lid or a second terminal never loses it.
Operator requests (abort, promote) are an annotation on the object that the
driver consumes; who drives is decided by a Lease named after the canary.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from progdel.config.canary import CanarySpec, parse_canary
from progdel.kube.client import Kube
from progdel.kube.lease import Lease, default_identity
from progdel.kube.resources import CANARIES

REQUEST_ANNOTATION = "progdel.dev/request"
LEASE_PREFIX = "progdel-canary-"


@dataclass(frozen=True)
class OperatorRequest:
    action: str  # "abort" or "promote"
    by: str
    at: str


def source_of(namespace: str, name: str) -> str:
    return f"canary {namespace}/{name}"


def read(kube: Kube, name: str, namespace: str) -> tuple[dict[str, Any], CanarySpec]:
    obj = kube.get(CANARIES, name, namespace)
    spec = parse_canary({k: v for k, v in obj.items() if k != "status"}, source_of(namespace, name))
    return obj, spec


def apply_canary(kube: Kube, document: dict[str, Any], namespace: str) -> dict[str, Any]:
    """Create the Canary, or update its spec, labels and annotations, keeping its status."""
    meta = document.get("metadata") or {}
    name = meta["name"]
    body = {k: v for k, v in document.items() if k != "status"}
    body["metadata"] = {**meta, "namespace": namespace}
    existing = kube.get_or_none(CANARIES, name, namespace)
    if existing is None:
        return kube.create(CANARIES, body, namespace)

    def put(obj: dict[str, Any]) -> None:
        obj["spec"] = body.get("spec") or {}
        obj["metadata"]["labels"] = meta.get("labels") or {}
        kept = {
            k: v
            for k, v in (obj["metadata"].get("annotations") or {}).items()
            if k.startswith("progdel.dev/request")
        }
        obj["metadata"]["annotations"] = {**(meta.get("annotations") or {}), **kept}

    return kube.update(CANARIES, name, put, namespace)


def write_status(kube: Kube, name: str, namespace: str, status: dict[str, Any]) -> dict[str, Any]:
    def put(obj: dict[str, Any]) -> None:
        obj["status"] = status

    return kube.update(CANARIES, name, put, namespace, subresource="status")


def post_request(
    kube: Kube, name: str, namespace: str, action: str, by: str | None = None
) -> OperatorRequest:
    req = OperatorRequest(action, by or default_identity(), datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    payload = json.dumps({"action": req.action, "by": req.by, "at": req.at})
    kube.patch(CANARIES, name, {"metadata": {"annotations": {REQUEST_ANNOTATION: payload}}}, namespace)
    return req


def pending_request(obj: dict[str, Any]) -> OperatorRequest | None:
    raw = ((obj.get("metadata") or {}).get("annotations") or {}).get(REQUEST_ANNOTATION)
    if not raw:
        return None
    try:
        data = json.loads(raw)
        return OperatorRequest(str(data["action"]), str(data.get("by", "")), str(data.get("at", "")))
    except (ValueError, KeyError, TypeError):
        return None


def clear_request(kube: Kube, name: str, namespace: str) -> None:
    kube.patch(CANARIES, name, {"metadata": {"annotations": {REQUEST_ANNOTATION: None}}}, namespace)


def lease_for(
    kube: Kube, name: str, namespace: str, duration_seconds: int, identity: str | None = None
) -> Lease:
    return Lease(kube, f"{LEASE_PREFIX}{name}", namespace, identity or default_identity(), duration_seconds)
