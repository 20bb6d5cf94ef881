"""How a metric is judged: the one place a canary's tick, ``canary check``, a verified
environment and a replay ask.

A metric's query gives a ``MetricResult`` (a value, no data, an error of the metrics server, a
rejected query, or a metric that could not be evaluated); ``judge_metric`` holds it against the
metric's thresholds and no-data policy and says what it does to the check (``Effect``), in
Flagger's words. Pure: no clock, no network.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from typing import Literal

from progdel.config.canary import Canary, CanaryAnalysis, CanaryMetric, NoDataPolicy
from progdel.metrics.builtin import REQUEST_SUCCESS_RATE, check_metric, no_values_error, threshold_bounds
from progdel.metrics.comparison import Comparison, Direction, Samples, compare


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
    # the canary's and the primary's samples over the window, for a metric the statistical judge
    # compares (``progdel.dev/judge``)
    samples: Samples | None = None

    @classmethod
    def ok(cls, value: float, samples: Samples | None = None) -> MetricResult:
        return cls(MetricOutcome.VALUE, value, samples=samples)

    def with_samples(self, samples: Samples | BaseException) -> MetricResult:
        """This result with the judge's samples, or with the error fetching them: no samples is
        an empty set (the judge calls it no data); an unreachable server or a rejected query
        makes the whole result so, as for the metric's own query."""
        from progdel.metrics.provider import NoData, QueryRejected

        if self.outcome is not MetricOutcome.VALUE:
            return self
        if isinstance(samples, NoData):
            return replace(self, samples=Samples((), ()))
        if isinstance(samples, QueryRejected):
            return MetricResult.rejected(f"comparison with the primary: {samples}")
        if isinstance(samples, BaseException):
            return MetricResult.infra_error(f"comparison with the primary: {samples}")
        return replace(self, samples=samples)

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
    comparison: Comparison | None = None  # the statistical judge's, for a metric that has one


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
        valued = judge_value(canary, metric, result)
        effect = {"fail": Effect.FAIL, "no-data": Effect.FAIL, "hold": Effect.HOLD}.get(
            valued.verdict, Effect.PASS
        )
        halt = ""
        if valued.verdict == "fail":
            halt = f"Halt {canary.name}.{canary.namespace} advancement {valued.message}"
        elif valued.verdict == "no-data":
            halt = f"Halt advancement {valued.message}"
        return MetricJudgement(result.value, valued.verdict, valued.message, effect, halt, valued.comparison)
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


def direction_of(metric: CanaryMetric) -> Direction:
    """The shift a metric's thresholds guard against: a ``max`` alone an increase, a ``min``
    alone a decrease, both (or neither) either."""
    lo, hi = threshold_bounds(metric)
    if hi is not None and lo is None:
        return Direction.INCREASE
    if lo is not None and hi is None:
        return Direction.DECREASE
    return Direction.EITHER


def compare_with_primary(canary: Canary, metric: CanaryMetric, result: MetricResult) -> Comparison | None:
    """The statistical judge's verdict on ``metric`` (``progdel.metrics.comparison``): its
    canary's samples against its primary's, with the options of ``progdel.dev/judge``; None for a
    metric without a judge or a result without samples."""
    judge = canary.settings.judges.get(metric.name)
    if judge is None or result.samples is None:
        return None
    return compare(
        result.samples.canary,
        result.samples.primary,
        direction=judge.direction or direction_of(metric),
        significance=judge.significance,
        tolerance=judge.tolerance,
        min_samples=judge.min_samples,
        name=metric.name,
    )


@dataclass(frozen=True)
class ValueJudgement:
    """The verdict on a metric that has a value: its thresholds, and for a metric the statistical
    judge compares, the comparison with the primary (too few samples for it: the no-data policy's
    verdict, ``no-data`` failing the check, ``skipped`` passing it, ``hold`` holding)."""

    verdict: Literal["pass", "fail", "no-data", "skipped", "hold"]
    message: str
    comparison: Comparison | None = None


def judge_value(canary: Canary, metric: CanaryMetric, result: MetricResult) -> ValueJudgement:
    """Judge ``result.value`` against the metric's thresholds (Flagger's words when it fails) and,
    with ``progdel.dev/judge``, its samples against the primary's: either failing fails."""
    assert result.value is not None
    check = check_metric(metric, result.value)
    compared = compare_with_primary(canary, metric, result)
    if not check.passed:
        return ValueJudgement("fail", check.message, compared)
    if compared is None:
        return ValueJudgement("pass", check.message)
    if compared.verdict == "fail":
        return ValueJudgement("fail", compared.message, compared)
    if compared.verdict != "no-data":
        return ValueJudgement("pass", f"{check.message}; {compared.message}", compared)
    policy = canary.settings.no_data_policy(metric.name)
    verdict: Literal["no-data", "skipped", "hold"] = (
        "no-data" if policy is NoDataPolicy.FAIL else "skipped" if policy is NoDataPolicy.SKIP else "hold"
    )
    return ValueJudgement(verdict, compared.message, compared)


def ordered_metrics(analysis: CanaryAnalysis) -> list[CanaryMetric]:
    """Metrics in the order Flagger judges them: built-in and inline queries, then templates."""
    return [m for m in analysis.metrics if m.template_ref is None] + [
        m for m in analysis.metrics if m.template_ref is not None
    ]


__all__ = [
    "Comparison",
    "Effect",
    "MetricJudgement",
    "MetricOutcome",
    "MetricResult",
    "compare_with_primary",
    "judge_metric",
    "judge_value",
    "no_data_message",
    "ordered_metrics",
]
