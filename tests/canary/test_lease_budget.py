"""The driver's Lease outlasts the slowest tick, so no second watcher takes over mid-tick."""

from __future__ import annotations

from typing import Any

from progdel.canary.runner import lease_seconds
from progdel.config.canary import parse_canary


def canary(**analysis: Any) -> Any:
    doc = {
        "apiVersion": "flagger.app/v1beta1",
        "kind": "Canary",
        "metadata": {"name": "podinfo", "namespace": "test"},
        "spec": {
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
            "service": {"port": 9898},
            "analysis": {"threshold": 2, "stepWeight": 10, **analysis},
        },
    }
    return parse_canary(doc, "test").model


def test_three_intervals_when_ticks_are_quick() -> None:
    assert lease_seconds(canary(interval="1m")) == 180
    assert lease_seconds(canary(interval="1s")) == 2 * (5 + 10), "Prometheus and API calls at their worst"


def test_slow_webhooks_stretch_the_lease_past_the_interval() -> None:
    hooks = [
        {"name": "acceptance", "type": "pre-rollout", "url": "http://t/", "timeout": "30s", "retries": 2},
        {"name": "notify", "type": "event", "url": "http://t/", "timeout": "5s"},
    ]
    worst_tick = 3 * (30 + 1) + 3 * (5 + 1) + 5 + 10  # hooks on every retry, event hooks per event
    assert lease_seconds(canary(interval="10s", webhooks=hooks)) == 2 * worst_tick
