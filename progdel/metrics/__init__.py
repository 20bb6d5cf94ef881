"""Metrics: the provider port, Prometheus, Flagger's built-in Istio queries and query templates."""

from progdel.metrics.provider import (
    MetricsError,
    MetricsProvider,
    MetricsUnreachable,
    NoData,
    QueryRejected,
)

__all__ = ["MetricsError", "MetricsProvider", "MetricsUnreachable", "NoData", "QueryRejected"]
