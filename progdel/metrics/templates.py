"""Rendering of metric queries: inline ``query`` fields and ``MetricTemplate`` queries.

Flagger renders these with Go templates that fail on a missing key; progdel accepts the same
placeholders (``{{ name }}``, ``{{ namespace }}``, ``{{ target }}``, ``{{ service }}``,
``{{ ingress }}``, ``{{ route }}``, ``{{ interval }}``, ``{{ variables.KEY }}``; spaces inside
the braces optional) and, like Flagger, refuses to send a query with a hole in it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from progdel.config.canary import Canary, CanaryMetric, MetricTemplate
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


def render_query(template: str, ctx: QueryContext, *, what: str = "query") -> str:
    """Fill in the placeholders of ``template``; whitespace is collapsed as Flagger does.

    Raises ``InvalidInput`` naming the placeholder when a value is missing or unknown.
    """

    def substitute(m: re.Match[str]) -> str:
        expr = m.group(1)
        if expr.startswith("variables."):
            key = expr[len("variables.") :]
            if key not in ctx.variables:
                raise InvalidInput(
                    f"{what}: template variable {key!r} is not set (add it to templateVariables)"
                )
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

    return collapse_whitespace(_PLACEHOLDER.sub(substitute, template))


@dataclass(frozen=True)
class MetricQuery:
    """One metric of a canary, ready to send: its name, PromQL, and the server to send it to
    (``None``: the canary's metrics server)."""

    name: str
    query: str
    address: str | None = None
    provider_type: str = "prometheus"
    headers: tuple[tuple[str, str], ...] = ()  # the template's provider.headers, values joined
    scale: float = 1.0  # the value is multiplied by it before it is judged (seconds -> ms)


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
    first: list[MetricQuery] = []
    later: list[MetricQuery] = []
    for i, metric in enumerate(canary.analysis.metrics):
        what = f"spec.analysis.metrics[{i}] ({metric.name})"
        ctx = QueryContext.for_metric(canary, metric)
        if metric.template_ref is not None:
            ns = metric.template_ref.namespace or canary.namespace
            tmpl = by_key.get((ns, metric.template_ref.name))
            if tmpl is None:
                raise InvalidInput(f"{what}: MetricTemplate {ns}/{metric.template_ref.name} not found")
            refused = unsupported_provider(tmpl)
            if refused:
                raise InvalidInput(f"{what}: {refused}")
            later.append(
                MetricQuery(
                    name=metric.name,
                    query=render_query(
                        tmpl.spec.query, ctx, what=f"MetricTemplate {ns}/{tmpl.metadata.name}"
                    ),
                    address=tmpl.spec.provider.address,
                    provider_type=tmpl.spec.provider.type,
                    headers=header_items(tmpl.spec.provider.headers),
                )
            )
        elif metric.query:
            first.append(MetricQuery(metric.name, render_query(metric.query, ctx, what=what)))
        elif metric.name in BUILTIN_METRICS:
            provider = canary.spec.provider
            first.append(
                MetricQuery(
                    metric.name,
                    builtin_query(
                        metric.name,
                        namespace=canary.namespace,
                        target=ctx.target,
                        interval=metric.interval,
                        provider=provider,
                    ),
                    scale=builtin_scale(metric.name, provider),
                )
            )
        else:
            raise InvalidInput(f"{what}: not a built-in metric and no templateRef or query")
    return first + later


def one_metric(canary: Canary, index: int) -> Canary:
    """A copy of ``canary`` whose analysis has only its ``index``-th metric, to render (and so
    fail) one metric at a time."""
    one = canary.model_copy(deep=True)
    analysis = one.spec.analysis or one.spec.canary_analysis
    assert analysis is not None
    analysis.metrics = [analysis.metrics[index]]
    return one
