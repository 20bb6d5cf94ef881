"""Health of an installed addon, judged against its inventory: missing, drifted, not ready."""

from __future__ import annotations

from dataclasses import dataclass

from progdel.addons.catalog import CATALOG
from progdel.addons.install import deployment_ready, drift
from progdel.addons.inventory import Inventory
from progdel.kube.client import Kube
from progdel.kube.errors import NotFound
from progdel.kube.resources import NAMESPACES


@dataclass
class ObjectHealth:
    object: str
    state: str  # ok | missing | drifted | not ready
    detail: str = ""


def check(kube: Kube, inv: Inventory) -> list[ObjectHealth]:
    """Each object's health. A CRD that was on the cluster before is only checked to exist; fields
    the addon's controllers own now (``managedFields``) are theirs, not drift."""
    addon = CATALOG.get(inv.addon)
    controllers = addon.controllers if addon else ()
    out: list[ObjectHealth] = []
    for ref in inv.objects:
        try:
            live = kube.get_or_none(ref.resource, ref.name, ref.namespace or None)
        except NotFound:  # the resource itself is gone (its CRD was deleted)
            live = None
        if live is None:
            out.append(ObjectHealth(ref.describe(), "missing"))
            continue
        applied = inv.applied.get(ref.key)
        fields = drift(applied, live, controllers) if applied is not None and not ref.preexisting else []
        if fields:
            shown = ", ".join(fields[:5]) + (", ..." if len(fields) > 5 else "")
            out.append(ObjectHealth(ref.describe(), "drifted", shown))
        elif ref.kind == "Deployment" and not deployment_ready(live):
            out.append(ObjectHealth(ref.describe(), "not ready", "not Available"))
        else:
            out.append(ObjectHealth(ref.describe(), "ok"))
    for lb in inv.labels:
        ns = kube.get_or_none(NAMESPACES, lb.namespace)
        what = f"label {lb.key}={lb.value} on namespace {lb.namespace}"
        if ns is None:
            out.append(ObjectHealth(what, "missing", "namespace not found"))
        elif (ns["metadata"].get("labels") or {}).get(lb.key) != lb.value:
            out.append(ObjectHealth(what, "drifted", f"metadata.labels.{lb.key}"))
        else:
            out.append(ObjectHealth(what, "ok"))
    return out


def summary(inv: Inventory, health: list[ObjectHealth]) -> str:
    if inv.state != "installed":
        return f"incomplete ({inv.state})"
    bad = [h for h in health if h.state != "ok"]
    if not bad:
        return "healthy"
    counts: dict[str, int] = {}
    for h in bad:
        counts[h.state] = counts.get(h.state, 0) + 1
    return ", ".join(f"{n} {state}" for state, n in counts.items())
