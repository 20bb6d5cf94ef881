"""Istio router: a VirtualService and two DestinationRules per canary.

Unlike an operator that owns the whole VirtualService, progdel edits only the
destinations of *its* route (the first HTTP route that sends traffic to the
apex service or its ``-primary``/``-canary`` hosts) and writes with a
conditional PUT, retried on conflict. Other routes, retries, timeouts,
headers and fields progdel does not know are kept. A VirtualService that
existed before progdel has its original spec saved in an annotation, so that
``progdel canary delete --revert`` can restore it.

Strategies add routes of progdel's own, named so that progdel recognises (and rewrites) them
and nothing else, always placed just before progdel's main route:

- A/B testing: ``progdel-ab`` carries the A/B match conditions (combined with the route's own)
  and the primary/canary split; the main route then sends everything else to the primary alone;
- session affinity: ``progdel-canary-cookie`` (``progdel-primary-cookie``) sends requests that
  carry the run's canary (primary) cookie to the canary (primary), and the destinations of the
  main route set those cookies on their responses (``headers.response.add.Set-Cookie``);
- mirroring: ``mirror`` and ``mirrorPercentage`` on the split route, or an entry of its
  ``mirrors`` when the route mirrors elsewhere already (istiod refuses both at once).
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

from progdel.kube.client import Kube
from progdel.kube.resources import DESTINATIONRULES, VIRTUALSERVICES
from progdel.routing.base import RouteNames, RoutingError, TrafficPlan, Weights, split_weights

ORIGINAL_ANNOTATION = "progdel.dev/original-configuration"
CREATED_ANNOTATION = "progdel.dev/created-by"
#: the fields of progdel's route that come from ``spec.service`` (Flagger's HTTPRoute fields)
ROUTE_FIELDS = ("match", "rewrite", "timeout", "retries", "corsPolicy", "headers")
FLUX_MARKER = "toolkit.fluxcd.io"
KUBECTL_ANNOTATION = "kubectl.kubernetes.io/last-applied-configuration"
AB_ROUTE = "progdel-ab"
CANARY_COOKIE_ROUTE = "progdel-canary-cookie"
PRIMARY_COOKIE_ROUTE = "progdel-primary-cookie"
AUX_ROUTES = (AB_ROUTE, CANARY_COOKIE_ROUTE, PRIMARY_COOKIE_ROUTE)
_COOKIE_ROUTES = (CANARY_COOKIE_ROUTE, PRIMARY_COOKIE_ROUTE)
_ROUTE_FIELDS_NOT_COPIED = ("name", "match", "route")


def _short(host: str) -> str:
    return host.split(".", 1)[0]


def find_route(spec: dict[str, Any], names: RouteNames) -> int | None:
    """Index of progdel's route in ``spec.http``, or None."""
    wanted = {names.primary, names.canary}
    for i, route in enumerate(spec.get("http") or []):
        if route.get("name") in _COOKIE_ROUTES:
            continue
        hosts = {_short((d.get("destination") or {}).get("host", "")) for d in route.get("route") or []}
        if hosts & wanted:
            return i
    for i, route in enumerate(spec.get("http") or []):
        hosts = {_short((d.get("destination") or {}).get("host", "")) for d in route.get("route") or []}
        if names.apex in hosts:
            return i
    return None


def _destination(template: dict[str, Any] | None, host: str, weight: int, port: int | None) -> dict[str, Any]:
    """A destination to ``host`` shaped like ``template`` (the route's own destination). As in
    Flagger, it names no ``subset``: the ``-primary``/``-canary`` Services select the pods, and
    their DestinationRules (progdel's) define no subsets, so a subset would route to nothing."""
    dest = copy.deepcopy(template) if template else {"destination": {}}
    dest.setdefault("destination", {})
    dest["destination"].pop("subset", None)
    dest["destination"]["host"] = host
    if port is not None and "port" not in dest["destination"]:
        dest["destination"]["port"] = {"number": port}
    dest["weight"] = weight
    return dest


def set_route_weights(
    spec: dict[str, Any], names: RouteNames, weights: Weights, port: int | None
) -> dict[str, Any]:
    """Return ``spec`` with progdel's route split ``weights``; everything else untouched.

    A route that sends to the apex service is turned into a primary/canary
    split; destinations to other hosts in that route (foreign destinations)
    keep their place and weight is only moved between primary and canary.
    Strategy routes progdel added earlier are removed (see ``set_routes``).
    """
    return set_routes(spec, names, TrafficPlan(weights), port)


def _merge_match(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(b)
    for key, value in a.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = {**out[key], **copy.deepcopy(value)}
        else:
            out[key] = copy.deepcopy(value)
    return out


def merge_matches(
    extra: list[dict[str, Any]] | tuple[dict[str, Any], ...], base: Any
) -> list[dict[str, Any]]:
    """Every condition of ``extra`` combined (AND) with every condition of ``base`` (OR lists)."""
    if not base:
        return [copy.deepcopy(m) for m in extra]
    return [_merge_match(a, b) for a in extra for b in base]


def _set_cookie(dest: dict[str, Any], value: str | None) -> None:
    """Set (``value`` is the whole ``Set-Cookie`` value) or remove the cookie a destination sets."""
    headers = dest.get("headers") or {}
    add = (headers.get("response") or {}).get("add") or {}
    add.pop("Set-Cookie", None)
    if value:
        add["Set-Cookie"] = value
    if add:
        headers.setdefault("response", {})["add"] = add
    elif "response" in headers:
        headers["response"].pop("add", None)
        if not headers["response"]:
            headers.pop("response")
    if headers:
        dest["headers"] = headers
    else:
        dest.pop("headers", None)


def _is_ours(destination: Any, names: RouteNames) -> bool:
    return isinstance(destination, dict) and _short(str(destination.get("host", ""))) == names.canary


def _clear_mirror(route: dict[str, Any], names: RouteNames) -> None:
    """Remove progdel's mirror to the canary from ``route``; a mirror of the user's stays."""
    if _is_ours(route.get("mirror"), names):
        route.pop("mirror", None)
        route.pop("mirrorPercentage", None)
    if isinstance(route.get("mirrors"), list):
        kept = [m for m in route["mirrors"] if not _is_ours(m.get("destination"), names)]
        if len(kept) != len(route["mirrors"]):
            if kept:
                route["mirrors"] = kept
            else:
                route.pop("mirrors")


def _add_mirror(route: dict[str, Any], names: RouteNames, percentage: float | None) -> None:
    """Mirror ``route``'s traffic to the canary. A route that mirrors elsewhere already gets a
    second entry in ``mirrors`` (istiod refuses ``mirror`` beside ``mirrors``): a ``mirror`` of
    the user's moves into ``mirrors`` with its percentage."""
    _clear_mirror(route, names)
    if "mirrors" not in route and "mirror" not in route:
        route["mirror"] = {"host": names.canary}
        if percentage:
            route["mirrorPercentage"] = {"value": float(percentage)}
        return
    if "mirror" in route:
        theirs: dict[str, Any] = {"destination": route.pop("mirror")}
        if "mirrorPercentage" in route:
            theirs["percentage"] = route.pop("mirrorPercentage")
        route["mirrors"] = [theirs, *(route.get("mirrors") or [])]
    ours: dict[str, Any] = {"destination": {"host": names.canary}}
    if percentage:
        ours["percentage"] = {"value": float(percentage)}
    route["mirrors"] = [*route["mirrors"], ours]


def mirrored(route: dict[str, Any], names: RouteNames) -> bool:
    """Whether ``route`` mirrors to the canary (``mirror`` or an entry of ``mirrors``)."""
    return _is_ours(route.get("mirror"), names) or any(
        _is_ours(m.get("destination"), names) for m in route.get("mirrors") or [] if isinstance(m, dict)
    )


def _side_route(
    name: str, main: dict[str, Any], match: list[dict[str, Any]], dests: list[dict[str, Any]]
) -> dict[str, Any]:
    route: dict[str, Any] = {"name": name, "match": match}
    route.update({k: copy.deepcopy(v) for k, v in main.items() if k not in _ROUTE_FIELDS_NOT_COPIED})
    route["route"] = dests
    return route


def _side_routes(
    name: str,
    main: dict[str, Any],
    match: list[dict[str, Any]],
    dests: list[dict[str, Any]],
    names: RouteNames,
) -> dict[str, Any]:
    route = _side_route(name, main, match, dests)
    _clear_mirror(route, names)
    return route


def set_routes(
    spec: dict[str, Any], names: RouteNames, plan: TrafficPlan, port: int | None
) -> dict[str, Any]:
    """Return ``spec`` with progdel's routes written for ``plan``; everything else untouched."""
    out = copy.deepcopy(spec)
    out["http"] = [r for r in out.get("http") or [] if r.get("name") not in AUX_ROUTES]
    index = find_route(out, names)
    if index is None:
        raise RoutingError(
            f"virtualservice {names.namespace}/{names.apex} has no HTTP route to {names.apex}, "
            f"{names.primary} or {names.canary}"
        )
    route = out["http"][index]
    dests = route.get("route") or []
    primary_t = next(
        (d for d in dests if _short(d["destination"]["host"]) in (names.primary, names.apex)), None
    )
    canary_t = next((d for d in dests if _short(d["destination"]["host"]) == names.canary), None)
    foreign = [
        d for d in dests if _short(d["destination"]["host"]) not in (names.primary, names.canary, names.apex)
    ]
    weights = plan.weights
    primary_d = _destination(primary_t, names.primary, weights.primary, port)
    canary_d = _destination(canary_t or primary_t, names.canary, weights.canary, port)
    side: list[dict[str, Any]] = []
    split = route
    if plan.ab_match:
        for d in (primary_d, canary_d):
            _set_cookie(d, None)
        split = _side_routes(
            AB_ROUTE, route, merge_matches(plan.ab_match, route.get("match")), [primary_d, canary_d], names
        )
        side.append(split)
        primary_only = _destination(primary_t, names.primary, 100, port)
        _set_cookie(primary_only, None)
        route["route"] = [primary_only, *foreign]
        _clear_mirror(route, names)
    else:
        canary_cookie, primary_cookie = plan.cookies()
        _set_cookie(canary_d, plan.set_cookie(canary_cookie) if canary_cookie else None)
        _set_cookie(primary_d, plan.set_cookie(primary_cookie, primary=True) if primary_cookie else None)
        for cookie, route_name, dest in (
            (canary_cookie, CANARY_COOKIE_ROUTE, canary_d),
            (primary_cookie, PRIMARY_COOKIE_ROUTE, primary_d),
        ):
            if cookie:
                match = [{"headers": {"cookie": {"regex": f".*{re.escape(cookie)}.*"}}}]
                only = {**copy.deepcopy(dest), "weight": 100}
                _set_cookie(only, None)  # its holders have the cookie already
                side.append(
                    _side_routes(route_name, route, merge_matches(match, route.get("match")), [only], names)
                )
        route["route"] = [primary_d, canary_d, *foreign]
    if weights.mirrored:
        _add_mirror(split, names, plan.mirror_percentage)
    else:
        _clear_mirror(split, names)
    out["http"][index:index] = side
    return out


def read_weights(spec: dict[str, Any], names: RouteNames) -> Weights:
    index = find_route(spec, names)
    if index is None:
        raise RoutingError(f"virtualservice {names.namespace}/{names.apex} has no route for this canary")
    route = spec["http"][index]
    dests = route.get("route") or []
    primary, canary = split_weights(
        (
            (_short(d["destination"]["host"]), int(d.get("weight", 100 if len(dests) == 1 else 0)))
            for d in dests
        ),
        names,
        f"virtualservice {names.namespace}/{names.apex}",
    )
    return Weights(primary, canary, mirrored(route, names))


def route_fields(service: dict[str, Any]) -> dict[str, Any]:
    """The fields of progdel's route that ``spec.service`` sets, as Flagger writes them (its
    ``rewrite`` carries ``uri`` and ``authority`` only: ``type`` is the Gateway API's)."""
    out: dict[str, Any] = {}
    for key in ROUTE_FIELDS:
        value = service.get(key)
        if key == "rewrite" and isinstance(value, dict):
            value = {k: v for k, v in value.items() if k in ("uri", "authority") and v}
        if value:
            out[key] = copy.deepcopy(value)
    return out


def destination_port(service: dict[str, Any]) -> int | None:
    """The port Flagger puts on the destinations: with ``portDiscovery``, when the route comes
    through a gateway (the first is not ``mesh``) or is a delegate; otherwise none."""
    gateways = service.get("gateways") or []
    through_gateway = bool(gateways) and gateways[0] != "mesh"
    if service.get("portDiscovery") and (through_gateway or service.get("delegation")):
        return int(service["port"])
    return None


def wanted_hosts(service: dict[str, Any], apex: str, original: list[str] | None = None) -> list[str]:
    """``spec.service.hosts`` (after a VirtualService's own, when progdel adopted one), and the
    apex unless a host is the apex or ``*`` already; none for a delegate."""
    if service.get("delegation"):
        return []
    hosts = list(original or [])
    hosts += [h for h in service.get("hosts") or [] if h not in hosts]
    if apex not in hosts and "*" not in hosts:
        hosts.append(apex)
    return hosts


def wanted_gateways(service: dict[str, Any], original: list[str] | None = None) -> list[str]:
    """``spec.service.gateways`` (after an adopted VirtualService's own), else ``mesh``; none for
    a delegate."""
    if service.get("delegation"):
        return []
    gateways = list(original or [])
    gateways += [g for g in service.get("gateways") or [] if g not in gateways]
    return gateways or ["mesh"]


class VirtualServiceRouter:
    def __init__(
        self, kube: Kube, names: RouteNames, service: dict[str, Any], port: int | None = None
    ) -> None:
        self.kube = kube
        self.names = names
        self.service = service  # the Canary's spec.service, as a dict
        self.port = destination_port({**service, "port": port}) if port is not None else None

    # -- objects ----------------------------------------------------------------------------

    def _destination_rule(self, host: str) -> dict[str, Any]:
        spec: dict[str, Any] = {"host": host}
        if self.service.get("trafficPolicy"):
            spec["trafficPolicy"] = self.service["trafficPolicy"]
        return {"metadata": {"name": host, "namespace": self.names.namespace}, "spec": spec}

    def _new_route(self) -> dict[str, Any]:
        route = route_fields(self.service)
        route["route"] = [
            _destination(None, self.names.primary, 100, self.port),
            _destination(None, self.names.canary, 0, self.port),
        ]
        return route

    def _metadata(self) -> tuple[dict[str, str], dict[str, str]]:
        apex = self.service.get("apex") or {}
        labels = dict(apex.get("labels") or {})
        annotations = {k: v for k, v in (apex.get("annotations") or {}).items() if FLUX_MARKER not in k}
        return labels, {**annotations, CREATED_ANNOTATION: "progdel"}

    def new_virtual_service(self) -> dict[str, Any]:
        """The VirtualService progdel creates when none exists (Flagger's, all traffic to the primary)."""
        labels, annotations = self._metadata()
        meta: dict[str, Any] = {"name": self.names.apex, "namespace": self.names.namespace}
        if labels:
            meta["labels"] = labels
        meta["annotations"] = annotations
        return {
            "metadata": meta,
            "spec": {
                "hosts": wanted_hosts(self.service, self.names.apex),
                "gateways": wanted_gateways(self.service),
                "http": [self._new_route()],
            },
        }

    def _sync(self, obj: dict[str, Any]) -> None:
        """Bring an existing VirtualService in line with ``spec.service``, keeping the weights,
        mirrors and strategy routes: progdel's own entirely (hosts, gateways, route fields,
        metadata, as Flagger does every tick); an adopted one keeps its hosts, gateways, other
        routes and metadata, and takes the spec's hosts, gateways and route fields beside them."""
        meta = obj["metadata"]
        annotations = meta.setdefault("annotations", {}) or {}
        meta["annotations"] = annotations
        spec = obj.setdefault("spec", {})
        created = annotations.get(CREATED_ANNOTATION) == "progdel"
        if not created and ORIGINAL_ANNOTATION not in annotations:
            annotations[ORIGINAL_ANNOTATION] = json.dumps(spec, sort_keys=True)
        original: dict[str, Any] = {}
        if not created:
            original = json.loads(annotations[ORIGINAL_ANNOTATION])
        spec["hosts"] = wanted_hosts(
            self.service, self.names.apex, None if created else original.get("hosts")
        )
        gateways = wanted_gateways(self.service, None if created else original.get("gateways"))
        if created or self.service.get("gateways") or self.service.get("delegation") or "gateways" in spec:
            spec["gateways"] = gateways
        if created:
            labels, wanted = self._metadata()
            meta["labels"] = labels
            kept = {k: v for k, v in annotations.items() if k == KUBECTL_ANNOTATION}  # as Flagger
            meta["annotations"] = {**wanted, **kept}
        index = find_route(spec, self.names)
        if index is None:
            spec.setdefault("http", []).insert(0, self._new_route())
            return
        fields = route_fields(self.service)
        http = spec["http"]
        for route in http:
            if route is not http[index] and route.get("name") not in AUX_ROUTES:
                continue
            for key in ROUTE_FIELDS:
                if key == "match" and route is not http[index]:
                    continue  # a strategy route's match is the strategy's
                if key in fields:
                    route[key] = copy.deepcopy(fields[key])
                elif created:
                    route.pop(key, None)
        main = http[index]
        hosts = {_short((d.get("destination") or {}).get("host", "")) for d in main.get("route") or []}
        if self.names.canary not in hosts and self.names.primary not in hosts:
            # a route to the apex service: make it a split, keeping the current weights
            current = read_weights(spec, self.names)
            obj["spec"] = set_route_weights(spec, self.names, current, self.port)

    # -- Router -----------------------------------------------------------------------------

    def reconcile(self) -> None:
        for host in (self.names.primary, self.names.canary):
            wanted = self._destination_rule(host)
            existing = self.kube.get_or_none(DESTINATIONRULES, host, self.names.namespace)
            if existing is None:
                self.kube.create(DESTINATIONRULES, wanted, self.names.namespace)
            elif existing.get("spec") != wanted["spec"]:

                def put_spec(obj: dict[str, Any], spec: dict[str, Any] = wanted["spec"]) -> None:
                    obj["spec"] = spec

                self.kube.update(DESTINATIONRULES, host, put_spec, self.names.namespace)
        vs = self.kube.get_or_none(VIRTUALSERVICES, self.names.apex, self.names.namespace)
        if vs is None:
            self.kube.create(VIRTUALSERVICES, self.new_virtual_service(), self.names.namespace)
            return
        self.kube.update(VIRTUALSERVICES, self.names.apex, self._sync, self.names.namespace)

    def get_weights(self) -> Weights:
        vs = self.kube.get(VIRTUALSERVICES, self.names.apex, self.names.namespace)
        return read_weights(vs.get("spec") or {}, self.names)

    def set_weights(self, weights: Weights) -> None:
        self.set_traffic(TrafficPlan(weights))

    def set_traffic(self, plan: TrafficPlan) -> None:
        def mutate(obj: dict[str, Any]) -> None:
            obj["spec"] = set_routes(obj.get("spec") or {}, self.names, plan, self.port)

        self.kube.update(VIRTUALSERVICES, self.names.apex, mutate, self.names.namespace)

    def revert(self) -> None:
        vs = self.kube.get_or_none(VIRTUALSERVICES, self.names.apex, self.names.namespace)
        if vs is not None:
            annotations = vs["metadata"].get("annotations") or {}
            if ORIGINAL_ANNOTATION in annotations:
                original = json.loads(annotations[ORIGINAL_ANNOTATION])

                def restore(obj: dict[str, Any]) -> None:
                    obj["spec"] = original
                    obj["metadata"].get("annotations", {}).pop(ORIGINAL_ANNOTATION, None)

                self.kube.update(VIRTUALSERVICES, self.names.apex, restore, self.names.namespace)
            elif annotations.get(CREATED_ANNOTATION) == "progdel":
                self.kube.delete(VIRTUALSERVICES, self.names.apex, self.names.namespace, missing_ok=True)
        for host in (self.names.primary, self.names.canary):
            self.kube.delete(DESTINATIONRULES, host, self.names.namespace, missing_ok=True)
