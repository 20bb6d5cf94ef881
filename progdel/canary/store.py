"""Where a client-side canary keeps its state: the ``Canary`` object in the cluster.

The run's state is the object's ``.status`` (Flagger's fields, and progdel's bookkeeping in a
``progdel.dev/Run`` condition beside Flagger's ``Promoted``: see ``status.CanaryStatus``),
written whole through the status subresource after every transition, so a crash, a closed lid
or a second terminal never loses it, and a server that prunes undeclared fields keeps it all.
Operator requests are annotations on the object, so they work from any process:

- ``progdel.dev/request``: a one-shot command (abort, promote) the next tick consumes;
- ``progdel.dev/approval``: the approval of one confirm gate; it stays until the run reaches
  that gate, which consumes it (so an approval can be given in advance);
- ``progdel.dev/paused``: present while the run is paused (``pause`` sets it, ``resume``
  removes it).

Each holds a small JSON object saying who (``user@host/pid``) and when. Who drives is decided
by a Lease named after the canary.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from progdel.config.canary import CanarySpec, parse_canary, parse_canary_fields
from progdel.kube.client import Kube
from progdel.kube.lease import Lease, default_identity
from progdel.kube.resources import CANARIES

REQUEST_ANNOTATION = "progdel.dev/request"
APPROVAL_ANNOTATION = "progdel.dev/approval"
PAUSED_ANNOTATION = "progdel.dev/paused"
OPERATOR_ANNOTATIONS = (REQUEST_ANNOTATION, APPROVAL_ANNOTATION, PAUSED_ANNOTATION)
LEASE_PREFIX = "progdel-canary-"


@dataclass(frozen=True)
class OperatorRequest:
    action: str  # "abort" or "promote"
    by: str
    at: str


def source_of(namespace: str, name: str) -> str:
    return f"canary {namespace}/{name}"


def parse(obj: dict[str, Any], name: str, namespace: str) -> CanarySpec:
    """The spec of a Canary object read from the cluster (its status left out)."""
    return parse_canary({k: v for k, v in obj.items() if k != "status"}, source_of(namespace, name))


def parse_fields(obj: dict[str, Any], name: str, namespace: str) -> CanarySpec:
    """``parse`` without the rules across fields (see ``parse_canary_fields``)."""
    return parse_canary_fields({k: v for k, v in obj.items() if k != "status"}, source_of(namespace, name))


def read(kube: Kube, name: str, namespace: str) -> tuple[dict[str, Any], CanarySpec]:
    obj = kube.get(CANARIES, name, namespace)
    return obj, parse(obj, name, namespace)


#: metadata the API server sets: a Canary exported with ``kubectl get -o yaml`` carries them, and a
#: server refuses a create with a ``resourceVersion`` (and ignores or rejects the others)
SERVER_METADATA = (
    "resourceVersion",
    "uid",
    "creationTimestamp",
    "generation",
    "managedFields",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
)


def apply_canary(kube: Kube, document: dict[str, Any], namespace: str) -> dict[str, Any]:
    """Create the Canary, or update its spec, labels and annotations, keeping its status. Metadata
    the server sets (an exported Canary's resourceVersion, uid, managedFields...) is left out."""
    meta = {k: v for k, v in (document.get("metadata") or {}).items() if k not in SERVER_METADATA}
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
            k: v for k, v in (obj["metadata"].get("annotations") or {}).items() if k in OPERATOR_ANNOTATIONS
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


@dataclass(frozen=True)
class Approval:
    gate: str  # a confirm gate: confirm-rollout, confirm-traffic-increase, confirm-promotion
    by: str
    at: str


@dataclass(frozen=True)
class Pause:
    by: str
    at: str


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _annotation(obj: dict[str, Any], key: str) -> dict[str, Any] | None:
    raw = ((obj.get("metadata") or {}).get("annotations") or {}).get(key)
    if not raw:
        return None
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def post_approval(kube: Kube, name: str, namespace: str, gate: str, by: str | None = None) -> Approval:
    approval = Approval(gate, by or default_identity(), _now())
    payload = json.dumps({"gate": approval.gate, "by": approval.by, "at": approval.at})
    kube.patch(CANARIES, name, {"metadata": {"annotations": {APPROVAL_ANNOTATION: payload}}}, namespace)
    return approval


def pending_approval(obj: dict[str, Any]) -> Approval | None:
    data = _annotation(obj, APPROVAL_ANNOTATION)
    if data is None or not data.get("gate"):
        return None
    return Approval(str(data["gate"]), str(data.get("by", "")), str(data.get("at", "")))


def clear_approval(kube: Kube, name: str, namespace: str, gate: str) -> None:
    """Remove the approval if it is still the one for ``gate`` (a newer one for another gate,
    given meanwhile, stays)."""

    def drop(obj: dict[str, Any]) -> None:
        current = pending_approval(obj)
        if current is not None and current.gate == gate:
            obj["metadata"].get("annotations", {}).pop(APPROVAL_ANNOTATION, None)

    kube.update(CANARIES, name, drop, namespace)


def set_paused(kube: Kube, name: str, namespace: str, paused: bool, by: str | None = None) -> Pause:
    pause = Pause(by or default_identity(), _now())
    value = json.dumps({"by": pause.by, "at": pause.at}) if paused else None
    kube.patch(CANARIES, name, {"metadata": {"annotations": {PAUSED_ANNOTATION: value}}}, namespace)
    return pause


def paused_state(obj: dict[str, Any]) -> Pause | None:
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    if PAUSED_ANNOTATION not in annotations:
        return None
    data = _annotation(obj, PAUSED_ANNOTATION) or {}
    return Pause(str(data.get("by", "")), str(data.get("at", "")))


def operator_marks(obj: dict[str, Any]) -> tuple[str | None, ...]:
    """The raw operator annotations: a change in them wakes a sleeping watcher."""
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    return tuple(annotations.get(k) for k in OPERATOR_ANNOTATIONS)


def lease_for(
    kube: Kube, name: str, namespace: str, duration_seconds: int, identity: str | None = None
) -> Lease:
    return Lease(kube, f"{LEASE_PREFIX}{name}", namespace, identity or default_identity(), duration_seconds)
