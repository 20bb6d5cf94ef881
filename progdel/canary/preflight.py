"""Preflight: run every query once and show what ``init`` would write, without writing anything.

``progdel canary check -f canary.yaml`` answers two questions before any traffic moves:

- **Would the analysis pass right now?** Every metric's query is rendered exactly as the runner
  renders it (built-in Istio queries, inline queries, MetricTemplates from ``--templates`` files or
  the cluster), sent to its Prometheus once, and judged with the runner's own rules (thresholds,
  the no-data policy). ``at`` evaluates the queries at another time, to rehearse on past data.
- **What would ``init`` create or change?** ``plan_init`` runs init's own steps (the runner's
  housekeeping, then the 100/0 weights and the scale to zero) against ``PlannedKube``: a view of
  the cluster that reads through to it and keeps every write in memory. Nothing is duplicated: the
  objects are the ones ``Workloads``, the router and ``store`` would write, and a write that
  reached the cluster would be a bug (``PlannedKube`` refuses any request but GET).
- **May the user run the loop?** ``needed_access`` lists every right ``init`` and ``watch`` use
  for this canary, ``history_access`` those its run history uses; SelfSubjectAccessReviews
  (``denied``) tell which of them RBAC does not grant.

Exit codes of a check (the worst wins): 2 a spec error or a query Prometheus rejects (or init
would fail on the cluster's objects, e.g. a missing target, or RBAC denies a right the loop
needs), 6 a Prometheus (or, for a
MetricTemplate only the cluster holds, the cluster) that cannot be reached, 3 a metric that would
fail (no data counts as failing under the ``fail`` policy), 5 a metric that would hold (no data
under ``hold``), 0 otherwise. An unreachable cluster does not fail the check: the metrics are
still checked and the cluster part is reported as skipped.
"""

from __future__ import annotations

import copy
import difflib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import yaml

from progdel.canary import judge, store, traffic
from progdel.canary.actions import ScaleCanaryToZero, SetWeights
from progdel.canary.alerts import ALERTPROVIDERS
from progdel.canary.revision import referenced_configs
from progdel.canary.status import CanaryStatus, Phase
from progdel.config.canary import Canary, MetricTemplate
from progdel.errors import ExitCode, InvalidInput, ProgdelError, Unreachable
from progdel.kube.access import Access, MissingRights, denied, group_rights
from progdel.kube.client import Kube
from progdel.kube.errors import AlreadyExists, Conflict, NotFound, ServerError, describe_object
from progdel.kube.resources import (
    CANARIES,
    CONFIGMAPS,
    DEPLOYMENTS,
    DESTINATIONRULES,
    EVENTS,
    HPAS,
    HTTPROUTES,
    LEASES,
    METRICTEMPLATES,
    SECRETS,
    SERVICES,
    VIRTUALSERVICES,
    Resource,
)
from progdel.metrics.builtin import threshold_bounds
from progdel.metrics.comparison import Comparison
from progdel.metrics.incluster import resolves
from progdel.metrics.prometheus import (
    PrometheusProvider,
    compared_samples,
    configured_prometheus_url,
    resolve_prometheus_url,
    service_address,
)
from progdel.metrics.servers import Headers, MetricsServers, SecretName
from progdel.metrics.templates import MetricQuery, metric_queries, one_metric, unsupported_provider

if TYPE_CHECKING:
    from progdel.canary.runner import RunOptions

# --------------------------------------------------------------------------------------------
# A read-through, write-in-memory view of the cluster
# --------------------------------------------------------------------------------------------

_Key = tuple[str, str, str, str]  # group, plural, namespace, name
_SERVER_FIELDS = ("resourceVersion", "uid", "creationTimestamp", "managedFields", "generation", "selfLink")
#: the kinds a plan reports (reads of ConfigMaps, Secrets, Leases... are not objects init writes)
SHOWN_KINDS = (
    "Canary",
    "MetricTemplate",
    "Deployment",
    "Service",
    "DestinationRule",
    "VirtualService",
    "HTTPRoute",
    "HorizontalPodAutoscaler",
)


def _with_type(resource: Resource, obj: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": resource.api_version, "kind": resource.kind, **obj}


def _merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = _merge_patch(out.get(k), v)
    return out


@dataclass
class PlannedObject:
    resource: Resource
    namespace: str | None
    name: str
    live: dict[str, Any] | None
    planned: dict[str, Any] | None = None
    written: bool = False


class PlannedKube(Kube):
    """A ``Kube`` whose reads go to the cluster and whose writes stay in memory.

    Later reads see the planned writes, so a sequence of steps (create the primary, then read it
    back, update the VirtualService twice...) plans exactly what it would do. Only GET requests
    ever reach the API server; anything else raises. Label and field selectors of list calls are
    applied by the server to live objects only (planned objects are added unfiltered).
    """

    def __init__(self, kube: Kube) -> None:
        super().__init__(kube.api, kube.namespace)
        self.objects: dict[_Key, PlannedObject] = {}

    def _send(self, method: str, path: str, **kw: Any) -> Any:
        if method.upper() != "GET":
            raise RuntimeError(f"PlannedKube never writes: refused {method} {path}")
        return super()._send(method, path, **kw)

    def _key(self, resource: Resource, name: str, namespace: str | None) -> _Key:
        return (resource.group, resource.plural, self._ns(resource, namespace) or "", name)

    def _entry(self, resource: Resource, name: str, namespace: str | None) -> PlannedObject:
        key = self._key(resource, name, namespace)
        if key not in self.objects:
            try:
                live: dict[str, Any] | None = super().get(resource, name, namespace)
            except NotFound:
                live = None
            self.objects[key] = PlannedObject(resource, self._ns(resource, namespace), name, live, live)
        return self.objects[key]

    def _not_found(self, resource: Resource, name: str, namespace: str | None) -> NotFound:
        return NotFound(f"{describe_object(resource, name, self._ns(resource, namespace))} not found", 404)

    def _store(self, entry: PlannedObject, obj: dict[str, Any] | None) -> dict[str, Any]:
        entry.planned = copy.deepcopy(obj)
        entry.written = True
        return copy.deepcopy(obj) if obj is not None else {}

    # -- verbs ---------------------------------------------------------------------------

    def get(self, resource: Resource, name: str, namespace: str | None = None) -> dict[str, Any]:
        entry = self._entry(resource, name, namespace)
        if entry.planned is None:
            raise self._not_found(resource, name, namespace)
        return copy.deepcopy(entry.planned)

    def get_list(
        self,
        resource: Resource,
        namespace: str | None = None,
        *,
        all_namespaces: bool = False,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> dict[str, Any]:
        result = super().get_list(
            resource,
            namespace,
            all_namespaces=all_namespaces,
            label_selector=label_selector,
            field_selector=field_selector,
        )
        ns = None if all_namespaces else (self._ns(resource, namespace) or "")
        items: list[dict[str, Any]] = []
        seen: set[_Key] = set()
        for item in result["items"]:
            meta = item.get("metadata") or {}
            key = (resource.group, resource.plural, meta.get("namespace") or "", meta.get("name", ""))
            seen.add(key)
            entry = self.objects.get(key)
            if entry is None or not entry.written:
                items.append(item)
            elif entry.planned is not None:
                items.append(copy.deepcopy(entry.planned))
        for key, entry in self.objects.items():
            same_kind = key[:2] == (resource.group, resource.plural)
            if same_kind and key not in seen and entry.planned is not None and (ns is None or key[2] == ns):
                items.append(copy.deepcopy(entry.planned))
        result["items"] = items
        return result

    def create(
        self, resource: Resource, obj: dict[str, Any], namespace: str | None = None, *, dry_run: bool = False
    ) -> dict[str, Any]:
        meta = obj.get("metadata") or {}
        ns = self._ns(resource, namespace or meta.get("namespace"))
        entry = self._entry(resource, meta["name"], ns)
        if entry.planned is not None:
            raise AlreadyExists(f"{describe_object(resource, meta['name'], ns)} already exists", 409)
        body = _with_type(resource, copy.deepcopy(obj))
        if ns is not None:
            body["metadata"] = {**body["metadata"], "namespace": ns}
        return self._store(entry, body)

    def replace(
        self,
        resource: Resource,
        obj: dict[str, Any],
        *,
        subresource: str | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        meta = obj.get("metadata") or {}
        entry = self._entry(resource, meta["name"], meta.get("namespace"))
        if entry.planned is None:
            raise self._not_found(resource, meta["name"], meta.get("namespace"))
        if subresource == "status":
            new = {**entry.planned, "status": copy.deepcopy(obj.get("status"))}
        else:
            new = _with_type(resource, copy.deepcopy(obj))
            if "status" in entry.planned:
                new["status"] = entry.planned["status"]
        return self._store(entry, new)

    def patch(
        self,
        resource: Resource,
        name: str,
        patch: dict[str, Any] | list[dict[str, Any]],
        namespace: str | None = None,
        *,
        content_type: str | None = None,
        subresource: str | None = None,
    ) -> dict[str, Any]:
        entry = self._entry(resource, name, namespace)
        if entry.planned is None:
            raise self._not_found(resource, name, namespace)
        if isinstance(patch, list):
            raise InvalidInput("a plan cannot follow a JSON patch; this is a bug in progdel")
        # a merge patch; a strategic merge patch is planned as a merge patch (lists replaced)
        return self._store(entry, _merge_patch(entry.planned, patch))

    def apply(
        self,
        resource: Resource,
        obj: dict[str, Any],
        *,
        field_manager: str = "progdel",
        force: bool = False,
    ) -> dict[str, Any]:
        meta = obj.get("metadata") or {}
        entry = self._entry(resource, meta["name"], meta.get("namespace"))
        body = _with_type(resource, copy.deepcopy(obj))
        return self._store(entry, _merge_patch(entry.planned or {}, body))

    def delete(
        self,
        resource: Resource,
        name: str,
        namespace: str | None = None,
        *,
        missing_ok: bool = False,
        propagation: str | None = None,
    ) -> bool:
        entry = self._entry(resource, name, namespace)
        if entry.planned is None:
            if missing_ok:
                return False
            raise self._not_found(resource, name, namespace)
        self._store(entry, None)
        return True

    def watch(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("PlannedKube does not watch")


# --------------------------------------------------------------------------------------------
# The plan of `init`
# --------------------------------------------------------------------------------------------


def _comparable(obj: dict[str, Any] | None) -> dict[str, Any] | None:
    if obj is None:
        return None
    out = copy.deepcopy(obj)
    out.pop("status", None)
    meta = out.get("metadata") or {}
    for k in _SERVER_FIELDS:
        meta.pop(k, None)
    for k in ("labels", "annotations"):  # the API server drops empty maps (omitempty)
        if k in meta and not meta[k]:
            meta.pop(k)
    return out


def _sorted(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _sorted(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted(v) for v in value]
    return value


def _yaml(obj: dict[str, Any] | None) -> list[str]:
    """YAML with a stable key order (apiVersion, kind, metadata, spec first; then sorted), so a
    diff shows what changed, not the order a server or progdel happened to write keys in."""
    if obj is None:
        return []
    first = [k for k in ("apiVersion", "kind", "metadata", "spec") if k in obj]
    ordered = {k: _sorted(obj[k]) for k in [*first, *sorted(k for k in obj if k not in first)]}
    return yaml.safe_dump(ordered, sort_keys=False, default_flow_style=False).splitlines(keepends=True)


@dataclass(frozen=True)
class PlannedChange:
    """One object ``init`` would touch: ``create``, ``change``, ``delete`` or ``unchanged``."""

    action: str
    kind: str
    namespace: str | None
    name: str
    object: dict[str, Any] | None  # what progdel would write (None for delete)
    diff: str  # unified diff of YAML, live -> progdel ("" when unchanged)
    resource: Resource | None = None
    body: dict[str, Any] | None = None  # the write itself (with the live resourceVersion)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "action": self.action,
            "kind": self.kind,
            "namespace": self.namespace,
            "name": self.name,
        }
        if self.action == "create":
            out["object"] = self.object
        if self.action in ("change", "delete"):
            out["diff"] = self.diff
        return out


def changes_of(planned: PlannedKube, kinds: Iterable[str] = SHOWN_KINDS) -> list[PlannedChange]:
    """What the plan would do to each object of ``kinds`` it touched, in the order it touched them."""
    out: list[PlannedChange] = []
    shown = set(kinds)
    for entry in planned.objects.values():
        kind = entry.resource.kind
        if kind not in shown or (entry.live is None and entry.planned is None):
            continue
        before, after = _comparable(entry.live), _comparable(entry.planned)
        if before == after:
            action = "unchanged"
        elif before is None:
            action = "create"
        elif after is None:
            action = "delete"
        else:
            action = "change"
        label = f"{kind.lower()} {entry.namespace + '/' if entry.namespace else ''}{entry.name}"
        diff = (
            ""
            if action == "unchanged"
            else "".join(
                difflib.unified_diff(
                    _yaml(before),
                    _yaml(after),
                    fromfile=f"{label} (live)" if before is not None else "/dev/null",
                    tofile=f"{label} (progdel)" if after is not None else "/dev/null",
                )
            )
        )
        out.append(
            PlannedChange(
                action, kind, entry.namespace, entry.name, after, diff, entry.resource, entry.planned
            )
        )
    return out


def server_refusals(kube: Kube, changes: Iterable[PlannedChange]) -> list[str]:
    """Send every object ``changes`` would create or change to the API server as a dry run
    (``dryRun=All``, ``fieldValidation=Strict``), so the cluster's own schemas, CEL rules and
    admission webhooks (istiod's validation among them) judge what init would write. Nothing is
    stored. Returns the refusals, one ``Kind name: message`` each; an unreachable cluster raises
    ``Unreachable``."""
    refusals: list[str] = []
    for change in changes:
        if change.action not in ("create", "change") or change.resource is None or change.body is None:
            continue
        body = copy.deepcopy(change.body)
        body.pop("status", None)
        try:
            if change.action == "create":
                kube.create(change.resource, body, change.namespace, dry_run=True)
            else:
                kube.replace(change.resource, body, dry_run=True)
        except ServerError as err:
            raise Unreachable(str(err)) from None
        except (Unreachable, Conflict):
            raise
        except ProgdelError as err:
            refusals.append(f"{change.kind} {change.name}: {err}")
    return refusals


def plan_init(
    kube: Kube,
    document: dict[str, Any],
    namespace: str,
    templates: Iterable[MetricTemplate] = (),
    options: RunOptions | None = None,
) -> list[PlannedChange]:
    """What ``progdel canary init`` would write for ``document`` (a Canary as written in its file).

    Runs init's own steps against a ``PlannedKube``: apply the MetricTemplates and the Canary, the
    runner's housekeeping (``-primary`` Deployment, Services, routing objects), and, for a canary
    not yet initialized, the 100/0 weights and the target scaled to zero. Raises ``Unreachable``
    when the cluster cannot be reached, ``InvalidInput`` when init would fail on the cluster's
    objects (a missing target, a Deployment without a selector label, a route without progdel's
    destinations...).
    """
    from progdel.canary.cluster import runner_for

    planned = PlannedKube(kube)
    for t in templates:
        body = t.model_dump(by_alias=True, exclude_none=True)
        body["metadata"]["namespace"] = t.metadata.namespace or namespace
        planned.apply(METRICTEMPLATES, body)
    name = str((document.get("metadata") or {}).get("name"))
    store.apply_canary(planned, document, namespace)
    runner = runner_for(planned, name, namespace, lambda _record: None, options)
    runner.plan = True  # plan what init does once the primary is ready
    try:
        obj, canary, _invalid = runner.read()
        status = CanaryStatus.from_dict(obj.get("status"))
        for template in runner.templates(canary)[0]:
            refused = unsupported_provider(template)
            if refused:  # never sent as PromQL to a server that speaks another language
                raise InvalidInput(refused)
        obs = runner.observe(canary, obj, status)
        if obs.infra_error is not None:
            raise Unreachable(obs.infra_error)
        if status.phase in (Phase.NONE, Phase.INITIALIZING):
            runner.execute(canary, obj, [SetWeights(100, 0), ScaleCanaryToZero()])
    except ServerError as err:
        raise Unreachable(str(err)) from None
    except (Unreachable, InvalidInput):
        raise
    except ProgdelError as err:  # e.g. a RoutingError: init would stop on it
        raise InvalidInput(str(err)) from None
    return changes_of(planned)


def ensure_init_accepted(
    kube: Kube,
    document: dict[str, Any],
    namespace: str,
    templates: Iterable[MetricTemplate] = (),
    options: RunOptions | None = None,
) -> list[PlannedChange]:
    """Plan ``init`` and have the API server judge every object it would write (a dry run): the
    plan, or ``InvalidInput`` listing each refusal. ``init`` calls this before it writes anything,
    the Canary included, so a refused object never leaves a half-made canary behind."""
    changes = plan_init(kube, document, namespace, templates, options)
    refusals = server_refusals(kube, changes)
    if refusals:
        lines = "\n  ".join(refusals)
        raise InvalidInput(
            f"the cluster refuses what canary init would write (nothing was written):\n  {lines}"
        )
    return changes


# --------------------------------------------------------------------------------------------
# The metrics
# --------------------------------------------------------------------------------------------

#: verdicts and the exit code each one leads to (the worst of a check wins)
VERDICT_EXIT = {
    "pass": ExitCode.OK,
    "skipped": ExitCode.OK,
    "hold": ExitCode.WAITING,
    "fail": ExitCode.CANARY_FAILED,
    "no-data": ExitCode.CANARY_FAILED,
    "unreachable": ExitCode.UNREACHABLE,
    "rejected": ExitCode.INVALID_INPUT,
    "invalid": ExitCode.INVALID_INPUT,
}
_SEVERITY = [
    ExitCode.OK,
    ExitCode.WAITING,
    ExitCode.CANARY_FAILED,
    ExitCode.UNREACHABLE,
    ExitCode.INVALID_INPUT,
]


@dataclass
class MetricCheck:
    """One metric of a check: the query as sent, where, its value and the verdict."""

    name: str
    query: str | None
    server: str | None
    min: float | None
    max: float | None
    value: float | None = None
    verdict: str = "pass"
    message: str = ""
    warning: str = ""
    """Why the query deserves a second look (a variable that shapes it), beside the verdict."""
    comparison: Comparison | None = None  # the statistical judge's, for a metric that has one

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "query": self.query,
            "server": self.server,
            "value": self.value,
            "min": self.min,
            "max": self.max,
            "verdict": self.verdict,
            "message": self.message,
            "warning": self.warning or None,
        }
        if self.comparison is not None:
            out["comparison"] = self.comparison.to_dict()
        return out


def check_metrics(
    canary: Canary,
    render: Callable[[Canary], list[MetricQuery]],
    default_url: str,
    at: datetime,
    servers: MetricsServers,
    unavailable_templates: Callable[[Canary], str | None] = lambda _c: None,
) -> list[MetricCheck]:
    """Render each metric with ``render`` (the runner's ``queries``, or ``metric_queries`` over the
    given templates), run it once at ``at`` (on the server ``servers`` gives, with the credentials
    that belong there and the template's headers) and judge it as the engine would."""
    checks: list[MetricCheck] = []
    to_send: dict[tuple[str, SecretName | None, Headers, bool], list[tuple[MetricCheck, MetricQuery]]] = {}
    scales: dict[int, float] = {}
    settings = canary.settings
    for i, metric in enumerate(canary.analysis.metrics):
        lo, hi = threshold_bounds(metric)
        check = MetricCheck(metric.name, None, None, lo, hi)
        checks.append(check)
        one = one_metric(canary, i)
        missing = unavailable_templates(one)
        if missing:
            check.verdict, check.message = "unreachable", missing
            continue
        try:
            (query,) = render(one)
        except (Unreachable, ServerError) as err:
            check.verdict, check.message = "unreachable", str(err)
            continue
        except ProgdelError as err:
            check.verdict, check.message = "invalid", str(err)
            continue
        check.query, check.server = query.query, query.address or default_url
        if query.shaping_variables:
            names = ", ".join(query.shaping_variables)
            check.warning = (
                f"templateVariables {names} used outside a quoted label value: the value becomes part "
                "of the query's structure and can change what it selects or computes; quote it "
                '(label="{{ variables.X }}") unless that is intended'
            )
        scales[id(check)] = query.scale
        server = (check.server, query.secret, query.headers, query.insecure_skip_verify)
        to_send.setdefault(server, []).append((check, query))
    for (url, secret, headers, insecure), batch in to_send.items():
        try:
            provider = servers.provider(url, secret, headers, insecure)
        except (Unreachable, ServerError) as err:
            for check, _q in batch:
                check.verdict, check.message = "unreachable", str(err)
            continue
        except ProgdelError as err:
            for check, _q in batch:
                check.verdict, check.message = "invalid", str(err)
            continue
        values = provider.query_many([(str(i), q.query) for i, (_c, q) in enumerate(batch)], at)
        samples = {
            id(check): compared_samples(provider, q, at) for check, q in batch if q.comparison is not None
        }
        for i, (check, _q) in enumerate(batch):
            result = judge.MetricResult.from_provider(values[str(i)], scales.get(id(check), 1.0))
            if id(check) in samples:
                result = result.with_samples(samples[id(check)])
            metric = next(m for m in canary.analysis.metrics if m.name == check.name)
            _judge(check, result, canary, metric)
    if settings.min_requests:
        _hold_on_too_little_traffic(checks, canary, servers.provider(default_url), at)
    order = {m.name: i for i, m in enumerate(judge.ordered_metrics(canary.analysis))}
    return sorted(checks, key=lambda c: order.get(c.name, 0))


def _hold_on_too_little_traffic(
    checks: list[MetricCheck], canary: Canary, provider: PrometheusProvider, at: datetime
) -> None:
    """As the engine: below ``progdel.dev/min-requests`` served requests, judged metrics hold."""
    window = traffic.metrics_window(canary)
    query = traffic.canary_requests_query(canary.namespace, canary.target_name, window, canary.spec.provider)
    answer = provider.query_many([("requests", query)], at)["requests"]
    result = judge.MetricResult.from_provider(answer)
    if result.outcome not in (judge.MetricOutcome.VALUE, judge.MetricOutcome.NO_DATA):
        return  # Prometheus failed: the metrics' own verdicts say so
    served = result.value or 0.0
    minimum = canary.settings.min_requests
    if served >= minimum:
        return
    why = (
        f"{canary.target_name}.{canary.namespace} served {served:.0f} requests in the last {window}, "
        f"fewer than the {minimum} progdel.dev/min-requests asks for before judging"
    )
    for check in checks:
        if check.verdict in ("pass", "fail", "no-data", "skipped"):
            check.verdict, check.message = "hold", why


def _judge(check: MetricCheck, result: judge.MetricResult, canary: Canary, metric: Any) -> None:
    """The engine's verdict on the metric (``judge_metric``), in the words of a check."""
    judged = judge.judge_metric(canary, metric, result)
    check.value = judged.value
    check.comparison = judged.comparison
    if judged.effect is judge.Effect.INFRA:
        check.verdict = "unreachable"
    elif judged.effect is judge.Effect.FAIL and judged.verdict == "error":
        check.verdict = "fail"  # the metric could not be evaluated: a failed check
    else:
        check.verdict = judged.verdict
    check.message = judged.message
    policy = canary.settings.no_data_policy(metric.name)
    if result.outcome is judge.MetricOutcome.NO_DATA:
        check.message = f"{result.message}: {judged.message} (no-data policy: {policy})"
    elif judged.comparison is not None and judged.comparison.verdict == "no-data":
        check.message = f"{judged.message} (no-data policy: {policy})"


# --------------------------------------------------------------------------------------------
# The RBAC rights of the canary loop
# --------------------------------------------------------------------------------------------

_CONFIG_RESOURCES = {"ConfigMap": CONFIGMAPS, "Secret": SECRETS}


def needed_access(
    canary: Canary,
    *,
    templates: Iterable[MetricTemplate] = (),
    pod_template: Mapping[str, Any] | None = None,
    alert_secret_namespaces: Iterable[str] = (),
    metric_secret_namespaces: Iterable[str] = (),
) -> list[Access]:
    """Every right ``canary init`` and ``canary watch`` use for ``canary``, in the order they are
    first needed. ``canary`` must carry its namespace; every right is in it unless said otherwise.

    - ``canaries.flagger.app``: get (the spec and status, read every tick and polled between
      ticks for operator requests), create (init applies a Canary that does not exist yet),
      update (init updates an existing Canary's spec; a run consumes an approval), patch (a run
      clears the abort/promote request it consumed);
    - ``canaries.flagger.app/status``: update (the run's state, written after every transition);
    - ``leases.coordination.k8s.io``: get, create, update (``progdel-canary-<name>``: one driver
      at a time; init and watch take it, renew it and release it);
    - ``events``: create, and get and update (a repeated Event is counted up by read-modify-write):
      the Events on the Canary that ``kubectl describe`` and ``canary events`` show;
    - ``deployments.apps``: get (the target, the primary, their readiness), create (the
      ``-primary``), update (promotion copies the target's pod template to the primary), patch
      (scaling the target: a merge patch of ``spec.replicas``, not the scale subresource);
    - ``services``: get, create, update (``<apex>``, ``-primary``, ``-canary``; a selector or
      port that drifted is put back);
    - routing, by ``spec.provider``: Istio ``destinationrules`` and ``virtualservices``
      (``networking.istio.io``), or Gateway API ``httproutes`` (``gateway.networking.k8s.io``, at
      the provider's version): get, create, update (created or adopted, then the weights);
    - ``horizontalpodautoscalers.autoscaling``: get, create, update, with ``autoscalerRef`` (the
      target's HPA is read and copied to ``<hpa>-primary``);
    - ``configmaps``, ``secrets``: get, for those the target's pod template uses (``pod_template``,
      the target's ``spec.template`` as read; None when unknown): their data is part of the
      revision;
    - ``metrictemplates.flagger.app``: get in the namespace of each ``templateRef`` (read from the
      cluster unless ``watch`` is given the same files); create and patch (server-side apply) in
      the namespace of each of ``templates``, the files ``init --templates`` applies;
    - ``alertproviders.flagger.app``: get in the namespace of each ``analysis.alerts`` provider;
      ``secrets``: get in each of ``alert_secret_namespaces``, where those providers keep their
      address (``spec.secretRef``);
    - ``secrets``: get in the namespace of each MetricTemplate whose provider names a
      ``secretRef`` (its credentials, read at every check): those of ``templates`` and
      ``metric_secret_namespaces`` (the cluster's).
    """
    from progdel.routing import provider_of
    from progdel.routing.gatewayapi import HTTPROUTES_V1BETA1

    ns = canary.namespace
    provider = provider_of(canary)
    wanted = [Access(v, CANARIES, ns) for v in ("get", "create", "update", "patch")]
    wanted.append(Access("update", CANARIES, ns, "status"))
    wanted += [Access(v, LEASES, ns) for v in ("get", "create", "update")]
    wanted += [Access(v, EVENTS, ns) for v in ("create", "get", "update")]
    wanted += [Access(v, DEPLOYMENTS, ns) for v in ("get", "create", "update", "patch")]
    wanted += [Access(v, SERVICES, ns) for v in ("get", "create", "update")]
    if provider == "gatewayapi:v1beta1":
        routes = [HTTPROUTES_V1BETA1]
    elif provider.startswith("gatewayapi"):
        routes = [HTTPROUTES]
    else:
        routes = [DESTINATIONRULES, VIRTUALSERVICES]
    wanted += [Access(v, r, ns) for r in routes for v in ("get", "create", "update")]
    if canary.spec.autoscaler_ref is not None:
        wanted += [Access(v, HPAS, ns) for v in ("get", "create", "update")]
    for ref in referenced_configs(pod_template or {}):
        wanted.append(Access("get", _CONFIG_RESOURCES[ref.kind], ns))
    analysis = canary.analysis
    for m in analysis.metrics:
        if m.template_ref is not None:
            wanted.append(Access("get", METRICTEMPLATES, m.template_ref.namespace or ns))
    for t in templates:
        wanted += [Access(v, METRICTEMPLATES, t.metadata.namespace or ns) for v in ("create", "patch")]
    for alert in analysis.alerts:
        wanted.append(Access("get", ALERTPROVIDERS, alert.provider_ref.namespace or ns))
    wanted += [Access("get", SECRETS, secret_ns) for secret_ns in alert_secret_namespaces]
    wanted += [
        Access("get", SECRETS, t.metadata.namespace or ns) for t in templates if t.spec.provider.secret_ref
    ]
    wanted += [Access("get", SECRETS, secret_ns) for secret_ns in metric_secret_namespaces]
    return list(dict.fromkeys(wanted))


def history_access(canary: Canary) -> list[Access]:
    """The rights the run history (``progdel.canary.history``) uses in the canary's namespace, on
    the ConfigMap kept per run: list (a canary's runs, by label), get and update (each tick
    rewrites the open run's record), create (a new run), delete (the oldest finished runs past
    the kept number). Without them a run still goes on, with one Warning and no history."""
    return [Access(v, CONFIGMAPS, canary.namespace) for v in ("list", "get", "create", "update", "delete")]


def _cluster_inputs(kube: Kube, canary: Canary) -> tuple[Mapping[str, Any] | None, list[str], list[str]]:
    """What of the cluster ``needed_access`` depends on: the target's pod template, the
    namespaces of the Secrets the canary's AlertProviders name, and those of the cluster's
    MetricTemplates that name a Secret. What cannot be read is left out (the rights to read it
    are asked for anyway)."""
    ns = canary.namespace
    try:
        target = kube.get_or_none(DEPLOYMENTS, canary.target_name, ns)
    except ProgdelError:
        target = None
    pod_template = (target.get("spec") or {}).get("template") if target is not None else None
    secret_namespaces: list[str] = []
    for alert in canary.analysis.alerts:
        provider_ns = alert.provider_ref.namespace or ns
        try:
            provider = kube.get_or_none(ALERTPROVIDERS, alert.provider_ref.name, provider_ns)
        except ProgdelError:
            continue
        ref = ((provider or {}).get("spec") or {}).get("secretRef") or {}
        if ref.get("name"):
            secret_namespaces.append(ref.get("namespace") or provider_ns)
    metric_namespaces: list[str] = []
    for metric in canary.analysis.metrics:
        if metric.template_ref is None:
            continue
        template_ns = metric.template_ref.namespace or ns
        try:
            template = kube.get_or_none(METRICTEMPLATES, metric.template_ref.name, template_ns)
        except ProgdelError:
            continue
        provider = ((template or {}).get("spec") or {}).get("provider") or {}
        if (provider.get("secretRef") or {}).get("name"):
            metric_namespaces.append(template_ns)
    return pod_template, secret_namespaces, metric_namespaces


def proxy_access(canary: Canary, prometheus_url: str | None) -> list[Access]:
    """The ``services/proxy`` rights of the in-cluster Services progdel reaches through the API
    server because their addresses do not resolve here: ``get`` on a Prometheus (its queries are
    GETs), ``create`` on each webhook's Service (Flagger's webhooks are POSTs, which RBAC checks
    as ``create``)."""
    wanted: list[Access] = []
    proxied = service_address(prometheus_url) if prometheus_url else None
    if proxied is not None and not resolves(proxied.host):
        wanted.append(Access("get", SERVICES, proxied.namespace, "proxy"))
    for hook in canary.analysis.webhooks:
        address = service_address(hook.url)
        if address is not None and not resolves(address.host):
            wanted.append(Access("create", SERVICES, address.namespace, "proxy"))
    return list(dict.fromkeys(wanted))


def check_access(
    kube: Kube, canary: Canary, templates: Iterable[MetricTemplate] = (), prometheus_url: str | None = None
) -> tuple[list[MissingRights] | None, str]:
    """The rights of ``needed_access`` and ``history_access`` RBAC does not grant, grouped, and a
    note; None when the cluster cannot answer SelfSubjectAccessReviews (or stopped answering).
    With a ``prometheus_url`` reached through the API server's service proxy, that right too."""
    pod_template, secret_namespaces, metric_namespaces = _cluster_inputs(kube, canary)
    wanted = needed_access(
        canary,
        templates=templates,
        pod_template=pod_template,
        alert_secret_namespaces=secret_namespaces,
        metric_secret_namespaces=metric_namespaces,
    )
    wanted += proxy_access(canary, prometheus_url)
    wanted += history_access(canary)
    wanted = list(dict.fromkeys(wanted))
    try:
        missing = denied(kube, wanted)
    except ProgdelError as err:
        return None, f"not checked: {err}"
    if missing is None:
        return None, (
            "not checked: the cluster does not answer SelfSubjectAccessReviews "
            "(a missing right shows as a 403 when init or watch runs)"
        )
    if not missing:
        return [], f"all {len(wanted)} rights init and watch use are granted"
    return group_rights(missing), (
        f"{len(missing)} of the {len(wanted)} rights init and watch use are not granted: "
        "they would meet a 403"
    )


# --------------------------------------------------------------------------------------------
# A whole check
# --------------------------------------------------------------------------------------------


@dataclass
class CheckReport:
    canary: str
    at: datetime
    prometheus: str
    metrics: list[MetricCheck]
    cluster_checked: bool
    cluster_note: str
    changes: list[PlannedChange] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)  # the API server's, in a dry run of `init`
    cluster_error: ExitCode | None = None
    access_checked: bool = False
    access_note: str = "not checked: the cluster was not read"
    missing_access: list[MissingRights] = field(default_factory=list)

    @property
    def warnings(self) -> list[str]:
        return [f"metric {m.name}: {m.warning}" for m in self.metrics if m.warning]

    @property
    def exit_code(self) -> ExitCode:
        codes = [VERDICT_EXIT.get(m.verdict, ExitCode.INTERNAL) for m in self.metrics]
        if self.cluster_error is not None:
            codes.append(self.cluster_error)
        if self.missing_access:
            codes.append(ExitCode.INVALID_INPUT)
        return max(codes, key=_SEVERITY.index, default=ExitCode.OK)

    def to_dict(self) -> dict[str, Any]:
        return {
            "canary": self.canary,
            "at": self.at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "prometheus": self.prometheus,
            "metrics": [m.to_dict() for m in self.metrics],
            "cluster": {
                "checked": self.cluster_checked,
                "note": self.cluster_note,
                "objects": [c.to_dict() for c in self.changes],
                "refused": list(self.refusals),
            },
            "rbac": {
                "checked": self.access_checked,
                "note": self.access_note,
                "missing": [m.to_dict() for m in self.missing_access],
            },
            "warnings": self.warnings,
            "exitCode": int(self.exit_code),
        }


def run_check(
    canary: Canary,
    document: dict[str, Any],
    kube: Kube | None,
    *,
    file_templates: list[MetricTemplate],
    prometheus_url: str | None,
    project_prometheus_url: str | None,
    at: datetime,
    cluster_note: str = "",
    options: RunOptions | None = None,
) -> CheckReport:
    """The whole preflight: the plan of ``init`` and the RBAC rights init and watch would miss
    (when ``kube`` is given and answers), and every metric checked once. ``canary`` must carry the
    namespace it will run in."""
    from progdel.canary.cluster import runner_for
    from progdel.canary.runner import RunOptions
    from progdel.routing import provider_of

    provider_of(canary)  # an unsupported provider is a spec error before anything else
    # progdel's own Prometheus credentials are checked before anything else too
    servers = MetricsServers(
        None, configured_prometheus_url(prometheus_url, project_default=project_prometheus_url)
    )
    namespace = canary.namespace
    changes: list[PlannedChange] = []
    refusals: list[str] = []
    cluster_error: ExitCode | None = None
    checked = False
    if kube is not None:
        try:
            changes = plan_init(kube, document, namespace, file_templates, options)
            checked = True
            cluster_note = "read only: nothing was written"
            refusals = server_refusals(kube, changes)
            if refusals:
                cluster_error = ExitCode.INVALID_INPUT
                cluster_note = (
                    f"the cluster refuses {len(refusals)} of the objects init would write (dry run)"
                )
        except Unreachable as err:
            kube, cluster_note = None, f"skipped: {err}"
        except InvalidInput as err:
            cluster_error, cluster_note = ExitCode.INVALID_INPUT, f"init would fail: {err}"
    default_url = resolve_prometheus_url(
        prometheus_url, metrics_server=canary.spec.metrics_server, project_default=project_prometheus_url
    )
    missing_access: list[MissingRights] | None = None
    access_note = "not checked: the cluster was not read"
    if kube is not None:
        missing_access, access_note = check_access(kube, canary, file_templates, prometheus_url=default_url)
    if kube is not None:
        runner = runner_for(
            PlannedKube(kube), canary.name, namespace, lambda _r: None, RunOptions(templates=file_templates)
        )
        render: Callable[[Canary], list[MetricQuery]] = runner.queries
        missing: Callable[[Canary], str | None] = lambda _c: None  # noqa: E731
    else:
        known = {(t.namespace, t.metadata.name) for t in file_templates}

        def render(c: Canary) -> list[MetricQuery]:
            return metric_queries(c, file_templates)

        def missing(c: Canary) -> str | None:
            ref = c.analysis.metrics[0].template_ref
            if ref is None or (ref.namespace or namespace, ref.name) in known:
                return None
            return (
                f"MetricTemplate {ref.namespace or namespace}/{ref.name} is not in --templates "
                "and the cluster was not reached"
            )

    servers.kube = kube
    try:
        metrics = check_metrics(canary, render, default_url, at, servers, missing)
    finally:
        servers.close()
    return CheckReport(
        canary=f"{namespace}/{canary.name}",
        at=at,
        prometheus=default_url,
        metrics=metrics,
        cluster_checked=checked,
        cluster_note=cluster_note,
        changes=changes,
        refusals=refusals,
        cluster_error=cluster_error,
        access_checked=missing_access is not None,
        access_note=access_note,
        missing_access=missing_access or [],
    )


def parse_at(text: str | None) -> datetime:
    """``--at``: RFC 3339 (``2024-01-01T00:05:00Z``) or Unix seconds; now when not given."""
    if text is None or not text.strip():
        return datetime.now(UTC)
    raw = text.strip()
    try:
        return datetime.fromtimestamp(float(raw), UTC)
    except ValueError:
        pass
    try:
        t = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(
            f"--at {raw!r}: expected an RFC 3339 time (2024-01-01T00:05:00Z) or Unix seconds"
        ) from None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def to_json(report: CheckReport) -> str:
    return json.dumps(report.to_dict(), indent=2)


__all__ = [
    "CheckReport",
    "MetricCheck",
    "MissingRights",
    "PlannedChange",
    "PlannedKube",
    "changes_of",
    "check_access",
    "check_metrics",
    "ensure_init_accepted",
    "group_rights",
    "history_access",
    "needed_access",
    "parse_at",
    "plan_init",
    "run_check",
    "server_refusals",
]
