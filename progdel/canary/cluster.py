"""The runner's ports over a real cluster: what ``canary watch``, ``canary init``, promotion's
canary step and the demo hand to ``CanaryRunner``.

``KubeCluster`` is the cluster port of one Canary over the Kubernetes API (its object, status,
operator requests and Lease, the workloads, Events and run history around it); ``kube_ports``
adds the router of its provider, the Prometheus servers (reached through the API server when
they resolve only inside the cluster), the webhook caller, the alert sender and the clock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from progdel.canary import store
from progdel.canary.alerts import AlertMessage, AlertSender, AlertTarget, resolve_targets
from progdel.canary.clock import Clock, SystemClock
from progdel.canary.history import RunRecorder
from progdel.canary.observation import HookResult, HookType
from progdel.canary.records import Sink
from progdel.canary.runner import CanaryRunner, Ports, RunOptions, lease_seconds
from progdel.canary.status import CanaryStatus, Phase
from progdel.canary.webhooks import WebhookCaller
from progdel.canary.workloads import Workloads
from progdel.config.canary import Canary
from progdel.errors import ExitCode
from progdel.kube.client import Kube
from progdel.kube.events import EventRecorder
from progdel.kube.lease import Lease
from progdel.kube.resources import CANARIES, Resource
from progdel.metrics.servers import MetricsServers
from progdel.routing import router_for
from progdel.routing.base import Router


class KubeCluster:
    """The cluster port of the Canary ``namespace/name``, over the Kubernetes API."""

    def __init__(self, kube: Kube, name: str, namespace: str) -> None:
        self.kube = kube
        self.name = name
        self.namespace = namespace
        self.events = EventRecorder(kube)

    @property
    def timeout(self) -> float | None:
        return self.kube.timeout

    @timeout.setter
    def timeout(self, seconds: float | None) -> None:
        self.kube.timeout = seconds

    def read(self) -> dict[str, Any]:
        return self.kube.get(CANARIES, self.name, self.namespace)

    def write_status(self, status: dict[str, Any]) -> None:
        store.write_status(self.kube, self.name, self.namespace, status)

    def clear_request(self) -> None:
        store.clear_request(self.kube, self.name, self.namespace)

    def clear_approval(self, gate: str) -> None:
        store.clear_approval(self.kube, self.name, self.namespace, gate)

    def lease(self, seconds: int, identity: str | None = None) -> Lease:
        return store.lease_for(self.kube, self.name, self.namespace, seconds, identity)

    def get_or_none(
        self, resource: Resource, name: str, namespace: str | None = None
    ) -> dict[str, Any] | None:
        return self.kube.get_or_none(resource, name, namespace)

    def workloads(self, canary: Canary, label_prefixes: Iterable[str] = ()) -> Workloads:
        return Workloads.of(self.kube, canary, label_prefixes)

    def record_event(self, obj: dict[str, Any], type_: str, message: str) -> None:
        self.events.record(obj, type_, "Synced", message)

    def history(self, identity: str, warn: Callable[[str], None]) -> RunRecorder:
        return RunRecorder(self.kube, self.name, self.namespace, identity, warn)

    @contextmanager
    def reads_cached(self) -> Iterator[None]:
        with self.kube.reads_cached():
            yield


class ClusterHooks:
    """The webhook port: ``caller`` reaching in-cluster hook URLs through ``kube``'s API server."""

    def __init__(self, caller: WebhookCaller, kube: Kube) -> None:
        self.caller, self.kube = caller, kube

    def call_type(
        self,
        canary: Canary,
        hook_type: HookType,
        phase: str,
        status: CanaryStatus,
        event: tuple[str, str, int] | None = None,
    ) -> list[HookResult]:
        return self.caller.call_type(canary, hook_type, phase, status, event, kube=self.kube)

    def close(self) -> None:
        self.caller.close()


class ClusterAlerts:
    """The alert port: a canary's AlertProviders (and their Secrets) read through ``kube``,
    sent by ``sender`` (made on the first alert with somewhere to go, unless given)."""

    def __init__(self, kube: Kube, sender: AlertSender | None = None) -> None:
        self.kube = kube
        self.sender = sender

    def send(self, canary: Canary, message: AlertMessage, extra: list[AlertTarget]) -> list[str]:
        """Send ``message`` to the canary's alert targets and ``extra``; the problems met."""
        targets, problems = resolve_targets(self.kube, canary)
        targets += extra
        if not targets:
            return problems if canary.analysis.alerts else []
        if self.sender is None:
            self.sender = AlertSender()
        return problems + self.sender.send(targets, message)

    def close(self) -> None:
        if self.sender is not None:
            self.sender.close()


def kube_ports(
    kube: Kube,
    name: str,
    namespace: str,
    clock: Clock | None = None,
    *,
    routers: Callable[[Kube, Canary], Router] = router_for,
    servers: MetricsServers | None = None,
    hooks: WebhookCaller | None = None,
    alerts: AlertSender | None = None,
) -> Ports:
    """The real ports of a run of the Canary ``namespace/name`` in ``kube``'s cluster; each of
    the router (by ``spec.provider``), the metrics servers, the webhook caller and the alert
    sender is built from the cluster unless given."""
    return Ports(
        cluster=KubeCluster(kube, name, namespace),
        router=lambda canary: routers(kube, canary),
        metrics=(lambda _url: servers) if servers is not None else (lambda url: MetricsServers(kube, url)),
        hooks=ClusterHooks(hooks or WebhookCaller(), kube),
        alerts=ClusterAlerts(kube, alerts),
        clock=clock or SystemClock(),
    )


def runner_for(
    kube: Kube,
    name: str,
    namespace: str,
    sink: Sink,
    options: RunOptions | None = None,
    clock: Clock | None = None,
    identity: str | None = None,
    *,
    routers: Callable[[Kube, Canary], Router] = router_for,
    servers: MetricsServers | None = None,
    hooks: WebhookCaller | None = None,
    alerts: AlertSender | None = None,
) -> CanaryRunner:
    """A runner of the Canary ``namespace/name`` on ``kube``'s cluster (``kube_ports``)."""
    ports = kube_ports(
        kube, name, namespace, clock, routers=routers, servers=servers, hooks=hooks, alerts=alerts
    )
    return CanaryRunner(ports, name, namespace, sink, options, identity)


def initialize(
    kube: Kube,
    name: str,
    namespace: str,
    sink: Sink,
    timeout: float = 300,
    options: RunOptions | None = None,
) -> ExitCode:
    """``canary init``: create the primary, its configs and the Services, wait for the primary,
    then point the apex Service and the routing at it and scale the target to 0."""
    opts = replace(options or RunOptions(), until_initialized=True, timeout=timeout)
    runner = runner_for(kube, name, namespace, sink, opts)
    obj, canary, _invalid = runner.read()
    status = CanaryStatus.from_dict(obj.get("status"))
    if status.phase not in (Phase.NONE, Phase.INITIALIZING):
        # already initialized: reconcile the objects, keep the state
        runner.observe(canary, obj, status)
        return ExitCode.OK
    lease = store.lease_for(kube, name, namespace, 30)
    lease.acquire()
    try:
        return runner._loop(1.0, lease)
    finally:
        lease.release()


def carry_out_request(kube: Kube, name: str, namespace: str, options: RunOptions) -> bool:
    """Carry out an operator request (abort, promote) just posted on the Canary when no watcher
    runs: take the Lease and run one tick with ``options``. False when a watcher holds the Lease
    (it carries the request out itself, at once)."""
    from progdel.kube.lease import LeaseHeld

    _, spec = store.read(kube, name, namespace)
    lease = store.lease_for(kube, name, namespace, lease_seconds(spec.model))
    try:
        lease.acquire()
    except LeaseHeld:
        return False
    try:
        runner_for(kube, name, namespace, lambda _r: None, options).tick()
    finally:
        lease.release()
    return True


__all__ = [
    "ClusterAlerts",
    "ClusterHooks",
    "KubeCluster",
    "carry_out_request",
    "initialize",
    "kube_ports",
    "runner_for",
]
