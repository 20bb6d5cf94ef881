"""Removing an addon: what its inventory lists, in reverse order, then what its controller left.

CRDs are never deleted by surprise: deleting one deletes every object of its
kind, in every namespace. ``remove`` deletes a CRD only when this addon's own
install created it (not one that was on the cluster before) and no custom
resource of it is left; the others are kept and named with the number of
objects each still holds. ``delete_crds`` deletes them all anyway, after
saying what goes with them.

A controller the addon ran (istiod) creates objects of its own while it runs:
its CA Secret, leader-election ConfigMaps and Leases, a root-certificate
ConfigMap in every namespace. Once the controller's Deployments are gone, those
objects whose every field manager is that controller (per ``managedFields``)
are deleted too; one a user also wrote to is kept, and then named if it keeps
the namespace alive.

When progdel created the addon's namespace (``install`` labels the namespaces it
creates ``app.kubernetes.io/managed-by=progdel`` and ``progdel.dev/addon``), the
namespace goes too, but only once nothing else lives in it: deleting a namespace
deletes everything inside, and a namespace shared with another addon or holding
the user's own objects must survive. What keeps it is reported, so the user can
decide. The last addon removed from a shared namespace deletes it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from progdel.addons import inventory as inv_store
from progdel.addons.catalog import CATALOG, Addon
from progdel.addons.inventory import Inventory, ObjectRef
from progdel.addons.kinds import ApiDiscovery, crd_serves, kind_rank
from progdel.kube.access import Access, denied, refused
from progdel.kube.client import Kube
from progdel.kube.errors import Forbidden, KubeError, NotFound
from progdel.kube.fields import managers_of
from progdel.kube.resources import CONFIGMAPS, CRDS, NAMESPACES, Resource

Report = Callable[[str], None]


@dataclass
class RemoveResult:
    addon: str
    namespace: str
    deleted: list[str] = field(default_factory=list)
    already_gone: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    """CRDs kept, each with why: ``CustomResourceDefinition x (3 objects)``, ``(existed before)``."""
    controller_objects: list[str] = field(default_factory=list)
    """Objects the addon's controller created at run time, deleted with it."""
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


def custom_resource(crd: dict[str, Any]) -> Resource | None:
    """The resource a CRD object serves (at its first served version)."""
    serves = crd_serves(crd)
    if not serves:
        return None
    api_version, kind, plural, namespaced = serves[0]
    group, _, version = api_version.rpartition("/")
    return Resource(group, version, plural, kind, namespaced)


def check_access(kube: Kube, inv: Inventory, addon: Addon | None) -> None:
    """Refuse, before anything is deleted, a removal RBAC would stop halfway."""
    wanted = [Access("delete", ref.resource, ref.namespace or None) for ref in inv.objects]
    wanted.append(Access("delete", CONFIGMAPS, inv.namespace))  # the inventory
    for ref in inv.objects:
        if ref.kind == "CustomResourceDefinition":  # to count what each still holds
            res = custom_resource(inv.applied.get(ref.key) or {})
            if res is not None:
                wanted.append(Access("list", res))
    for spec in addon.runtime_objects if addon else ():
        ns = None if spec.everywhere else inv.namespace
        wanted += [Access("list", spec.resource, ns), Access("delete", spec.resource, ns)]
    if inv.labels:
        wanted += [Access("get", NAMESPACES), Access("patch", NAMESPACES)]
    missing = denied(kube, wanted)
    if missing:
        raise refused(f"removing {inv.addon}", missing, "Nothing was deleted")


def count_objects(kube: Kube, crd: dict[str, Any]) -> int | None:
    """How many custom resources of ``crd`` exist, in every namespace; None when they cannot be listed."""
    res = custom_resource(crd)
    if res is None:
        return 0
    try:
        return len(kube.items(res, all_namespaces=res.namespaced))
    except NotFound:
        return 0
    except KubeError:
        return None


def _crd_verdicts(kube: Kube, inv: Inventory, crds: list[ObjectRef]) -> list[tuple[ObjectRef, str | None]]:
    """Each CRD with why it must stay (None: it may go)."""
    out: list[tuple[ObjectRef, str | None]] = []
    for ref in crds:
        live = kube.get_or_none(CRDS, ref.name)
        if live is None:
            out.append((ref, None))
            continue
        count = count_objects(kube, live)
        if count is None:
            why: str | None = "its objects cannot be listed"
        elif count:
            why = f"{count} object{'s' if count != 1 else ''} of its kind remain"
        elif ref.preexisting:
            why = "it was on the cluster before the install"
        else:
            why = None
        out.append((ref, why))
    return out


def _wait_gone(kube: Kube, refs: list[ObjectRef], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if all(kube.get_or_none(r.resource, r.name, r.namespace or None) is None for r in refs):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.25)


def _controller_objects(kube: Kube, inv: Inventory, addon: Addon) -> list[tuple[Resource, dict[str, Any]]]:
    """Objects the addon's controllers created at run time: every field manager is one of them."""
    recorded = {(o.kind, o.namespace, o.name) for o in inv.objects}
    found: dict[tuple[str, str, str], tuple[Resource, dict[str, Any]]] = {}
    for spec in addon.runtime_objects:
        try:
            items = kube.items(
                spec.resource,
                None if spec.everywhere else inv.namespace,
                all_namespaces=spec.everywhere,
                label_selector=spec.label_selector,
            )
        except NotFound:
            continue
        for obj in items:
            meta = obj.get("metadata") or {}
            key = (spec.resource.kind, str(meta.get("namespace") or ""), str(meta.get("name")))
            managers = managers_of(obj)
            if key in recorded or meta.get("ownerReferences") or not managers:
                continue
            if managers <= set(addon.controllers):
                found[key] = (spec.resource, obj)
    return list(found.values())


def remove(
    kube: Kube,
    inv: Inventory,
    *,
    delete_crds: bool,
    report: Report,
    timeout: float = 120.0,
    checked: bool = False,
) -> RemoveResult:
    """Remove one addon; ``checked``: its RBAC pre-check already passed."""
    addon = CATALOG.get(inv.addon)
    if not checked:
        check_access(kube, inv, addon)
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
    # with Foreground propagation a Deployment is gone only once its Pods are: then its
    # controller has stopped writing
    foreground = addon is not None and bool(addon.runtime_objects)
    for ref in rest:
        _delete(kube, ref, result, foreground=foreground and ref.kind == "Deployment")

    if addon is not None and addon.runtime_objects:
        # the controller must be gone first, or it writes its objects again
        workloads = [r for r in rest if r.kind == "Deployment"]
        if not _wait_gone(kube, workloads, timeout):
            report(f"{inv.addon}: its Deployments are still terminating; objects they create may come back")
        for res, obj in _controller_objects(kube, inv, addon):
            meta = obj["metadata"]
            ns = meta.get("namespace")
            if kube.delete(res, meta["name"], ns, missing_ok=True):
                where = f"{ns}/" if ns else ""
                result.controller_objects.append(f"{res.kind} {where}{meta['name']}")
        if result.controller_objects:
            report(
                f"{inv.addon}: deleted {len(result.controller_objects)} objects its controller created: "
                + ", ".join(result.controller_objects)
            )

    verdicts = _crd_verdicts(kube, inv, crds)
    if delete_crds:
        for ref, reason in verdicts:
            if reason is not None:
                report(f"{inv.addon}: deleting CustomResourceDefinition {ref.name} although {reason}")
    for ref, reason in verdicts:
        if reason is None or delete_crds:
            _delete(kube, ref, result)
        else:
            result.kept.append(f"{ref.describe()} ({reason})")
    if result.kept:
        report(
            f"{inv.addon}: kept {len(result.kept)} CRDs: "
            + "; ".join(result.kept)
            + " (--delete-crds deletes them and every object of their kinds)"
        )

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


def _delete(kube: Kube, ref: ObjectRef, result: RemoveResult, *, foreground: bool = False) -> None:
    try:
        gone = not kube.delete(
            ref.resource,
            ref.name,
            ref.namespace or None,
            missing_ok=True,
            propagation="Foreground" if foreground else None,
        )
    except NotFound:
        gone = True
    (result.already_gone if gone else result.deleted).append(ref.describe())
