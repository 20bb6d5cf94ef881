"""After an install: the ingress address users point DNS or curl at."""

from __future__ import annotations

import time
from typing import Any

from progdel.kube.client import Kube
from progdel.kube.resources import SERVICES


def ingress_address(service: dict[str, Any]) -> str | None:
    """``status.loadBalancer.ingress[0]``'s ``ip``, else its ``hostname`` (AWS load balancers)."""
    ingress = (((service.get("status") or {}).get("loadBalancer") or {}).get("ingress")) or []
    if not ingress:
        return None
    first = ingress[0] or {}
    return first.get("ip") or first.get("hostname") or None


def wait_ingress_address(kube: Kube, name: str, namespace: str, timeout: float) -> str | None:
    """The ingress gateway's external address, or None if it is still pending after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        svc = kube.get_or_none(SERVICES, name, namespace)
        address = ingress_address(svc) if svc else None
        if address or time.monotonic() >= deadline:
            return address
        time.sleep(min(2.0, max(0.05, deadline - time.monotonic())))
