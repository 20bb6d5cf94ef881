"""Which traffic provider a Canary runs on, chosen as a Flagger installation chooses it.

Flagger takes ``spec.provider`` when a Canary sets it, else the ``-mesh-provider`` flag it was
installed with: the Canaries of its Gateway API tutorials and tests carry no provider at all.
progdel has no installation, so the choice is, first match wins:

1. ``spec.provider``;
2. the provider ``canary init`` chose for this Canary, recorded in the annotation
   ``progdel.dev/provider`` of the stored object (so every later command agrees with init);
3. ``--mesh-provider`` (a global flag), then progdel.yaml's ``defaults.meshProvider``: the default
   a user sets once, like Flagger's flag;
4. inferred where the spec leaves no doubt: ``spec.service.gatewayRefs`` means the Gateway API
   (Flagger's Istio router ignores them, and its Gateway API router refuses a Canary without them);
5. ``istio``, Flagger's own default.

Every choice that was not ``spec.provider`` comes with a reason, which the commands show, so
objects are never built for a provider the user did not mean without saying so. A flag that
disagrees with what init recorded is an error rather than a silent switch of routers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from progdel.config.providers import check_provider
from progdel.errors import InvalidInput

PROVIDER_ANNOTATION = "progdel.dev/provider"
#: the providers progdel drives
SUPPORTED_PROVIDERS = ("istio", "gatewayapi:v1", "gatewayapi:v1beta1")


@dataclass(frozen=True)
class ProviderChoice:
    provider: str
    reason: str  # why this provider, said to the user when it was not spec.provider
    explicit: bool  # spec.provider chose it

    def note(self, where: str) -> str | None:
        """The line that says what was chosen and why (None when spec.provider said it)."""
        if self.explicit:
            return None
        return f"{where}: provider {self.provider} ({self.reason})"


def choose_provider(
    spec: Mapping[str, Any],
    annotations: Mapping[str, str] | None = None,
    *,
    flag: str | None = None,
    project_default: str | None = None,
) -> ProviderChoice:
    """The provider of a Canary given as its raw ``spec`` and ``metadata.annotations``.

    ``flag`` is ``--mesh-provider``, ``project_default`` progdel.yaml's ``defaults.meshProvider``.
    The result may name a provider progdel does not drive: ``ensure_supported`` says so.
    """
    explicit = spec.get("provider")
    if isinstance(explicit, str) and explicit.strip():
        return ProviderChoice(check_provider(explicit, "spec.provider"), "spec.provider", True)
    wanted = check_provider(flag, "--mesh-provider") if flag else None
    recorded = (annotations or {}).get(PROVIDER_ANNOTATION)
    if recorded:
        provider = check_provider(recorded, f"annotation {PROVIDER_ANNOTATION}")
        if wanted is not None and wanted != provider:
            raise InvalidInput(
                f"--mesh-provider {wanted}: this canary was initialized for {provider} (annotation "
                f"{PROVIDER_ANNOTATION}); run canary init with --mesh-provider {wanted} to move it"
            )
        return ProviderChoice(provider, f"chosen at init, annotation {PROVIDER_ANNOTATION}", False)
    if wanted is not None:
        return ProviderChoice(wanted, "--mesh-provider", False)
    if project_default:
        provider = check_provider(project_default, "progdel.yaml defaults.meshProvider")
        return ProviderChoice(provider, "progdel.yaml defaults.meshProvider", False)
    service = spec.get("service")
    if isinstance(service, Mapping) and service.get("gatewayRefs"):
        return ProviderChoice(
            "gatewayapi:v1",
            "inferred from spec.service.gatewayRefs; set spec.provider or --mesh-provider to choose",
            False,
        )
    return ProviderChoice(
        "istio", "Flagger's default; set spec.provider or --mesh-provider to choose another", False
    )


def ensure_supported(choice: ProviderChoice, where: str) -> str:
    """The provider, or ``InvalidInput`` when progdel does not drive it (said before anything else)."""
    if choice.provider in SUPPORTED_PROVIDERS:
        return choice.provider
    how = (
        f"spec.provider {choice.provider}"
        if choice.explicit
        else f"provider {choice.provider} ({choice.reason})"
    )
    raise InvalidInput(
        f"{where}: {how}: progdel drives {', '.join(SUPPORTED_PROVIDERS)} only (a cluster's Flagger may "
        "still run this canary, which canary watch then observes)"
    )


__all__ = [
    "PROVIDER_ANNOTATION",
    "SUPPORTED_PROVIDERS",
    "ProviderChoice",
    "choose_provider",
    "ensure_supported",
]
