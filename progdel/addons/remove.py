"""Removing an addon: exactly what its inventory lists, in reverse order, then the inventory.

When progdel created the addon's namespace (``install`` labels the namespaces it
creates ``app.kubernetes.io/managed-by=progdel`` and ``progdel.dev/addon``), the
namespace goes too, but only once nothing else lives in it: deleting a namespace
deletes everything inside, and a namespace shared with another addon or holding
the user's own objects must survive. What keeps it is reported, so the user can
decide. The last addon removed from a shared namespace deletes it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from progdel.addons import inventory as inv_store
from progdel.addons.inventory import Inventory
from progdel.addons.kinds import ApiDiscovery, kind_rank
from progdel.kube.access import Access, denied, refused
from progdel.kube.client import Kube
from progdel.kube.errors import Forbidden, KubeError, NotFound
from progdel.kube.resources import CONFIGMAPS, NAMESPACES


@dataclass
class RemoveResult:
    addon: str
    namespace: str
    deleted: list[str] = field(default_factory=list)
    already_gone: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    namespace_deleted: bool = False
    namespace_kept_for: list[str] = field(default_factory=list)
    """What still lives in a namespace progdel created, so it was not deleted."""


# What a cluster puts into every namespace by itself, and kinds that are records, not state.
_AMBIENT = {("ConfigMap", "kube-root-ca.crt"), ("ServiceAccount", "default")}
_NOT_STATE = {"Event", "Endpoints", "EndpointSlice"}


def residents(kube: Kube, namespace: str) -> list[str]:
    """What deleting ``namespace`` would delete with it, as ``Kind name``.

    Left out: what the cluster itself creates in every namespace, events and
    endpoints, objects already being deleted, and objects with an owner (the
    garbage collector removes them with it; an owner in this namespace is found
    in its own right). A resource that may not be listed counts as a resident:
    what cannot be seen is not known to be absent.
    """
    discovery = ApiDiscovery(kube)
    found: list[str] = []
    for api_version in kube.group_versions():
        for res in discovery.listable(api_version, namespaced=True):
            if res.kind in _NOT_STATE:
                continue
            try:
                items = kube.items(res, namespace)
            except Forbidden:
                found.append(f"{res.kind} (not allowed to list {res.qualified})")
                continue
            except KubeError as err:
                if err.status in (404, 405):  # gone since discovery, or not listable after all
                    continue
                raise
            for obj in items:
                meta = obj.get("metadata") or {}
                if (res.kind, meta.get("name")) in _AMBIENT or meta.get("deletionTimestamp"):
                    continue
                if meta.get("ownerReferences"):
                    continue
                found.append(f"{res.kind} {meta.get('name')}")
    return found


def check_access(kube: Kube, inv: Inventory, *, keep_crds: bool) -> None:
    """Refuse, before anything is deleted, a removal RBAC would stop halfway."""
    wanted = [
        Access("delete", ref.resource, ref.namespace or None)
        for ref in inv.objects
        if not (keep_crds and ref.kind == "CustomResourceDefinition")
    ]
    wanted.append(Access("delete", CONFIGMAPS, inv.namespace))  # the inventory
    if inv.labels:
        wanted += [Access("get", NAMESPACES), Access("patch", NAMESPACES)]
    missing = denied(kube, wanted)
    if missing:
        raise refused(f"removing {inv.addon}", missing, "Nothing was deleted")


def remove(kube: Kube, inv: Inventory, *, keep_crds: bool, report: Callable[[str], None]) -> RemoveResult:
    check_access(kube, inv, keep_crds=keep_crds)
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
    home = kube.get_or_none(NAMESPACES, inv.namespace) or {}
    ns_labels = (home.get("metadata") or {}).get("labels") or {}
    if ns_labels.get(inv_store.MANAGED_BY) == "progdel" and inv_store.ADDON_LABEL in ns_labels:
        result.namespace_kept_for = residents(kube, inv.namespace)
        if not result.namespace_kept_for:
            kube.delete(NAMESPACES, inv.namespace, missing_ok=True)
            result.namespace_deleted = True
            result.deleted.append(f"Namespace {inv.namespace}")
        else:
            shown = ", ".join(result.namespace_kept_for[:5])
            more = len(result.namespace_kept_for) - 5
            report(
                f"{inv.addon}: kept namespace {inv.namespace} (created by progdel): it still holds "
                + shown
                + (f" and {more} more" if more > 0 else "")
            )
    report(
        f"{inv.addon}: removed {len(result.deleted)} objects"
        + (f", {len(result.already_gone)} already gone" if result.already_gone else "")
        + (f", kept {len(result.kept)} CRDs" if result.kept else "")
    )
    return result
