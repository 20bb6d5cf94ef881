"""The driver's Lease outlasts the slowest tick, so no second watcher takes over mid-tick."""

from __future__ import annotations

from typing import Any

from progdel.canary.runner import lease_seconds
from progdel.config.canary import parse_canary
from tests.canary.test_runner_integration import canary_doc


def canary(**analysis: Any) -> Any:
    return parse_canary(canary_doc("test", **analysis), "test").model


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
