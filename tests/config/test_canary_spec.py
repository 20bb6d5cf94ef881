"""Canary spec loading: Flagger's files unchanged, defaults, errors with file:line: field."""

from __future__ import annotations

from pathlib import Path

import pytest

from progdel.canary.admission import admit
from progdel.config.canary import (
    JudgeSettings,
    NoDataPolicy,
    StrategyKind,
    canary_document,
    load_canary,
    load_metric_templates,
    parse_canary,
    parse_duration,
)
from progdel.errors import InvalidInput
from progdel.metrics.comparison import Direction

# Flagger's Istio tutorial Canary, as published.
TUTORIAL = """\
apiVersion: flagger.app/v1beta1
kind: Canary
metadata:
  name: podinfo
  namespace: test
spec:
  targetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: podinfo
  progressDeadlineSeconds: 60
  autoscalerRef:
    apiVersion: autoscaling/v2
    kind: HorizontalPodAutoscaler
    name: podinfo
  service:
    port: 9898
    targetPort: 9898
    gateways:
    - public-gateway.istio-system.svc.cluster.local
    hosts:
    - app.example.com
    trafficPolicy:
      tls:
        mode: DISABLE
    retries:
      attempts: 3
      perTryTimeout: 1s
      retryOn: "gateway-error,connect-failure,refused-stream"
  analysis:
    interval: 1m
    threshold: 5
    maxWeight: 50
    stepWeight: 10
    metrics:
    - name: request-success-rate
      thresholdRange:
        min: 99
      interval: 1m
    - name: request-duration
      thresholdRange:
        max: 500
      interval: 30s
    webhooks:
      - name: acceptance-test
        type: pre-rollout
        url: http://flagger-loadtester.test/
        timeout: 30s
        metadata:
          type: bash
          cmd: "curl -sd 'test' http://podinfo-canary:9898/token | grep token"
      - name: load-test
        url: http://flagger-loadtester.test/
        timeout: 5s
        metadata:
          cmd: "hey -z 1m -q 10 -c 2 http://podinfo-canary.test:9898/"
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "canary.yaml"
    p.write_text(text)
    return p


def test_tutorial_loads_unchanged_with_defaults(tmp_path: Path) -> None:
    spec = load_canary(write(tmp_path, TUTORIAL))
    c = spec.model
    assert spec.source.endswith("canary.yaml")
    assert (c.name, c.namespace, c.target_name, c.apex_name) == ("podinfo", "test", "podinfo", "podinfo")
    assert c.spec.service.port_name == "http"
    assert c.spec.service.retries == {
        "attempts": 3,
        "perTryTimeout": "1s",
        "retryOn": "gateway-error,connect-failure,refused-stream",
    }
    a = c.analysis
    assert (a.threshold, a.max_weight, a.step_weight, a.interval_seconds) == (5, 50, 10, 60.0)
    assert a.metrics[1].interval == "30s"
    assert a.webhooks[0].type == "pre-rollout" and a.webhooks[1].timeout == "5s"
    assert c.strategy is StrategyKind.CANARY
    assert c.settings.default_no_data is NoDataPolicy.FAIL and c.settings.max_infra_errors == 5


def test_defaults_for_a_minimal_canary() -> None:
    c = parse_canary(
        {
            "apiVersion": "flagger.app/v1beta1",
            "kind": "Canary",
            "metadata": {"name": "web", "namespace": "prod"},
            "spec": {
                "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                "service": {"port": 80},
                "analysis": {
                    "interval": "1m",
                    "threshold": 1,
                    "stepWeights": [5, 20, 90],
                    "metrics": [{"name": "request-success-rate", "threshold": 99}],
                },
            },
        },
        "cluster:prod/web",
    ).model
    a = c.analysis
    assert (a.max_weight, a.metrics[0].interval) == (90, "1m")
    assert c.spec.progress_deadline_seconds == 600
    assert (c.spec.service.target_port, c.spec.service.name, c.spec.service.port_name) == (80, "web", "http")


def test_intervals_under_10s_are_honoured(tmp_path: Path) -> None:
    c = load_canary(
        write(tmp_path, TUTORIAL.replace("interval: 1m\n    threshold", "interval: 2s\n    threshold"))
    ).model
    assert c.analysis.interval_seconds == 2.0


@pytest.mark.parametrize(
    ("old", "new", "error"),
    [
        (
            "    stepWeight: 10",
            "    stepWieght: 10",
            "canary.yaml:34: spec.analysis.stepWieght: unknown field",
        ),
        (
            "    threshold: 5",
            "    threshold: five",
            "canary.yaml:32: spec.analysis.threshold: Input should be a valid integer",
        ),
        ("    port: 9898\n", "    portt: 9898\n", "canary.yaml:16: spec.service.port: Field required"),
        (
            "      interval: 30s",
            "      interval: 30 seconds",
            "canary.yaml:43: spec.analysis.metrics[1].interval: Value error, invalid duration",
        ),
        (
            "    - name: request-duration",
            "    - name: latency",
            "canary.yaml:40: spec.analysis.metrics[1].name: metric 'latency' is not built in",
        ),
        (
            "    stepWeight: 10\n",
            "",
            "canary.yaml:30: spec.analysis: one of stepWeight, stepWeights or iterations",
        ),
        ("kind: Canary", "kind: Canery", "canary.yaml:2: kind"),
    ],
)
def test_errors_name_file_line_and_field(tmp_path: Path, old: str, new: str, error: str) -> None:
    assert old in TUTORIAL
    with pytest.raises(InvalidInput) as err:
        load_canary(write(tmp_path, TUTORIAL.replace(old, new, 1)))
    assert str(err.value).startswith(str(tmp_path / error))
    assert err.value.exit_code == 2


def test_missing_required_field(tmp_path: Path) -> None:
    text = TUTORIAL.replace("    name: podinfo\n  progressDeadlineSeconds", "  progressDeadlineSeconds", 1)
    with pytest.raises(InvalidInput, match=r"canary\.yaml:\d+: spec\.targetRef\.name: Field required"):
        load_canary(write(tmp_path, text))


def test_a_metric_without_thresholds_is_held_to_zero_as_in_flagger(tmp_path: Path) -> None:
    """Flagger's zero value: pkg/controller/scheduler_metrics.go compares with metric.Threshold."""
    text = TUTORIAL.replace("      thresholdRange:\n        min: 99\n", "", 1)
    text = text.replace("      thresholdRange:\n        max: 500\n", "", 1)
    model = load_canary(write(tmp_path, text)).model
    assert [m.threshold for m in model.analysis.metrics] == [0.0, 0.0]
    admitted = admit(canary_document(write(tmp_path, text)))
    assert any("has no thresholdRange or threshold" in n for n in admitted.notes), admitted.notes


def test_ab_match_an_httproute_cannot_hold_is_a_spec_error_on_gatewayapi(tmp_path: Path) -> None:
    ab = TUTORIAL.replace("    maxWeight: 50\n    stepWeight: 10\n", "    iterations: 5\n    match:\n"
        "    - headers:\n        x-canary:\n          exact: insider\n"
        "    - sourceLabels:\n        app: frontend\n", 1)  # fmt: skip
    assert admit(canary_document(write(tmp_path, ab))).model.analysis.match  # Istio holds both
    on_gateway = ab.replace("spec:\n", "spec:\n  provider: gatewayapi:v1\n", 1).replace(
        "    port: 9898\n", "    port: 9898\n    gatewayRefs: [{name: gw}]\n", 1
    )
    with pytest.raises(InvalidInput) as err:
        admit(canary_document(write(tmp_path, on_gateway)))
    assert "canary test/podinfo: spec.analysis.match[1]: sourceLabels cannot be expressed" in str(err.value)


def test_match_without_iterations_and_threshold_zero_are_flaggers(tmp_path: Path) -> None:
    """A progressive canary of the matching requests only (Flagger's routers apply analysis.match
    whatever the strategy), and threshold 0 read as 1 (GetAnalysisThreshold)."""
    text = TUTORIAL.replace("    threshold: 5\n", "    threshold: 0\n    match:\n"
        "    - headers:\n        x-canary:\n          exact: insider\n", 1)  # fmt: skip
    model = load_canary(write(tmp_path, text)).model
    assert model.strategy is StrategyKind.CANARY and model.analysis.match
    assert model.analysis.threshold == 1


def test_annotations_parsed(tmp_path: Path) -> None:
    text = TUTORIAL.replace(
        "  namespace: test\n",
        '  namespace: test\n  annotations:\n    progdel.dev/no-data: "skip, request-success-rate=hold"\n'
        '    progdel.dev/max-infra-errors: "7"\n'
        '    progdel.dev/manual-gates: "confirm-promotion"\n'
        '    progdel.dev/split-tolerance: "2.5%"\n',
        1,
    )
    s = load_canary(write(tmp_path, text)).model.settings
    assert s.no_data_policy("request-success-rate") is NoDataPolicy.HOLD
    assert s.no_data_policy("request-duration") is NoDataPolicy.SKIP
    assert s.max_infra_errors == 7
    assert s.manual_gates == {"confirm-promotion"}
    assert s.split_tolerance == 2.5


def test_split_tolerance_defaults_and_off(tmp_path: Path) -> None:
    assert load_canary(write(tmp_path, TUTORIAL)).model.settings.split_tolerance == 10.0
    text = TUTORIAL.replace(
        "  namespace: test\n",
        '  namespace: test\n  annotations:\n    progdel.dev/split-tolerance: "off"\n',
        1,
    )
    assert load_canary(write(tmp_path, text)).model.settings.split_tolerance is None


def test_judge_annotation_names_metrics_or_maps_them_to_options(tmp_path: Path) -> None:
    def judges(value: str) -> dict[str, JudgeSettings]:
        text = TUTORIAL.replace(
            "  namespace: test\n", f"  namespace: test\n  annotations:\n    progdel.dev/judge: {value}\n", 1
        )
        return load_canary(write(tmp_path, text)).model.settings.judges

    assert load_canary(write(tmp_path, TUTORIAL)).model.settings.judges == {}
    assert judges('"request-duration, request-success-rate"') == {
        "request-duration": JudgeSettings(),
        "request-success-rate": JudgeSettings(),
    }
    got = judges(
        "|\n      request-duration: {tolerance: 5%, significance: 0.01, step: 5s, minSamples: 6,"
        " direction: either}\n      request-success-rate:"
    )
    assert got == {
        "request-duration": JudgeSettings(Direction.EITHER, 0.01, 0.05, 6, "5s"),
        "request-success-rate": JudgeSettings(),
    }
    assert JudgeSettings().step_seconds(60) == 6.0  # a tenth of the interval by default
    assert got["request-duration"].step_seconds(60) == 5.0


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ('progdel.dev/judge: "latency"', "progdel.dev/judge: no metric named 'latency'"),
        ('progdel.dev/judge: "{request-duration: {tolerence: 5%}}"', "unknown option 'tolerence'"),
        (
            'progdel.dev/judge: "{request-duration: {tolerance: 10}}"',
            "tolerance: 10 is ambiguous: write a percentage",
        ),
        (
            'progdel.dev/judge: "{request-duration: {direction: up}}"',
            "'up' is not increase, decrease or either",
        ),
        ('progdel.dev/judge: "{request-duration: {significance: 0.9}}"', "at most 0.5"),
        ('progdel.dev/judge: "{request-duration: {minSamples: 2}}"', "at least 3"),
        ('progdel.dev/judge: "{request-duration: {step: 10}}"', "step: "),
        ('progdel.dev/judge: "{request-duration: {step: 20s}}"', "a step of 20s gives 1 samples over"),
        ('progdel.dev/no-data: "maybe"', "unknown policy 'maybe'"),
        ('progdel.dev/no-data: "latency=hold"', "no metric named 'latency'"),
        ('progdel.dev/max-infra-errors: "lots"', "is not an integer"),
        ('progdel.dev/manual-gates: "confirm-promotoin"', "confirm-promotoin is not a confirm gate"),
        ('progdel.dev/split-tolerance: "lots"', "'lots' is not a number of percentage points"),
        ('progdel.dev/split-tolerance: "150"', "must be between 0 and 100"),
        ('progdel.dev/min-requests: "a few"', "'a few' is not a number of requests"),
        ('progdel.dev/min-requests: "-5"', "must not be negative"),
    ],
)
def test_bad_annotations(tmp_path: Path, value: str, error: str) -> None:
    text = TUTORIAL.replace("  namespace: test\n", f"  namespace: test\n  annotations:\n    {value}\n", 1)
    with pytest.raises(InvalidInput, match=rf"canary\.yaml:6: metadata\.annotations: .*{error}"):
        load_canary(write(tmp_path, text))


def test_strategies(tmp_path: Path) -> None:
    bg = TUTORIAL.replace("    maxWeight: 50\n    stepWeight: 10\n", "    iterations: 10\n")
    assert load_canary(write(tmp_path, bg)).model.strategy is StrategyKind.BLUEGREEN
    ab = bg.replace(
        "    iterations: 10\n",
        "    iterations: 10\n    match:\n    - headers:\n        x-canary:\n          exact: insider\n",
    )
    assert load_canary(write(tmp_path, ab)).model.strategy is StrategyKind.AB


def test_examples_load() -> None:
    assert load_canary("examples/canary.yaml").model.settings.default_no_data is NoDataPolicy.HOLD
    custom = load_canary("examples/canary-custom-query.yaml").model
    assert custom.analysis.metrics[0].template_ref is not None
    assert custom.analysis.max_weight == 50
    templates = load_metric_templates("examples/metric-template.yaml")
    assert [t.metadata.name for t in templates] == ["not-found-percentage"]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("1m", 60), ("30s", 30), ("1m30s", 90), ("500ms", 0.5), ("1.5h", 5400), ("0", 0)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "10", "1 m", "m", "1d"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


# ---- what Flagger's CRD (artifacts/flagger/crd.yaml) refuses or drops is refused here ----------


@pytest.mark.parametrize(
    ("old", "new", "error"),
    [
        (
            "spec:\n  targetRef",
            "spec:\n  provider: gatewayapi\n  targetRef",
            "canary.yaml:7: spec.provider: 'gatewayapi' is refused by Flagger's CRD: write gatewayapi:v1",
        ),
        (
            "timeout: 5s",
            "timeout: 1.5s",
            "canary.yaml:54: spec.analysis.webhooks[1].timeout: Value error, '1.5s' is refused by Flagger",
        ),
    ],
)
def test_what_flaggers_crd_refuses_is_a_spec_error(tmp_path: Path, old: str, new: str, error: str) -> None:
    assert old in TUTORIAL
    with pytest.raises(InvalidInput) as err:
        load_canary(write(tmp_path, TUTORIAL.replace(old, new, 1)))
    assert str(err.value).startswith(str(tmp_path / error)), str(err.value)
    assert err.value.exit_code == 2


def test_a_canary_without_analysis_is_refused(tmp_path: Path) -> None:
    text = TUTORIAL[: TUTORIAL.index("  analysis:\n")]
    with pytest.raises(InvalidInput, match=r"canary\.yaml:\d+: spec: analysis is required"):
        load_canary(write(tmp_path, text))


def test_metric_template_headers_are_lists_as_in_flaggers_crd(tmp_path: Path) -> None:
    text = """\
apiVersion: flagger.app/v1beta1
kind: MetricTemplate
metadata: {name: latency, namespace: test}
spec:
  provider:
    type: prometheus
    address: http://mimir:9009/prometheus
    headers:
      X-Scope-OrgID: [tenant-a]
  query: vector(1)
"""
    (template,) = load_metric_templates(write(tmp_path, text))
    assert template.spec.provider.headers == {"X-Scope-OrgID": ["tenant-a"]}
    with pytest.raises(InvalidInput, match=r"canary\.yaml:9: spec\.provider\.headers\.X-Scope-OrgID"):
        load_metric_templates(write(tmp_path, text.replace("[tenant-a]", "tenant-a")))


@pytest.mark.parametrize(
    ("old", "new", "error"),
    [
        (
            "    trafficPolicy:\n      tls:\n        mode: DISABLE\n",
            "    trafficPolicy:\n      tls:\n        mode: DISABLE\n      connectionPool:\n        tcp:\n"
            "          maxConnections: 10\n",
            "canary.yaml:27: spec.service.trafficPolicy.connectionPool.tcp: unknown field: Flagger's CRD",
        ),
        (
            '      retryOn: "gateway-error,connect-failure,refused-stream"\n',
            '      retryOn: "gateway-error"\n      retryRemoteLocalities: true\n',
            "canary.yaml:30: spec.service.retries.retryRemoteLocalities: unknown field",
        ),
        (
            "    interval: 1m\n    threshold: 5\n",
            "    threshold: 5\n",
            "canary.yaml:30: spec.analysis.interval: Required value",
        ),
    ],
)
def test_what_a_cluster_would_drop_or_refuse_is_named(tmp_path: Path, old: str, new: str, error: str) -> None:
    """Held to the bundled copy of Flagger's CRD (equal to the chart's): an Istio field Flagger's
    schema lacks would vanish from the stored Canary; analysis' oneOf wants interval."""
    assert old in TUTORIAL
    with pytest.raises(InvalidInput) as err:
        load_canary(write(tmp_path, TUTORIAL.replace(old, new, 1)))
    assert str(err.value).startswith(str(tmp_path / error)), str(err.value)
