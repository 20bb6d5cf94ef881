"""Verified traffic: the split the mesh actually served, beside the weight progdel set.

A weight written to a VirtualService or HTTPRoute is a request, not a fact: a sidecar that did not
pick up the route, a client that bypasses the mesh, sticky sessions or a stale Envoy all make the
served split differ from the set one. progdel reads what the destination sidecars reported::

    sum by (destination_workload) (rate(istio_requests_total{reporter="destination",
        destination_workload_namespace="NS",destination_workload=~"TARGET|TARGET-primary"}[INTERVAL]))

(for ``gatewayapi`` and ``kubernetes`` canaries, the application's own
``http_request_duration_seconds_count`` per pod, as Flagger's HTTP observer reads it) and warns
when the canary's share is far from its weight ("Traffic split for podinfo.test: canary
served 2% of requests, weight 20%").

How to call it so the comparison is fair: evaluate at the tick's time, over a window no longer than
the time the current weight has been in effect (the analysis interval), and compare with the weight
read *at the start* of the tick (the one that was in effect during the window), not the one the tick
is about to set. A window shorter than two scrape intervals gives no data: nothing is judged then.

The tolerance is in percentage points, 10 by default, set per canary with the annotation
``progdel.dev/split-tolerance`` (a number, or ``off``). Below ``min_rate`` requests per second the
split says too little to judge and no warning is given.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from progdel.config.canary import Canary, parse_duration
from progdel.metrics.builtin import Observer, observer_of
from progdel.metrics.provider import MetricsProvider, NoData

DEFAULT_MIN_RATE = 1.0  # requests per second over the window

_METRIC = "istio_requests_total"
_HTTP_METRIC = "http_request_duration_seconds_count"


def _selector(namespace: str, workloads: str, op: str = "=~") -> str:
    return (
        f'reporter="destination",destination_workload_namespace="{namespace}",'
        f'destination_workload{op}"{workloads}"'
    )


def _pods(target: str) -> str:
    """The pods of the Deployment ``target`` (``TARGET-<hash>-<suffix>``), as Flagger's HTTP
    observer selects them: anchored, so ``TARGET-primary-...`` is not among them."""
    return f"{target}-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)"


def _http_selector(namespace: str, pods: str) -> str:
    return f'kubernetes_namespace="{namespace}",kubernetes_pod_name=~"{pods}"'


def served_split_query(namespace: str, target: str, interval: str) -> str:
    """The per-workload request rate of the canary (``target``) and its primary: one series each.

    This is the query to put on a dashboard; ``served_split`` evaluates the same selection as two
    scalars so that any ``MetricsProvider`` (one number per query) can run it.
    """
    sel = _selector(namespace, f"{target}|{target}-primary")
    return f"sum by (destination_workload) (rate({_METRIC}{{{sel}}}[{interval}]))"


def served_rate_queries(
    namespace: str, target: str, interval: str, provider: str | None = None
) -> tuple[str, str]:
    """(total rate of canary + primary, rate of the canary alone, 0 when it has no series), from
    the metrics Flagger's observer for ``provider`` reads: Istio's, or the application's own
    histogram for ``gatewayapi`` and ``kubernetes``."""
    if observer_of(provider) is Observer.HTTP:
        both = _http_selector(namespace, f"{_pods(target)}|{_pods(target + '-primary')}")
        total = f"sum(rate({_HTTP_METRIC}{{{both}}}[{interval}]))"
        one = _http_selector(namespace, _pods(target))
        canary = f"sum(rate({_HTTP_METRIC}{{{one}}}[{interval}])) or vector(0)"
        return total, canary
    total = f"sum(rate({_METRIC}{{{_selector(namespace, f'{target}|{target}-primary')}}}[{interval}]))"
    canary = f"sum(rate({_METRIC}{{{_selector(namespace, target, '=')}}}[{interval}])) or vector(0)"
    return total, canary


def metrics_window(canary: Canary) -> str:
    """The longest interval the canary's metrics judge over, as written (``1m``): the window its
    request count is taken over for ``progdel.dev/min-requests``."""
    intervals = [m.interval for m in canary.analysis.metrics]
    return max(intervals, key=parse_duration) if intervals else "1m"


def canary_requests_query(namespace: str, target: str, window: str, provider: str | None = None) -> str:
    """How many requests the canary (``target``) served over ``window``; 0 when it has no series.
    Counted in the metrics Flagger's observer for ``provider`` reads."""
    if observer_of(provider) is Observer.HTTP:
        sel = _http_selector(namespace, _pods(target))
        return f"sum(increase({_HTTP_METRIC}{{{sel}}}[{window}])) or vector(0)"
    return f"sum(increase({_METRIC}{{{_selector(namespace, target, '=')}}}[{window}])) or vector(0)"


def served_split(
    provider: MetricsProvider,
    namespace: str,
    target: str,
    interval: str,
    at: datetime,
    mesh_provider: str | None = None,
) -> dict[str, float] | None:
    """The shares of requests the primary and the canary served over ``interval`` before ``at``.

    Returns ``{"primary": 0.98, "canary": 0.02, "rps": 12.5}`` (shares in 0..1, ``rps`` the total
    request rate), or ``None`` when neither workload served anything in the window. Errors of the
    metrics server (unreachable, rejected query) are raised as the provider raises them.
    """
    total_q, canary_q = served_rate_queries(namespace, target, interval, mesh_provider)
    results = provider.query_many([("total", total_q), ("canary", canary_q)], at)
    total = results["total"]
    if isinstance(total, NoData):
        return None
    if isinstance(total, BaseException):
        raise total
    canary = results["canary"]
    if isinstance(canary, NoData):
        canary = 0.0
    elif isinstance(canary, BaseException):
        raise canary
    if total <= 0:
        return None
    share = min(1.0, max(0.0, canary / total))
    return {"primary": 1.0 - share, "canary": share, "rps": total}


def split_warning(
    set_weight: int,
    served: Mapping[str, float] | None,
    tolerance: float | None,
    total_rate: float | None = None,
    *,
    name: str = "",
    min_rate: float = DEFAULT_MIN_RATE,
) -> str | None:
    """The Warning event's text when the canary's served share is more than ``tolerance``
    percentage points from ``set_weight``; ``None`` when it is close enough, when there is too
    little traffic to judge (under ``min_rate`` requests per second), or when checking is off
    (``tolerance`` is ``None``).

    ``total_rate`` defaults to ``served["rps"]``; ``name`` is the canary as ``name.namespace``.
    """
    if served is None or tolerance is None:
        return None
    rate = total_rate if total_rate is not None else served.get("rps")
    if rate is None or rate < min_rate:
        return None
    served_pct = 100.0 * float(served.get("canary", 0.0))
    if abs(served_pct - set_weight) <= tolerance:
        return None
    return f"Traffic split for {name}: canary served {served_pct:.0f}% of requests, weight {set_weight}%"


__all__ = [
    "served_rate_queries",
    "served_split",
    "served_split_query",
    "split_warning",
]
