"""The provider a Canary runs on, chosen as a Flagger installation chooses it.

Flagger (``pkg/controller/scheduler.go``, ``advanceCanary``) takes ``spec.provider`` and falls
back to its ``-mesh-provider`` flag; the Canaries of its Gateway API tests
(``test/gatewayapi/test-canary.sh``) set none and rely on ``--set meshProvider=gatewayapi:v1``
(``test/gatewayapi/install.sh``).
"""

from __future__ import annotations

from typing import Any

import pytest

from progdel.errors import InvalidInput
from progdel.routing.provider import PROVIDER_ANNOTATION, choose_provider, ensure_supported

GATEWAY = {"service": {"port": 9898, "gatewayRefs": [{"name": "gateway", "namespace": "istio-ingress"}]}}
PLAIN = {"service": {"port": 9898}}


@pytest.mark.parametrize(
    ("spec", "annotations", "kw", "provider", "reason"),
    [
        (
            {**PLAIN, "provider": "gatewayapi:v1beta1"},
            {},
            {"flag": "istio"},
            "gatewayapi:v1beta1",
            "spec.provider",
        ),
        (GATEWAY, {PROVIDER_ANNOTATION: "istio"}, {}, "istio", "chosen at init"),
        (GATEWAY, {}, {"flag": "istio"}, "istio", "--mesh-provider"),
        (
            PLAIN,
            {},
            {"flag": "gatewayapi:v1", "project_default": "istio"},
            "gatewayapi:v1",
            "--mesh-provider",
        ),
        (GATEWAY, {}, {"project_default": "istio"}, "istio", "progdel.yaml defaults.meshProvider"),
        (GATEWAY, {}, {}, "gatewayapi:v1", "inferred from spec.service.gatewayRefs"),
        (PLAIN, {}, {}, "istio", "Flagger's default"),
    ],
)
def test_first_match_wins(
    spec: dict[str, Any], annotations: dict[str, str], kw: dict[str, Any], provider: str, reason: str
) -> None:
    choice = choose_provider(spec, annotations, **kw)
    assert choice.provider == provider and choice.reason.startswith(reason)
    assert choice.explicit is (reason == "spec.provider")
    note = choice.note("canary test/podinfo")
    assert (note is None) is choice.explicit
    if note:
        assert note.startswith(f"canary test/podinfo: provider {provider} ({reason}")


def test_a_flag_against_the_choice_init_recorded_is_an_error() -> None:
    with pytest.raises(InvalidInput, match=r"initialized for istio .* run canary init with --mesh-provider"):
        choose_provider(GATEWAY, {PROVIDER_ANNOTATION: "istio"}, flag="gatewayapi:v1")


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"flag": "gatewayapi"}, "--mesh-provider: 'gatewayapi' is refused by Flagger's CRD"),
        ({"flag": "envoy"}, "--mesh-provider: 'envoy' is not a Flagger provider"),
        (
            {"project_default": "ISTIO2"},
            "progdel.yaml defaults.meshProvider: 'ISTIO2' is not a Flagger provider",
        ),
    ],
)
def test_bad_providers_are_named(kw: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        choose_provider(PLAIN, {}, **kw)


def test_a_provider_progdel_does_not_drive_is_refused_saying_where_it_came_from() -> None:
    choice = choose_provider(PLAIN, {}, project_default="linkerd")
    with pytest.raises(InvalidInput) as err:
        ensure_supported(choice, "canary test/podinfo")
    assert str(err.value).startswith(
        "canary test/podinfo: provider linkerd (progdel.yaml defaults.meshProvider): progdel drives istio"
    )
