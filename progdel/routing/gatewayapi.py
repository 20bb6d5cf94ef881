"""Gateway API router: weights on the backendRefs of an ``HTTPRoute``.

The second implementation of the ``Router`` protocol, for clusters whose traffic goes through a
Gateway API implementation (Istio, Envoy Gateway, Contour, ...) rather than an Istio
VirtualService. Selected with Flagger's ``spec.provider: gatewayapi:v1`` (or
``gatewayapi:v1beta1``), which also picks the API version of the HTTPRoute.

The HTTPRoute is named after the apex service, like the VirtualService; its ``parentRefs`` come from
``spec.service.gatewayRefs`` and its ``hostnames`` from ``spec.service.hosts``. progdel's rule is the
first rule whose backendRefs name ``<apex>-primary`` or ``<apex>-canary`` (else the first that names
``<apex>``, which is turned into a split). As with the VirtualService, an existing HTTPRoute keeps
everything progdel does not manage (other rules, matches, filters, foreign backends, unknown fields):
only the two weights of progdel's rule change, with a conditional PUT retried on conflict, and the
route's original spec is saved in an annotation so that ``canary delete --revert`` can restore it.
Mirroring uses the standard ``RequestMirror`` filter on progdel's rule.

The strategies' routes are extra rules placed directly before progdel's rule, counted in the
annotation ``progdel.dev/strategy-rules`` (a JSON list of their kinds, so they are found again even
after the API server has defaulted their fields):

- A/B testing: one rule whose ``matches`` are the analysis' ``match`` conditions (Istio's
  ``HTTPMatchRequest`` form, as in the Canary spec: ``headers``, ``queryParams``, ``uri``,
  ``method``) combined with the rule's own; it carries the split (and the mirror), while progdel's
  rule sends everyone else to the primary. Conditions an HTTPRoute cannot express are an error,
  never dropped: dropping one would send more users to the canary than asked for. Two conditions
  on one header become one (a match names a header once): equal ones merge, an exact value and a
  regular expression it satisfies keep the exact value, a combination no request satisfies is
  left out, and two different regular expressions are an error. A rule that replaces the path
  prefix (``ReplacePrefixMatch``) may have one ``PathPrefix`` match only, so its strategy rules
  are written one per match.
- Session affinity: the canary backendRef (and the primary's, with ``primaryCookieName``) sets
  the cookie in its ``ResponseHeaderModifier`` filter (the user's own, extended, if it has
  one), and a rule matching the cookie sends its holders to that side alone. Gateway API picks
  the rule with more header matches first, so these
  rules win over progdel's rule wherever they are.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

from progdel.kube.client import Kube
from progdel.kube.resources import HTTPROUTES, Resource
from progdel.routing.base import RouteNames, RoutingError, TrafficPlan, Weights, split_weights
from progdel.routing.istio import CREATED_ANNOTATION, FLUX_MARKER, ORIGINAL_ANNOTATION

HTTPROUTES_V1BETA1 = Resource("gateway.networking.k8s.io", "v1beta1", "httproutes", "HTTPRoute")
MIRROR_FILTER = "RequestMirror"
COOKIE_FILTER = "ResponseHeaderModifier"
STRATEGY_ANNOTATION = "progdel.dev/strategy-rules"
AB_RULE, CANARY_COOKIE_RULE, PRIMARY_COOKIE_RULE = "ab", "canary-cookie", "primary-cookie"
_RULE_FIELDS_NOT_COPIED = ("name", "matches", "backendRefs")


def _is_service_ref(ref: dict[str, Any]) -> bool:
    """A backendRef to a core Service (the default group and kind)."""
    return ref.get("group", "") in ("", "core") and ref.get("kind", "Service") == "Service"


def _ref_name(ref: dict[str, Any]) -> str:
    return str(ref.get("name", "")) if _is_service_ref(ref) else ""


def _locate(spec: dict[str, Any], names: RouteNames, strategy: list[str] | None) -> tuple[int, int] | None:
    """``(first, main)``: where progdel's strategy rules start and the index of its own rule
    (``first == main`` when there are none), or None when no rule is progdel's."""
    rules = spec.get("rules") or []
    ours = {names.primary, names.canary}
    for wanted in (ours, {names.apex}):
        for i, rule in enumerate(rules):
            if {_ref_name(r) for r in rule.get("backendRefs") or []} & wanted:
                main = i + len(strategy or [])
                if main < len(rules) and {_ref_name(r) for r in rules[main].get("backendRefs") or []} & ours:
                    return i, main
                return i, i  # the strategy rules were edited away: the first rule of ours is the rule
    return None


def find_rule(spec: dict[str, Any], names: RouteNames, strategy: list[str] | None = None) -> int | None:
    """Index of progdel's rule in ``spec.rules`` (after its ``strategy`` rules), or None."""
    found = _locate(spec, names, strategy)
    return found[1] if found else None


def strategy_of(obj: dict[str, Any]) -> list[str]:
    """The kinds of the strategy rules progdel placed before its rule (from the annotation)."""
    raw = ((obj.get("metadata") or {}).get("annotations") or {}).get(STRATEGY_ANNOTATION)
    try:
        kinds = json.loads(raw) if raw else []
    except ValueError:
        return []
    return [str(k) for k in kinds] if isinstance(kinds, list) else []


def _backend(template: dict[str, Any] | None, name: str, weight: int, port: int | None) -> dict[str, Any]:
    """A backendRef to the Service ``name``, shaped like ``template`` (the rule's own), else as
    Flagger writes one: core group, kind Service, the canary's port."""
    ref: dict[str, Any] = copy.deepcopy(template) if template else {"group": "", "kind": "Service"}
    ref["name"] = name
    if port is not None and "port" not in ref:
        ref["port"] = port
    ref["weight"] = weight
    return ref


def _mirror_filter(names: RouteNames, port: int | None) -> dict[str, Any]:
    backend: dict[str, Any] = {"group": "", "kind": "Service", "name": names.canary}
    if port is not None:
        backend["port"] = port
    return {"type": MIRROR_FILTER, "requestMirror": {"backendRef": backend}}


def _is_our_mirror(f: dict[str, Any], names: RouteNames) -> bool:
    backend = (f.get("requestMirror") or {}).get("backendRef") or {}
    return f.get("type") == MIRROR_FILTER and _ref_name(backend) == names.canary


def _is_set_cookie(header: dict[str, Any]) -> bool:
    return str(header.get("name", "")).lower() == "set-cookie"


def _set_cookie(ref: dict[str, Any], cookie: str | None) -> None:
    """Set (``cookie`` is the header's value; None removes it) the ``Set-Cookie`` response header
    of a backendRef.

    The header goes into the backendRef's one ``ResponseHeaderModifier`` filter: a second one is
    refused by the HTTPRoute CRD ("ResponseHeaderModifier filter cannot be repeated"), so an
    existing filter of the user's is extended, and keeps its other headers."""
    filters = list(ref.get("filters") or [])
    modifier = next((f for f in filters if f.get("type") == COOKIE_FILTER), None)
    if modifier is not None:
        body = dict(modifier.get("responseHeaderModifier") or {})
        add = [h for h in body.get("add") or [] if not _is_set_cookie(h)]
        if add:
            body["add"] = add
        else:
            body.pop("add", None)
        modifier["responseHeaderModifier"] = body
    if cookie:
        header = {"name": "Set-Cookie", "value": cookie}
        if modifier is None:
            modifier = {"type": COOKIE_FILTER, "responseHeaderModifier": {}}
            filters.append(modifier)
        modifier["responseHeaderModifier"].setdefault("add", []).append(header)
    if modifier is not None and not any(modifier.get("responseHeaderModifier", {}).values()):
        filters.remove(modifier)
    if filters:
        ref["filters"] = filters
    else:
        ref.pop("filters", None)


# -- Istio-style match conditions (the Canary's analysis.match) as HTTPRoute matches --------------


def _string_match(cond: Any, what: str) -> dict[str, str]:
    if isinstance(cond, dict) and len(cond) == 1:
        kind, value = next(iter(cond.items()))
        if kind == "exact":
            return {"type": "Exact", "value": str(value)}
        if kind == "regex":
            return {"type": "RegularExpression", "value": str(value)}
        if kind == "prefix":
            return {"type": "RegularExpression", "value": f"^{re.escape(str(value))}.*"}
    raise RoutingError(f"{what}: expected one of exact, prefix or regex, got {cond!r}")


def gateway_match(match: dict[str, Any]) -> dict[str, Any]:
    """One Istio ``HTTPMatchRequest`` as a Gateway API ``HTTPRouteMatch``."""
    unsupported = sorted(set(match) - {"name", "headers", "queryParams", "uri", "method"})
    if unsupported:
        raise RoutingError(
            f"{', '.join(unsupported)} cannot be expressed in an HTTPRoute match "
            "(Gateway API matches headers, queryParams, uri and method)"
        )
    out: dict[str, Any] = {}
    for key in ("headers", "queryParams"):
        conditions = match.get(key) or {}
        if conditions:
            out[key] = [
                {"name": name, **_string_match(cond, f"{key}.{name}")} for name, cond in conditions.items()
            ]
    if match.get("uri"):
        path = _string_match(match["uri"], "uri")
        kind = next(iter(match["uri"]))
        if kind == "prefix":
            path = {"type": "PathPrefix", "value": str(match["uri"]["prefix"])}
        out["path"] = path
    if match.get("method"):
        method = _string_match(match["method"], "method")
        if method["type"] != "Exact":
            raise RoutingError("method: an HTTPRoute matches a method exactly")
        out["method"] = method["value"]
    return out


def _both(key: str, name: str, a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any] | None:
    """One condition on header (or query parameter) ``name`` meaning ``a`` and ``b`` at once; None
    when no request can satisfy both. A match may name a header once only (the CRD keys the list
    by name), so two conditions on it must become one."""
    if (a.get("type", "Exact"), a.get("value")) == (b.get("type", "Exact"), b.get("value")):
        return a
    exact = [c for c in (a, b) if c.get("type", "Exact") == "Exact"]
    if len(exact) == 2:
        return None  # two different exact values never hold together
    if len(exact) == 1:
        other = b if exact[0] is a else a
        try:
            return exact[0] if re.fullmatch(str(other.get("value", "")), str(exact[0].get("value"))) else None
        except re.error:
            pass
    raise RoutingError(
        f"{key} {name}: the conditions {a.get('value')!r} and {b.get('value')!r} cannot both be "
        "written in one HTTPRoute match (it names a header once, with one regular expression)"
    )


def _merge_conditions(key: str, extra: list[dict[str, Any]], base: list[dict[str, Any]]) -> list[Any] | None:
    out: list[dict[str, Any]] = []
    fold = str.lower if key == "headers" else str  # header names are case-insensitive
    for cond in [*extra, *base]:
        same = next(
            (i for i, c in enumerate(out) if fold(str(c.get("name"))) == fold(str(cond.get("name")))), None
        )
        if same is None:
            out.append(copy.deepcopy(cond))
            continue
        both = _both(key, str(cond.get("name")), out[same], cond)
        if both is None:
            return None
        out[same] = copy.deepcopy(both)
    return out


def _merge_gateway_match(extra: dict[str, Any], base: dict[str, Any]) -> dict[str, Any] | None:
    """``extra`` AND ``base`` as one match; None when no request can satisfy both."""
    out = copy.deepcopy(base)
    for key in ("headers", "queryParams"):
        if extra.get(key):
            merged = _merge_conditions(key, extra[key], list(out.get(key) or []))
            if merged is None:
                return None
            out[key] = merged
    for key in ("path", "method"):
        if key in extra:
            if key in out and out[key] != extra[key] and out[key] != {"type": "PathPrefix", "value": "/"}:
                raise RoutingError(
                    f"the A/B {key} {extra[key]!r} and the route's own {out[key]!r} "
                    "cannot both hold in one HTTPRoute match"
                )
            out[key] = copy.deepcopy(extra[key])
    return out


def merge_gateway_matches(extra: list[dict[str, Any]], base: Any) -> list[dict[str, Any]]:
    """Every condition of ``extra`` combined (AND) with every match of the rule (OR lists);
    combinations no request can satisfy are left out."""
    merged = [_merge_gateway_match(a, b) for a in extra for b in (base or [{}])]
    out = [m for m in merged if m is not None]
    if not out:
        raise RoutingError("the A/B match conditions can never hold together with the rule's own matches")
    return out


def _rewrites_prefix(rule: dict[str, Any]) -> bool:
    """Whether a filter of the rule (or of one of its backendRefs) replaces the matched path
    prefix: the CRD then wants exactly one ``PathPrefix`` match on the rule."""
    filters = list(rule.get("filters") or [])
    for ref in rule.get("backendRefs") or []:
        filters += ref.get("filters") or []
    for f in filters:
        for key in ("urlRewrite", "requestRedirect"):
            path = (f.get(key) or {}).get("path") or {}
            if path.get("type") == "ReplacePrefixMatch":
                return True
    return False


def _one_match_each(rule: dict[str, Any]) -> list[dict[str, Any]]:
    """``rule`` as one rule per match when it replaces a path prefix (each then has the one
    ``PathPrefix`` match the CRD asks for), else unchanged."""
    matches = rule.get("matches") or []
    if not _rewrites_prefix(rule) or len(matches) <= 1:
        return [rule]
    for m in matches:
        if (m.get("path") or {}).get("type") != "PathPrefix":
            raise RoutingError(
                "the rule replaces the path prefix (ReplacePrefixMatch), so each match needs a "
                f"PathPrefix path; the strategy's match {m!r} has none"
            )
    return [{**copy.deepcopy(rule), "matches": [m]} for m in matches]


def _side_rule(
    main: dict[str, Any], matches: list[dict[str, Any]], refs: list[dict[str, Any]]
) -> dict[str, Any]:
    rule = {k: copy.deepcopy(v) for k, v in main.items() if k not in _RULE_FIELDS_NOT_COPIED}
    rule["matches"] = matches
    rule["backendRefs"] = refs
    return rule


def set_route_traffic(
    spec: dict[str, Any], strategy: list[str], names: RouteNames, plan: TrafficPlan, port: int | None
) -> tuple[dict[str, Any], list[str]]:
    """``spec`` with progdel's rules written for ``plan``, and the kinds of its new strategy rules.

    The old strategy rules (``strategy``) are replaced; every other rule and field is kept. A
    backendRef to the apex Service becomes the primary/canary pair; backendRefs to other Services
    (foreign backends) keep their place and weight. The input is not modified.
    """
    out = copy.deepcopy(spec)
    found = _locate(out, names, strategy)
    if found is None:
        raise RoutingError(
            f"httproute {names.namespace}/{names.apex} has no rule with a backendRef to {names.apex}, "
            f"{names.primary} or {names.canary}"
        )
    index, main = found
    del out["rules"][index:main]  # the old strategy rules
    rule = out["rules"][index]
    refs = rule.get("backendRefs") or []
    primary_t = next((r for r in refs if _ref_name(r) in (names.primary, names.apex)), None)
    canary_t = next((r for r in refs if _ref_name(r) == names.canary), None)
    ours = (names.primary, names.canary, names.apex)
    foreign = [r for r in refs if _ref_name(r) not in ours]
    weights = plan.weights
    primary_b = _backend(primary_t, names.primary, weights.primary, port)
    canary_b = _backend(canary_t or primary_t, names.canary, weights.canary, port)
    filters = [f for f in rule.get("filters") or [] if not _is_our_mirror(f, names)]
    if filters:
        rule["filters"] = filters
    else:
        rule.pop("filters", None)
    side: list[tuple[str, dict[str, Any]]] = []
    split = rule
    if plan.ab_match:
        for ref in (primary_b, canary_b):
            _set_cookie(ref, None)
        matches = merge_gateway_matches([gateway_match(m) for m in plan.ab_match], rule.get("matches"))
        split = _side_rule(rule, matches, [primary_b, canary_b])
        side += [(AB_RULE, r) for r in _one_match_each(split)]
        split = side[0][1]
        rule["backendRefs"] = [_backend(primary_t, names.primary, 100, port), *foreign]
        for ref in rule["backendRefs"]:
            _set_cookie(ref, None)
    else:
        canary_cookie, primary_cookie = plan.cookies()
        _set_cookie(canary_b, plan.set_cookie(canary_cookie) if canary_cookie else None)
        _set_cookie(primary_b, plan.set_cookie(primary_cookie, primary=True) if primary_cookie else None)
        for cookie, kind, ref in (
            (canary_cookie, CANARY_COOKIE_RULE, canary_b),
            (primary_cookie, PRIMARY_COOKIE_RULE, primary_b),
        ):
            if cookie:
                holder = {
                    "headers": [
                        {"name": "Cookie", "type": "RegularExpression", "value": f".*{re.escape(cookie)}.*"}
                    ]
                }
                only = {**copy.deepcopy(ref), "weight": 100}
                _set_cookie(only, None)  # its holders have the cookie already
                holders = _side_rule(rule, merge_gateway_matches([holder], rule.get("matches")), [only])
                side += [(kind, r) for r in _one_match_each(holders)]
        rule["backendRefs"] = [primary_b, canary_b, *foreign]
    if weights.mirrored:
        mirror = _mirror_filter(names, port)
        carriers = [r for kind, r in side if kind == AB_RULE] or [split]
        for r in carriers:
            r["filters"] = [*(r.get("filters") or []), mirror]
    out["rules"][index:index] = [r for _, r in side]
    _check_limits(out["rules"], names)
    return out, [kind for kind, _ in side]


#: the HTTPRoute CRD's limits (maxItems, and its CEL rule on the matches of all rules)
MAX_RULES, MAX_MATCHES_PER_RULE, MAX_MATCHES = 16, 64, 128


def _check_limits(rules: list[dict[str, Any]], names: RouteNames) -> None:
    where = f"httproute {names.namespace}/{names.apex}"
    if len(rules) > MAX_RULES:
        raise RoutingError(f"{where} would need {len(rules)} rules; an HTTPRoute holds {MAX_RULES}")
    counts = [len(r.get("matches") or []) for r in rules]
    if max(counts, default=0) > MAX_MATCHES_PER_RULE or sum(counts) > MAX_MATCHES:
        raise RoutingError(
            f"{where} would need {sum(counts)} matches; an HTTPRoute holds {MAX_MATCHES} "
            f"({MAX_MATCHES_PER_RULE} per rule)"
        )


def set_rule_weights(
    spec: dict[str, Any], names: RouteNames, weights: Weights, port: int | None
) -> dict[str, Any]:
    """``spec`` with progdel's rule split ``weights``, no strategy rules, everything else untouched."""
    return set_route_traffic(spec, [], names, TrafficPlan(weights), port)[0]


def read_rule_weights(spec: dict[str, Any], names: RouteNames, strategy: list[str] | None = None) -> Weights:
    """The primary and canary weights of the rule carrying the split (Gateway API's default weight is 1).

    That is the A/B rule during A/B testing, else progdel's rule.
    """
    found = _locate(spec, names, strategy)
    if found is None:
        raise RoutingError(f"httproute {names.namespace}/{names.apex} has no rule for this canary")
    first, main = found
    rule = spec["rules"][first if strategy and strategy[0] == AB_RULE and first < main else main]
    primary, canary = split_weights(
        ((_ref_name(ref), int(ref.get("weight", 1))) for ref in rule.get("backendRefs") or []),
        names,
        f"httproute {names.namespace}/{names.apex}",
    )
    mirrored = any(_is_our_mirror(f, names) for f in rule.get("filters") or [])
    return Weights(primary, canary, mirrored)


def _headers(ops: dict[str, Any]) -> dict[str, Any]:
    """Istio header operations (``add``/``set`` maps, ``remove`` list) as a header filter."""
    out: dict[str, Any] = {}
    for key in ("add", "set"):
        if ops.get(key):
            out[key] = sorted(
                ({"name": str(k), "value": str(v)} for k, v in ops[key].items()),
                key=lambda h: (h["name"], h["value"]),
            )
    if ops.get("remove"):
        out["remove"] = list(ops["remove"])
    return out


def _seconds(duration: str) -> int | None:
    from progdel.config.canary import parse_duration

    try:
        return int(parse_duration(duration))
    except ValueError:
        return None


def service_filters(service: dict[str, Any]) -> list[dict[str, Any]]:
    """The filters Flagger's Gateway API router derives from ``spec.service``: header
    modifiers from ``headers``, a URL rewrite from ``rewrite``, a request mirror for each of
    ``mirror``, and CORS from ``corsPolicy``."""
    filters: list[dict[str, Any]] = []
    headers = service.get("headers") or {}
    if headers.get("request") is not None:
        filters.append(
            {"type": "RequestHeaderModifier", "requestHeaderModifier": _headers(headers["request"])}
        )
    if headers.get("response") is not None:
        filters.append(
            {"type": "ResponseHeaderModifier", "responseHeaderModifier": _headers(headers["response"])}
        )
    rewrite = service.get("rewrite")
    if rewrite is not None:
        body: dict[str, Any] = {}
        if rewrite.get("authority"):
            body["hostname"] = rewrite["authority"]
        if rewrite.get("uri"):
            kind = "ReplacePrefixMatch" if rewrite.get("type") == "ReplacePrefixMatch" else "ReplaceFullPath"
            key = "replacePrefixMatch" if kind == "ReplacePrefixMatch" else "replaceFullPath"
            body["path"] = {"type": kind, key: rewrite["uri"]}
        filters.append({"type": "URLRewrite", "urlRewrite": body})
    for mirror in service.get("mirror") or []:
        filters.append({"type": MIRROR_FILTER, "requestMirror": copy.deepcopy(mirror)})
    cors = service.get("corsPolicy")
    if cors is not None:
        body = {}
        for ours, theirs in (
            ("allowOrigins", "allowOrigin"),
            ("allowMethods", "allowMethods"),
            ("allowHeaders", "allowHeaders"),
            ("exposeHeaders", "exposeHeaders"),
        ):
            if cors.get(theirs):
                body[ours] = list(cors[theirs])
        if cors.get("allowCredentials"):
            body["allowCredentials"] = True
        max_age = _seconds(str(cors["maxAge"])) if cors.get("maxAge") else None
        if max_age:
            body["maxAge"] = max_age
        filters.append({"type": "CORS", "cors": body})
    return filters


def service_matches(service: dict[str, Any]) -> list[dict[str, Any]]:
    """``spec.service.match`` as HTTPRoute matches, or Flagger's default: every path."""
    matches = [m for m in (gateway_match(dict(m)) for m in service.get("match") or []) if m]
    return matches or [{"path": {"type": "PathPrefix", "value": "/"}}]


def service_timeouts(service: dict[str, Any]) -> dict[str, str] | None:
    timeouts = {}
    if service.get("timeout"):
        timeouts["request"] = service["timeout"]
    if service.get("backendTimeout"):
        timeouts["backendRequest"] = service["backendTimeout"]
    return timeouts or None


class HTTPRouteRouter:
    """The ``Router`` for the Gateway API: one HTTPRoute ``<apex>`` per canary."""

    def __init__(
        self,
        kube: Kube,
        names: RouteNames,
        service: dict[str, Any],
        port: int | None = None,
        resource: Resource = HTTPROUTES,
    ) -> None:
        self.kube = kube
        self.names = names
        self.service = service  # the Canary's spec.service, as a dict (camelCase)
        self.port = port
        self.resource = resource

    # -- objects ----------------------------------------------------------------------------

    def _rule_fields(self) -> dict[str, Any]:
        """The fields of progdel's rule that ``spec.service`` sets (Flagger's)."""
        fields: dict[str, Any] = {"matches": service_matches(self.service)}
        filters = service_filters(self.service)
        if filters:
            fields["filters"] = filters
        timeouts = service_timeouts(self.service)
        if timeouts:
            fields["timeouts"] = timeouts
        return fields

    def _new_rule(self) -> dict[str, Any]:
        return {
            **self._rule_fields(),
            "backendRefs": [
                _backend(None, self.names.primary, 100, self.port),
                _backend(None, self.names.canary, 0, self.port),
            ],
        }

    def _wanted_parents(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"parentRefs": copy.deepcopy(self.service.get("gatewayRefs") or [])}
        if self.service.get("hosts"):
            spec["hostnames"] = list(self.service["hosts"])
        return spec

    def _metadata(self) -> tuple[dict[str, str], dict[str, str]]:
        apex = self.service.get("apex") or {}
        labels = dict(apex.get("labels") or {})
        annotations = {k: v for k, v in (apex.get("annotations") or {}).items() if FLUX_MARKER not in k}
        return labels, {**annotations, CREATED_ANNOTATION: "progdel"}

    def new_route(self) -> dict[str, Any]:
        """The HTTPRoute progdel creates when none exists (Flagger's, all traffic to the primary)."""
        labels, annotations = self._metadata()
        meta: dict[str, Any] = {"name": self.names.apex, "namespace": self.names.namespace}
        if labels:
            meta["labels"] = labels
        meta["annotations"] = annotations
        return {"metadata": meta, "spec": {**self._wanted_parents(), "rules": [self._new_rule()]}}

    def _sync(self, obj: dict[str, Any]) -> None:
        """Bring an existing HTTPRoute in line with ``spec.service``, keeping the weights, cookies,
        mirror and strategy rules: progdel's own entirely (parents, hostnames, the rule's
        matches, filters and timeouts, metadata, as Flagger does every tick); an adopted one keeps
        everything but the split of its rule."""
        meta = obj["metadata"]
        annotations = meta.setdefault("annotations", {}) or {}
        meta["annotations"] = annotations
        spec = obj.setdefault("spec", {})
        created = annotations.get(CREATED_ANNOTATION) == "progdel"
        if not created and ORIGINAL_ANNOTATION not in annotations:
            annotations[ORIGINAL_ANNOTATION] = json.dumps(spec, sort_keys=True)
        strategy = strategy_of(obj)
        found = _locate(spec, self.names, strategy)
        if created:
            labels, wanted = self._metadata()
            meta["labels"] = labels
            # as Flagger: the apex metadata, and the annotations other controllers added kept
            meta["annotations"] = {**annotations, **wanted}
            spec.pop("hostnames", None)
            spec.update(self._wanted_parents())
            if found is not None:
                first, main = found
                fields = self._rule_fields()
                for i in range(first, main + 1):
                    rule = spec["rules"][i]
                    ours = [f for f in rule.get("filters") or [] if _is_our_mirror(f, self.names)]
                    for key in ("filters", "timeouts"):
                        rule.pop(key, None)
                        if key in fields:
                            rule[key] = copy.deepcopy(fields[key])
                    if ours:
                        rule["filters"] = [*(rule.get("filters") or []), *ours]
                    if i == main:
                        rule["matches"] = copy.deepcopy(fields["matches"])
        if found is None:
            spec.setdefault("rules", []).insert(0, self._new_rule())
            meta["annotations"].pop(STRATEGY_ANNOTATION, None)
        elif not {_ref_name(r) for r in spec["rules"][found[1]].get("backendRefs") or []} & {
            self.names.primary,
            self.names.canary,
        }:
            # a rule to the apex Service: make it a split, keeping the current weights
            current = read_rule_weights(spec, self.names)
            obj["spec"] = set_rule_weights(spec, self.names, current, self.port)

    # -- Router -----------------------------------------------------------------------------

    def reconcile(self) -> None:
        route = self.kube.get_or_none(self.resource, self.names.apex, self.names.namespace)
        if route is None:
            self.kube.create(self.resource, self.new_route(), self.names.namespace)
            return
        self.kube.update(self.resource, self.names.apex, self._sync, self.names.namespace)

    def get_weights(self) -> Weights:
        route = self.kube.get(self.resource, self.names.apex, self.names.namespace)
        return read_rule_weights(route.get("spec") or {}, self.names, strategy_of(route))

    def set_weights(self, weights: Weights) -> None:
        self.set_traffic(TrafficPlan(weights))

    def set_traffic(self, plan: TrafficPlan) -> None:
        def mutate(obj: dict[str, Any]) -> None:
            spec, kinds = set_route_traffic(
                obj.get("spec") or {}, strategy_of(obj), self.names, plan, self.port
            )
            obj["spec"] = spec
            annotations = obj["metadata"].setdefault("annotations", {})
            if kinds:
                annotations[STRATEGY_ANNOTATION] = json.dumps(kinds)
            else:
                annotations.pop(STRATEGY_ANNOTATION, None)

        self.kube.update(self.resource, self.names.apex, mutate, self.names.namespace)

    def revert(self) -> None:
        route = self.kube.get_or_none(self.resource, self.names.apex, self.names.namespace)
        if route is None:
            return
        annotations = route["metadata"].get("annotations") or {}
        if ORIGINAL_ANNOTATION in annotations:
            original = json.loads(annotations[ORIGINAL_ANNOTATION])

            def restore(obj: dict[str, Any]) -> None:
                obj["spec"] = original
                for key in (ORIGINAL_ANNOTATION, STRATEGY_ANNOTATION):
                    obj["metadata"].get("annotations", {}).pop(key, None)

            self.kube.update(self.resource, self.names.apex, restore, self.names.namespace)
        elif annotations.get(CREATED_ANNOTATION) == "progdel":
            self.kube.delete(self.resource, self.names.apex, self.names.namespace, missing_ok=True)


__all__ = [
    "HTTPROUTES_V1BETA1",
    "HTTPRouteRouter",
    "find_rule",
    "gateway_match",
    "read_rule_weights",
    "set_route_traffic",
    "set_rule_weights",
    "strategy_of",
]
