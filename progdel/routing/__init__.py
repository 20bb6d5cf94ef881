"""Traffic routers: how a canary's weights reach the mesh.

``router_for(kube, canary)`` picks the implementation of the ``Router`` protocol from the Canary's
provider, with Flagger's spelling:

========================================  =====================================================
provider                                   router
========================================  =====================================================
``istio``                                  ``VirtualServiceRouter`` (VirtualService + DestinationRules)
``gatewayapi:v1``                          ``HTTPRouteRouter`` on ``gateway.networking.k8s.io/v1``
``gatewayapi:v1beta1``                     ``HTTPRouteRouter`` on ``gateway.networking.k8s.io/v1beta1``
========================================  =====================================================

The provider is ``spec.provider``, else the one ``provider.choose_provider`` settles on (what
init recorded, ``--mesh-provider``, progdel.yaml, ``gatewayRefs``, Istio); ``resolve`` writes the
choice into the in-memory model so that every part of a command sees the same provider. Any other
provider is a spec error naming it and the supported values.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from progdel.routing.provider import (
    SUPPORTED_PROVIDERS,
    ProviderChoice,
    choose_provider,
    ensure_supported,
)

if TYPE_CHECKING:
    from progdel.config.canary import Canary
    from progdel.kube.client import Kube
    from progdel.routing.base import Router


def choice_of(canary: Canary, flag: str | None = None, project_default: str | None = None) -> ProviderChoice:
    """How the provider of ``canary`` (a validated model) is chosen."""
    spec = canary.spec.model_dump(by_alias=True, exclude_none=True)
    return choose_provider(spec, canary.metadata.annotations, flag=flag, project_default=project_default)


def provider_of(canary: Canary, flag: str | None = None, project_default: str | None = None) -> str:
    """The canary's provider, normalised; ``InvalidInput`` if progdel does not drive it."""
    return ensure_supported(
        choice_of(canary, flag, project_default), f"canary {canary.namespace}/{canary.name}"
    )


def resolve(canary: Canary, flag: str | None = None, project_default: str | None = None) -> Canary:
    """A copy of ``canary`` whose ``spec.provider`` holds the chosen provider (never written back)."""
    provider = provider_of(canary, flag, project_default)
    if canary.spec.provider == provider:
        return canary
    out = canary.model_copy(deep=True)
    out.spec.provider = provider
    return out


def router_for(kube: Kube, canary: Canary) -> Router:
    """The router that shifts this canary's traffic, chosen by its provider."""
    from progdel.routing.base import RouteNames

    provider = provider_of(canary)
    names = RouteNames(canary.apex_name, canary.namespace)
    svc = canary.spec.service
    service = svc.model_dump(by_alias=True, exclude_none=True)
    if provider.startswith("gatewayapi"):
        from progdel.kube.resources import HTTPROUTES
        from progdel.routing.gatewayapi import HTTPROUTES_V1BETA1, HTTPRouteRouter

        resource = HTTPROUTES_V1BETA1 if provider == "gatewayapi:v1beta1" else HTTPROUTES
        return HTTPRouteRouter(kube, names, service, svc.port, resource)
    from progdel.routing.istio import VirtualServiceRouter

    return VirtualServiceRouter(kube, names, service, svc.port)


__all__ = ["SUPPORTED_PROVIDERS", "choice_of", "provider_of", "resolve", "router_for"]
