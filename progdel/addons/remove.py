"""Removing an addon: exactly what its inventory lists, in reverse order, then the inventory."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from progdel.addons import inventory as inv_store
from progdel.addons.inventory import Inventory
from progdel.addons.kinds import kind_rank
from progdel.kube.client import Kube
from progdel.kube.errors import NotFound
from progdel.kube.resources import NAMESPACES


@dataclass
class RemoveResult:
    addon: str
    namespace: str
    deleted: list[str] = field(default_factory=list)
    already_gone: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)


def remove(kube: Kube, inv: Inventory, *, keep_crds: bool, report: Callable[[str], None]) -> RemoveResult:
    result = RemoveResult(inv.addon, inv.namespace)
    for lb in inv.labels:
        ns = kube.get_or_none(NAMESPACES, lb.namespace)
        if ns is None:
            continue
        if (ns["metadata"].get("labels") or {}).get(lb.key) == lb.value:
            kube.patch(NAMESPACES, lb.namespace, {"metadata": {"labels": {lb.key: lb.previous}}})
            action = "removed" if lb.previous is None else f"restored to {lb.previous}"
            result.labels.append(f"{lb.namespace}: {lb.key} {action}")
    ordered = sorted(inv.objects, key=lambda r: kind_rank(r.kind), reverse=True)
    crds = [r for r in ordered if r.kind == "CustomResourceDefinition"]
    rest = [r for r in ordered if r.kind != "CustomResourceDefinition"]
    for ref in rest + ([] if keep_crds else crds):
        try:
            gone = not kube.delete(ref.resource, ref.name, ref.namespace or None, missing_ok=True)
        except NotFound:
            gone = True
        (result.already_gone if gone else result.deleted).append(ref.describe())
    if keep_crds:
        result.kept = [r.describe() for r in crds]
    inv_store.delete(kube, inv)
    report(
        f"{inv.addon}: removed {len(result.deleted)} objects"
        + (f", {len(result.already_gone)} already gone" if result.already_gone else "")
        + (f", kept {len(result.kept)} CRDs" if result.kept else "")
    )
    return result
