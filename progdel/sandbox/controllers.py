"""The sandbox's deployment controller: fills Deployment ``status`` from a ReplicaBackend.

Driven by the store's change notifications; while a Deployment has not
settled (replicas not all ready, an old revision still running) it asks the
backend again every ``RECHECK`` seconds, because a real backend's replicas
become ready later. A rollout keeps the previous revision's replicas until the
new ones are ready, scaled down as new replicas become ready, which is what a
RollingUpdate does and what a canary relies on.
"""

from __future__ import annotations

import copy
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from progdel.sandbox.backend import ReplicaBackend, ReplicaCounts, ReplicaSetKey
from progdel.sandbox.objects import ApiError, Objects, now_iso, template_hash
from progdel.sandbox.resources import DEPLOYMENT_KEY
from progdel.sandbox.store import WatchEvent

RECHECK = 0.25
MANAGER = "deployment-controller"


@dataclass
class _Rollout:
    template_hash: str = ""
    replicas: int = -1
    started: float = 0.0
    best_ready: int = 0
    stable_hash: str = ""
    stable_template: dict[str, Any] = field(default_factory=dict)
    keys: set[ReplicaSetKey] = field(default_factory=set)


def _resolve(value: Any, total: int, round_up: bool) -> int:
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.endswith("%"):
        try:
            pct = int(value[:-1])
        except ValueError:
            return 0
        n = pct * total
        return (n + 99) // 100 if round_up else n // 100
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def max_unavailable(spec: dict[str, Any], replicas: int) -> int:
    strategy = spec.get("strategy") or {}
    if strategy.get("type", "RollingUpdate") != "RollingUpdate" or replicas == 0:
        return 0
    ru = strategy.get("rollingUpdate") or {}
    unavailable = _resolve(ru.get("maxUnavailable", "25%"), replicas, False)
    surge = _resolve(ru.get("maxSurge", "25%"), replicas, True)
    if unavailable == 0 and surge == 0:
        unavailable = 1
    return min(unavailable, replicas)


class DeploymentController:
    def __init__(self, objects: Objects, backend: ReplicaBackend) -> None:
        self.objects = objects
        self.backend = backend
        self._cond = threading.Condition()
        self._pending: set[tuple[str, str]] = set()
        self._due: dict[tuple[str, str], float] = {}
        self._state: dict[tuple[str, str], _Rollout] = {}
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="deployment-controller", daemon=True)

    def start(self) -> None:
        for entry in self.objects.store.list(DEPLOYMENT_KEY)[0]:
            m = entry.obj["metadata"]
            self._pending.add((m.get("namespace", ""), m["name"]))
        self.objects.store.subscribe(self._on_event)
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _on_event(self, ev: WatchEvent) -> None:
        if ev.key != DEPLOYMENT_KEY:
            return
        with self._cond:
            self._pending.add((ev.namespace, ev.name))
            self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopping:
                    now = time.monotonic()
                    due = {k for k, t in self._due.items() if t <= now}
                    if self._pending or due:
                        break
                    wait = min((t - now for t in self._due.values()), default=RECHECK)
                    self._cond.wait(timeout=max(0.01, min(wait, RECHECK)))
                if self._stopping:
                    return
                now = time.monotonic()
                batch = set(self._pending) | {k for k, t in self._due.items() if t <= now}
                self._pending.clear()
                for k in batch:
                    self._due.pop(k, None)
            for key in sorted(batch):
                try:
                    settled = self._reconcile(*key)
                except ApiError:
                    settled = False
                except Exception:  # keep the controller alive; retry later
                    if self.objects.store.closed:
                        return
                    settled = False
                if not settled:
                    with self._cond:
                        self._due.setdefault(key, time.monotonic() + RECHECK)

    def _forget_unused(self) -> None:
        keep: set[ReplicaSetKey] = set()
        for st in self._state.values():
            keep |= st.keys
        self.backend.forget(keep)

    def _reconcile(self, ns: str, name: str) -> bool:
        entry = self.objects.store.get(DEPLOYMENT_KEY, ns, name)
        if entry is None or entry.obj["metadata"].get("deletionTimestamp"):
            if self._state.pop((ns, name), None) is not None:
                self._forget_unused()
            return True
        obj = entry.obj
        spec = obj.get("spec") or {}
        template = spec.get("template") or {}
        replicas = int(spec.get("replicas", 1))
        h = template_hash(template)
        st = self._state.setdefault((ns, name), _Rollout())
        now = time.monotonic()
        if st.template_hash != h or st.replicas != replicas:
            st.template_hash, st.replicas, st.started, st.best_ready = h, replicas, now, 0
        new_key = ReplicaSetKey(ns, name, h)
        new = self.backend.reconcile(new_key, template, replicas)
        old = ReplicaCounts(0, 0)
        keys = {new_key}
        if st.stable_hash and st.stable_hash != h:
            old_key = ReplicaSetKey(ns, name, st.stable_hash)
            old_replicas = max(0, replicas - new.ready)
            old = self.backend.reconcile(old_key, st.stable_template, old_replicas)
            if old_replicas > 0:
                keys.add(old_key)
        if new.ready > st.best_ready:
            st.best_ready, st.started = new.ready, now
        complete = new.current == replicas and new.ready == replicas and old.current == 0
        if complete:
            st.stable_hash, st.stable_template = h, copy.deepcopy(template)
            keys = {new_key}
        if keys != st.keys:
            st.keys = keys
            self._forget_unused()
        deadline = int(spec.get("progressDeadlineSeconds", 600))
        timed_out = not complete and now - st.started > deadline
        status = self._status(obj, replicas, new, old, complete, timed_out, f"{name}-{h}")
        if status != obj.get("status"):
            body = copy.deepcopy(obj)
            body["status"] = status
            body["metadata"].pop("resourceVersion", None)
            self.objects.update(
                self.objects.registry.by_key(DEPLOYMENT_KEY),  # type: ignore[arg-type]
                "v1",
                ns,
                name,
                body,
                MANAGER,
                subresource="status",
            )
        return complete

    def _status(
        self,
        obj: dict[str, Any],
        replicas: int,
        new: ReplicaCounts,
        old: ReplicaCounts,
        complete: bool,
        timed_out: bool,
        rs_name: str,
    ) -> dict[str, Any]:
        spec = obj.get("spec") or {}
        prev = obj.get("status") or {}
        ready = new.ready + old.ready
        status: dict[str, Any] = {
            "observedGeneration": obj["metadata"].get("generation", 1),
            "replicas": new.current + old.current,
            "updatedReplicas": new.current,
            "readyReplicas": ready,
            "availableReplicas": ready,
        }
        unavailable = max(0, replicas - ready)
        if unavailable:
            status["unavailableReplicas"] = unavailable
        min_available = replicas - max_unavailable(spec, replicas)
        if ready >= min_available:
            available = ("True", "MinimumReplicasAvailable", "Deployment has minimum availability.")
        else:
            available = (
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.",
            )
        if complete:
            progressing = (
                "True",
                "NewReplicaSetAvailable",
                f'ReplicaSet "{rs_name}" has successfully progressed.',
            )
        elif timed_out:
            progressing = (
                "False",
                "ProgressDeadlineExceeded",
                f'ReplicaSet "{rs_name}" has timed out progressing.',
            )
        else:
            progressing = ("True", "ReplicaSetUpdated", f'ReplicaSet "{rs_name}" is progressing.')
        old_conds = {c.get("type"): c for c in prev.get("conditions") or []}
        ts = now_iso()
        conds = []
        for ctype, (cstatus, reason, message) in (("Available", available), ("Progressing", progressing)):
            before = old_conds.get(ctype) or {}
            same_status = before.get("status") == cstatus
            same = same_status and before.get("reason") == reason and before.get("message") == message
            conds.append(
                {
                    "type": ctype,
                    "status": cstatus,
                    "lastUpdateTime": before.get("lastUpdateTime", ts) if same else ts,
                    "lastTransitionTime": before.get("lastTransitionTime", ts) if same_status else ts,
                    "reason": reason,
                    "message": message,
                }
            )
        status["conditions"] = conds
        return status
