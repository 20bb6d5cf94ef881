"""Flagger's built-in metrics: the exact PromQL per mesh provider, and how their values are judged.

``request-success-rate`` and ``request-duration`` are the queries Flagger's observer for the
canary's provider sends (``pkg/metrics/observers``; whitespace collapsed to single spaces), so a
dashboard built for Flagger shows the same numbers:

- ``istio`` (and any provider Flagger does not map elsewhere): Istio's standard metrics,
  ``istio_requests_total`` and ``istio_request_duration_milliseconds``, reported by the
  destination sidecar and selected by ``destination_workload``; durations in milliseconds;
- ``gatewayapi:*`` and ``kubernetes``: Flagger's HTTP observer, the application's own
  ``http_request_duration_seconds`` histogram (podinfo exposes it) selected by the pod name
  (``kubernetes_pod_name=~"TARGET-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)"``, so ``TARGET-primary-...`` pods
  do not match); durations in seconds, converted to milliseconds as Flagger does.

``target`` is the Deployment's name, matched with ``=~``: Prometheus anchors regexes, so
``podinfo`` does not also match ``podinfo-primary``.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

from progdel.config.canary import (
    CanaryMetric,
    format_go_duration,
    format_go_number,
)
from progdel.errors import InvalidInput

REQUEST_SUCCESS_RATE = "request-success-rate"
REQUEST_DURATION = "request-duration"


def collapse_whitespace(query: str) -> str:
    """Flagger's normalisation: runs of whitespace become one space (the ends are trimmed too,
    which Prometheus ignores anyway).

    Applied to user queries too, so a multi-line ``query: |`` block is sent as one line.
    """
    return " ".join(query.split())


class Observer(enum.StrEnum):
    """Which of Flagger's observers measures a provider's built-in metrics."""

    ISTIO = "istio"
    HTTP = "http"


#: providers whose built-in metrics Flagger measures with an observer of their own, which progdel
#: does not have (their routers are not progdel's either), matched as Flagger's factory matches
#: them: by prefix (``appmesh:v1beta2``) or exactly (``contour:v1`` falls to Istio's, as there)
_OTHER_OBSERVERS_PREFIX = ("appmesh", "gloo")
_OTHER_OBSERVERS_EXACT = (
    "linkerd",
    "contour",
    "nginx",
    "skipper",
    "traefik",
    "osm",
    "kuma",
    "apisix",
    "knative",
)


def observer_of(provider: str | None) -> Observer:
    """Flagger's choice of observer (``observers/factory.go``) for ``spec.provider``: the HTTP
    observer for ``kubernetes`` and ``gatewayapi:*``, Istio's for ``istio`` and anything it does
    not know. ``InvalidInput`` for a provider with an observer of its own, which progdel lacks."""
    p = (provider or "istio").strip().lower()
    if p == "kubernetes" or p.startswith("gatewayapi"):
        return Observer.HTTP
    if p in _OTHER_OBSERVERS_EXACT or p.startswith(_OTHER_OBSERVERS_PREFIX):
        raise InvalidInput(
            f"spec.provider {provider}: progdel has Flagger's built-in request-success-rate and "
            "request-duration for istio, gatewayapi and kubernetes only; use a MetricTemplate"
        )
    return Observer.ISTIO


# The queries as Flagger writes them, whitespace collapsed (istio.go, http.go).
_ISTIO = {
    REQUEST_SUCCESS_RATE: collapse_whitespace(
        """
        sum( rate( istio_requests_total{ reporter="destination",
            destination_workload_namespace="{{ namespace }}", destination_workload=~"{{ target }}",
            response_code!~"5.*" }[{{ interval }}] ) )
        / sum( rate( istio_requests_total{ reporter="destination",
            destination_workload_namespace="{{ namespace }}", destination_workload=~"{{ target }}"
            }[{{ interval }}] ) ) * 100
        """
    ),
    REQUEST_DURATION: collapse_whitespace(
        """
        histogram_quantile( 0.99, sum( rate( istio_request_duration_milliseconds_bucket{
            reporter="destination", destination_workload_namespace="{{ namespace }}",
            destination_workload=~"{{ target }}" }[{{ interval }}] ) ) by (le) )
        """
    ),
}
#: the pods of the target's ReplicaSets (``podinfo-7d9f8c-x2k4z``), not the primary's
POD_OF_TARGET = "{{ target }}-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)"
_HTTP = {
    REQUEST_SUCCESS_RATE: collapse_whitespace(
        f"""
        sum( rate( http_request_duration_seconds_count{{ kubernetes_namespace="{{{{ namespace }}}}",
            kubernetes_pod_name=~"{POD_OF_TARGET}", status!~"5.*" }}[{{{{ interval }}}}] ) )
        / sum( rate( http_request_duration_seconds_count{{ kubernetes_namespace="{{{{ namespace }}}}",
            kubernetes_pod_name=~"{POD_OF_TARGET}" }}[{{{{ interval }}}}] ) ) * 100
        """
    ),
    REQUEST_DURATION: collapse_whitespace(
        f"""
        histogram_quantile( 0.99, sum( rate( http_request_duration_seconds_bucket{{
            kubernetes_namespace="{{{{ namespace }}}}", kubernetes_pod_name=~"{POD_OF_TARGET}"
            }}[{{{{ interval }}}}] ) ) by (le) )
        """
    ),
}
_QUERIES = {Observer.ISTIO: _ISTIO, Observer.HTTP: _HTTP}
BUILTIN_METRICS = (REQUEST_SUCCESS_RATE, REQUEST_DURATION)


def builtin_query(
    metric: str, *, namespace: str, target: str, interval: str, provider: str | None = None
) -> str:
    """The rendered PromQL of a built-in metric for ``provider`` (``spec.provider``: Istio's when
    unset); ``KeyError`` for an unknown name."""
    template = _QUERIES[observer_of(provider)][metric]
    return (
        template.replace("{{ namespace }}", namespace)
        .replace("{{ target }}", target)
        .replace("{{ interval }}", interval)
    )


def builtin_scale(metric: str, provider: str | None = None) -> float:
    """What a built-in metric's value is multiplied by before it is judged: Flagger's HTTP
    observer reads ``request-duration`` in seconds and judges it in milliseconds."""
    if metric == REQUEST_DURATION and observer_of(provider) is Observer.HTTP:
        return 1000.0
    return 1.0


def no_values_error(provider: str | None) -> str:
    """The error Flagger's observer gives for an empty success rate (its "Halt advancement no
    values found ..." event ends with it)."""
    if observer_of(provider) is Observer.HTTP:
        return "no values found"
    return "running query failed: no values found"


@dataclass(frozen=True)
class CheckResult:
    """The verdict on one metric value; ``message`` is Flagger's halt text (without the
    ``Halt <name>.<ns> advancement`` prefix) when it fails, and a short summary when it passes."""

    passed: bool
    message: str
    shown_value: str


def threshold_bounds(metric: CanaryMetric) -> tuple[float | None, float | None]:
    """(min, max) from ``thresholdRange``, or from the legacy ``threshold``: min for the
    success rate, max for everything else."""
    if metric.threshold_range is not None:
        return metric.threshold_range.min, metric.threshold_range.max
    if metric.threshold is not None:
        if metric.name == REQUEST_SUCCESS_RATE and metric.template_ref is None and metric.query is None:
            return metric.threshold, None
        return None, metric.threshold
    return None, None


def check_metric(metric: CanaryMetric, value: float) -> CheckResult:
    """Judge ``value`` against the metric's bounds, worded as Flagger's events.

    The built-in request duration is cut to whole milliseconds and shown as a Go duration
    (``1.2s > 500ms``); the success rate as a percentage (``69.17% < 99%``); others as
    ``name 12.34 > 10``.
    """
    lo, hi = threshold_bounds(metric)
    builtin = metric.template_ref is None and metric.query is None
    if math.isnan(value):
        return CheckResult(False, "NaN", "NaN")
    if builtin and metric.name == REQUEST_DURATION:
        ms = math.trunc(value)
        shown = format_go_duration(ms / 1000)
        if lo is not None and ms < math.trunc(lo):
            return CheckResult(
                False, f"request duration {shown} < {format_go_duration(math.trunc(lo) / 1000)}", shown
            )
        if hi is not None and ms > math.trunc(hi):
            return CheckResult(
                False, f"request duration {shown} > {format_go_duration(math.trunc(hi) / 1000)}", shown
            )
        return CheckResult(True, f"request duration {shown}", shown)
    if builtin and metric.name == REQUEST_SUCCESS_RATE:
        shown = f"{value:.2f}%"
        if lo is not None and value < lo:
            return CheckResult(False, f"success rate {shown} < {format_go_number(lo)}%", shown)
        if hi is not None and value > hi:
            return CheckResult(False, f"success rate {shown} > {format_go_number(hi)}%", shown)
        return CheckResult(True, f"success rate {shown}", shown)
    shown = f"{value:.2f}"
    if lo is not None and value < lo:
        return CheckResult(False, f"{metric.name} {shown} < {format_go_number(lo)}", shown)
    if hi is not None and value > hi:
        return CheckResult(False, f"{metric.name} {shown} > {format_go_number(hi)}", shown)
    return CheckResult(True, f"{metric.name} {shown}", shown)
