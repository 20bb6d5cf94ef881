"""The traffic providers Flagger's CRD accepts, and the check of a provider a user names (in a
Canary's ``spec.provider``, ``--mesh-provider`` or progdel.yaml). Which provider a Canary runs on,
and which progdel drives, is the routing package's (``routing.provider``)."""

from __future__ import annotations

from progdel.errors import InvalidInput

#: every provider Flagger 1.44's CRD accepts in ``spec.provider``
FLAGGER_PROVIDERS = (
    "apisix",
    "appmesh",
    "appmesh:v1beta2",
    "contour",
    "gatewayapi:v1",
    "gatewayapi:v1beta1",
    "gloo",
    "istio",
    "knative",
    "kubernetes",
    "kuma",
    "linkerd",
    "nginx",
    "osm",
    "skipper",
    "smi:v1alpha1",
    "smi:v1alpha2",
    "smi:v1alpha3",
    "traefik",
)


def normal_provider(value: str) -> str:
    """A provider name as Flagger compares it (trimmed, lower case)."""
    return value.strip().lower()


def check_provider(value: str, what: str) -> str:
    """``value`` as a provider Flagger knows, normalised; ``InvalidInput`` naming ``what``."""
    provider = normal_provider(value)
    if provider == "gatewayapi":
        raise InvalidInput(
            f"{what}: 'gatewayapi' is refused by Flagger's CRD: write gatewayapi:v1 (or gatewayapi:v1beta1)"
        )
    if provider not in FLAGGER_PROVIDERS:
        raise InvalidInput(
            f"{what}: {value!r} is not a Flagger provider (one of {', '.join(FLAGGER_PROVIDERS)})"
        )
    return provider
