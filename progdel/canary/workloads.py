"""The canary's workloads: the ``-primary`` Deployment, the three Services, scaling, promotion.

Naming follows Flagger so that a cluster can move between the two: the target
Deployment ``<target>`` runs the canary, ``<target>-primary`` the stable
version; Services ``<apex>`` and ``<apex>-primary`` select the primary pods,
``<apex>-canary`` the target's.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from progdel.canary.engine import Readiness
from progdel.config.canary import AutoscalerReference
from progdel.errors import InvalidInput
from progdel.kube.client import Kube
from progdel.kube.resources import DEPLOYMENTS, HPAS, SERVICES

SELECTOR_LABELS = ("app", "name", "app.kubernetes.io/name")
MANAGED_LABEL = "app.kubernetes.io/managed-by"
PRIMARY_REVISION_ANNOTATION = "progdel.dev/primary-revision"


@dataclass(frozen=True)
class DeploymentHealth:
    readiness: Readiness
    message: str


_LABEL_VALUE = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?")


def selector_label(deployment: dict[str, Any]) -> tuple[str, str]:
    """The pod label Flagger keys on: the first of app, name, app.kubernetes.io/name in the selector.

    The primary's pods get ``<value>-primary``: a value a label cannot hold (over 63 characters)
    is refused here, before anything is written."""
    labels = ((deployment.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    for key in SELECTOR_LABELS:
        if key in labels:
            value = str(labels[key])
            primary = f"{value}-primary"
            if len(primary) > 63 or not _LABEL_VALUE.fullmatch(primary):
                name = deployment.get("metadata", {}).get("name")
                raise InvalidInput(
                    f"deployment {name}: the primary's pods would be labelled {key}={primary!r}, which "
                    "is not a label value (at most 63 letters, digits, '-', '_' or '.'): shorten "
                    f"the {key} label of the target's selector"
                )
            return key, value
    name = deployment.get("metadata", {}).get("name")
    raise InvalidInput(
        f"deployment {name}: spec.selector.matchLabels needs one of {', '.join(SELECTOR_LABELS)} "
        "to tell primary and canary pods apart"
    )


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


def _relabel(labels: dict[str, str] | None, key: str, value: str) -> dict[str, str]:
    out = dict(labels or {})
    out[key] = value
    return out


def template_digest(template: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:16]


class Workloads:
    def __init__(self, kube: Kube, namespace: str, target: str, apex: str) -> None:
        self.kube = kube
        self.namespace = namespace
        self.target = target
        self.primary = f"{target}-primary"
        self.apex = apex

    def get_target(self) -> dict[str, Any]:
        return self.kube.get(DEPLOYMENTS, self.target, self.namespace)

    def get_primary(self) -> dict[str, Any] | None:
        return self.kube.get_or_none(DEPLOYMENTS, self.primary, self.namespace)

    def primary_spec_from(self, target: dict[str, Any], replicas: int | None = None) -> dict[str, Any]:
        key, value = selector_label(target)
        spec = copy.deepcopy(target.get("spec") or {})
        spec["selector"] = {"matchLabels": {key: f"{value}-primary"}}
        template = spec.setdefault("template", {})
        tmeta = template.setdefault("metadata", {})
        tmeta["labels"] = _relabel(tmeta.get("labels"), key, f"{value}-primary")
        annotations = dict(tmeta.get("annotations") or {})
        annotations[PRIMARY_REVISION_ANNOTATION] = template_digest(target.get("spec", {}).get("template", {}))
        tmeta["annotations"] = annotations
        if replicas is not None:
            spec["replicas"] = replicas
        return spec

    def ensure_primary(self, target: dict[str, Any]) -> dict[str, Any]:
        """Create ``<target>-primary`` from the target if it does not exist yet."""
        existing = self.get_primary()
        if existing is not None:
            return existing
        replicas = int((target.get("spec") or {}).get("replicas", 1)) or 1
        key, value = selector_label(target)
        labels = _relabel(target.get("metadata", {}).get("labels"), key, f"{value}-primary")
        labels[MANAGED_LABEL] = "progdel"
        body = {
            "metadata": {"name": self.primary, "namespace": self.namespace, "labels": labels},
            "spec": self.primary_spec_from(target, replicas),
        }
        return self.kube.create(DEPLOYMENTS, body, self.namespace)

    def ensure_primary_autoscaler(self, ref: AutoscalerReference | None) -> None:
        """Flagger's primary HPA: ``<hpa>-primary``, a copy of the target's HorizontalPodAutoscaler
        (``spec.autoscalerRef``) that scales ``<target>-primary``, kept in step with it.

        ``primaryScalerReplicas`` overrides its min and max replicas. The target's own HPA keeps
        scaling the canary while it runs; an HPA leaves a Deployment scaled to 0 alone.
        """
        if ref is None:
            return
        if (ref.kind or "HorizontalPodAutoscaler") != "HorizontalPodAutoscaler":
            raise InvalidInput(
                f"spec.autoscalerRef: kind {ref.kind} is not supported (HorizontalPodAutoscaler is)"
            )
        source = self.kube.get_or_none(HPAS, ref.name, self.namespace)
        if source is None:
            raise InvalidInput(
                f'spec.autoscalerRef: horizontalpodautoscaler "{ref.name}" not found in namespace '
                f'"{self.namespace}"'
            )
        spec = copy.deepcopy(source.get("spec") or {})
        spec["scaleTargetRef"] = {**(spec.get("scaleTargetRef") or {}), "name": self.primary}
        overrides = ref.primary_scaler_replicas
        if overrides is not None and overrides.min_replicas is not None:
            spec["minReplicas"] = overrides.min_replicas
        if overrides is not None and overrides.max_replicas is not None:
            spec["maxReplicas"] = overrides.max_replicas
        name = f"{ref.name}-primary"
        existing = self.kube.get_or_none(HPAS, name, self.namespace)
        if existing is None:
            labels = {**((source.get("metadata") or {}).get("labels") or {}), MANAGED_LABEL: "progdel"}
            body = {"metadata": {"name": name, "namespace": self.namespace, "labels": labels}, "spec": spec}
            self.kube.create(HPAS, body, self.namespace)
        elif existing.get("spec") != spec:

            def put(obj: dict[str, Any]) -> None:
                obj["spec"] = spec

            self.kube.update(HPAS, name, put, self.namespace)

    def ensure_services(self, target: dict[str, Any], port: int, port_name: str, target_port: Any) -> None:
        """The Services ``<apex>``, ``<apex>-primary`` and ``<apex>-canary``: created as Flagger
        creates them (ClusterIP, the one port), or, when one exists, given the right selector and
        port and otherwise left as it is: a LoadBalancer or NodePort Service keeps its type, node
        ports, other ports and source ranges (a real server refuses ClusterIP beside them)."""
        key, value = selector_label(target)
        wanted = {
            self.apex: f"{value}-primary",
            f"{self.apex}-primary": f"{value}-primary",
            f"{self.apex}-canary": value,
        }
        ours = {"name": port_name, "port": port, "targetPort": target_port, "protocol": "TCP"}
        for name, selector_value in wanted.items():
            selector = {key: selector_value}
            existing = self.kube.get_or_none(SERVICES, name, self.namespace)
            if existing is None:
                body = {
                    "metadata": {
                        "name": name,
                        "namespace": self.namespace,
                        "labels": {MANAGED_LABEL: "progdel"},
                    },
                    "spec": {"type": "ClusterIP", "selector": selector, "ports": [ours]},
                }
                self.kube.create(SERVICES, body, self.namespace)
                continue
            spec = existing.get("spec") or {}
            ports = spec.get("ports") or []
            if spec.get("selector") == selector and any(p.get("port") == port for p in ports):
                continue

            def put(obj: dict[str, Any], selector: dict[str, str] = selector) -> None:
                spec = obj.setdefault("spec", {})
                spec["selector"] = selector
                ports = spec.setdefault("ports", [])
                if any(p.get("port") == port for p in ports):
                    return
                named = next((p for p in ports if p.get("name") == port_name), None)
                if named is None and len(ports) == 1 and not ports[0].get("name"):
                    named = ports[0]  # a second port would need both to be named
                if named is not None:
                    named.update(name=port_name, port=port, targetPort=target_port)  # its nodePort stays
                else:
                    ports.append(dict(ours))

            self.kube.update(SERVICES, name, put, self.namespace)

    def scale(self, name: str, replicas: int) -> None:
        self.kube.patch(DEPLOYMENTS, name, {"spec": {"replicas": replicas}}, self.namespace)

    def scale_target(self, replicas: int) -> None:
        self.scale(self.target, replicas)

    def scale_target_up(self) -> None:
        """Give the canary as many replicas as the primary runs (at least one)."""
        primary = self.get_primary()
        replicas = int(((primary or {}).get("spec") or {}).get("replicas", 1)) or 1
        self.scale_target(replicas)

    def promote(self) -> None:
        """Copy the target's pod template (and strategy) to the primary, which then rolls."""
        target = self.get_target()

        def copy_template(primary: dict[str, Any]) -> None:
            replicas = (primary.get("spec") or {}).get("replicas")
            new_spec = self.primary_spec_from(target, replicas)
            primary["spec"]["template"] = new_spec["template"]
            if "strategy" in new_spec:
                primary["spec"]["strategy"] = new_spec["strategy"]

        self.kube.update(DEPLOYMENTS, self.primary, copy_template, self.namespace)

    def health(self, name: str, threshold: int = 100) -> DeploymentHealth:
        dep = self.kube.get_or_none(DEPLOYMENTS, name, self.namespace)
        if dep is None:
            return DeploymentHealth(Readiness.NOT_READY, f"deployment {self.namespace}/{name} not found")
        return deployment_health(dep, threshold)
