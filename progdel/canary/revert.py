"""``canary delete --revert``: the app serves as it did before the canary existed.

Flagger reverts with a finalizer (``revertOnDeletion``): the target gets the primary's replicas
back, the apex Service selects the target's pods again, the routing object returns to its saved
original. progdel does the same from the client, in the order that keeps every request served:

1. the target is scaled to the primary's replicas and progdel waits until it is ready (nothing
   has switched yet if it never gets ready: ``ExitCode.TIMEOUT``, the canary left as it was);
2. the apex Service selects the target's pods: a Service that existed gets back its original
   selector and ports (its type, node ports and other ports never changed); one progdel created
   stays, now selecting the target;
3. the VirtualService or HTTPRoute returns to its original (one progdel created is deleted), and
   the DestinationRules go;
4. what progdel created for the primary goes: ``<apex>-primary`` and ``<apex>-canary`` (unless
   they existed before, then restored), the ``-primary`` Deployment, its HPA and its
   ``-primary`` ConfigMaps and Secrets.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from progdel.canary.clock import Clock, SystemClock
from progdel.canary.configs import PRIMARY_SUFFIX, delete_primary_configs
from progdel.canary.revision import referenced_configs
from progdel.canary.workloads import (
    CREATED_ANNOTATION,
    ORIGINAL_ANNOTATION,
    Workloads,
    deployment_health,
    selector_label,
)
from progdel.canary.workloads import drain_seconds as default_drain
from progdel.config.canary import Canary
from progdel.errors import ExitCode, ProgdelError
from progdel.kube.client import Kube
from progdel.kube.readiness import Readiness
from progdel.kube.resources import DEPLOYMENTS, HPAS, SERVICES
from progdel.routing import router_for


def _restore_service(kube: Kube, name: str, namespace: str, selector: dict[str, str] | None) -> None:
    """Give a Service back what progdel changed: its original selector and ports when it existed
    before; ``selector`` (the target's) when progdel created it; delete it when ``selector`` is
    None and progdel created it."""
    svc = kube.get_or_none(SERVICES, name, namespace)
    if svc is None:
        return
    annotations = (svc.get("metadata") or {}).get("annotations") or {}
    if ORIGINAL_ANNOTATION in annotations:
        original = json.loads(annotations[ORIGINAL_ANNOTATION])

        def restore(obj: dict[str, Any]) -> None:
            spec = obj.setdefault("spec", {})
            node_ports = {
                p.get("name"): p.get("nodePort") for p in spec.get("ports") or [] if p.get("nodePort")
            }
            ports = original.get("ports") or []
            for p in ports:
                if p.get("name") in node_ports:
                    p.setdefault("nodePort", node_ports[p["name"]])
            spec["ports"] = ports
            if original.get("selector") is None:
                spec.pop("selector", None)
            else:
                spec["selector"] = original["selector"]
            obj["metadata"]["annotations"].pop(ORIGINAL_ANNOTATION, None)

        kube.update(SERVICES, name, restore, namespace)
    elif annotations.get(CREATED_ANNOTATION) == "progdel":
        if selector is None:
            kube.delete(SERVICES, name, namespace, missing_ok=True)
            return

        def retarget(obj: dict[str, Any]) -> None:
            obj.setdefault("spec", {})["selector"] = dict(selector)
            obj["metadata"]["annotations"].pop(CREATED_ANNOTATION, None)

        kube.update(SERVICES, name, retarget, namespace)


def revert_canary(
    kube: Kube,
    canary: Canary,
    *,
    timeout: float = 300,
    drain_seconds: float | None = None,
    clock: Clock | None = None,
    progress: Callable[[str], None] = lambda _m: None,
) -> None:
    """Put the app back as it was before ``canary`` (its provider resolved) was initialized."""
    clock = clock or SystemClock()
    ns = canary.namespace
    work = Workloads.of(kube, canary)
    target = work.get_target()
    key, value = selector_label(target)
    primary = work.get_primary()
    if primary is not None:
        replicas = int((primary.get("spec") or {}).get("replicas") or 1) or 1
        if int((target.get("spec") or {}).get("replicas") or 0) != replicas:
            progress(f"scaling {canary.target_name} to {replicas} replicas")
            work.scale_target(replicas)
        deadline = clock.now().timestamp() + timeout
        while True:
            health = deployment_health(kube.get(DEPLOYMENTS, canary.target_name, ns))
            if health.readiness is Readiness.READY:
                break
            if health.readiness is Readiness.DEADLINE_EXCEEDED or clock.now().timestamp() >= deadline:
                raise ProgdelError(
                    f"canary {ns}/{canary.name}: {canary.target_name} is not ready ({health.message}); "
                    "nothing was switched: the primary still serves",
                    ExitCode.TIMEOUT,
                )
            clock.sleep(0.5)
    progress(f"pointing Service {canary.apex_name} at {canary.target_name}")
    _restore_service(kube, canary.apex_name, ns, {key: value})
    router_for(kube, canary).revert()
    # the mesh takes the new routes before the primary's pods go
    clock.sleep(default_drain() if drain_seconds is None else drain_seconds)
    for name in (f"{canary.apex_name}-primary", f"{canary.apex_name}-canary"):
        _restore_service(kube, name, ns, None)
    if primary is not None:
        template = (primary.get("spec") or {}).get("template") or {}
        copies = [r for r in referenced_configs(template) if r.name.endswith(PRIMARY_SUFFIX)]
        kube.delete(DEPLOYMENTS, canary.primary_name, ns, missing_ok=True)
        delete_primary_configs(
            kube, ns, [type(r)(r.kind, r.name.removesuffix(PRIMARY_SUFFIX)) for r in copies]
        )
    if canary.spec.autoscaler_ref is not None:
        kube.delete(HPAS, f"{canary.spec.autoscaler_ref.name}-primary", ns, missing_ok=True)


__all__ = ["revert_canary"]
