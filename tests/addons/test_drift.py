"""What counts as drift: canonical quantities, and fields an addon's controller owns per managedFields."""

from __future__ import annotations

from typing import Any

from progdel.addons.install import drift, drifted_fields, ours
from progdel.kube.fields import owned_by, same_quantity, without


def test_a_quantity_the_server_stored_canonically_is_not_drift() -> None:
    applied = {"resources": {"requests": {"memory": "2048Mi", "cpu": "500m"}, "limits": {"cpu": "1000m"}}}
    live = {"resources": {"requests": {"memory": "2Gi", "cpu": "500m"}, "limits": {"cpu": "1"}}}
    assert drifted_fields(applied, live) == []
    live["resources"]["requests"]["memory"] = "1Gi"
    assert drifted_fields(applied, live) == ["resources.requests.memory"]


def test_same_quantity() -> None:
    assert same_quantity("2048Mi", "2Gi") and same_quantity("1000m", "1") and same_quantity("1", 1)
    assert not same_quantity("1Gi", "1G") and not same_quantity("Fail", "Ignore")
    assert not same_quantity(True, 1) and not same_quantity(None, "0")


def webhook_config(failure: str, bundle: str | None, managed: list[dict[str, Any]]) -> dict[str, Any]:
    hook: dict[str, Any] = {"name": "validation.istio.io", "failurePolicy": failure, "sideEffects": "None"}
    hook["clientConfig"] = {"service": {"name": "istiod", "namespace": "istio-system"}}
    if bundle is not None:
        hook["clientConfig"]["caBundle"] = bundle
    meta: dict[str, Any] = {"name": "istiod-default-validator"}
    if managed:
        meta["managedFields"] = managed
    return {"metadata": meta, "webhooks": [hook]}


KEY = 'k:{"name":"validation.istio.io"}'
ISTIOD = {
    "manager": "pilot-discovery",
    "operation": "Update",
    "fieldsV1": {"f:webhooks": {KEY: {".": {}, "f:failurePolicy": {}, "f:clientConfig": {"f:caBundle": {}}}}},
}


def test_fields_the_addons_controller_took_over_are_its_own() -> None:
    applied = webhook_config("Ignore", None, [])
    live = webhook_config("Fail", "Q0E=", [ISTIOD])
    assert owned_by(live, ["pilot-discovery"]) == {
        ("f:webhooks", KEY, "f:failurePolicy"),
        ("f:webhooks", KEY, "f:clientConfig", "f:caBundle"),
    }
    assert drifted_fields(applied, live) == ["webhooks[0].failurePolicy"]
    assert drift(applied, live, ("pilot-discovery",)) == []
    # what a re-install applies leaves istiod's fields out, so it does not fight istiod
    assert "failurePolicy" not in ours(applied, live, ("pilot-discovery",))["webhooks"][0]
    assert ours(applied, live, ())["webhooks"][0]["failurePolicy"] == "Ignore"


def test_a_field_someone_else_changed_is_drift() -> None:
    by_hand = {**ISTIOD, "manager": "kubectl-edit"}
    live = webhook_config("Fail", None, [by_hand])
    assert drift(webhook_config("Ignore", None, []), live, ("pilot-discovery",)) == [
        "webhooks[0].failurePolicy"
    ]


def test_without_removes_map_fields_list_items_and_set_values() -> None:
    obj = {"a": {"b": 1, "c": 2}, "items": [{"name": "x", "v": 1}, {"name": "y"}], "tags": ["p", "q"]}
    paths = {("f:a", "f:b"), ("f:items", 'k:{"name":"y"}'), ("f:tags", 'v:"q"'), ("f:missing", "f:z")}
    assert without(obj, paths) == {"a": {"c": 2}, "items": [{"name": "x", "v": 1}], "tags": ["p"]}
    assert obj["a"] == {"b": 1, "c": 2}, "the original is left alone"
