"""Flagger's built-in Istio metrics: the exact PromQL, and how their values are judged.

The queries are the ones Flagger sends for ``request-success-rate`` and ``request-duration``
(whitespace collapsed to single spaces), so a dashboard built for Flagger shows the same
numbers. ``target`` is the Deployment's name, matched with ``=~``: Prometheus anchors regexes,
so ``podinfo`` does not also match ``podinfo-primary``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from progdel.config.canary import (
    CanaryMetric,
    format_go_duration,
    format_go_number,
)

REQUEST_SUCCESS_RATE = "request-success-rate"
REQUEST_DURATION = "request-duration"


def collapse_whitespace(query: str) -> str:
    """Flagger's normalisation: runs of whitespace become one space, the ends are trimmed.

    Applied to user queries too, so a multi-line ``query: |`` block is sent as one line.
    """
    return " ".join(query.split())


# The exact strings Flagger sends (whitespace already collapsed).
SUCCESS_RATE_QUERY = (
    'sum(rate(istio_requests_total{reporter="destination",destination_workload_namespace="{{ namespace }}",'
    'destination_workload=~"{{ target }}",response_code!~"5.*"}[{{ interval }}])) / '
    'sum(rate(istio_requests_total{reporter="destination",destination_workload_namespace="{{ namespace }}",'
    'destination_workload=~"{{ target }}"}[{{ interval }}])) * 100'
)
DURATION_QUERY = (
    "histogram_quantile(0.99, sum(rate(istio_request_duration_milliseconds_bucket{"
    'reporter="destination",destination_workload_namespace="{{ namespace }}",'
    'destination_workload=~"{{ target }}"}[{{ interval }}])) by (le))'
)

BUILTIN_QUERIES: dict[str, str] = {
    REQUEST_SUCCESS_RATE: SUCCESS_RATE_QUERY,
    REQUEST_DURATION: DURATION_QUERY,
}


def builtin_query(metric: str, *, namespace: str, target: str, interval: str) -> str:
    """The rendered PromQL of a built-in metric; ``KeyError`` for an unknown name."""
    template = BUILTIN_QUERIES[metric]
    return (
        template.replace("{{ namespace }}", namespace)
        .replace("{{ target }}", target)
        .replace("{{ interval }}", interval)
    )


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
