"""Installing an addon: render its charts, order the objects, apply them, prune, wait.

Everything goes through server-side apply with the field manager ``progdel``.
CRDs are applied first and waited for (``Established``, or served by discovery),
then namespaces, then the rest in dependency order. The inventory is written
before the first object is applied and again at the end, so a failure midway
leaves a record that ``progdel addon remove`` or a re-run can act on.

A CRD the cluster already has (installed by hand, by another tool, or built in)
is left exactly as it is, as Helm leaves a chart's ``crds/``: applying it with
force would make progdel its owner, and ``remove`` would then delete every
object of that kind. It is recorded as pre-existing and only has to serve the
versions the addon's objects use.

Fields one of the addon's own controllers owns after install (per
``managedFields``: istiod sets its webhooks' ``failurePolicy`` and ``caBundle``)
are not progdel's: they are left out of what is applied and of drift, so a
re-install neither fights the controller nor reports it.
"""

from __future__ import annotations

import contextlib
import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from progdel.addons import inventory as inv_store
from progdel.addons.catalog import Addon, chart_values
from progdel.addons.charts import ChartRepository, default_values
from progdel.addons.inventory import ADDON_LABEL, Inventory, LabelRef, ObjectRef, object_hash
from progdel.addons.kinds import ApiDiscovery, crd_serves, kind_rank
from progdel.errors import InvalidInput, ProgdelError, TimedOut
from progdel.kube.access import Access, denied, escalations, refused
from progdel.kube.client import FIELD_MANAGER, Kube
from progdel.kube.errors import AlreadyExists, Forbidden
from progdel.kube.fields import owned_by, same_quantity, without
from progdel.kube.resources import CONFIGMAPS, CRDS, DEPLOYMENTS, NAMESPACES, Resource

Report = Callable[[str], None]
INJECTION_LABEL = "istio-injection"


@dataclass
class InstallOptions:
    version: str | None = None
    repo: str | None = None
    values: dict[str, Any] = field(default_factory=dict)  # for every chart of the addon
    chart_values: dict[str, dict[str, Any]] = field(default_factory=dict)  # chart name -> values
    inject: list[str] = field(default_factory=list)
    wait: bool = True
    timeout: float = 300.0


@dataclass
class PlannedObject:
    ref: ObjectRef
    obj: dict[str, Any]


@dataclass
class Plan:
    addon: Addon
    namespace: str
    version: str
    repo: str
    charts: dict[str, str]
    objects: list[PlannedObject]
    labels: list[tuple[str, str, str]]  # (namespace, key, value)

    def manifest(self) -> list[dict[str, Any]]:
        return [p.obj for p in self.objects]


@dataclass
class InstallResult:
    addon: str
    namespace: str
    version: str
    outcome: str  # installed | upgraded | unchanged | updated
    applied: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    pruned: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    """CRDs the cluster had before: left as they are."""
    ingress: str | None = None


class ApplyFailed(ProgdelError):
    """Applying stopped midway; the message says what was applied and how to continue."""


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in override.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def public_gateway(namespace: str) -> dict[str, Any]:
    """The public Gateway canaries route through: port 80, HTTP, all hosts, on the ingress gateway."""
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "Gateway",
        "metadata": {"name": "public-gateway", "namespace": namespace},
        "spec": {
            "selector": {"istio": "ingressgateway"},
            "servers": [{"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": ["*"]}],
        },
    }


# -- planning -------------------------------------------------------------------------------


def plan(
    kube: Kube,
    addon: Addon,
    namespace: str,
    opts: InstallOptions,
    namespaces: dict[str, str],
    discovery: ApiDiscovery | None = None,
) -> Plan:
    """Fetch and render the addon's charts; resolve, namespace and order every object."""
    from progdel.addons.render import render

    version = opts.version or addon.version
    repo = ChartRepository(opts.repo or addon.repo)
    rendered: list[tuple[str, dict[str, Any]]] = []
    charts: dict[str, str] = {}
    for spec in addon.charts:
        archive: Path = repo.fetch(spec.chart, version)
        values = deep_merge(chart_values(addon, spec, namespaces, default_values(archive)), opts.values)
        values = deep_merge(values, opts.chart_values.get(spec.chart, {}))
        for obj in render(archive, values, release=spec.release, namespace=namespace):
            rendered.append((spec.chart, obj))
        charts[spec.chart] = version
    if addon.public_gateway:
        rendered.append(("progdel", public_gateway(namespace)))

    discovery = discovery or ApiDiscovery(kube)
    from_crds: dict[tuple[str, str], Resource] = {}
    for _, obj in rendered:
        if obj.get("kind") == "CustomResourceDefinition":
            for api_version, kind, plural, namespaced in crd_serves(obj):
                group, _, ver = api_version.rpartition("/")
                from_crds[(api_version, kind)] = Resource(group, ver, plural, kind, namespaced)

    planned: list[PlannedObject] = []
    seen: set[str] = set()
    for chart, raw in rendered:
        obj = copy.deepcopy(raw)
        api_version, kind = str(obj["apiVersion"]), str(obj["kind"])
        meta = obj.setdefault("metadata", {})
        if not meta.get("name"):
            raise InvalidInput(f"chart {chart} rendered a {kind} without metadata.name")
        res = from_crds.get((api_version, kind)) or discovery.require(
            api_version, kind, f"the {addon.name} addon (chart {chart}, {kind} {meta['name']})"
        )
        if res.namespaced:
            meta["namespace"] = meta.get("namespace") or namespace
        else:
            meta.pop("namespace", None)
        meta.setdefault("labels", {})[ADDON_LABEL] = addon.name
        ref = ObjectRef(
            api_version=api_version,
            kind=kind,
            plural=res.plural,
            namespaced=res.namespaced,
            namespace=meta.get("namespace", ""),
            name=str(meta["name"]),
            hash=object_hash(obj),
            chart=chart,
        )
        if ref.key in seen:
            raise InvalidInput(f"the {addon.name} addon renders {ref.describe()} twice")
        seen.add(ref.key)
        planned.append(PlannedObject(ref, obj))
    planned.sort(key=lambda p: kind_rank(p.ref.kind))  # stable: chart order within a kind
    labels = [(ns, INJECTION_LABEL, "enabled") for ns in opts.inject]
    return Plan(addon, namespace, version, repo.url, charts, planned, labels)


# -- drift ----------------------------------------------------------------------------------


def drifted_fields(applied: Any, live: Any, path: str = "") -> list[str]:
    """Paths of fields set in ``applied`` whose live value differs.

    Fields only the server set (defaults, status) are not drift, nor a quantity
    the server stored in canonical form (``2048Mi`` as ``2Gi``).
    """
    if isinstance(applied, dict):
        if not isinstance(live, dict):
            return [path or "."]
        out: list[str] = []
        for k, v in applied.items():
            if path == "" and k == "status":
                continue
            sub = f"{path}.{k}" if path else k
            if k not in live:
                if v in (None, {}, [], ""):
                    continue
                out.append(sub)
            else:
                out.extend(drifted_fields(v, live[k], sub))
        return out
    if isinstance(applied, list):
        if not isinstance(live, list) or len(live) != len(applied):
            return [path]
        out = []
        for i, (a, b) in enumerate(zip(applied, live, strict=True)):
            out.extend(drifted_fields(a, b, f"{path}[{i}]"))
        return out
    if applied != live and str(applied) != str(live) and not same_quantity(applied, live):
        return [path]
    return []


def ours(
    applied: dict[str, Any], live: dict[str, Any] | None, controllers: tuple[str, ...]
) -> dict[str, Any]:
    """``applied`` without the fields the addon's ``controllers`` own in ``live`` (their values, not ours)."""
    if live is None or not controllers:
        return applied
    taken = owned_by(live, controllers)
    return without(applied, taken) if taken else applied


def drift(applied: dict[str, Any], live: dict[str, Any], controllers: tuple[str, ...]) -> list[str]:
    """Fields progdel applied that hold another value now, leaving out what the controllers own."""
    return drifted_fields(ours(applied, live, controllers), live)


# -- applying -------------------------------------------------------------------------------


def _ensure_namespace(kube: Kube, name: str, addon: str) -> None:
    """Create namespace ``name`` unless it exists, labelled so that ``remove`` may delete it again."""
    if kube.get_or_none(NAMESPACES, name) is not None:
        return
    labels = {inv_store.MANAGED_BY: "progdel", ADDON_LABEL: addon}
    with contextlib.suppress(AlreadyExists):  # created meanwhile by someone else: theirs
        kube.create(NAMESPACES, {"metadata": {"name": name, "labels": labels}})


def _terminating_reason(obj: dict[str, Any]) -> str:
    """What the cluster says still holds a namespace or CRD being deleted, if anything."""
    conds = (obj.get("status") or {}).get("conditions") or []
    return "; ".join(
        str(c.get("message"))
        for c in conds
        if c.get("status") == "True"
        and c.get("message")
        and c.get("type") != "Established"
        and c.get("type") != "NamesAccepted"
    )


def wait_deletions(kube: Kube, p: Plan, timeout: float, report: Report) -> None:
    """Wait while a namespace or CRD the plan writes is still being deleted (a ``remove`` just now).

    A deleted namespace stays ``Terminating`` while the cluster deletes what it holds, and
    nothing can be created in it meanwhile; a deleted CRD stays until its custom objects are
    gone, and applying it then would only see it vanish. Once they are gone, ``install``
    creates them afresh. Reading the inventory before that would see objects about to vanish.
    """
    names = {p.namespace} | {q.ref.namespace for q in p.objects if q.ref.namespace}
    names |= {q.ref.name for q in p.objects if q.ref.kind == "Namespace"}
    waits = [(NAMESPACES, "namespace", n) for n in sorted(names)]
    waits += [
        (CRDS, "CustomResourceDefinition", q.ref.name)
        for q in p.objects
        if q.ref.kind == "CustomResourceDefinition"
    ]
    deadline = time.monotonic() + timeout
    for resource, what, name in waits:
        said = ""
        while True:
            try:
                obj = kube.get_or_none(resource, name)
            except Forbidden:
                break  # the RBAC pre-check names the missing right
            if obj is None or not (obj.get("metadata") or {}).get("deletionTimestamp"):
                break
            why = _terminating_reason(obj)
            line = f"{p.addon.name}: {what} {name} is being deleted; waiting for it to go" + (
                f" ({why})" if why else ""
            )
            if line != said:
                report(line)
                said = line
            if time.monotonic() >= deadline:
                raise TimedOut(
                    f"{p.addon.name}: {what} {name} is still being deleted after {timeout:g}s"
                    + (f" ({why})" if why else "")
                    + f"; install again once 'kubectl get {resource.plural} {name}' no longer finds it"
                )
            time.sleep(0.2)


def _unchanged(kube: Kube, old: Inventory | None, p: Plan) -> bool:
    if old is None or old.state != "installed" or old.version != p.version:
        return False
    recorded = {o.key: o.hash for o in old.objects}
    if any(recorded.get(q.ref.key) != q.ref.hash for q in p.objects):
        return False
    planned = {q.ref.key for q in p.objects}
    if any(o.key not in planned and o.kind != "CustomResourceDefinition" for o in old.objects):
        return False
    have = {(lb.namespace, lb.key, lb.value) for lb in old.labels}
    if not set(p.labels) <= have:
        return False
    preexisting = {o.key for o in old.objects if o.preexisting}
    for q in p.objects:
        live = kube.get_or_none(q.ref.resource, q.ref.name, q.ref.namespace or None)
        if live is None:
            return False
        if q.ref.key not in preexisting and drift(q.obj, live, p.addon.controllers):
            return False
    return True


def mark_preexisting_crds(kube: Kube, p: Plan, old: Inventory | None) -> None:
    """Mark the plan's CRDs the cluster had before this addon's first install.

    A CRD the addon's inventory says it created stays its own, and so does one
    progdel applied before (a kept CRD of an earlier install); one that exists
    without either was there before and is left alone.
    """
    before = {o.key: o for o in (old.objects if old else [])}
    for q in p.objects:
        if q.ref.kind != "CustomResourceDefinition":
            continue
        recorded = before.get(q.ref.key)
        if recorded is not None:
            preexisting = recorded.preexisting
        else:
            try:
                live = kube.get_or_none(CRDS, q.ref.name)
            except Forbidden:  # the RBAC pre-check names "get customresourcedefinitions"
                live = None
            # one an earlier install of this addon created and its remove kept (it held objects)
            # carries progdel's apply in its managedFields: still the addon's own
            preexisting = live is not None and not _applied_by_progdel(live)
        q.ref = replace(q.ref, preexisting=preexisting)


def _applied_by_progdel(obj: dict[str, Any]) -> bool:
    return any(
        e.get("manager") == FIELD_MANAGER and e.get("operation") == "Apply"
        for e in (obj.get("metadata") or {}).get("managedFields") or []
    )


def check_preexisting_crds(kube: Kube, p: Plan, discovery: ApiDiscovery) -> None:
    """A CRD left as it was must serve every version the addon's own objects use."""
    kept = {q.ref.name for q in p.objects if q.ref.preexisting}
    if not kept:
        return
    for q in p.objects:
        if q.ref.kind == "CustomResourceDefinition":
            continue
        crd = f"{q.ref.plural}.{q.ref.resource.group}"
        if crd in kept and discovery.resource(q.ref.api_version, q.ref.kind) is None:
            raise InvalidInput(
                f"the {p.addon.name} addon needs {q.ref.kind} at {q.ref.api_version}, which the "
                f"CustomResourceDefinition {crd} already on the cluster does not serve; progdel leaves "
                "CRDs it did not create as they are: upgrade it first (kubectl apply --server-side -f "
                "the chart's CRD), nothing was applied"
            )


def _wait_crd(kube: Kube, discovery: ApiDiscovery, obj: dict[str, Any], deadline: float) -> None:
    name = obj["metadata"]["name"]
    serves = crd_serves(obj)
    while True:
        crd = kube.get_or_none(CRDS, name)
        conds = ((crd or {}).get("status") or {}).get("conditions") or []
        if any(c.get("type") == "Established" and c.get("status") == "True" for c in conds):
            return
        for api_version, _, _, _ in serves:
            discovery.forget(api_version)
        if serves and all(discovery.resource(av, kind) for av, kind, _, _ in serves):
            return  # served: established for every purpose progdel has
        if time.monotonic() > deadline:
            raise TimedOut(f"CustomResourceDefinition {name} did not become Established")
        time.sleep(0.2)


def needed_access(p: Plan, stale: list[ObjectRef], namespace_missing: bool) -> list[Access]:
    """Every verb installing ``p`` uses, on every resource it touches."""
    wanted = [Access("get", NAMESPACES)]
    if namespace_missing:
        wanted.append(Access("create", NAMESPACES))
    wanted += [Access(v, CONFIGMAPS, p.namespace) for v in ("get", "create", "patch")]  # the inventory
    for q in p.objects:
        ns = q.ref.namespace or None
        verbs = ("get",) if q.ref.preexisting else ("get", "create", "patch")
        wanted += [Access(v, q.ref.resource, ns) for v in verbs]
    wanted += [Access("delete", o.resource, o.namespace or None) for o in stale]
    if p.labels:
        wanted.append(Access("patch", NAMESPACES))
    return wanted


def check_access(kube: Kube, p: Plan, stale: list[ObjectRef]) -> None:
    """Refuse, before anything is written, an install RBAC would stop halfway."""
    try:
        namespace_missing = kube.get_or_none(NAMESPACES, p.namespace) is None
    except Forbidden:
        namespace_missing = False  # the review names "get namespaces"
    missing = denied(kube, needed_access(p, stale, namespace_missing))
    if missing is not None:
        # creating a Role granting rights one does not hold needs ``escalate``, binding one ``bind``
        missing += escalations(kube, [q.obj for q in p.objects]) or []
    if missing:
        raise refused(
            f"installing {p.addon.name}",
            missing,
            "Nothing was applied; ask a cluster admin to install it, or for these rights",
        )


def install(
    kube: Kube,
    p: Plan,
    opts: InstallOptions,
    report: Report,
    on_wait: Callable[[list[str]], None] | None = None,
) -> InstallResult:
    """Apply a plan: idempotent, pruning what the new render no longer has."""
    addon = p.addon
    wait_deletions(kube, p, opts.timeout, report)
    old = inv_store.find(kube, addon.name, p.namespace)
    result = InstallResult(addon.name, p.namespace, p.version, "installed")
    if _unchanged(kube, old, p):
        result.outcome = "unchanged"
        result.unchanged = [q.ref.describe() for q in p.objects]
        report(f"{addon.name} {p.version}: unchanged ({len(p.objects)} objects)")
        _finish_wait(kube, p, opts, result, on_wait)
        return result
    if old is not None:
        result.outcome = "upgraded" if old.version != p.version else "updated"

    new_keys = {q.ref.key for q in p.objects}
    old_refs = {o.key: o for o in (old.objects if old else [])}
    stale = [o for o in (old.objects if old else []) if o.key not in new_keys]
    mark_preexisting_crds(kube, p, old)
    discovery = ApiDiscovery(kube)
    check_preexisting_crds(kube, p, discovery)
    check_access(kube, p, stale)
    _ensure_namespace(kube, p.namespace, addon.name)
    labels = list(old.labels) if old else []

    inv = Inventory(
        addon=addon.name,
        namespace=p.namespace,
        version=p.version,
        repo=p.repo,
        charts=p.charts,
        state="applying",
        objects=[*(q.ref for q in p.objects), *stale],
        labels=labels,
        applied={
            **({k: v for k, v in old.applied.items() if k not in new_keys} if old else {}),
            **{q.ref.key: q.obj for q in p.objects},
        },
    )
    inv_store.write(kube, inv)  # before anything is applied: a failure can always be cleaned up

    done: list[str] = []
    deadline = time.monotonic() + max(opts.timeout, 30.0)
    try:
        for q in p.objects:
            if q.ref.preexisting:
                result.kept.append(q.ref.describe())
                continue
            prev = old_refs.get(q.ref.key)
            live = kube.get_or_none(q.ref.resource, q.ref.name, q.ref.namespace or None)
            if (
                prev is not None
                and prev.hash == q.ref.hash
                and live is not None
                and not drift(q.obj, live, addon.controllers)
            ):
                result.unchanged.append(q.ref.describe())
                continue
            kube.apply(q.ref.resource, ours(q.obj, live, addon.controllers), force=True)
            done.append(q.ref.describe())
            if q.ref.kind == "CustomResourceDefinition":
                _wait_crd(kube, discovery, q.obj, deadline)
        for ns, key, value in p.labels:
            live_ns = kube.get_or_none(NAMESPACES, ns)
            if live_ns is None:
                raise InvalidInput(f'--inject {ns}: namespace "{ns}" not found')
            current = (live_ns["metadata"].get("labels") or {}).get(key)
            if not any((lb.namespace, lb.key) == (ns, key) for lb in labels):
                labels.append(LabelRef(ns, key, value, current))
                inv.labels = labels
                inv_store.write(kube, inv)  # recorded before it is set, so remove can take it away
            if current != value:
                kube.patch(NAMESPACES, ns, {"metadata": {"labels": {key: value}}})
                done.append(f"label {key}={value} on namespace {ns}")
                result.labels.append(f"{ns}: {key}={value}")
        # a CRD the new version no longer renders is never pruned: it stays in the inventory,
        # for ``remove`` to judge (deleting a CRD deletes every object of its kind)
        for o in sorted(stale, key=lambda r: kind_rank(r.kind), reverse=True):
            if o.kind == "CustomResourceDefinition":
                continue
            if kube.delete(o.resource, o.name, o.namespace or None, missing_ok=True):
                result.pruned.append(o.describe())
    except ProgdelError as err:
        applied = ", ".join(done) if done else "nothing"
        raise ApplyFailed(
            f"installing {addon.name} {p.version} failed: {err}. Applied before the failure: {applied}. "
            f"The inventory records them: re-run the install to continue, or run "
            f"'progdel addon remove {addon.name}' to clean up",
            err.exit_code,
        ) from err

    kept_crds = [o for o in stale if o.kind == "CustomResourceDefinition"]
    inv.objects = [*kept_crds, *(q.ref for q in p.objects)]
    inv.applied = {
        **{o.key: inv.applied[o.key] for o in kept_crds if o.key in inv.applied},
        **{q.ref.key: q.obj for q in p.objects},
    }
    inv.state = "installed"
    inv_store.write(kube, inv)
    result.applied = done
    if not done and not result.pruned:
        result.outcome = "unchanged"
    report(
        f"{addon.name} {p.version}: {result.outcome} ({len(done)} applied, "
        f"{len(result.unchanged)} unchanged, {len(result.pruned)} pruned"
        + (f", {len(result.kept)} CRDs already on the cluster left as they are" if result.kept else "")
        + ")"
    )
    _finish_wait(kube, p, opts, result, on_wait)
    return result


def _finish_wait(
    kube: Kube,
    p: Plan,
    opts: InstallOptions,
    result: InstallResult,
    on_wait: Callable[[list[str]], None] | None,
) -> None:
    if opts.wait:
        wait_available(kube, p, opts.timeout, on_wait)


def deployment_ready(obj: dict[str, Any]) -> bool:
    status = obj.get("status") or {}
    gen = (obj.get("metadata") or {}).get("generation")
    if gen is not None and status.get("observedGeneration", 0) < gen:
        return False
    conds = status.get("conditions") or []
    return any(c.get("type") == "Available" and c.get("status") == "True" for c in conds)


def wait_available(
    kube: Kube, p: Plan, timeout: float, on_wait: Callable[[list[str]], None] | None = None
) -> None:
    """Wait until every Deployment of the plan is Available; exit 7 names those that are not."""
    deployments = [q.ref for q in p.objects if q.ref.kind == "Deployment"]
    deadline = time.monotonic() + timeout
    while True:
        pending = []
        for ref in deployments:
            live = kube.get_or_none(DEPLOYMENTS, ref.name, ref.namespace)
            if live is None or not deployment_ready(live):
                pending.append(f"{ref.namespace}/{ref.name}")
        if on_wait is not None:
            on_wait(pending)
        if not pending:
            return
        if time.monotonic() >= deadline:
            raise TimedOut(
                f"{p.addon.name}: not Available after {timeout:g}s: deployment {', '.join(pending)}"
            )
        time.sleep(0.25)
