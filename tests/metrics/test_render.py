"""Query rendering: Flagger's exact built-in strings, templates, checks."""

from __future__ import annotations

import pytest

from progdel.config.canary import CanaryMetric, load_canary, load_metric_templates
from progdel.errors import InvalidInput
from progdel.metrics.builtin import builtin_query, builtin_scale, check_metric
from progdel.metrics.templates import QueryContext, metric_queries, render_query, shaping_variables

# The strings Flagger's own observer tests pin (pkg/metrics/observers/istio_test.go and
# http_test.go), for namespace "test": Flagger sends them with a leading space, which Prometheus
# ignores and progdel trims.
SR = (
    'sum( rate( istio_requests_total{ reporter="destination", destination_workload_namespace="test", '
    'destination_workload=~"podinfo", response_code!~"5.*" }[1m] ) ) / sum( rate( istio_requests_total{ '
    'reporter="destination", destination_workload_namespace="test", destination_workload=~"podinfo" }[1m] ) '
    ") * 100"
)
DUR = (
    "histogram_quantile( 0.99, sum( rate( istio_request_duration_milliseconds_bucket{ "
    'reporter="destination", destination_workload_namespace="test", destination_workload=~"podinfo" }[1m] ) '
    ") by (le) )"
)
HTTP_SR = (
    'sum( rate( http_request_duration_seconds_count{ kubernetes_namespace="test", '
    'kubernetes_pod_name=~"podinfo-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)", status!~"5.*" }[1m] ) ) / '
    'sum( rate( http_request_duration_seconds_count{ kubernetes_namespace="test", '
    'kubernetes_pod_name=~"podinfo-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)" }[1m] ) ) * 100'
)
HTTP_DUR = (
    "histogram_quantile( 0.99, sum( rate( http_request_duration_seconds_bucket{ "
    'kubernetes_namespace="test", kubernetes_pod_name=~"podinfo-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)" }[1m] ) '
    ") by (le) )"
)


def test_builtin_queries_are_flaggers_exact_strings() -> None:
    """TestIstioObserver_GetRequestSuccessRate / _GetRequestDuration (istio_test.go)."""
    assert builtin_query("request-success-rate", namespace="test", target="podinfo", interval="1m") == SR
    assert builtin_query("request-duration", namespace="test", target="podinfo", interval="1m") == DUR
    for provider in ("istio", "", None):
        assert (
            builtin_query(
                "request-duration", namespace="test", target="podinfo", interval="1m", provider=provider
            )
            == DUR
        )


@pytest.mark.parametrize("provider", ["gatewayapi:v1", "gatewayapi:v1beta1", "kubernetes"])
def test_gateway_api_and_kubernetes_use_flaggers_http_observer(provider: str) -> None:
    """TestHttpObserver_GetRequestSuccessRate / _GetRequestDuration (http_test.go), and the
    observer Flagger's factory (observers/factory.go) picks for these providers."""
    q = {"namespace": "test", "target": "podinfo", "interval": "1m", "provider": provider}
    assert builtin_query("request-success-rate", **q) == HTTP_SR
    assert builtin_query("request-duration", **q) == HTTP_DUR
    assert builtin_scale("request-duration", provider) == 1000.0
    assert builtin_scale("request-success-rate", provider) == 1.0
    assert builtin_scale("request-duration", "istio") == 1.0


def test_http_observer_durations_are_seconds_judged_in_milliseconds() -> None:
    """http_test.go: a p99 of "0.100" seconds is 100ms; Flagger truncates to whole ms."""
    metric = CanaryMetric(name="request-duration", thresholdRange={"max": 100})
    assert check_metric(metric, 0.100 * builtin_scale("request-duration", "gatewayapi:v1")).passed
    slow = check_metric(metric, 0.1019 * builtin_scale("request-duration", "gatewayapi:v1"))
    assert not slow.passed and slow.message == "request duration 101ms > 100ms"


def test_a_gateway_api_canary_renders_the_http_observer_queries() -> None:
    canary = load_canary("examples/canary-gatewayapi.yaml").model
    queries = {q.name: q for q in metric_queries(canary)}
    assert "http_request_duration_seconds_count" in queries["request-success-rate"].query
    assert queries["request-duration"].scale == 1000.0


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


INJECTION = '404"} or vector(100) or up{job="'


@pytest.mark.parametrize(
    ("template", "variables", "expected"),
    [
        (
            'x{code="{{ variables.code }}"}',
            {"code": INJECTION},
            'x{code="404\\"} or vector(100) or up{job=\\""}',
        ),
        ("x{code='{{ variables.code }}'}", {"code": "a'b\"c"}, "x{code='a\\'b\"c'}"),
        ('x{path=~"{{ variables.re }}"}', {"re": "/api/.*|/v2"}, 'x{path=~"/api/.*|/v2"}'),
        ('x{path=~"{{ variables.re }}"}', {"re": "a\\.b"}, 'x{path=~"a\\\\.b"}'),
        ('x{a="{{ variables.v }}"}', {"v": "l1\nl2\x00"}, 'x{a="l1\\nl2\\x00"}'),
        ('x{a="\\"{{ variables.v }}"}', {"v": '"'}, 'x{a="\\"\\""}'),
        ("x{a=`{{ variables.v }}`}", {"v": 'a"b\\c'}, 'x{a=`a"b\\c`}'),
        ("x # note {{ variables.v }}", {"v": "a\nvector(1)"}, "x # note a vector(1)"),
        ('x{a="{{ namespace }}"}[{{ interval }}]', {}, 'x{a="ns"}[2m]'),
    ],
)
def test_values_inside_quoted_strings_are_escaped_for_them(
    template: str, variables: dict[str, str], expected: str
) -> None:
    ctx = QueryContext(name="pi", namespace="ns", target="t", service="s", interval="2m", variables=variables)
    assert render_query(template, ctx) == expected


def test_a_backtick_cannot_close_a_raw_string() -> None:
    ctx = QueryContext(
        name="pi", namespace="ns", target="t", service="s", interval="2m", variables={"v": "`"}
    )
    with pytest.raises(InvalidInput, match="holds a backtick"):
        render_query("x{a=`{{ variables.v }}`}", ctx)


@pytest.mark.parametrize(
    ("template", "shaping"),
    [
        ('x{code="{{ variables.code }}"}', []),
        ("sum by ({{ variables.label }}) (x)", ["label"]),
        (
            'rate(x{a="{{ variables.a }}"}[{{ variables.window }}]) > {{ variables.limit }}',
            ["window", "limit"],
        ),
        ('x{a="}{{ variables.a }}"} # {{ variables.b }}', []),
        ('x{a="\\"", b={{ variables.b }}}', ["b"]),
    ],
)
def test_variables_outside_a_quoted_string_are_named(template: str, shaping: list[str]) -> None:
    assert shaping_variables(template) == shaping
