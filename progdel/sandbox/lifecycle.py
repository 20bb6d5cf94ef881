"""The sandbox's lifecycle controllers, as kube-controller-manager and apiextensions run them.

Deleting a namespace only marks it ``Terminating`` (``objects.py``, like
kube-apiserver's namespace registry). ``NamespaceController`` then deletes
everything the namespace holds, built-in and custom kinds alike, through the
same delete path a client's DELETE takes, so finalizers hold objects back
exactly as they do there. While something remains, the namespace's status
conditions say what and why, in the real controller's words
(``NamespaceContentRemaining``, ``NamespaceFinalizersRemaining``). Once nothing
is left it removes its ``kubernetes`` finalizer (the ``finalize``
subresource) and the namespace is gone. Meanwhile creating anything in it is
refused (``objects.py``).

Every namespace also gets a ``default`` ServiceAccount, when it is created and
again whenever that account is deleted while the namespace lives, as the
service-account controller does: charts and operators rely on it.

Deleting a CustomResourceDefinition works the same way (apiextensions'
``crdFinalizer``): the CRD is marked ``Terminating`` with the
``customresourcecleanup.apiextensions.k8s.io`` finalizer, ``CRDCleanupController``
deletes its custom objects, and once none is left takes the finalizer off, and
the CRD goes. Creating custom objects of a terminating CRD is refused.

Each controller runs in its own thread, woken by the store's change
notifications, so deletion is asynchronous but quick; it resumes work a restart
interrupted.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter
from typing import Any

from progdel.sandbox.objects import CRD_FINALIZER, NAMESPACE_FINALIZER, ApiError, Objects, now_iso
from progdel.sandbox.resources import (
    CRD_KEY,
    NAMESPACE_KEY,
    SERVICE_ACCOUNT_KEY,
    ResourceType,
    resource_from_crd,
)
from progdel.sandbox.store import DELETED, WatchEvent

MANAGER = "kube-controller-manager"
DEFAULT_SERVICE_ACCOUNT = "default"
RECHECK = 1.0  # seconds before a namespace whose content remains is looked at again

# The conditions the real namespace controller keeps during deletion, in its order, each
# with its "all is well" reason and message (status False).
_CONDITIONS = [
    ("NamespaceDeletionDiscoveryFailure", "ResourcesDiscovered", "All resources successfully discovered"),
    (
        "NamespaceDeletionGroupVersionParsingFailure",
        "ParsedGroupVersions",
        "All legacy kube types successfully parsed",
    ),
    (
        "NamespaceDeletionContentFailure",
        "ContentDeleted",
        "All content successfully deleted, may be waiting on finalization",
    ),
    ("NamespaceContentRemaining", "ContentRemoved", "All content successfully removed"),
    ("NamespaceFinalizersRemaining", "ContentHasNoFinalizers", "All content-preserving finalizers finished"),
]


class _Controller:
    """A work queue of names, reconciled in one thread; names not done are looked at again."""

    name = "controller"

    def __init__(self, objects: Objects) -> None:
        self.objects = objects
        self._cond = threading.Condition()
        self._pending: set[str] = set()
        self._due: dict[str, float] = {}
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)

    def start(self) -> None:
        self._pending |= set(self._initial())
        self.objects.store.subscribe(self._on_event)
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _initial(self) -> list[str]:
        return []

    def _wanted(self, ev: WatchEvent) -> str | None:
        """Called under the store's write lock: only decide, quickly, which name to look at."""
        return None

    def _reconcile(self, name: str) -> bool:
        """True once nothing is left to do for ``name`` as it is now."""
        raise NotImplementedError

    def _on_event(self, ev: WatchEvent) -> None:
        name = self._wanted(ev)
        if name is None:
            return
        with self._cond:
            self._pending.add(name)
            self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopping:
                    now = time.monotonic()
                    if self._pending or any(t <= now for t in self._due.values()):
                        break
                    wait = min((t - now for t in self._due.values()), default=RECHECK)
                    self._cond.wait(timeout=max(0.01, wait))
                if self._stopping:
                    return
                now = time.monotonic()
                batch = self._pending | {n for n, t in self._due.items() if t <= now}
                self._pending = set()
                for n in batch:
                    self._due.pop(n, None)
            for name in sorted(batch):
                try:
                    done = self._reconcile(name)
                except Exception:  # keep the controller alive; look again later
                    if self.objects.store.closed:
                        return
                    done = False
                if not done:
                    with self._cond:
                        self._due.setdefault(name, time.monotonic() + RECHECK)


class NamespaceController(_Controller):
    name = "namespace-controller"

    def _initial(self) -> list[str]:
        # Every namespace once: default ServiceAccounts, and terminations a restart interrupted.
        return [e.obj["metadata"]["name"] for e in self.objects.store.list(NAMESPACE_KEY)[0]]

    def _wanted(self, ev: WatchEvent) -> str | None:
        if ev.key == NAMESPACE_KEY:
            return ev.name
        if not ev.namespace:
            return None
        if ev.key == SERVICE_ACCOUNT_KEY and ev.name == DEFAULT_SERVICE_ACCOUNT and ev.type == DELETED:
            return ev.namespace
        ns = self.objects.store.get(NAMESPACE_KEY, "", ev.namespace)
        if ns is None or not ns.obj["metadata"].get("deletionTimestamp"):
            return None
        return ev.namespace  # something changed in a terminating namespace

    # -- one namespace -------------------------------------------------------------------

    def _reconcile(self, name: str) -> bool:
        entry = self.objects.store.get(NAMESPACE_KEY, "", name)
        if entry is None:
            return True
        ns = entry.obj
        if not ns["metadata"].get("deletionTimestamp"):
            self._ensure_service_account(name)
            return True
        if NAMESPACE_FINALIZER not in ((ns.get("spec") or {}).get("finalizers") or []):
            return True  # finalized: what remains is another controller's finalizer
        remaining, finalizers = self._delete_content(name)
        self._set_conditions(name, remaining, finalizers)
        if remaining:
            return False
        self._finalize(name)
        return True

    def _delete_content(self, namespace: str) -> tuple[Counter[str], Counter[str]]:
        """Delete every object in ``namespace``; what remains per resource and per finalizer."""
        remaining: Counter[str] = Counter()
        finalizers: Counter[str] = Counter()
        for rt in self.objects.registry.all():
            if not rt.namespaced:
                continue
            for e in self.objects.store.list(rt.key, namespace)[0]:
                meta = e.obj["metadata"]
                if not meta.get("deletionTimestamp"):
                    try:
                        obj, finished = self.objects.delete(rt, namespace, meta["name"])
                    except ApiError as err:
                        if err.code == 404:
                            continue
                        raise
                    if finished:
                        continue
                    meta = obj["metadata"]
                remaining[f"{rt.plural}.{rt.group}"] += 1
                for f in meta.get("finalizers") or []:
                    finalizers[f] += 1
        return remaining, finalizers

    def _set_conditions(self, name: str, remaining: Counter[str], finalizers: Counter[str]) -> None:
        troubles: dict[str, tuple[str, str]] = {}
        if remaining:
            what = ", ".join(sorted(f"{r} has {n} resource instances" for r, n in remaining.items()))
            troubles["NamespaceContentRemaining"] = (
                "SomeResourcesRemain",
                f"Some resources are remaining: {what}",
            )
        if finalizers:
            what = ", ".join(sorted(f"{f} in {n} resource instances" for f, n in finalizers.items()))
            troubles["NamespaceFinalizersRemaining"] = (
                "SomeFinalizersRemain",
                f"Some content in the namespace has finalizers remaining: {what}",
            )
        rt = self._namespaces()
        with self.objects.store.lock:
            entry = self.objects.store.get(NAMESPACE_KEY, "", name)
            if entry is None:
                return
            status = entry.obj.get("status") or {}
            before = {c.get("type"): c for c in status.get("conditions") or []}
            conditions = []
            for ctype, ok_reason, ok_message in _CONDITIONS:
                value, reason, message = (
                    ("True", *troubles[ctype])
                    if ctype in troubles
                    else (
                        "False",
                        ok_reason,
                        ok_message,
                    )
                )
                old = before.get(ctype) or {}
                same = (old.get("status"), old.get("reason"), old.get("message")) == (value, reason, message)
                conditions.append(
                    {
                        "type": ctype,
                        "status": value,
                        "lastTransitionTime": old.get("lastTransitionTime") if same else now_iso(),
                        "reason": reason,
                        "message": message,
                    }
                )
            if conditions == status.get("conditions"):
                return
            body = entry.copy()
            body["status"] = {**status, "conditions": conditions}
            body["metadata"].pop("resourceVersion", None)
            self.objects.update(rt, "v1", "", name, body, MANAGER, subresource="status")

    def _finalize(self, name: str) -> None:
        """Take the controller's finalizer off; the namespace goes with it unless others remain."""
        with self.objects.store.lock:
            entry = self.objects.store.get(NAMESPACE_KEY, "", name)
            if entry is None:
                return
            body = entry.copy()
            spec = body.get("spec") or {}
            spec["finalizers"] = [f for f in spec.get("finalizers") or [] if f != NAMESPACE_FINALIZER]
            body["spec"] = spec
            body["metadata"].pop("resourceVersion", None)
            with contextlib.suppress(ApiError):
                self.objects.update(self._namespaces(), "v1", "", name, body, MANAGER, subresource="finalize")

    def _ensure_service_account(self, namespace: str) -> None:
        if self.objects.store.get(SERVICE_ACCOUNT_KEY, namespace, DEFAULT_SERVICE_ACCOUNT) is not None:
            return
        rt = self.objects.registry.by_key(SERVICE_ACCOUNT_KEY)
        assert rt is not None
        body: dict[str, Any] = {"metadata": {"name": DEFAULT_SERVICE_ACCOUNT}}
        with contextlib.suppress(ApiError):  # created meanwhile, or the namespace went
            self.objects.create(rt, "v1", namespace, body, MANAGER)

    def _namespaces(self) -> ResourceType:
        rt = self.objects.registry.by_key(NAMESPACE_KEY)
        assert rt is not None
        return rt


class CRDCleanupController(_Controller):
    """apiextensions' ``crdFinalizer``: a deleted CRD's custom objects go first, then the CRD."""

    name = "crd-cleanup"

    def _initial(self) -> list[str]:
        return [
            e.obj["metadata"]["name"]
            for e in self.objects.store.list(CRD_KEY)[0]
            if e.obj["metadata"].get("deletionTimestamp")
        ]

    def _wanted(self, ev: WatchEvent) -> str | None:
        if ev.key == CRD_KEY:
            return ev.name if ev.entry.obj["metadata"].get("deletionTimestamp") else None
        if ev.type != DELETED or "/" not in ev.key:
            return None
        group, plural = ev.key.split("/", 1)
        name = f"{plural}.{group}"
        crd = self.objects.store.get(CRD_KEY, "", name) if group else None
        return name if crd is not None and crd.obj["metadata"].get("deletionTimestamp") else None

    def _reconcile(self, name: str) -> bool:
        entry = self.objects.store.get(CRD_KEY, "", name)
        if entry is None or CRD_FINALIZER not in (entry.obj["metadata"].get("finalizers") or []):
            return True
        served = resource_from_crd(entry.obj)
        rt = self.objects.registry.by_key(served.key) or served
        remaining = 0
        for e in self.objects.store.list(rt.key)[0]:
            meta = e.obj["metadata"]
            if meta.get("deletionTimestamp"):
                remaining += 1
                continue
            try:
                _, finished = self.objects.delete(rt, meta.get("namespace", ""), meta["name"])
            except ApiError as err:
                if err.code == 404:
                    continue
                raise
            remaining += 0 if finished else 1
        if remaining:
            self._condition(
                name,
                "True",
                "InstanceDeletionInProgress",
                f"CustomResource deletion is in progress: {remaining} remaining",
            )
            return False
        with self.objects.store.lock:
            current = self.objects.store.get(CRD_KEY, "", name)
            if current is None:
                return True
            body = current.copy()
            body["metadata"]["finalizers"] = [
                f for f in body["metadata"].get("finalizers") or [] if f != CRD_FINALIZER
            ]
            body["metadata"].pop("resourceVersion", None)
            _set_condition(body, "False", "InstanceDeletionCompleted", "removed all instances")
            crds = self.objects.registry.by_key(CRD_KEY)
            assert crds is not None
            self.objects.update(crds, "v1", "", name, body, MANAGER)
        return True

    def _condition(self, name: str, status: str, reason: str, message: str) -> None:
        with self.objects.store.lock:
            current = self.objects.store.get(CRD_KEY, "", name)
            if current is None:
                return
            body = current.copy()
            if not _set_condition(body, status, reason, message):
                return
            body["metadata"].pop("resourceVersion", None)
            crds = self.objects.registry.by_key(CRD_KEY)
            assert crds is not None
            self.objects.update(crds, "v1", "", name, body, MANAGER, subresource="status")


def _set_condition(crd: dict[str, Any], status: str, reason: str, message: str) -> bool:
    """Set the CRD's ``Terminating`` condition; whether anything changed."""
    conds = crd.setdefault("status", {}).setdefault("conditions", [])
    for c in conds:
        if c.get("type") == "Terminating":
            if (c.get("status"), c.get("reason"), c.get("message")) == (status, reason, message):
                return False
            if c.get("status") != status:
                c["lastTransitionTime"] = now_iso()
            c.update(status=status, reason=reason, message=message)
            return True
    conds.append(
        {
            "type": "Terminating",
            "status": status,
            "lastTransitionTime": now_iso(),
            "reason": reason,
            "message": message,
        }
    )
    return True
