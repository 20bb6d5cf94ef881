"""Observing a canary's metrics at one time: render each metric's query, run those of one server
together, map every answer to a ``MetricResult`` for the engine to judge.

This is the metrics port of a canary driver. It knows no cluster: the MetricTemplates available
and the servers to ask come from the driver (the runner reads templates from the cluster and
reaches in-cluster Prometheus through the API server; a replay reads template files and asks a
Prometheus it is given), so a watch and a replay observe the same queries the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

from progdel.canary import traffic
from progdel.canary.judge import MetricResult
from progdel.canary.observation import Observation
from progdel.config.canary import Canary, MetricTemplate
from progdel.errors import InvalidInput
from progdel.metrics.prometheus import compared_samples
from progdel.metrics.servers import Headers, MetricsServers, SecretName
from progdel.metrics.templates import MetricQuery, metric_queries, one_metric

#: the key of the canary's request count among a tick's query results (no metric name has a colon)
REQUESTS_KEY = "progdel:canary-requests"


@dataclass
class CanaryMetrics:
    """The metrics of canaries, as one driver sees them.

    ``servers`` holds the Prometheus servers and the credentials that belong to each;
    ``default_url`` is the canary's metrics server; ``templates`` are the MetricTemplates found,
    ``problems`` why each other referenced one cannot be used (keyed by namespace and name)."""

    servers: MetricsServers
    default_url: str
    templates: list[MetricTemplate] = field(default_factory=list)
    problems: Mapping[tuple[str, str], str] = field(default_factory=dict)
    # the last spec rendered and its queries: a replay renders once for all its ticks
    _last: tuple[Canary, list[MetricQuery], dict[str, MetricResult]] | None = field(default=None, repr=False)

    def rendered(self, canary: Canary) -> tuple[list[MetricQuery], dict[str, MetricResult]]:
        """Every metric's query, one at a time: those that render, and for each metric that does
        not (its MetricTemplate is gone or invalid, a variable is not set) a failed check saying
        why, in Flagger's words, as Flagger counts it."""
        if self._last is not None and self._last[0] is canary:
            return list(self._last[1]), dict(self._last[2])
        queries: list[MetricQuery] = []
        broken: dict[str, MetricResult] = {}
        for i, metric in enumerate(canary.analysis.metrics):
            ref = metric.template_ref
            try:
                if ref is not None and (ref.namespace or canary.namespace, ref.name) in self.problems:
                    raise InvalidInput(self.problems[(ref.namespace or canary.namespace, ref.name)])
                queries += metric_queries(one_metric(canary, i), self.templates)
            except InvalidInput as err:
                if ref is not None:
                    where = f"{ref.name}.{ref.namespace or canary.namespace}"
                    broken[metric.name] = MetricResult.error(f"Metric template {where} error: {err}")
                else:
                    broken[metric.name] = MetricResult.error(f"Metric query failed for {metric.name}: {err}")
        self._last = (canary, queries, broken)
        return list(queries), dict(broken)

    def measure(
        self, canary: Canary, at: datetime, extra: tuple[str, str] | None = None
    ) -> dict[str, MetricResult]:
        """Every metric of ``canary`` evaluated at ``at``, the queries of one server run together;
        ``extra`` is one more (key, query) for the default server."""
        queries, results = self.rendered(canary)
        by_server: dict[tuple[str, SecretName | None, Headers, bool], list[tuple[str, str]]] = {}
        scales = {q.name: q.scale for q in queries}
        compared = {q.name: q for q in queries if q.comparison is not None}
        for q in queries:
            key = (q.address or self.default_url, q.secret, q.headers, q.insecure_skip_verify)
            by_server.setdefault(key, []).append((q.name, q.query))
        if extra is not None:
            by_server.setdefault((self.default_url, None, (), False), []).append(extra)
        for (url, secret, headers, insecure), batch in by_server.items():
            try:
                provider = self.servers.provider(url, secret, headers, insecure)
            except InvalidInput as err:  # its secretRef cannot be used: a failed check, as Flagger counts it
                for name, _query in batch:
                    results[name] = MetricResult.error(f"Metric query failed for {name}: {err}")
                continue
            for name, value in provider.query_many(batch, at).items():
                results[name] = MetricResult.from_provider(value, scales.get(name, 1.0))
                judged = compared.get(name)
                if judged is not None:  # the statistical judge's samples, from the same server
                    results[name] = results[name].with_samples(compared_samples(provider, judged, at))
        return results

    def observe(self, canary: Canary, obs: Observation) -> Observation:
        """``obs`` with the metrics at its time, and the canary's request count when the
        min-requests guard is on (queried in the same concurrent batch, over the longest metric
        interval)."""
        if not canary.settings.min_requests:
            return replace(obs, metrics=self.measure(canary, obs.now))
        window = traffic.metrics_window(canary)
        query = traffic.canary_requests_query(
            canary.namespace, canary.target_name, window, canary.spec.provider
        )
        results = self.measure(canary, obs.now, (REQUESTS_KEY, query))
        requests = results.pop(REQUESTS_KEY)
        return replace(obs, metrics=results, canary_requests=requests, requests_window=window)


__all__ = ["REQUESTS_KEY", "CanaryMetrics"]
