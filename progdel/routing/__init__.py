"""Traffic routers: how a canary's weights reach the mesh.

``router_for(kube, canary)`` picks the implementation of the ``Router`` protocol from the Canary's
``spec.provider``, with Flagger's spelling:

========================================  =====================================================
``spec.provider``                          router
========================================  =====================================================
absent, ``istio``                          ``VirtualServiceRouter`` (VirtualService + DestinationRules)
``gatewayapi:v1``                          ``HTTPRouteRouter`` on ``gateway.networking.k8s.io/v1``
``gatewayapi:v1beta1``                     ``HTTPRouteRouter`` on ``gateway.networking.k8s.io/v1beta1``
========================================  =====================================================

Any other provider is a spec error naming ``spec.provider`` and the supported values (a bare
``gatewayapi``, which Flagger's CRD refuses, included).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from progdel.errors import InvalidInput

if TYPE_CHECKING:
    from progdel.config.canary import Canary
    from progdel.kube.client import Kube
    from progdel.routing.base import Router

SUPPORTED_PROVIDERS = ("istio", "gatewayapi:v1", "gatewayapi:v1beta1")


def provider_of(canary: Canary) -> str:
    """The canary's provider, normalised (``istio`` when unset); ``InvalidInput`` if unsupported."""
    provider = (canary.spec.provider or "istio").strip().lower()
    if provider not in SUPPORTED_PROVIDERS:
        raise InvalidInput(
            f"canary {canary.namespace}/{canary.name}: spec.provider: {canary.spec.provider!r} is not "
            f"supported (supported: {', '.join(SUPPORTED_PROVIDERS)})"
        )
    return provider


def router_for(kube: Kube, canary: Canary) -> Router:
    """The router that shifts this canary's traffic, chosen by ``spec.provider``."""
    from progdel.routing.base import RouteNames

    provider = provider_of(canary)
    svc = canary.spec.service
    names = RouteNames(canary.apex_name, canary.namespace)
    service = svc.model_dump(by_alias=True, exclude_none=True)
    if provider.startswith("gatewayapi"):
        from progdel.kube.resources import HTTPROUTES
        from progdel.routing.gatewayapi import HTTPROUTES_V1BETA1, HTTPRouteRouter

        resource = HTTPROUTES_V1BETA1 if provider == "gatewayapi:v1beta1" else HTTPROUTES
        return HTTPRouteRouter(kube, names, service, svc.port, resource)
    from progdel.routing.istio import VirtualServiceRouter

    return VirtualServiceRouter(kube, names, service, svc.port)


__all__ = ["SUPPORTED_PROVIDERS", "provider_of", "router_for"]
