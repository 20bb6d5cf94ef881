"""``judge_metric``: the one place a metric's result is judged (a tick, ``canary check`` and a
verified environment's checks ask it), table-driven over Flagger's wording and progdel's no-data
policies."""

from __future__ import annotations

import pytest

from progdel.canary.judge import Effect, MetricResult, judge_metric

from .test_engine import make_canary

NO_TRAFFIC = "no values found for istio metric {m} probably podinfo.test is not receiving traffic"


@pytest.mark.parametrize(
    ("metric", "result", "annotations", "expected"),
    [
        (
            "request-success-rate",
            MetricResult.ok(99.5),
            {},
            (99.5, "pass", "success rate 99.50%", Effect.PASS),
        ),
        (
            "request-success-rate",
            MetricResult.ok(69.17),
            {},
            (69.17, "fail", "success rate 69.17% < 99%", Effect.FAIL),
        ),
        (
            "request-duration",
            MetricResult.ok(1200.7),
            {},
            (1200.7, "fail", "request duration 1.2s > 500ms", Effect.FAIL),
        ),
        ("request-duration", MetricResult.no_data(), {}, (None, "no-data", NO_TRAFFIC, Effect.FAIL)),
        (
            "request-duration",
            MetricResult.no_data(),
            {"progdel.dev/no-data": "skip"},
            (None, "skipped", NO_TRAFFIC, Effect.PASS),
        ),
        (
            "request-duration",
            MetricResult.no_data(),
            {"progdel.dev/no-data": "request-duration=hold"},
            (None, "hold", NO_TRAFFIC, Effect.HOLD),
        ),
        (
            "request-success-rate",
            MetricResult.no_data(),
            {"progdel.dev/no-data": "request-duration=hold"},
            (None, "no-data", NO_TRAFFIC, Effect.FAIL),
        ),
        (
            "request-success-rate",
            MetricResult.error("MetricTemplate not-found.test not found"),
            {},
            (None, "error", "MetricTemplate not-found.test not found", Effect.FAIL),
        ),
        (
            "request-success-rate",
            MetricResult.infra_error("connection refused"),
            {},
            (None, "error", "connection refused", Effect.INFRA),
        ),
        (
            "request-success-rate",
            MetricResult.rejected("parse error"),
            {},
            (None, "rejected", "parse error", Effect.REJECT),
        ),
    ],
)
def test_judge_metric(metric, result, annotations, expected) -> None:
    canary = make_canary(annotations=annotations)
    m = next(x for x in canary.analysis.metrics if x.name == metric)
    judged = judge_metric(canary, m, result)
    value, verdict, message, effect = expected
    assert (judged.value, judged.verdict, judged.message, judged.effect) == (
        value,
        verdict,
        message.format(m=metric),
        effect,
    )


@pytest.mark.parametrize(
    ("metric", "result", "halt"),
    [
        (
            "request-duration",
            MetricResult.ok(1200.7),
            "Halt podinfo.test advancement request duration 1.2s > 500ms",
        ),
        (
            "request-duration",
            MetricResult.no_data(),
            "Halt advancement " + NO_TRAFFIC.format(m="request-duration"),
        ),
        ("request-success-rate", MetricResult.error("template missing"), "template missing"),
        ("request-success-rate", MetricResult.ok(100.0), ""),
    ],
)
def test_a_failed_check_carries_its_halt_event(metric, result, halt) -> None:
    """The event a failed check halts advancement with, as the tick shows it (Flagger's words)."""
    canary = make_canary()
    m = next(x for x in canary.analysis.metrics if x.name == metric)
    assert judge_metric(canary, m, result).halt == halt
