"""The canary loop: observe the cluster, ask the engine, act, store the state, sleep.

Each tick does Flagger's housekeeping (the ``-primary`` Deployment, the
Services, the routing objects), observes the target's revision, readiness and
weights, queries the metrics only when the engine will judge them (all of
them at once, evaluated at the tick's time), then executes the engine's
actions and writes the new status to the Canary object.

Webhooks are called here, never in the engine: the runner asks the engine what the tick needs
(``engine.needs``: one webhook type's results, or the metrics), observes exactly that and asks
again, then runs the tick once; so hooks are called lazily and in Flagger's order (a failing
rollout hook means no metric queries). ``post-rollout`` hooks are actions; ``event`` hooks and
alerts follow every event the engine emits.

The runner builds nothing it talks to: it is given its ports (``Ports``: the cluster, the router
of a canary, the metrics servers, the webhooks, the alerts and the clock); ``cluster.py`` builds
the real ones over the Kubernetes API.

Actions run before the status is written: they are idempotent (absolute
weights, absolute replica counts, a template copy), so a crash between the two
only repeats them, while a failed check is counted only once the status that
holds it is stored.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from progdel.canary import engine, records, store, traffic
from progdel.canary.actions import (
    Action,
    CallWebhooks,
    ConsumeApproval,
    Event,
    PromoteTemplate,
    ScaleCanary,
    ScaleCanaryToZero,
    SetWeights,
)
from progdel.canary.admission import ensure_drivable
from progdel.canary.alerts import ALERT_TIMEOUT, AlertMessage, AlertTarget
from progdel.canary.clock import Clock, SystemClock
from progdel.canary.history import RunRecorder
from progdel.canary.judge import MetricResult
from progdel.canary.measure import CanaryMetrics
from progdel.canary.observation import CONFIRM_GATES, Command, HookResult, HookType, Observation, webhooks_of
from progdel.canary.observation import Weights as ObservedWeights
from progdel.canary.records import Sink
from progdel.canary.revision import referenced_configs, revision_of
from progdel.canary.status import ANALYSING, MOVING, CanaryStatus, Phase, progdel_wrote_last
from progdel.canary.workloads import Workloads, drain_seconds
from progdel.config.canary import (
    Canary,
    MetricTemplate,
    StrategyKind,
    format_go_duration,
    parse_duration,
    parse_metric_template,
)
from progdel.errors import ExitCode, InvalidInput, ProgdelError, Unreachable, printable
from progdel.kube.errors import KubeError, ServerError
from progdel.kube.lease import Lease, default_identity
from progdel.kube.readiness import Readiness
from progdel.kube.resources import CONFIGMAPS, METRICTEMPLATES, SECRETS, Resource
from progdel.metrics.prometheus import QUERY_TIMEOUT, configured_prometheus_url, resolve_prometheus_url
from progdel.metrics.provider import MetricsError, QueryRejected
from progdel.metrics.servers import MetricsServers
from progdel.metrics.templates import MetricQuery, metric_queries
from progdel.routing import choice_of, resolve
from progdel.routing.base import Router, TrafficPlan, Weights
from progdel.routing.provider import ProviderChoice

log = logging.getLogger("progdel.canary")


@dataclass
class RunOptions:
    once: bool = False
    follow: bool = False
    timeout: float | None = None  # seconds; exit 7 when a run is still going after it
    prometheus_url: str | None = None  # --prometheus-url
    project_prometheus_url: str | None = None  # progdel.yaml
    templates: list[MetricTemplate] = field(default_factory=list)  # from files, beside the cluster's
    until_initialized: bool = False  # `canary init`: stop once Initialized
    alert_targets: list[AlertTarget] = field(default_factory=list)  # from progdel.yaml, beside the Canary's
    mesh_provider: str | None = None  # --mesh-provider
    project_mesh_provider: str | None = None  # progdel.yaml defaults.meshProvider
    label_prefixes: tuple[str, ...] = ()  # progdel.yaml defaults.includeLabelPrefix
    # between moving traffic off pods and scaling them away
    drain_seconds: float = field(default_factory=drain_seconds)


_RUN_PHASES = (
    Phase.WAITING,
    Phase.PROGRESSING,
    Phase.WAITING_PROMOTION,
    Phase.PROMOTING,
    Phase.FINALISING,
)


def traffic_plan(canary: Canary, action: SetWeights, status: CanaryStatus) -> TrafficPlan:
    """The routes the canary's strategy needs around the split ``action`` asks for.

    As in Flagger's routers, ``analysis.match`` always gets its own route carrying the split
    (A/B testing with ``iterations``; with ``stepWeight`` a progressive canary of the matching
    requests only), from initialization on."""
    a = canary.analysis
    weights = Weights(action.primary, action.canary, action.mirror)
    plan = TrafficPlan(weights, mirror_percentage=(a.mirror_weight or None) if action.mirror else None)
    if a.match:
        return replace(plan, ab_match=tuple(a.match))
    affinity = a.session_affinity
    cookie = status.session_affinity_cookie
    if affinity is not None and cookie and canary.strategy is StrategyKind.CANARY:
        token = cookie.partition("=")[2]
        primary = f"{affinity.primary_cookie_name}={token}" if affinity.primary_cookie_name else None
        return replace(
            plan,
            canary_cookie=cookie,
            primary_cookie=primary,
            cookie_max_age=affinity.max_age or 86400,
            primary_cookie_max_age=max(1, round(a.interval_seconds)),
            cookie_attributes=affinity.cookie_attributes(),
        )
    return plan


#: the Events one tick can record at most (each calls the event webhooks)
_EVENTS_PER_TICK = 3
#: the Kubernetes API calls of one tick, at their worst
_API_SECONDS_PER_TICK = 10.0
#: how long one API request of a run may take before it counts as the API being unreachable
API_REQUEST_TIMEOUT = 10.0


def lease_seconds(canary: Canary) -> int:
    """How long a driver's Lease lasts: three intervals, and twice the longest a tick can block.

    A tick blocks on its webhooks (each may time out on every retry), on Prometheus and on alerts.
    The Lease is renewed between ticks, so it must outlast the slowest tick plus a wait, or a
    second watcher could take the canary over while the first is still acting on it.
    """
    a = canary.analysis
    hooks = 0.0
    for hook in a.webhooks:
        calls = _EVENTS_PER_TICK if hook.type == HookType.EVENT else 1
        hooks += calls * (hook.retries + 1) * ((parse_duration(hook.timeout) or 10.0) + 1.0)  # + backoff
    worst_tick = hooks + QUERY_TIMEOUT + ALERT_TIMEOUT * len(a.alerts) + _API_SECONDS_PER_TICK
    return max(10, math.ceil(3 * a.interval_seconds), math.ceil(2 * worst_tick))


def interruption(err: BaseException) -> str | None:
    """Why a driver stopped before its run ended, in a history record's words; None when another
    driver took the Lease over (it drives the run, and writes its record, now)."""
    from progdel.kube.lease import LeaseHeld

    if isinstance(err, LeaseHeld):
        return None
    if isinstance(err, KeyboardInterrupt):
        return "the watcher was stopped (interrupt)"
    if isinstance(err, ProgdelError):
        return err.message
    return f"{type(err).__name__}: {err}"


class Cluster(Protocol):
    """The cluster port of a run: the Canary it drives (its object, status, operator requests
    and Lease) and what lies around it (its workloads, Events, run history, the MetricTemplates,
    ConfigMaps and Secrets it names). ``cluster.KubeCluster`` is the real one."""

    timeout: float | None  # seconds an API request may take (None: no limit)

    def read(self) -> dict[str, Any]: ...
    def write_status(self, status: dict[str, Any]) -> None: ...
    def clear_request(self) -> None: ...
    def clear_approval(self, gate: str) -> None: ...
    def lease(self, seconds: int, identity: str | None = None) -> Lease: ...
    def get_or_none(
        self, resource: Resource, name: str, namespace: str | None = None
    ) -> dict[str, Any] | None: ...
    def workloads(self, canary: Canary, label_prefixes: Iterable[str] = ()) -> Workloads: ...
    def record_event(self, obj: dict[str, Any], type_: str, message: str) -> None: ...
    def history(self, identity: str, warn: Callable[[str], None]) -> RunRecorder: ...
    def reads_cached(self) -> AbstractContextManager[None]: ...


class Hooks(Protocol):
    """The webhook port: calls the hooks of one type in the spec's order, as Flagger does."""

    def call_type(
        self,
        canary: Canary,
        hook_type: HookType,
        phase: str,
        status: CanaryStatus,
        event: tuple[str, str, int] | None = None,
    ) -> list[HookResult]: ...
    def close(self) -> None: ...


class Alerts(Protocol):
    """The alert port: sends a message to a canary's alert targets and ``extra``; the problems."""

    def send(self, canary: Canary, message: AlertMessage, extra: list[AlertTarget]) -> list[str]: ...
    def close(self) -> None: ...


@dataclass
class Ports:
    """Everything a run reads, drives or calls, given to the runner (``cluster.kube_ports``
    builds the real ones): the cluster, the router of a canary (by its provider), the metrics
    servers of a configured Prometheus URL, the webhooks, the alerts and the clock."""

    cluster: Cluster
    router: Callable[[Canary], Router]
    metrics: Callable[[str], MetricsServers]
    hooks: Hooks
    alerts: Alerts
    clock: Clock = field(default_factory=SystemClock)


class CanaryRunner:
    def __init__(
        self,
        ports: Ports,
        name: str,
        namespace: str,
        sink: Sink,
        options: RunOptions | None = None,
        identity: str | None = None,
    ) -> None:
        """The runner of the Canary ``namespace/name``, through ``ports``."""
        self.cluster = ports.cluster
        self.name = name
        self.namespace = namespace
        self._show = sink
        self.opts = options or RunOptions()
        self.clock = ports.clock
        self.identity = identity
        self._servers: MetricsServers | None = None
        self._connect = ports.metrics
        self._routers = ports.router
        self.phase_before = Phase.NONE  # the phase before the last tick
        self.hooks = ports.hooks
        self.alerts = ports.alerts
        self._marks: tuple[str | None, ...] = ()  # operator annotations seen at the last tick
        self._last_valid: Canary | None = None  # the last spec read that validated
        self._renewed_at = self.clock.now()  # when the lease was last renewed (its request sent)
        self.plan = False  # planning init (canary check): act as if the primary were ready
        self.choice: ProviderChoice | None = None  # how the last valid spec read chose its provider
        self.history = self.cluster.history(identity or default_identity(), self._warn)

    def sink(self, record: records.Record) -> None:
        """Show a record, and keep the events for the run's history."""
        if record["kind"] == "event":
            self.history.event(record)
        self._show(record)

    # -- wiring ---------------------------------------------------------------------------

    @property
    def servers(self) -> MetricsServers:
        """The Prometheus servers of this run; the first use checks progdel's own credentials."""
        if self._servers is None:
            url = configured_prometheus_url(
                self.opts.prometheus_url, project_default=self.opts.project_prometheus_url
            )
            self._servers = self._connect(url)
        return self._servers

    def resolve(self, canary: Canary) -> Canary:
        """``canary`` with its provider settled (``routing.provider``): the one every part of this
        command uses."""
        return resolve(canary, self.opts.mesh_provider, self.opts.project_mesh_provider)

    def workloads(self, canary: Canary) -> Workloads:
        return self.cluster.workloads(canary, self.opts.label_prefixes)

    def close(self) -> None:
        if self._servers is not None:
            self._servers.close()
        self.hooks.close()
        self.alerts.close()

    def templates(self, canary: Canary) -> tuple[list[MetricTemplate], dict[tuple[str, str], str]]:
        """The MetricTemplates the canary's metrics name (files first, then the cluster), and why
        each of the others cannot be used (not found, or not a valid MetricTemplate)."""
        refs = {
            (m.template_ref.namespace or canary.namespace, m.template_ref.name)
            for m in canary.analysis.metrics
            if m.template_ref is not None
        }
        found = {(t.namespace, t.metadata.name): t for t in self.opts.templates}
        problems: dict[tuple[str, str], str] = {}
        for ns, tname in refs - set(found):
            obj = self.cluster.get_or_none(METRICTEMPLATES, tname, ns)
            if obj is None:
                problems[(ns, tname)] = f"metrictemplate {ns}/{tname} not found"
                continue
            try:
                found[(ns, tname)] = parse_metric_template(obj, f"metrictemplate {ns}/{tname}")
            except InvalidInput as err:
                problems[(ns, tname)] = str(err)
        return list(found.values()), problems

    def queries(self, canary: Canary) -> list[MetricQuery]:
        """Every metric's query; ``InvalidInput`` for the first that cannot be rendered."""
        return metric_queries(canary, self.templates(canary)[0])

    def metrics(self, canary: Canary) -> CanaryMetrics:
        """The metrics port for ``canary``: its templates (files, then the cluster) and servers
        (reached through the cluster when they resolve only inside it)."""
        templates, problems = self.templates(canary)
        return CanaryMetrics(self.servers, self.metrics_url(canary), templates, problems)

    def rendered(self, canary: Canary) -> tuple[list[MetricQuery], dict[str, MetricResult]]:
        """Every metric's query, and a failed check for each that cannot be rendered."""
        return self.metrics(canary).rendered(canary)

    def metrics_url(self, canary: Canary) -> str:
        return resolve_prometheus_url(
            self.opts.prometheus_url,
            metrics_server=canary.spec.metrics_server,
            project_default=self.opts.project_prometheus_url,
        )

    def preflight(self, canary: Canary) -> None:
        """Render every query and run it once: a query that cannot be rendered or that Prometheus
        rejects is a spec error (exit 2), reported before any traffic moves. No data or an
        unreachable server are not errors here. (A run already under way is not preflighted: its
        ticks count such problems as failed checks, so it ends in a rollback rather than with its
        traffic stranded.)"""
        default = self.metrics_url(canary)
        queries, broken = self.rendered(canary)
        if broken:
            name, result = next(iter(broken.items()))
            raise InvalidInput(f"canary {self.namespace}/{self.name}: metric {name}: {result.message}")
        for q in queries:
            try:
                provider = self.servers.provider(
                    q.address or default, q.secret, q.headers, q.insecure_skip_verify
                )
                provider.query(q.query, self.clock.now())
            except QueryRejected as err:
                raise InvalidInput(f"canary {self.namespace}/{self.name}: metric {q.name}: {err}") from None
            except MetricsError:
                pass

    # -- one tick -------------------------------------------------------------------------

    def observe(self, canary: Canary, obj: dict[str, Any], status: CanaryStatus) -> Observation:
        ensure_drivable(canary)
        now = self.clock.now()
        request = store.pending_request(obj)
        command = Command(request.action) if request and request.action in ("abort", "promote") else None
        approval = store.pending_approval(obj)
        gate = HookType(approval.gate) if approval and approval.gate in CONFIRM_GATES else None
        pause = store.paused_state(obj)
        operator = Observation(
            now=now,
            revision=status.last_applied_spec,
            command=command,
            approval=gate,
            approved_by=approval.by if approval and gate else "",
            paused=pause is not None,
            paused_by=pause.by if pause else "",
        )
        work = self.workloads(canary)
        router = self.router(canary)
        initializing = status.phase in (Phase.NONE, Phase.INITIALIZING)
        try:
            # Flagger's order: the primary and the -primary/-canary Services first; the apex
            # Service and the routes switch to the primary only once it is ready, so an app that
            # serves traffic keeps serving while its canary is initialized.
            target = work.get_target()
            work.ensure_primary(target)
            work.ensure_primary_autoscaler(canary.spec.autoscaler_ref)
            work.ensure_services(target, apex=False)
            a = canary.analysis
            primary = work.health(work.primary, a.primary_ready_threshold)
            switched = not initializing or primary.readiness is Readiness.READY or self.plan
            if switched:
                work.ensure_apex(target)
                router.reconcile()
            template = (target.get("spec") or {}).get("template") or {}
            configs: dict[Any, Any] = {}
            for ref in referenced_configs(template):
                res = CONFIGMAPS if ref.kind == "ConfigMap" else SECRETS
                configs[ref] = self.cluster.get_or_none(res, ref.name, canary.namespace)
            canary_h = work.health(work.target, a.canary_ready_threshold)
            w = router.get_weights() if switched else None
        except (Unreachable, ServerError) as err:
            return replace(operator, infra_error=str(err))
        revision = revision_of(template, configs)
        return replace(
            operator,
            revision=revision.spec,
            legacy_revision=revision.legacy,
            primary=primary.readiness if switched else Readiness.NOT_READY,
            canary=canary_h.readiness,
            weights=ObservedWeights(w.primary, w.canary, w.mirrored) if w is not None else None,
            tracked_configs=revision.configs,
            not_ready_reason=canary_h.message if canary_h.readiness is not Readiness.READY else "",
            primary_not_ready_reason=primary.message if primary.readiness is not Readiness.READY else "",
        )

    def router(self, canary: Canary) -> Router:
        """The one place a router is built: chosen by ``spec.provider`` (``router_for``)."""
        return self._routers(canary)

    def measure(self, canary: Canary, at: datetime) -> dict[str, MetricResult]:
        """Every metric of ``canary`` at ``at``, the queries of one server run together."""
        return self.metrics(canary).measure(canary, at)

    def decide(
        self, canary: Canary, status: CanaryStatus, obs: Observation
    ) -> tuple[engine.TickResult, Observation]:
        """Ask the engine what the tick needs, observe it (the webhooks, the metrics), and tick."""
        if (
            status.phase in (Phase.NONE, Phase.INITIALIZING)
            and obs.primary is not Readiness.READY
            and canary.skip_analysis
            and canary.spec.analysis is not None
        ):
            # Flagger initializes a canary that skips its analysis without waiting for the
            # primary; progdel waits, so the apex Service never points at pods not yet ready.
            canary = canary.model_copy(
                update={"spec": canary.spec.model_copy(update={"skip_analysis": False})}
            )
        for _ in range(len(HookType) + 2):
            need = engine.needs(canary, status, obs)
            if need is None:
                return engine.tick(canary, status, obs), obs
            if isinstance(need, engine.NeedsHooks):
                results = self.hooks.call_type(canary, need.hook_type, need.phase, status)
                obs = replace(obs, webhooks={**(obs.webhooks or {}), need.hook_type: results})
            else:
                obs = self.metrics(canary).observe(canary, obs)
        raise RuntimeError("the engine kept asking for observations")  # pragma: no cover

    def _alert(self, canary: Canary, status: CanaryStatus, event: Event) -> None:
        if event.alert is None:
            return
        a = canary.analysis
        message = AlertMessage(
            canary.name,
            canary.namespace,
            event.alert_message or event.message,
            event.alert,
            str(status.phase),
            {
                "Target": f"{canary.spec.target_ref.kind}/{canary.target_name}.{canary.namespace}",
                "Phase": str(status.phase),
                "Canary weight": str(status.canary_weight),
                "Failed checks": f"{status.failed_checks}/{a.threshold}",
            },
        )
        for e in self.alerts.send(canary, message, list(self.opts.alert_targets)):
            self._warn(e)

    def _warn(self, message: str) -> None:
        log.warning("%s", printable(message))
        self.sink(records.event_record("Warning", message, self.clock.now()))

    def emit(
        self,
        canary: Canary,
        obj: dict[str, Any],
        status: CanaryStatus,
        event: Event,
        read: CanaryStatus | None = None,
    ) -> None:
        """One Event: recorded on the Canary, shown, sent to the event webhooks (with the phase the
        canary has at that event, and the checksum of the status ``read`` at the tick's start, as
        Flagger's come from the object it read) and, when it alerts, to the alert providers."""
        self.cluster.record_event(obj, event.type, event.message)
        self.sink(records.event_record(event.type, event.message, self.clock.now()))
        if webhooks_of(canary, HookType.EVENT):
            ms = int(self.clock.now().timestamp() * 1000)
            phase = event.phase or str(status.phase)
            for r in self.hooks.call_type(
                canary, HookType.EVENT, phase, read or status, (event.message, event.type, ms)
            ):
                if not r.ok:
                    log.warning("event hook %s failed %s", r.name, printable(r.message))
        self._alert(canary, status, event)

    def execute(
        self,
        canary: Canary,
        obj: dict[str, Any],
        actions: list[Action],
        status: CanaryStatus | None = None,
        read: CanaryStatus | None = None,
    ) -> None:
        """Carry out ``actions`` for the tick whose new status is ``status``; ``read`` is the status
        the tick started from (the one webhook payloads are checksummed on)."""
        work = self.workloads(canary)
        router = self.router(canary)
        read = read or CanaryStatus.from_dict(obj.get("status"))
        status = status or read
        moved = False  # this tick moved traffic: give it time to reach the mesh before scaling down
        for action in actions:
            if isinstance(action, SetWeights):
                router.set_traffic(traffic_plan(canary, action, status))
                moved = True
            elif isinstance(action, ConsumeApproval):
                self.cluster.clear_approval(str(action.gate))
            elif isinstance(action, CallWebhooks):
                label = str(action.hook_type).capitalize()
                for r in self.hooks.call_type(canary, action.hook_type, action.phase, read):
                    if r.ok:
                        event = Event("Normal", f"{label} check {r.name} passed", phase=action.event_phase)
                    else:
                        message = f"{label} hook {r.name} failed {r.message}"
                        event = Event("Warning", message, phase=action.event_phase)
                    self.emit(canary, obj, status, event, read)
            elif isinstance(action, ScaleCanary):
                if action.replicas == "up":
                    work.scale_target_up()
                else:
                    work.scale_target(int(action.replicas))
            elif isinstance(action, ScaleCanaryToZero):
                if moved and not self.plan:
                    self.clock.sleep(self.opts.drain_seconds)
                work.scale_target(0)
            elif isinstance(action, PromoteTemplate):
                work.promote()
            elif isinstance(action, Event):
                self.emit(canary, obj, status, action, read)

    def tick(self) -> engine.TickResult:
        # One tick reads the same objects several times (the router, the checks, the weight
        # update): each is fetched once, and every write still carries its resourceVersion.
        with self.cluster.reads_cached():
            return self._tick()

    def read(self) -> tuple[dict[str, Any], Canary, str | None]:
        """The Canary object, its spec (its provider settled), and why the stored spec is invalid
        (else None).

        A spec edited into one that no longer validates while a run moves traffic must not strand
        that traffic: the run goes on with the last valid spec this process read, and every
        analysing tick counts a failed check saying why (so it rolls back at the threshold, as
        Flagger ends a run whose checks cannot pass). With no run under way there is nothing to
        protect, and the spec error is raised (exit 2)."""
        obj = self.cluster.read()
        try:
            spec = store.parse(obj, self.name, self.namespace)
        except InvalidInput as err:
            if CanaryStatus.from_dict(obj.get("status")).phase not in MOVING:
                raise
            if self._last_valid is not None:
                return obj, self._last_valid, str(err)
            try:  # a watcher that never saw it valid: its fields are enough to end the run
                fields = self.resolve(store.parse_fields(obj, self.name, self.namespace).model)
            except InvalidInput:
                raise err from None
            return obj, fields, str(err)
        self.choice = choice_of(spec.model, self.opts.mesh_provider, self.opts.project_mesh_provider)
        self._last_valid = self.resolve(spec.model)  # its provider settled (routing.provider)
        return obj, self._last_valid, None

    def _tick(self) -> engine.TickResult:
        obj, canary, spec_error = self.read()
        status = CanaryStatus.from_dict(obj.get("status"))
        self._marks = store.operator_marks(obj)
        obs = self.observe(canary, obj, status)
        if spec_error is not None:
            obs = replace(obs, spec_error=spec_error)
        self.phase_before = status.phase
        result, obs = self.decide(canary, status, obs)
        self.execute(canary, obj, result.actions, result.status, status)
        stored = obj.get("status") or {}
        claim = bool(stored.get("phase")) and not progdel_wrote_last(stored)
        if claim or result.status.to_dict() != status.to_dict():
            # also when only the bookkeeping was stale (another driver wrote last): replace it
            self.cluster.write_status(result.status.to_dict())
        if obs.command is not None:
            self.cluster.clear_request()
        record = self.tick_record(canary, result, obs)
        served = self.verify_traffic(canary, obj, status, obs)
        if served is not None:
            record["served"] = served
        self.history.tick(canary, status.phase, result.status, obs.revision, record)
        self.sink(record)
        return result

    def verify_traffic(
        self, canary: Canary, obj: dict[str, Any], status: CanaryStatus, obs: Observation
    ) -> records.ServedSplit | None:
        """The split Istio served during the last interval, beside the weight set for it; a split
        far from that weight becomes a Warning event. Only while a weighted run is under way."""
        if obs.weights is None or obs.infra_error is not None or status.phase not in ANALYSING:
            return None
        window = format_go_duration(canary.analysis.interval_seconds)
        try:
            served = traffic.served_split(
                self.servers.provider(self.metrics_url(canary)),
                canary.namespace,
                canary.target_name,
                window,
                obs.now,
                canary.spec.provider,
            )
        except MetricsError:
            return None
        if served is None:
            return None
        warning = traffic.split_warning(
            obs.weights.canary,
            served,
            canary.settings.split_tolerance,
            served.get("rps"),
            name=f"{canary.name}.{canary.namespace}",
        )
        if warning:
            self.cluster.record_event(obj, "Warning", warning)
            self.sink(records.event_record("Warning", warning, obs.now))
        split: records.ServedSplit = {
            "primary": served["primary"],
            "canary": served["canary"],
            "rps": served["rps"],
            "weight": obs.weights.canary,
        }
        return split

    def tick_record(self, canary: Canary, result: engine.TickResult, obs: Observation) -> records.TickRecord:
        s = result.status
        weights = next((a for a in reversed(result.actions) if isinstance(a, SetWeights)), None)
        canary_w = weights.canary if weights else (obs.weights.canary if obs.weights else s.canary_weight)
        primary_w = weights.primary if weights else (obs.weights.primary if obs.weights else 100 - canary_w)
        return records.tick_record(
            canary, s, obs.now, canary_weight=canary_w, primary_weight=primary_w, note=result.note
        )

    # -- the loop -------------------------------------------------------------------------

    def run(self) -> ExitCode:
        """Drive the canary until its run ends; the exit code says how it ended."""
        self.servers  # noqa: B018 - a bad credential is refused before anything is done
        obj, canary, _invalid = self.read()
        note = self.choice.note(f"canary {self.namespace}/{self.name}") if self.choice else None
        if note:
            self.sink(records.event_record("Normal", note, self.clock.now()))
        interval = canary.analysis.interval_seconds
        saved_timeout = self.cluster.timeout
        self.cluster.timeout = (
            saved_timeout or API_REQUEST_TIMEOUT
        )  # a hung request must not outlast the lease
        lease = self.cluster.lease(lease_seconds(canary), self.identity)
        self._renewed_at = self.clock.now()
        try:
            lease.acquire()
            try:
                if CanaryStatus.from_dict(obj.get("status")).phase not in MOVING:
                    # before any traffic moves; a run under way judges its queries tick by tick
                    self.preflight(canary)
                return self._loop(interval, lease)
            except BaseException as err:  # the run goes on without this driver: history says why
                why = interruption(err)
                if why is not None:
                    self.history.interrupt(why, records.stamp(self.clock.now()))
                raise
            finally:
                with contextlib.suppress(Unreachable, KubeError):  # the API may be what ended the run
                    lease.release()
        finally:
            self.cluster.timeout = saved_timeout
            self.close()

    def _loop(self, interval: float, lease: Any) -> ExitCode:
        started = self.clock.now()
        while True:
            try:
                result = self.tick()
            except (Unreachable, ServerError) as err:
                # the API server itself failed between observation and write: hold and retry
                self.sink(records.event_record("Warning", str(err), self.clock.now()))
                result = None
            if result is not None:
                final = result.settled and result.exit_hint is not None
                # a run ends on the tick that leaves a running phase for a final one
                run_ended = final and self.phase_before in _RUN_PHASES
                if self.opts.until_initialized and final:
                    return result.exit_hint or ExitCode.OK
                if run_ended:
                    self._result_record(result)
                    if not self.opts.follow:
                        return result.exit_hint or ExitCode.OK
                if self.opts.once:
                    return (result.exit_hint or ExitCode.OK) if final else ExitCode.WAITING
            elif self.opts.once:
                return ExitCode.UNREACHABLE
            elapsed = (self.clock.now() - started).total_seconds()
            if self.opts.timeout is not None and elapsed >= self.opts.timeout:
                raise ProgdelError(
                    f"canary {self.namespace}/{self.name}: still running after {self.opts.timeout:.0f}s",
                    ExitCode.TIMEOUT,
                )
            self._wait(interval, lease)

    def _result_record(self, result: engine.TickResult) -> None:
        s = result.status
        record = records.result_record(
            f"{self.namespace}/{self.name}",
            self.clock.now(),
            str(s.phase),
            records.outcome_of(str(s.phase), result.exit_hint),
            result.exit_hint or ExitCode.OK,
            str(s.failure_reason or ""),
        )
        self.history.finish(record["outcome"], record["message"], record["exitCode"], record["time"])
        if self.history.last is not None:
            record["run"] = self.history.last.id
        self.sink(record)

    def _wait(self, interval: float, lease: Any) -> None:
        """Sleep until the next tick, renewing the lease and waking early for operator requests.

        Only ``self.clock`` measures time here, so a replay clock can run a whole canary over
        recorded history in moments.
        """
        start = self.clock.now()
        renew_every = max(1.0, lease.duration_seconds / 3)
        last_renew = start
        while True:
            now = self.clock.now()
            left = interval - (now - start).total_seconds()
            if left <= 0:
                break
            self.sink({"kind": "countdown", "seconds": round(left, 1)})
            self.clock.sleep(min(left, 0.5))
            if (self.clock.now() - last_renew).total_seconds() >= renew_every:
                self._renew(lease)
                last_renew = self.clock.now()
            try:
                obj = self.cluster.read()
            except (KubeError, Unreachable):
                continue
            if store.pending_request(obj) is not None or store.operator_marks(obj) != self._marks:
                break
        self._renew(lease)

    def _renew(self, lease: Any) -> None:
        """Renew the lease. While the API does not answer (a restart, a network blip), hold the
        canary as it is and retry with backoff, saying so, for as long as the lease is sure to
        be ours; past that another watcher may take it over, so stop (exit 6) before it expires."""
        attempt = self.clock.now()
        try:
            lease.renew()
        except (Unreachable, ServerError) as err:
            attempt = self._ride_out(lease, err)
        self._renewed_at = attempt  # when the request left: the server's renewTime is later

    def _ride_out(self, lease: Any, err: ProgdelError) -> datetime:
        """Retry ``lease.renew()`` until it succeeds (the time of the good attempt) or the lease
        could expire (``Unreachable``). Each retry is given a sixth of the lease (a read and a
        write), so the last one ends before the lease does."""
        duration = float(lease.duration_seconds)
        per_request = max(1.0, duration / 6)
        deadline = self._renewed_at + timedelta(seconds=duration - 2 * per_request)
        started = self.clock.now()
        delay = 0.5
        self.sink(
            records.event_record(
                "Warning",
                f"Cluster API unreachable: {err}; holding canary {self.namespace}/{self.name} as "
                f"it is and retrying for up to {max(0.0, (deadline - started).total_seconds()):.0f}s, while "
                "its lease lasts",
                started,
            )
        )
        saved_timeout, self.cluster.timeout = self.cluster.timeout, per_request
        try:
            while True:
                left = (deadline - self.clock.now()).total_seconds()
                if left <= 0:
                    raise Unreachable(
                        f"canary {self.namespace}/{self.name}: the cluster API did not answer for "
                        f"{(self.clock.now() - started).total_seconds():.0f}s, and the {duration:.0f}s lease "
                        f"would expire: stopped driving it ({err})"
                    )
                self.sink({"kind": "outage", "seconds": round(left, 1), "message": str(err)})
                self.clock.sleep(min(delay, left))
                delay = min(2 * delay, per_request)
                attempt = self.clock.now()
                try:
                    lease.renew()
                except (Unreachable, ServerError) as again:
                    err = again
                    continue
                elapsed = (self.clock.now() - started).total_seconds()
                self.sink(
                    records.event_record(
                        "Normal",
                        f"Cluster API answers again after {elapsed:.0f}s: resuming",
                        self.clock.now(),
                    )
                )
                return attempt
        finally:
            self.cluster.timeout = saved_timeout


__all__ = ["Alerts", "CanaryRunner", "Cluster", "Hooks", "Ports", "RunOptions"]
