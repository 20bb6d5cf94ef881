"""Rendering of metric queries: inline ``query`` fields and ``MetricTemplate`` queries.

Flagger renders these with Go templates that fail on a missing key; progdel accepts the same
placeholders (``{{ name }}``, ``{{ namespace }}``, ``{{ target }}``, ``{{ service }}``,
``{{ ingress }}``, ``{{ route }}``, ``{{ interval }}``, ``{{ variables.KEY }}``; spaces inside
the braces optional) and, like Flagger, refuses to send a query with a hole in it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace

from progdel.config.canary import (
    ANNOTATION_JUDGE,
    Canary,
    CanaryMetric,
    MetricTemplate,
    format_go_duration,
    parse_duration,
)
from progdel.errors import InvalidInput
from progdel.metrics.builtin import BUILTIN_METRICS, builtin_query, builtin_scale, collapse_whitespace

_PLACEHOLDER = re.compile(r"\{\{\s*(.*?)\s*\}\}")
_NAMES = ("name", "namespace", "target", "service", "ingress", "route", "interval")


@dataclass(frozen=True)
class QueryContext:
    """The values a query template may refer to. ``None`` means "not set for this canary"."""

    name: str
    namespace: str
    target: str
    service: str
    interval: str
    ingress: str | None = None
    route: str | None = None
    variables: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def for_metric(cls, canary: Canary, metric: CanaryMetric) -> QueryContext:
        spec = canary.spec
        return cls(
            name=canary.name,
            namespace=canary.namespace,
            target=spec.target_ref.name,
            service=canary.apex_name,
            interval=metric.interval,
            ingress=spec.ingress_ref.name if spec.ingress_ref else None,
            route=spec.route_ref.name if spec.route_ref else None,
            variables=dict(metric.template_variables),
        )


def _scan(text: str, quote: str | None) -> str | None:
    """The PromQL string (or comment) ``text`` leaves open, starting inside ``quote``: ``"``,
    ``'`` or a backtick for a string, ``#`` for a comment, None for neither."""
    escaped = False
    for ch in text:
        if quote is None:
            if ch in "\"'`#":
                quote = ch
        elif quote == "#":
            if ch == "\n":
                quote = None
        elif quote != "`" and escaped:
            escaped = False
        elif quote != "`" and ch == "\\":
            escaped = True
        elif ch == quote:
            quote = None
    return quote


def _placeholders(template: str) -> Iterator[tuple[re.Match[str], str | None]]:
    """Each placeholder of ``template`` and the PromQL string it sits in (see ``_scan``)."""
    quote: str | None = None
    pos = 0
    for m in _PLACEHOLDER.finditer(template):
        quote = _scan(template[pos : m.start()], quote)
        yield m, quote
        pos = m.end()


def _in_string(value: str, quote: str | None, what: str) -> str:
    """``value`` written so that it stays inside the string (or comment) it is pasted into:
    it can neither close it nor start a new line of the query."""
    if quote is None:
        return value
    if quote == "#":
        return value.replace("\n", " ").replace("\r", " ")
    if quote == "`":
        if "`" in value:
            raise InvalidInput(f"{what}: the value holds a backtick, which a `...` string cannot contain")
        return value
    out = []
    for ch in value:
        if ch in ("\\", quote):
            out.append("\\" + ch)
        elif ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return "".join(out)


_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def render_query(template: str, ctx: QueryContext, *, what: str = "query") -> str:
    """Fill in the placeholders of ``template``; whitespace is collapsed as Flagger does.

    A value pasted inside a quoted PromQL string (a label value: ``{code="{{ variables.code }}"}``)
    is escaped for that string, so it can only ever be the label value (or regex) it stands for:
    ``"`` and ``\\`` in it are written ``\\"`` and ``\\\\``. (Flagger pastes values as they are.)
    Raises ``InvalidInput`` naming the placeholder when a value is missing or unknown.
    """
    out: list[str] = []
    pos = 0
    for m, quote in _placeholders(template):
        out.append(template[pos : m.start()])
        out.append(_in_string(_value(m.group(1), ctx, what), quote, f"{what}: {m.group(0)}"))
        pos = m.end()
    out.append(template[pos:])
    return collapse_whitespace("".join(out))


def shaping_variables(template: str) -> list[str]:
    """The ``templateVariables`` used outside any quoted string in ``template``: their values
    become part of the query's structure (a label name, a range, a number, an operator), so a
    value can change what the query selects or computes, not only which series it matches."""
    names: list[str] = []
    for m, quote in _placeholders(template):
        expr = m.group(1)
        if quote is None and expr.startswith("variables.") and expr[len("variables.") :] not in names:
            names.append(expr[len("variables.") :])
    return names


def _value(expr: str, ctx: QueryContext, what: str) -> str:
    if expr.startswith("variables."):
        key = expr[len("variables.") :]
        if key not in ctx.variables:
            raise InvalidInput(f"{what}: template variable {key!r} is not set (add it to templateVariables)")
        return ctx.variables[key]
    if expr.startswith("."):  # Go's {{ .name }} style is not what Flagger documents; be clear
        raise InvalidInput(f"{what}: unsupported placeholder {{{{ {expr} }}}} (use {{{{ {expr[1:]} }}}})")
    if expr in _NAMES:
        value = getattr(ctx, expr)
        if value is None:
            ref = "spec.ingressRef" if expr == "ingress" else "spec.routeRef"
            raise InvalidInput(f"{what}: {{{{ {expr} }}}} is used but {ref} is not set")
        return str(value)
    raise InvalidInput(
        f"{what}: unknown placeholder {{{{ {expr} }}}} (known: {', '.join(_NAMES)}, variables.KEY)"
    )


@dataclass(frozen=True)
class ComparisonQueries:
    """What the statistical judge samples for one metric: its query for the canary and for the
    primary (``{{ target }}`` the ``-primary`` workload), each over one ``step`` (the query's
    ``{{ interval }}``), evaluated every ``step`` seconds over the last ``window`` seconds."""

    canary: str
    primary: str
    window: float
    step: float


@dataclass(frozen=True)
class MetricQuery:
    """One metric of a canary, ready to send: its name, PromQL, the server to send it to
    (``None``: the canary's metrics server) and the Secret with its credentials (namespace, name)."""

    name: str
    query: str
    address: str | None = None
    provider_type: str = "prometheus"
    headers: tuple[tuple[str, str], ...] = ()  # the template's provider.headers, values joined
    scale: float = 1.0  # the value is multiplied by it before it is judged (seconds -> ms)
    secret: tuple[str, str] | None = None
    insecure_skip_verify: bool = False  # the template's provider.insecureSkipVerify
    shaping_variables: tuple[str, ...] = ()
    """``templateVariables`` whose values shape the query (used outside a quoted string)."""
    comparison: ComparisonQueries | None = None  # with ``progdel.dev/judge`` on the metric


def header_items(headers: dict[str, list[str]] | None) -> tuple[tuple[str, str], ...]:
    """A MetricTemplate's ``provider.headers`` (Go's ``http.Header``: a list of values per name) as
    request headers, several values of one name joined with ``, `` as HTTP allows."""
    return tuple(sorted((name, ", ".join(values)) for name, values in (headers or {}).items()))


#: the MetricTemplate provider types progdel queries: Prometheus' HTTP API, which Thanos, Mimir,
#: Cortex and VictoriaMetrics serve too. Flagger's other types (datadog, cloudwatch, newrelic...)
#: speak other query languages: such a template is refused, never sent to its address as PromQL.
QUERIED_PROVIDER_TYPES = ("prometheus",)


def unsupported_provider(template: MetricTemplate) -> str | None:
    """Why progdel cannot query ``template`` (its provider type), or None."""
    kind = template.spec.provider.type
    if kind in QUERIED_PROVIDER_TYPES:
        return None
    return (
        f"MetricTemplate {template.namespace}/{template.metadata.name}: provider type {kind!r} is not "
        "one progdel queries (it queries prometheus, and servers speaking Prometheus' HTTP API); "
        "a cluster's Flagger can run this canary"
    )


def metric_queries(canary: Canary, templates: Iterable[MetricTemplate] = ()) -> list[MetricQuery]:
    """The rendered queries of all the canary's metrics, built-in ones first (Flagger's order).

    ``templates`` are the MetricTemplates available; a ``templateRef`` whose namespace is not
    given is looked up in the canary's namespace. Raises ``InvalidInput`` for a missing template
    or a template variable that is not set.
    """
    by_key = {(t.namespace, t.metadata.name): t for t in templates}
    judges = canary.settings.judges
    first: list[MetricQuery] = []
    later: list[MetricQuery] = []
    for i, metric in enumerate(canary.analysis.metrics):
        what = f"spec.analysis.metrics[{i}] ({metric.name})"
        ctx = QueryContext.for_metric(canary, metric)
        query = _metric_query(canary, metric, ctx, by_key, what)
        judge = judges.get(metric.name)
        if judge is not None:
            window = parse_duration(metric.interval)
            step = judge.step_seconds(window)
            sample = replace(ctx, interval=format_go_duration(step))
            primary = replace(sample, target=canary.primary_name)
            compared = ComparisonQueries(
                _metric_query(canary, metric, sample, by_key, what).query,
                _metric_query(canary, metric, primary, by_key, what).query,
                window,
                step,
            )
            if compared.canary == compared.primary:
                raise InvalidInput(
                    f"{what}: {ANNOTATION_JUDGE}: the query does not use {{{{ target }}}}, so the "
                    "primary's samples cannot be told from the canary's"
                )
            query = replace(query, comparison=compared)
        (later if metric.template_ref is not None else first).append(query)
    return first + later


def _metric_query(
    canary: Canary,
    metric: CanaryMetric,
    ctx: QueryContext,
    templates: Mapping[tuple[str, str], MetricTemplate],
    what: str,
) -> MetricQuery:
    """One metric's query rendered with ``ctx``."""
    if metric.template_ref is not None:
        ns = metric.template_ref.namespace or canary.namespace
        tmpl = templates.get((ns, metric.template_ref.name))
        if tmpl is None:
            raise InvalidInput(f"{what}: MetricTemplate {ns}/{metric.template_ref.name} not found")
        refused = unsupported_provider(tmpl)
        if refused:
            raise InvalidInput(f"{what}: {refused}")
        secret_ref = tmpl.spec.provider.secret_ref
        return MetricQuery(
            name=metric.name,
            query=render_query(tmpl.spec.query, ctx, what=f"MetricTemplate {ns}/{tmpl.metadata.name}"),
            address=tmpl.spec.provider.address,
            provider_type=tmpl.spec.provider.type,
            headers=header_items(tmpl.spec.provider.headers),
            secret=(ns, secret_ref.name) if secret_ref else None,
            insecure_skip_verify=tmpl.spec.provider.insecure_skip_verify,
            shaping_variables=tuple(shaping_variables(tmpl.spec.query)),
        )
    if metric.query:
        return MetricQuery(
            metric.name,
            render_query(metric.query, ctx, what=what),
            shaping_variables=tuple(shaping_variables(metric.query)),
        )
    if metric.name in BUILTIN_METRICS:
        provider = canary.spec.provider
        return MetricQuery(
            metric.name,
            builtin_query(
                metric.name,
                namespace=canary.namespace,
                target=ctx.target,
                interval=ctx.interval,
                provider=provider,
            ),
            scale=builtin_scale(metric.name, provider),
        )
    raise InvalidInput(f"{what}: not a built-in metric and no templateRef or query")


def one_metric(canary: Canary, index: int) -> Canary:
    """A copy of ``canary`` whose analysis has only its ``index``-th metric, to render (and so
    fail) one metric at a time."""
    one = canary.model_copy(deep=True)
    analysis = one.spec.analysis
    assert analysis is not None
    analysis.metrics = [analysis.metrics[index]]
    return one
