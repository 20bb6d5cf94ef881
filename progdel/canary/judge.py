"""How a metric is judged: the one place a canary's tick, ``canary check``, a verified
environment and a replay ask.

A metric's query gives a ``MetricResult`` (a value, no data, an error of the metrics server, a
rejected query, or a metric that could not be evaluated); ``judge_metric`` holds it against the
metric's thresholds and no-data policy and says what it does to the check (``Effect``), in
Flagger's words. Pure: no clock, no network.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Literal

from progdel.config.canary import Canary, CanaryAnalysis, CanaryMetric, NoDataPolicy
from progdel.metrics.builtin import REQUEST_SUCCESS_RATE, check_metric, no_values_error


class MetricOutcome(enum.StrEnum):
    VALUE = "value"
    NO_DATA = "no-data"
    INFRA_ERROR = "infra-error"
    REJECTED = "rejected"
    ERROR = "error"  # the metric could not be evaluated: its template, Secret or query is broken


@dataclass(frozen=True)
class MetricResult:
    """What one metric query gave this tick."""

    outcome: MetricOutcome
    value: float | None = None
    message: str = ""

    @classmethod
    def ok(cls, value: float) -> MetricResult:
        return cls(MetricOutcome.VALUE, value)

    @classmethod
    def no_data(cls, message: str = "no values found") -> MetricResult:
        return cls(MetricOutcome.NO_DATA, None, message)

    @classmethod
    def infra_error(cls, message: str) -> MetricResult:
        return cls(MetricOutcome.INFRA_ERROR, None, message)

    @classmethod
    def rejected(cls, message: str) -> MetricResult:
        return cls(MetricOutcome.REJECTED, None, message)

    @classmethod
    def error(cls, message: str) -> MetricResult:
        """The metric could not be evaluated (a MetricTemplate or its Secret is missing, a
        variable is not set): a failed check, as Flagger counts it; ``message`` is the event."""
        return cls(MetricOutcome.ERROR, None, message)

    @classmethod
    def from_provider(cls, result: float | BaseException, scale: float = 1.0) -> MetricResult:
        """Map a ``MetricsProvider.query_many`` result (value or error) to a ``MetricResult``; a
        value is multiplied by ``scale`` (a query's unit conversion)."""
        from progdel.metrics.provider import NoData, QueryRejected

        if isinstance(result, NoData):
            return cls.no_data(str(result))
        if isinstance(result, QueryRejected):
            return cls.rejected(str(result))
        if isinstance(result, BaseException):
            return cls.infra_error(str(result))
        return cls.ok(float(result) * scale)


class Effect(enum.StrEnum):
    """What one metric's verdict does to the check it is part of."""

    PASS = "pass"  # the metric passes (a metric without data under ``skip`` too)
    FAIL = "fail"  # a failed check
    HOLD = "hold"  # neither: no data under ``hold``
    INFRA = "infra"  # an infrastructure error: not a failed check, counted apart
    REJECT = "reject"  # the query itself was refused: a spec error


@dataclass(frozen=True)
class MetricJudgement:
    """The verdict on one metric's result: its value (if any), the verdict a measurement shows, why
    (Flagger's words: ``success rate 69.17% < 99%``), what it does to the check, and for a failed
    check the event that halts advancement, as Flagger words it for the metric's kind."""

    value: float | None
    verdict: Literal["pass", "fail", "no-data", "skipped", "hold", "error", "rejected"]
    message: str
    effect: Effect
    halt: str = ""


def no_data_message(canary: Canary, metric: CanaryMetric) -> tuple[str, str]:
    """(why, the Halt event) for a metric without data, in Flagger's words for its kind."""
    if metric.template_ref is None and metric.query is None:
        why = (
            f"no values found for {canary.spec.provider or 'istio'} metric {metric.name} "
            f"probably {canary.target_name}.{canary.namespace} is not receiving traffic"
        )
        if metric.name == REQUEST_SUCCESS_RATE:  # Flagger adds its error to this one only
            return why, f"Halt advancement {why}: {no_values_error(canary.spec.provider)}"
        return why, f"Halt advancement {why}"
    if metric.template_ref is None:
        return (
            f"no values found for metric: {metric.name}",
            f"Halt advancement no values found for metric: {metric.name}",
        )
    why = f"no values found for custom metric: {metric.name}"
    return why, f"Halt advancement {why}: no values found"


def judge_metric(canary: Canary, metric: CanaryMetric, result: MetricResult) -> MetricJudgement:
    """Judge one metric of ``canary`` on one check: its value against the thresholds, no data by the
    metric's no-data policy (``progdel.dev/no-data``), a metric that could not be evaluated as a
    failed check, an infrastructure error or a rejected query as such. The one place a metric is
    judged: a canary's tick, ``canary check`` and a verified environment's checks all ask it."""
    if result.outcome is MetricOutcome.VALUE:
        assert result.value is not None
        check = check_metric(metric, result.value)
        if check.passed:
            return MetricJudgement(result.value, "pass", check.message, Effect.PASS)
        halt = f"Halt {canary.name}.{canary.namespace} advancement {check.message}"
        return MetricJudgement(result.value, "fail", check.message, Effect.FAIL, halt)
    if result.outcome is MetricOutcome.NO_DATA:
        why, halt = no_data_message(canary, metric)
        policy = canary.settings.no_data_policy(metric.name)
        if policy is NoDataPolicy.FAIL:
            return MetricJudgement(None, "no-data", why, Effect.FAIL, halt)
        if policy is NoDataPolicy.SKIP:
            return MetricJudgement(None, "skipped", why, Effect.PASS)
        return MetricJudgement(None, "hold", why, Effect.HOLD)
    if result.outcome is MetricOutcome.ERROR:
        return MetricJudgement(None, "error", result.message, Effect.FAIL, result.message)
    if result.outcome is MetricOutcome.INFRA_ERROR:
        return MetricJudgement(None, "error", result.message, Effect.INFRA)
    return MetricJudgement(None, "rejected", result.message, Effect.REJECT)


def ordered_metrics(analysis: CanaryAnalysis) -> list[CanaryMetric]:
    """Metrics in the order Flagger judges them: built-in and inline queries, then templates."""
    return [m for m in analysis.metrics if m.template_ref is None] + [
        m for m in analysis.metrics if m.template_ref is not None
    ]


__all__ = [
    "Effect",
    "MetricJudgement",
    "MetricOutcome",
    "MetricResult",
    "judge_metric",
    "no_data_message",
    "ordered_metrics",
]
