"""The statistical judge's false failures: 200 runs where canary and primary behave the same.

Each run is one workload pair in its own namespace of one generated history (promtool backfill):
primary and canary serve the same traffic with a p99 drawn every 5 s from the same log-normal
distribution (median 40 ms), each from its own seed. Every run's request-duration is sampled
for both through Prometheus range queries, as a canary tick does, and judged with the judge's
defaults (``progdel.dev/judge``, a 10 s step over a 2 m interval). Prints how many runs failed
(the false-failure rate, which must not exceed the significance, 5% by default), how many were
marginal, and the rate of the Mann-Whitney test alone (no effect-size tolerance), which should
sit near the significance. Exits 1 when the false-failure rate is above the significance.

    .venv/bin/python bench/bench_judge.py [runs]
"""

from __future__ import annotations

import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from progdel.canary.judge import MetricResult, compare_with_primary
from progdel.config.canary import parse_canary
from progdel.metrics.comparison import compare
from progdel.metrics.prometheus import PrometheusProvider, compared_samples
from progdel.metrics.templates import metric_queries
from tests.canary.test_runner_integration import T0
from tests.promfixture import istio_openmetrics, jittered, run_prometheus

HISTORY_S = 180
AT = T0 + timedelta(seconds=HISTORY_S)
JUDGE = "{request-duration: {step: 10s}}"


def canary(namespace: str) -> Any:
    doc = {
        "apiVersion": "flagger.app/v1beta1",
        "kind": "Canary",
        "metadata": {"name": "podinfo", "namespace": namespace, "annotations": {"progdel.dev/judge": JUDGE}},
        "spec": {
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
            "service": {"port": 9898},
            "analysis": {
                "interval": "10s",
                "threshold": 2,
                "stepWeight": 20,
                "metrics": [{"name": "request-duration", "thresholdRange": {"max": 500}, "interval": "2m"}],
            },
        },
    }
    return parse_canary(doc, namespace).model


def main(runs: int = 200) -> int:
    series = {}
    for i in range(runs):
        ns = f"run-{i:03d}"
        series[f"{ns}/podinfo-primary"] = jittered(2 * i, HISTORY_S, 5, rps=10, latency_ms=40)
        series[f"{ns}/podinfo"] = jittered(2 * i + 1, HISTORY_S, 5, rps=10, latency_ms=40)
    verdicts: dict[str, int] = {}
    test_alone = 0
    significance = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        with run_prometheus(istio_openmetrics(T0, HISTORY_S, 5, series), Path(tmp)) as prom:
            loaded = time.perf_counter() - started
            started = time.perf_counter()
            with PrometheusProvider(prom.url) as provider:
                for i in range(runs):
                    c = canary(f"run-{i:03d}")
                    metric = c.analysis.metrics[0]
                    (query,) = metric_queries(c)
                    samples = compared_samples(provider, query, AT)
                    if isinstance(samples, BaseException):
                        print(f"run {i}: {samples}")
                        return 1
                    judged = compare_with_primary(c, metric, MetricResult.ok(0.0, samples))
                    assert judged is not None
                    verdicts[judged.verdict] = verdicts.get(judged.verdict, 0) + 1
                    settings = c.settings.judges[metric.name]
                    significance = settings.significance
                    alone = compare(
                        samples.canary,
                        samples.primary,
                        direction=judged.direction,
                        significance=settings.significance,
                        tolerance=0.0,
                        min_samples=settings.min_samples,
                    )
                    test_alone += alone.verdict == "fail"
            judging = time.perf_counter() - started
    failed = verdicts.get("fail", 0)
    rate = failed / runs
    print(f"runs: {runs} (canary and primary from the same distribution, 12 samples each)")
    print(f"history backfilled and Prometheus ready in {loaded:.1f}s; sampled and judged in {judging:.1f}s")
    print(f"verdicts: {dict(sorted(verdicts.items()))}")
    print(f"false-failure rate: {rate:.1%} (significance {significance:.0%}, tolerance 10%)")
    print(f"Mann-Whitney alone (tolerance 0): {test_alone / runs:.1%} rejected")
    return 0 if rate <= significance and not verdicts.get("no-data") else 1


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 200))
