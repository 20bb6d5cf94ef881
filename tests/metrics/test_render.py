"""Query rendering: Flagger's exact built-in strings, templates, checks."""

from __future__ import annotations

import pytest

from progdel.config.canary import CanaryMetric, load_canary, load_metric_templates
from progdel.errors import InvalidInput
from progdel.metrics.builtin import builtin_query, check_metric
from progdel.metrics.templates import QueryContext, metric_queries, render_query

SR = (
    'sum(rate(istio_requests_total{reporter="destination",destination_workload_namespace="test",'
    'destination_workload=~"podinfo",response_code!~"5.*"}[1m])) / sum(rate(istio_requests_total{'
    'reporter="destination",destination_workload_namespace="test",'
    'destination_workload=~"podinfo"}[1m])) * 100'
)
DUR = (
    'histogram_quantile(0.99, sum(rate(istio_request_duration_milliseconds_bucket{reporter="destination",'
    'destination_workload_namespace="test",destination_workload=~"podinfo"}[1m])) by (le))'
)


def test_builtin_queries_are_flaggers_exact_strings() -> None:
    assert builtin_query("request-success-rate", namespace="test", target="podinfo", interval="1m") == SR
    assert builtin_query("request-duration", namespace="test", target="podinfo", interval="1m") == DUR


def test_examples_render() -> None:
    canary = load_canary("examples/canary.yaml").model
    assert [q.query for q in metric_queries(canary)] == [
        SR.replace("[1m]", "[30s]"),
        DUR.replace("[1m]", "[30s]"),
    ]
    custom = load_canary("examples/canary-custom-query.yaml").model
    qs = metric_queries(custom, load_metric_templates("examples/metric-template.yaml"))
    assert [q.name for q in qs] == ["error-rate", "404s percentage"]  # templates come last
    assert "\n" not in qs[1].query and 'destination_workload="podinfo"' in qs[1].query
    assert qs[1].address == "http://prometheus.istio-system:9090"
    with pytest.raises(InvalidInput, match="MetricTemplate test/not-found-percentage not found"):
        metric_queries(custom, [])


CTX = QueryContext(
    name="pi", namespace="ns", target="podinfo", service="svc", interval="2m", variables={"code": "404"}
)


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ name }} {{namespace}} {{target}} {{ service }} {{ interval }}", "pi ns podinfo svc 2m"),
        ('x{code="{{ variables.code }}"}', 'x{code="404"}'),
        ("a\n   b", "a b"),
    ],
)
def test_render(template: str, expected: str) -> None:
    assert render_query(template, CTX) == expected


@pytest.mark.parametrize(
    ("template", "error"),
    [
        ("{{ variables.missing }}", "template variable 'missing' is not set"),
        ("{{ ingress }}", "spec.ingressRef is not set"),
        ("{{ nope }}", "unknown placeholder {{ nope }}"),
    ],
)
def test_render_errors_name_the_variable(template: str, error: str) -> None:
    with pytest.raises(InvalidInput, match=error.replace("{", r"\{").replace("}", r"\}")):
        render_query(template, CTX)


@pytest.mark.parametrize(
    ("metric", "value", "passed", "message"),
    [
        (
            {"name": "request-success-rate", "thresholdRange": {"min": 99}},
            69.1666,
            False,
            "success rate 69.17% < 99%",
        ),
        ({"name": "request-success-rate", "thresholdRange": {"min": 99}}, 99.0, True, "success rate 99.00%"),
        ({"name": "request-success-rate", "threshold": 99.5}, 99.4, False, "success rate 99.40% < 99.5%"),
        (
            {"name": "request-duration", "thresholdRange": {"max": 500}},
            1200.9,
            False,
            "request duration 1.2s > 500ms",
        ),
        ({"name": "request-duration", "thresholdRange": {"max": 500}}, 500.9, True, "request duration 500ms"),
        ({"name": "request-duration", "threshold": 500}, 501, False, "request duration 501ms > 500ms"),
        ({"name": "errors", "query": "x", "thresholdRange": {"max": 1}}, 2.345, False, "errors 2.35 > 1"),
        ({"name": "errors", "query": "x", "threshold": 5}, 4, True, "errors 4.00"),
    ],
)
def test_check_metric(metric: dict, value: float, passed: bool, message: str) -> None:
    result = check_metric(CanaryMetric.model_validate(metric), value)
    assert (result.passed, result.message) == (passed, message)
