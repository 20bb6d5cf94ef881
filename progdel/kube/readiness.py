"""Whether a workload's rollout is done, as Kubernetes and Flagger judge it.

Promotion waits for a Deployment to run its new version, a canary for its primary and its
target: both ask ``deployment_health``. Pure functions of the object as read, with no client, so
the canary engine can name ``Readiness`` without importing the Kubernetes client.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any


class Readiness(enum.StrEnum):
    READY = "ready"
    NOT_READY = "not-ready"
    DEADLINE_EXCEEDED = "deadline-exceeded"  # e.g. the Deployment reports ProgressDeadlineExceeded


@dataclass(frozen=True)
class DeploymentHealth:
    readiness: Readiness
    message: str


def deployment_health(dep: dict[str, Any], ready_threshold_percent: int = 100) -> DeploymentHealth:
    """Ready when the rollout finished and enough replicas are available (Flagger's rule)."""
    meta = dep.get("metadata") or {}
    spec = dep.get("spec") or {}
    status = dep.get("status") or {}
    name = meta.get("name")
    for cond in status.get("conditions") or []:
        if cond.get("type") == "Progressing" and cond.get("reason") == "ProgressDeadlineExceeded":
            return DeploymentHealth(
                Readiness.DEADLINE_EXCEEDED, f"deployment {name} exceeded its progress deadline"
            )
    if int(status.get("observedGeneration") or 0) < int(meta.get("generation") or 0):
        return DeploymentHealth(
            Readiness.NOT_READY, f"waiting for deployment {name} spec update to be observed"
        )
    desired = int(spec.get("replicas", 1))
    updated = int(status.get("updatedReplicas") or 0)
    current = int(status.get("replicas") or 0)
    available = int(status.get("availableReplicas") or 0)
    if updated < desired:
        return DeploymentHealth(
            Readiness.NOT_READY, f"waiting for rollout to finish: {updated} of {desired} updated replicas"
        )
    if current > updated:
        return DeploymentHealth(
            Readiness.NOT_READY, f"waiting for rollout to finish: {current - updated} old replicas pending"
        )
    if available < updated * ready_threshold_percent / 100:
        return DeploymentHealth(
            Readiness.NOT_READY, f"waiting for rollout to finish: {available} of {updated} replicas available"
        )
    return DeploymentHealth(Readiness.READY, f"deployment {name} ready")
