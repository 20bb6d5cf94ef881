"""Whether progdel can drive a Canary, decided before anything is written.

A Canary written for Flagger may name a provider or a target progdel does not drive (Linkerd,
NGINX, a DaemonSet, a Knative Service), or ask its router for something it cannot do. ``admit``
says so first, naming the real reason, before the spec is even validated in full (a Knative
Canary has no ``spec.service``: the missing port is not what is wrong with it) and before
``canary init`` or ``canary check`` write or plan anything. On the way it converts a Flagger 0.x
file, settles the provider (``routing.provider``), records that choice in the document init
stores, and collects the notes a user should read: what was converted, which provider was chosen
and why, fields the chosen router does not read.

Every tick checks the stored Canary again (``ensure_drivable``), since ``kubectl`` can change it.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from typing import Any

from progdel.config.canary import (
    GATEWAY_DURATION,
    Canary,
    CanarySpec,
    canary_from_document,
    converted_document,
)
from progdel.config.canary_fields import field_notes
from progdel.config.yamlfile import Document
from progdel.errors import InvalidInput
from progdel.routing.provider import PROVIDER_ANNOTATION, ProviderChoice, choose_provider, ensure_supported

_DNS_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")  # RFC 1035, as Service names must be
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


def name_problems(canary: Canary) -> list[str]:
    """The names progdel would give objects that the API server would refuse: the Services
    ``<apex>``, ``<apex>-primary`` and ``<apex>-canary`` must be DNS labels (63 characters at
    most, a letter first), the ``-primary`` Deployment and HPA and the Lease DNS subdomains."""
    where = f"canary {canary.namespace}/{canary.name}"
    problems = []
    for name in (canary.apex_name, f"{canary.apex_name}-primary", f"{canary.apex_name}-canary"):
        if len(name) > 63 or not _DNS_LABEL.fullmatch(name):
            problems.append(
                f"{where}: Service name {name!r} is not a DNS label (at most 63 lowercase letters, "
                "digits and '-', a letter first): shorten spec.service.name (or spec.targetRef.name)"
            )
    subdomains = [canary.primary_name, f"progdel-canary-{canary.name}"]
    if canary.spec.autoscaler_ref is not None:
        subdomains.append(f"{canary.spec.autoscaler_ref.name}-primary")
    for name in subdomains:
        if len(name) > 253 or not _DNS_SUBDOMAIN.fullmatch(name):
            problems.append(f"{where}: {name!r} is not a valid object name (a DNS subdomain)")
    return problems


def _target_problem(spec: Any, where: str) -> str | None:
    """What is wrong with the target for progdel, read from the raw ``spec`` (None: a Deployment)."""
    ref = spec.get("targetRef") if isinstance(spec, dict) else None
    if not isinstance(ref, dict):
        return None  # validation names the missing targetRef
    kind, api_version = str(ref.get("kind") or "Deployment"), str(ref.get("apiVersion") or "")
    if kind == "Service" and api_version.startswith("serving.knative.dev"):
        return f"{where}: spec.targetRef is a Knative Service: progdel drives Deployment targets only"
    if kind != "Deployment":
        return f"{where}: spec.targetRef.kind {kind}: progdel drives Deployment targets only"
    return None


def provider_problems(canary: Canary) -> list[str]:
    """What the router of the canary's (resolved) provider cannot do with its spec: Flagger's
    routers stop on some of these, or drop them, where progdel refuses them by name."""
    where = f"canary {canary.namespace}/{canary.name}"
    svc = canary.spec.service
    problems: list[str] = []
    if (svc.app_protocol or "").lower() == "tcp":
        problems.append(f"{where}: spec.service.appProtocol tcp: progdel routes HTTP only")
    ref = canary.spec.autoscaler_ref
    if ref is not None and (ref.kind or "HorizontalPodAutoscaler") != "HorizontalPodAutoscaler":
        problems.append(
            f"{where}: spec.autoscalerRef.kind {ref.kind}: progdel scales with HorizontalPodAutoscalers only"
        )
    provider = canary.spec.provider or "istio"
    if provider == "istio":
        if svc.delegation and (svc.hosts or svc.gateways):
            problems.append(
                f"{where}: spec.service.delegation: a delegate VirtualService has no hosts nor gateways "
                "(Flagger refuses it too): remove spec.service.hosts and spec.service.gateways"
            )
        return problems
    from progdel.routing.base import RoutingError
    from progdel.routing.gatewayapi import gateway_match

    if not svc.gateway_refs:
        problems.append(
            f"{where}: spec.service.gatewayRefs: the Gateway API router needs the Gateways the "
            "HTTPRoute attaches to (Flagger refuses it without them too)"
        )
    for key, value in (("timeout", svc.timeout), ("backendTimeout", svc.backend_timeout)):
        if value is not None and not GATEWAY_DURATION.match(value):
            problems.append(
                f"{where}: spec.service.{key} {value!r}: an HTTPRoute timeout is whole h, m, s or ms "
                "(e.g. 1m30s, 500ms)"
            )
    blocks = (("service", svc.match or []), ("analysis", canary.analysis.match))
    for key, matches in blocks:
        for i, match in enumerate(matches):
            try:
                gateway_match(dict(match))
            except RoutingError as err:
                problems.append(f"{where}: spec.{key}.match[{i}]: {err}")
    if (svc.cors_policy or {}).get("allowOrigins"):
        problems.append(
            f"{where}: spec.service.corsPolicy.allowOrigins: an HTTPRoute CORS filter takes plain "
            "origins only: write corsPolicy.allowOrigin (Flagger drops allowOrigins on this provider)"
        )
    return problems


def ensure_drivable(canary: Canary) -> None:
    """Refuse, as a spec error, what the spec format allows but progdel cannot drive (Flagger
    can: a canary Flagger drives is only observed, and these never get here), and names the API
    server would refuse. ``canary`` carries its resolved provider."""
    where = f"canary {canary.namespace}/{canary.name}"
    ensure_supported(ProviderChoice(canary.spec.provider or "istio", "", True), where)
    target = _target_problem(canary.spec.model_dump(by_alias=True), where)
    problems = ([target] if target else []) + name_problems(canary) + provider_problems(canary)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise InvalidInput(problems[0] + more)


@dataclass
class Admitted:
    """A Canary progdel can drive: the model (its provider resolved), the document to store
    (``v1beta1``, the chosen provider recorded) and the notes to show once."""

    spec: CanarySpec
    document: dict[str, Any]
    choice: ProviderChoice
    notes: list[str] = field(default_factory=list)

    @property
    def model(self) -> Canary:
        return self.spec.model


def admit(
    doc: Document,
    namespace: str | None = None,
    *,
    flag: str | None = None,
    project_default: str | None = None,
) -> Admitted:
    """Convert, check and validate the Canary ``doc``, in the order that names the real reason
    first: the provider, the target, then the spec in full, then what its router cannot do."""
    if not isinstance(doc.data, dict):
        raise InvalidInput(f"{doc.source}: expected a Canary object, got {type(doc.data).__name__}")
    converted, _ = converted_document(doc)
    data = converted.data
    meta = data.get("metadata") if isinstance(data.get("metadata"), dict) else {}
    name = meta.get("name") or "?"
    where = f"canary {namespace or meta.get('namespace') or 'default'}/{name}"
    spec = data.get("spec") if isinstance(data.get("spec"), dict) else {}
    try:
        choice = choose_provider(
            spec, meta.get("annotations") or {}, flag=flag, project_default=project_default
        )
    except InvalidInput as err:
        raise InvalidInput(f"{doc.source}: {err}") from None
    ensure_supported(choice, f"{doc.source}: {where}")
    target = _target_problem(spec, f"{doc.source}: {where}")
    if target:
        raise InvalidInput(target)
    parsed = canary_from_document(doc)
    model = parsed.model.model_copy(deep=True)
    model.spec.provider = choice.provider
    if namespace:
        model.metadata.namespace = namespace
    try:
        ensure_drivable(model)
    except InvalidInput as err:
        raise InvalidInput(f"{doc.source}: {err}") from None
    document = copy.deepcopy(parsed.document)
    if not choice.explicit:
        annotations = document.setdefault("metadata", {}).setdefault("annotations", {}) or {}
        annotations[PROVIDER_ANNOTATION] = choice.provider
        document["metadata"]["annotations"] = annotations
    notes = [n for n in (parsed.converted, choice.note(where)) if n]
    notes += [f"{where}: {n}" for n in field_notes(document, choice.provider)]
    return Admitted(CanarySpec(model, parsed.source, document, parsed.converted), document, choice, notes)


__all__ = [
    "Admitted",
    "admit",
    "ensure_drivable",
    "name_problems",
    "provider_problems",
]
