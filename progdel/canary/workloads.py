"""The canary's workloads: the ``-primary`` Deployment, its configs, the three Services, scaling,
promotion.

What is created follows Flagger's canary controller and Kubernetes router field for field
(``pkg/canary/deployment_controller.go``, ``config_tracker.go``, ``pkg/router/kubernetes_default.go``)
so that a cluster can move between the two:

- ``<target>-primary`` runs the stable version: the target's pod template with its selector label
  ``<value>-primary``, its ConfigMaps and Secrets renamed to their ``-primary`` copies, its pod
  (anti-)affinity and topology spread selectors on the target rewritten to the primary, and a
  fresh ``flagger-id`` pod annotation (so every promotion rolls the primary); plus the target's
  replicas (at least one), strategy, ``minReadySeconds``, ``progressDeadlineSeconds``,
  ``revisionHistoryLimit``, annotations, and labels kept by ``includeLabelPrefix``;
- the Services ``<apex>`` and ``<apex>-primary`` select the primary's pods, ``<apex>-canary`` the
  target's; a Service progdel creates is Flagger's (ClusterIP, or headless; the canary port with
  ``appProtocol``, ``trafficDistribution``, the discovered ports; the label ``<key>: <name>`` and
  ``spec.service.{apex,primary,canary}`` metadata), a Service that exists keeps its type, node
  ports, other ports and the metadata others own: only its selector and the canary's ports change,
  and its original selector and ports are saved for ``canary delete --revert``;
- promotion copies the same fields again (the replicas only without an autoscaler) and rewrites
  the ``-primary`` configs.

The apex Service changes only once the primary is ready (``ensure_apex``), so an app serving
traffic keeps serving while the canary is initialized.
"""

from __future__ import annotations

import copy
import json
import os
import re
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from progdel.canary import configs
from progdel.config.canary import AutoscalerReference, Canary, CanaryService
from progdel.errors import InvalidInput
from progdel.kube.client import Kube
from progdel.kube.readiness import DeploymentHealth, Readiness, deployment_health
from progdel.kube.resources import DEPLOYMENTS, HPAS, SERVICES

SELECTOR_LABELS = ("app", "name", "app.kubernetes.io/name")
ID_ANNOTATION = "flagger-id"  # a new value on every promotion: the primary always rolls
CREATED_ANNOTATION = "progdel.dev/created-by"  # on the Services (and routes) progdel created
ORIGINAL_ANNOTATION = "progdel.dev/original-configuration"  # what a Service was before progdel
SIDECARS = ("istio-proxy", "envoy")  # containers whose ports are never discovered
#: how long traffic moved off pods (a weight set to 0, the apex Service and routes switched) is
#: given to reach the mesh before those pods are scaled away: endpoints and routes travel
#: separately (kube-proxy, xDS), and a pod gone before its routes are is a failed request
#: (Kubernetes users add a preStop sleep for the same reason)
DRAIN_SECONDS = 2.0
#: The test suite's knob: its runs against a cluster that carries no traffic (the sandbox
#: without its data plane) have nothing to drain, and the wait only costs them time.
DRAIN_SECONDS_ENV = "PROGDEL_DRAIN_SECONDS"


def drain_seconds() -> float:
    """``DRAIN_SECONDS``, unless ``$PROGDEL_DRAIN_SECONDS`` sets another (0 to 60 seconds)."""
    try:
        value = float(os.environ.get(DRAIN_SECONDS_ENV, DRAIN_SECONDS))
    except ValueError:
        return DRAIN_SECONDS
    return value if 0.0 <= value <= 60.0 else DRAIN_SECONDS


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


# -- what Flagger copies, as pure functions ----------------------------------------------------


def without_flux(values: Mapping[str, str] | None) -> dict[str, str]:
    """Metadata without the keys Flux owns (Flagger never copies them)."""
    return {k: v for k, v in (values or {}).items() if configs.FLUX_MARKER not in k}


def primary_labels(labels: Mapping[str, str] | None, key: str, value: str) -> dict[str, str]:
    """``labels`` with the selector label set to the primary's value (Flux's keys left out)."""
    out = {k: v for k, v in without_flux(labels).items() if k != key}
    out[key] = f"{value}-primary"
    return out


def pod_annotations(annotations: Mapping[str, str] | None) -> dict[str, str]:
    """The primary's pod annotations: the target's, and a new ``flagger-id``."""
    out = {k: v for k, v in without_flux(annotations).items() if k != ID_ANNOTATION}
    out[ID_ANNOTATION] = str(uuid.uuid4())
    return out


def _primary_selectors(pod_spec: dict[str, Any], target_name: str) -> None:
    """Point topology spread and pod anti-affinity selectors on the target at the primary (the
    first value equal to the target's name, under a selector label key)."""

    def rewrite(selector: Any) -> None:
        if not isinstance(selector, dict):
            return
        for expr in selector.get("matchExpressions") or []:
            if expr.get("key") in SELECTOR_LABELS:
                values = expr.get("values") or []
                for i, v in enumerate(values):
                    if v == target_name:
                        values[i] = f"{v}-primary"
                        break
        labels = selector.get("matchLabels") or {}
        for key, v in list(labels.items()):
            if key in SELECTOR_LABELS and v == target_name:
                labels[key] = f"{v}-primary"

    for constraint in pod_spec.get("topologySpreadConstraints") or []:
        rewrite(constraint.get("labelSelector"))
    anti = (pod_spec.get("affinity") or {}).get("podAntiAffinity") or {}
    for term in anti.get("preferredDuringSchedulingIgnoredDuringExecution") or []:
        rewrite((term.get("podAffinityTerm") or {}).get("labelSelector"))
    for term in anti.get("requiredDuringSchedulingIgnoredDuringExecution") or []:
        rewrite(term.get("labelSelector"))


def primary_pod_template(target: dict[str, Any], tracked: Iterable[configs.ConfigRef]) -> dict[str, Any]:
    """The primary's pod template for ``target`` (a Deployment) whose tracked configs are ``tracked``."""
    key, value = selector_label(target)
    template = (target.get("spec") or {}).get("template") or {}
    tmeta = template.get("metadata") or {}
    pod_spec = configs.primary_pod_spec(template.get("spec") or {}, tracked)
    _primary_selectors(pod_spec, str((target.get("metadata") or {}).get("name")))
    return {
        "metadata": {
            "labels": primary_labels(tmeta.get("labels"), key, value),
            "annotations": pod_annotations(tmeta.get("annotations")),
        },
        "spec": pod_spec,
    }


_COPIED_SPEC = ("progressDeadlineSeconds", "minReadySeconds", "revisionHistoryLimit", "strategy")


def discovered_ports(service: CanaryService, target: dict[str, Any]) -> dict[str, int]:
    """``portDiscovery``: every container port but the canary's own, named by its name or
    ``tcp-<container>-<index>`` (service mesh sidecars left out)."""
    if not service.port_discovery:
        return {}
    ports: dict[str, int] = {}
    target_port = service.target_port if service.target_port is not None else service.port
    containers = (((target.get("spec") or {}).get("template") or {}).get("spec") or {}).get(
        "containers"
    ) or []
    for c in containers:
        if c.get("name") in SIDECARS:
            continue
        for i, p in enumerate(c.get("ports") or []):
            number = int(p.get("containerPort", 0))
            if (isinstance(target_port, int) and number == target_port) or (
                isinstance(target_port, str) and p.get("name") == target_port
            ):
                continue
            ports[p.get("name") or f"tcp-{c.get('name')}-{i}"] = number
    return ports


def service_spec(
    service: CanaryService, selector: dict[str, str], extra_ports: Mapping[str, int]
) -> dict[str, Any]:
    """The spec of a Service progdel creates (Flagger's ``reconcileService``)."""
    port: dict[str, Any] = {
        "name": service.port_name or "http",
        "protocol": "TCP",
        "port": service.port,
        "targetPort": service.target_port if service.target_port is not None else service.port,
    }
    if service.app_protocol:
        port["appProtocol"] = service.app_protocol
    spec: dict[str, Any] = {"type": "ClusterIP", "selector": selector, "ports": [port]}
    for name, number in sorted(extra_ports.items()):
        spec["ports"].append({"name": name, "protocol": "TCP", "port": number, "targetPort": number})
    if service.headless:
        spec["clusterIP"] = "None"
    if service.traffic_distribution:
        spec["trafficDistribution"] = service.traffic_distribution
    return spec


class Workloads:
    def __init__(
        self,
        kube: Kube,
        namespace: str,
        target: str,
        apex: str,
        *,
        service: CanaryService | None = None,
        autoscaler: AutoscalerReference | None = None,
        label_prefixes: Iterable[str] = (),
    ) -> None:
        self.kube = kube
        self.namespace = namespace
        self.target = target
        self.primary = f"{target}-primary"
        self.apex = apex
        self.service = service
        self.autoscaler = autoscaler
        self.label_prefixes = tuple(label_prefixes)

    @classmethod
    def of(cls, kube: Kube, canary: Canary, label_prefixes: Iterable[str] = ()) -> Workloads:
        return cls(
            kube,
            canary.namespace,
            canary.target_name,
            canary.apex_name,
            service=canary.spec.service,
            autoscaler=canary.spec.autoscaler_ref,
            label_prefixes=label_prefixes,
        )

    def get_target(self) -> dict[str, Any]:
        return self.kube.get(DEPLOYMENTS, self.target, self.namespace)

    def get_primary(self) -> dict[str, Any] | None:
        return self.kube.get_or_none(DEPLOYMENTS, self.primary, self.namespace)

    # -- the primary ---------------------------------------------------------------------------

    def _tracked(self, target: dict[str, Any]) -> dict[configs.ConfigRef, dict[str, Any]]:
        template = (target.get("spec") or {}).get("template") or {}
        return configs.tracked_configs(self.kube, self.namespace, template)

    def primary_from(self, target: dict[str, Any], tracked: Iterable[configs.ConfigRef]) -> dict[str, Any]:
        """The ``-primary`` Deployment Flagger creates for ``target``."""
        key, value = selector_label(target)
        meta = target.get("metadata") or {}
        tspec = target.get("spec") or {}
        replicas = int(tspec.get("replicas") or 0)
        spec: dict[str, Any] = {k: copy.deepcopy(tspec[k]) for k in _COPIED_SPEC if k in tspec}
        spec["replicas"] = replicas if replicas > 0 else 1
        spec["selector"] = {"matchLabels": {key: f"{value}-primary"}}
        spec["template"] = primary_pod_template(target, tracked)
        body: dict[str, Any] = {
            "metadata": {
                "name": self.primary,
                "namespace": self.namespace,
                "labels": primary_labels(
                    configs.include_by_prefix(meta.get("labels"), self.label_prefixes), key, value
                ),
            },
            "spec": spec,
        }
        annotations = without_flux(meta.get("annotations"))
        if annotations:
            body["metadata"]["annotations"] = annotations
        return body

    def ensure_primary(self, target: dict[str, Any]) -> dict[str, Any]:
        """Create ``<target>-primary`` (and its ``-primary`` configs) if it does not exist yet."""
        existing = self.get_primary()
        if existing is not None:
            return existing
        tracked = self._tracked(target)
        configs.sync_primary_configs(self.kube, self.namespace, tracked, self.label_prefixes)
        return self.kube.create(DEPLOYMENTS, self.primary_from(target, tracked), self.namespace)

    def promote(self) -> None:
        """Copy the target to the primary as Flagger's ``Promote`` does: configs first, then the
        pod template (which names them), strategy and the other copied fields, the replicas when
        no autoscaler sets them, annotations and labels. The primary then rolls."""
        target = self.get_target()
        tracked = self._tracked(target)
        configs.sync_primary_configs(self.kube, self.namespace, tracked, self.label_prefixes)
        key, value = selector_label(target)
        meta = target.get("metadata") or {}
        tspec = target.get("spec") or {}

        def copy_target(primary: dict[str, Any]) -> None:
            spec = primary.setdefault("spec", {})
            for k in _COPIED_SPEC:
                if k in tspec:
                    spec[k] = copy.deepcopy(tspec[k])
                else:
                    spec.pop(k, None)
            if self.autoscaler is None and "replicas" in tspec:
                spec["replicas"] = tspec["replicas"]
            spec["template"] = primary_pod_template(target, tracked)
            pmeta = primary["metadata"]
            pmeta["annotations"] = configs.include_by_prefix(meta.get("annotations"), self.label_prefixes)
            pmeta["labels"] = primary_labels(
                configs.include_by_prefix(meta.get("labels"), self.label_prefixes), key, value
            )

        self.kube.update(DEPLOYMENTS, self.primary, copy_target, self.namespace)

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
        sspec = source.get("spec") or {}
        target_ref = sspec.get("scaleTargetRef") or {}
        spec: dict[str, Any] = {
            "scaleTargetRef": {
                "apiVersion": target_ref.get("apiVersion", "apps/v1"),
                "kind": target_ref.get("kind", "Deployment"),
                "name": self.primary,
            },
            "maxReplicas": sspec.get("maxReplicas"),
        }
        for k in ("minReplicas", "metrics", "behavior"):
            if k in sspec:
                spec[k] = copy.deepcopy(sspec[k])
        overrides = ref.primary_scaler_replicas
        if overrides is not None and overrides.min_replicas is not None:
            spec["minReplicas"] = overrides.min_replicas
        if overrides is not None and overrides.max_replicas is not None:
            spec["maxReplicas"] = overrides.max_replicas
        name = f"{ref.name}-primary"
        smeta = source.get("metadata") or {}
        existing = self.kube.get_or_none(HPAS, name, self.namespace)
        if existing is None:
            meta: dict[str, Any] = {"name": name, "namespace": self.namespace}
            if without_flux(smeta.get("labels")):
                meta["labels"] = without_flux(smeta.get("labels"))
            self.kube.create(HPAS, {"metadata": meta, "spec": spec}, self.namespace)
            return
        labels = without_flux(smeta.get("labels"))
        if existing.get("spec") != spec or ((existing.get("metadata") or {}).get("labels") or {}) != labels:

            def put(obj: dict[str, Any]) -> None:
                obj["spec"] = spec
                obj["metadata"]["labels"] = labels

            self.kube.update(HPAS, name, put, self.namespace)

    # -- Services ------------------------------------------------------------------------------

    def _wanted_services(self, target: dict[str, Any]) -> dict[str, tuple[dict[str, str], str]]:
        key, value = selector_label(target)
        return {
            f"{self.apex}-canary": ({key: value}, "canary"),
            f"{self.apex}-primary": ({key: f"{value}-primary"}, "primary"),
            self.apex: ({key: f"{value}-primary"}, "apex"),
        }

    def ensure_services(self, target: dict[str, Any], *, apex: bool = True) -> None:
        """``<apex>-canary`` and ``<apex>-primary``, and with ``apex`` the apex Service too (only
        once the primary is ready, while a canary is initialized)."""
        for name, (selector, which) in self._wanted_services(target).items():
            if which == "apex" and not apex:
                continue
            self._ensure_service(target, name, selector, which)

    def ensure_apex(self, target: dict[str, Any]) -> None:
        name = self.apex
        selector, which = self._wanted_services(target)[name]
        self._ensure_service(target, name, selector, which)

    def _metadata(
        self, target: dict[str, Any], name: str, which: str
    ) -> tuple[dict[str, str], dict[str, str]]:
        svc = self.service
        custom = getattr(svc, which, None) if svc is not None else None
        key, _ = selector_label(target)
        labels = dict(custom.labels) if custom is not None else {}
        labels[key] = name
        annotations = without_flux(custom.annotations) if custom is not None else {}
        return labels, annotations

    def _ensure_service(
        self, target: dict[str, Any], name: str, selector: dict[str, str], which: str
    ) -> None:
        svc = self.service or CanaryService(port=0)
        wanted = service_spec(svc, selector, discovered_ports(svc, target))
        labels, annotations = self._metadata(target, name, which)
        existing = self.kube.get_or_none(SERVICES, name, self.namespace)
        if existing is None:
            meta: dict[str, Any] = {
                "name": name,
                "namespace": self.namespace,
                "labels": labels,
                "annotations": {**annotations, CREATED_ANNOTATION: "progdel"},
            }
            self.kube.create(SERVICES, {"metadata": meta, "spec": wanted}, self.namespace)
            return
        unmanaged = svc.unmanaged_metadata

        def put(obj: dict[str, Any]) -> None:
            spec = obj.setdefault("spec", {})
            meta = obj["metadata"]
            ours = (meta.get("annotations") or {}).get(CREATED_ANNOTATION) == "progdel"
            old_ports = spec.get("ports") or []
            node_ports = {p.get("name"): p["nodePort"] for p in old_ports if p.get("nodePort")}
            if ours:
                # progdel's Service: ports are exactly the canary's, metadata follows the spec
                ports = copy.deepcopy(wanted["ports"])
                keep_labels = {
                    k: v for k, v in (meta.get("labels") or {}).items() if unmanaged and k in unmanaged.labels
                }
                keep_annotations = {
                    k: v
                    for k, v in (meta.get("annotations") or {}).items()
                    if unmanaged and k in unmanaged.annotations
                }
                meta["labels"] = {**labels, **keep_labels}
                meta["annotations"] = {**annotations, **keep_annotations, CREATED_ANNOTATION: "progdel"}
            else:
                # someone else's Service: keep its type, other ports and metadata; save what changes
                annotations_now = meta.setdefault("annotations", {}) or {}
                if ORIGINAL_ANNOTATION not in annotations_now:
                    original = {"selector": spec.get("selector"), "ports": old_ports}
                    annotations_now[ORIGINAL_ANNOTATION] = json.dumps(original, sort_keys=True)
                meta["annotations"] = annotations_now
                ports = copy.deepcopy(old_ports)
                for i, want in enumerate(wanted["ports"]):
                    same = next((p for p in ports if p.get("port") == want["port"]), None)
                    if same is None:
                        same = next((p for p in ports if p.get("name") == want["name"]), None)
                    if same is None and i == 0 and len(ports) == 1 and not ports[0].get("name"):
                        same = ports[0]  # a second port would need both to be named
                    if same is None:
                        ports.append(copy.deepcopy(want))
                    else:
                        same.update({k: v for k, v in want.items() if k != "nodePort"})
            for p in ports:
                if p.get("name") in node_ports and spec.get("type") in ("NodePort", "LoadBalancer"):
                    p.setdefault("nodePort", node_ports[p["name"]])
            spec["ports"] = ports
            spec["selector"] = dict(selector)

        self.kube.update(SERVICES, name, put, self.namespace)

    # -- scaling and health --------------------------------------------------------------------

    def scale(self, name: str, replicas: int) -> None:
        self.kube.patch(DEPLOYMENTS, name, {"spec": {"replicas": replicas}}, self.namespace)

    def scale_target(self, replicas: int) -> None:
        self.scale(self.target, replicas)

    def scale_target_up(self) -> None:
        """Scale the canary up from zero as Flagger does: to its own replicas when it asks for
        some, else the primary's without an autoscaler, else the autoscaler's minimum (at least one)."""
        target = self.get_target()
        own = int((target.get("spec") or {}).get("replicas") or 0)
        if own > 0:
            return
        replicas = 1
        if self.autoscaler is None:
            primary = self.get_primary()
            replicas = int(((primary or {}).get("spec") or {}).get("replicas") or 1) or 1
        else:
            hpa = self.kube.get_or_none(HPAS, self.autoscaler.name, self.namespace)
            replicas = max(1, int(((hpa or {}).get("spec") or {}).get("minReplicas") or 1))
        self.scale_target(replicas)

    def health(self, name: str, threshold: int = 100) -> DeploymentHealth:
        dep = self.kube.get_or_none(DEPLOYMENTS, name, self.namespace)
        if dep is None:
            return DeploymentHealth(Readiness.NOT_READY, f"deployment {self.namespace}/{name} not found")
        return deployment_health(dep, threshold)
