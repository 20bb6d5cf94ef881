"""The runner receives its ports: a router given to it is the one every tick moves traffic with."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from progdel.canary.cluster import runner_for
from progdel.canary.runner import RunOptions
from progdel.config.canary import Canary
from progdel.errors import ExitCode
from progdel.kube.client import Kube
from progdel.routing import router_for
from progdel.routing.base import Router, TrafficPlan
from tests.canary.test_runner_integration import (
    T0,
    ReplayClock,
    history,
    kube,  # noqa: F401 - the fixture
    new_revision,
    setup_canary,
)
from tests.promfixture import TrafficPhase, require_prometheus, run_prometheus


class RecordingRouter:
    """The real router, with every split it is asked to set written down."""

    def __init__(self, inner: Router, splits: list[tuple[int, int]]) -> None:
        self.inner, self.splits = inner, splits

    def set_traffic(self, plan: TrafficPlan) -> None:
        self.splits.append((plan.weights.primary, plan.weights.canary))
        self.inner.set_traffic(plan)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_the_router_given_moves_the_traffic(kube: Kube, namespace: str, tmp_path: Any) -> None:  # noqa: F811
    require_prometheus()
    setup_canary(kube, namespace)
    new_revision(kube)
    splits: list[tuple[int, int]] = []

    def routers(k: Kube, canary: Canary) -> Any:
        return RecordingRouter(router_for(k, canary), splits)

    with run_prometheus(history(namespace, [TrafficPhase(0, 10, 0.0, 40)]), tmp_path) as prom:
        runner = runner_for(
            kube,
            "podinfo",
            namespace,
            lambda _r: None,
            RunOptions(prometheus_url=prom.url),
            clock=ReplayClock(T0 + timedelta(minutes=5)),
            routers=routers,
        )
        assert runner.run() is ExitCode.OK
    assert splits[:3] == [(80, 20), (60, 40), (40, 60)] and splits[-1] == (100, 0)
