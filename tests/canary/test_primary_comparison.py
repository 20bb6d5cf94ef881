"""The statistical judge in a canary's checks: the engine's verdicts on given samples.

(The same on generated Prometheus histories through the runner: ``test_primary_comparison_runs``.)
"""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from progdel.canary.history import load_run
from progdel.canary.judge import MetricResult
from progdel.canary.status import CanaryStatus, Phase
from progdel.errors import ExitCode
from progdel.kube.client import Kube, connect
from progdel.kube.events import list_events
from progdel.kube.resources import CANARIES
from progdel.metrics.comparison import Samples
from progdel.ui.canary_view import plain_line, render_tick
from progdel.ui.report import render_markdown
from tests.canary.specs import podinfo_canary
from tests.canary.test_engine import Sim, all_messages, make_canary
from tests.canary.test_preflight import check
from tests.canary.test_runner_integration import T0, new_revision, run, setup_canary
from tests.canary.test_watch_cli import run_progdel
from tests.promfixture import TrafficPhase, istio_openmetrics, jittered, require_prometheus, run_prometheus

PRIMARY = (40.0, 41.5, 39.2, 42.8, 40.7, 38.9, 41.1, 40.2, 39.8, 42.0)
SLOWER = tuple(v * 1.2 for v in PRIMARY)
JUDGED = {"progdel.dev/judge": "request-duration"}


def results(samples: Samples, duration: float = 48.0) -> dict[str, MetricResult]:
    return {
        "request-success-rate": MetricResult.ok(100.0),
        "request-duration": MetricResult.ok(duration, samples),
    }


def analysing(annotations: dict[str, str]) -> Sim:
    sim = Sim(make_canary(annotations=annotations))
    sim.init_and_change()
    sim.step()  # Progressing: scale up
    sim.step()  # first step: no analysis
    return sim


def test_a_canary_slower_than_its_primary_fails_checks_its_threshold_passes() -> None:
    sim = analysing(JUDGED)
    first = sim.step(results(Samples(SLOWER, PRIMARY)))
    assert sim.status.failed_checks == 1
    m = sim.status.measurements["request-duration"]
    assert (m.value, m.verdict) == (48.0, "fail")
    assert m.comparison is not None and m.comparison.verdict == "fail"
    assert m.comparison.effect == pytest.approx(0.2)
    halt = next(msg for msg in first.messages if msg.startswith("Halt"))
    assert halt.startswith("Halt podinfo.test advancement request-duration +20.0% against the primary (p=")
    second = sim.step(results(Samples(SLOWER, PRIMARY)))
    assert sim.status.phase is Phase.FAILED and second.exit_hint is ExitCode.CANARY_FAILED
    assert "Rolling back podinfo.test failed checks threshold reached 2" in all_messages(sim)


def test_without_the_annotation_the_same_samples_are_not_compared() -> None:
    sim = analysing({})
    sim.step(results(Samples(SLOWER, PRIMARY)))
    m = sim.status.measurements["request-duration"]
    assert (m.verdict, m.comparison, sim.status.failed_checks) == ("pass", None, 0)


def test_a_passing_comparison_is_recorded_beside_the_threshold() -> None:
    sim = analysing(JUDGED)
    sim.step(results(Samples(PRIMARY[::-1], PRIMARY), duration=41.0))
    m = sim.status.measurements["request-duration"]
    assert m.verdict == "pass" and sim.status.failed_checks == 0
    assert m.message.startswith("request duration 41ms; request-duration +0.0% against the primary")
    assert m.comparison is not None and m.comparison.verdict == "pass"
    # the comparison is kept in the stored status, and read back
    stored = CanaryStatus.from_dict(sim.status.to_dict()).measurements["request-duration"]
    assert stored.comparison == m.comparison


def test_a_broken_threshold_fails_with_its_own_words_whatever_the_comparison() -> None:
    sim = analysing(JUDGED)
    sim.step(results(Samples(PRIMARY, PRIMARY), duration=900.0))
    m = sim.status.measurements["request-duration"]
    assert m.verdict == "fail" and m.message == "request duration 900ms > 500ms"
    assert m.comparison is not None and m.comparison.verdict == "pass"


@pytest.mark.parametrize(
    ("policy", "verdict", "failed", "phase_weight"),
    [("fail", "no-data", 1, 10), ("skip", "skipped", 0, 20), ("hold", "hold", 0, 10)],
)
def test_too_few_samples_follow_the_no_data_policy(
    policy: str, verdict: str, failed: int, phase_weight: int
) -> None:
    sim = analysing({**JUDGED, "progdel.dev/no-data": policy})
    sim.step(results(Samples(SLOWER[:3], PRIMARY)))
    m = sim.status.measurements["request-duration"]
    assert m.verdict == verdict
    assert m.message == (
        "request-duration: too few samples to compare with the primary (canary 3, primary 10, "
        "at least 8 each)"
    )
    assert sim.status.failed_checks == failed
    assert sim.weights.canary == phase_weight


def test_an_unreachable_comparison_query_holds_as_any_infrastructure_error() -> None:
    sim = analysing(JUDGED)
    from progdel.metrics.provider import MetricsUnreachable

    result = MetricResult.ok(48.0).with_samples(MetricsUnreachable("Prometheus at http://p did not answer"))
    sim.step({"request-success-rate": MetricResult.ok(100.0), "request-duration": result})
    m = sim.status.measurements["request-duration"]
    assert m.verdict == "error" and m.message.startswith("comparison with the primary: Prometheus at")
    assert sim.status.failed_checks == 0 and sim.status.infra_errors == 1


# ---- on generated histories, through the runner ---------------------------------------------------


def judged_canary(kube: Any, namespace: str, judge: str | None) -> None:
    """The test canary with request-duration over 2m (<= 500ms), judged every 10s when ``judge``."""
    setup_canary(
        kube,
        namespace,
        metrics=[
            {"name": "request-success-rate", "thresholdRange": {"min": 99}, "interval": "1m"},
            {"name": "request-duration", "thresholdRange": {"max": 500}, "interval": "2m"},
        ],
    )
    if judge is not None:
        obj = kube.get(CANARIES, "podinfo")
        obj["metadata"].setdefault("annotations", {})["progdel.dev/judge"] = judge
        kube.replace(CANARIES, obj)
    new_revision(kube)


def latency_history(namespace: str, canary_ms: float, seed: int = 2) -> str:
    """Primary and canary each serve 10 requests/s with a p99 drawn around 40 ms (the primary) and
    ``canary_ms`` (the canary) every 5 s."""
    return istio_openmetrics(
        T0,
        900,
        5,
        {
            f"{namespace}/podinfo-primary": jittered(1, 900, 5, rps=10, latency_ms=40),
            f"{namespace}/podinfo": jittered(seed, 900, 5, rps=10, latency_ms=canary_ms),
        },
    )


def judged_ticks(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The request-duration entries of the ticks that judged it."""
    return [
        m
        for r in records
        if r["kind"] == "tick"
        for m in r["metrics"]
        if m["name"] == "request-duration" and m["verdict"] is not None
    ]


@pytest.fixture
def kube(sandbox: Any, namespace: str) -> Kube:
    require_prometheus()
    return connect(str(sandbox.kubeconfig), None, namespace)


JUDGE_EVERY_10S = "{request-duration: {step: 10s}}"


def test_a_canary_twenty_percent_slower_fails_within_two_intervals_its_threshold_passing(
    sandbox: Any, kube: Kube, namespace: str, tmp_path: Path
) -> None:
    judged_canary(kube, namespace, JUDGE_EVERY_10S)
    with run_prometheus(latency_history(namespace, canary_ms=48), tmp_path) as prom:
        code, records = run(kube, namespace, prom.url, T0 + timedelta(seconds=300))
    assert code is ExitCode.CANARY_FAILED
    judged = judged_ticks(records)
    assert len(judged) <= 2, "rolled back within two analysis intervals (threshold 2)"
    for m in judged:
        assert m["value"] < 500, "the fixed threshold alone passes"
        assert m["comparison"]["verdict"] == "fail"
        assert m["comparison"]["effect"] > 0.1 and m["comparison"]["pValue"] < 0.05
        assert m["comparison"]["samples"] == {"canary": 12, "primary": 12}
    messages = [e["message"] for e in list_events(kube, "Canary", "podinfo")]
    assert any(
        msg.startswith(f"Halt podinfo.{namespace} advancement request-duration +")
        and "against the primary" in msg
        for msg in messages
    ), messages
    stored = CanaryStatus.from_dict(kube.get(CANARIES, "podinfo")["status"])
    assert stored.phase is Phase.FAILED
    shown = run_progdel("-n", namespace, "canary", "status", "podinfo", kubeconfig=sandbox.kubeconfig)
    assert shown.returncode == 0, shown.stderr
    assert "    vs primary: fail +" in shown.stdout
    line = plain_line(next(r for r in records if r["kind"] == "tick" and judged_ticks([r])))
    assert line is not None and "request-duration=" in line and "[vs-primary fail +" in line
    # the run's history keeps each comparison, and its report shows them
    record = load_run(kube, "podinfo", namespace)
    [judge] = [m["judge"] for m in record.analysis["metrics"] if m["name"] == "request-duration"]
    assert judge == {"direction": "increase", "tolerance": 0.1, "significance": 0.05, "minSamples": 8}
    kept = [m["comparison"] for t in record.ticks for m in t.get("metrics", []) if m.get("comparison")]
    assert [c["verdict"] for c in kept] == ["fail"] * len(judged)
    assert [c["pValue"] for c in kept] == [m["comparison"]["pValue"] for m in judged]
    markdown = render_markdown(record)
    assert "| request-duration vs primary |" in markdown
    assert markdown.count("| fail +") == len(judged) and "an increase beyond 10% fails" in markdown


def test_the_same_slow_canary_is_promoted_on_its_threshold_alone(
    kube: Kube, namespace: str, tmp_path: Path
) -> None:
    judged_canary(kube, namespace, None)
    with run_prometheus(latency_history(namespace, canary_ms=48), tmp_path) as prom:
        code, records = run(kube, namespace, prom.url, T0 + timedelta(seconds=300))
    assert code is ExitCode.OK
    assert all("comparison" not in m for m in judged_ticks(records))


def test_a_canary_like_its_primary_is_promoted_with_the_judge_on(
    kube: Kube, namespace: str, tmp_path: Path
) -> None:
    judged_canary(kube, namespace, JUDGE_EVERY_10S)
    with run_prometheus(latency_history(namespace, canary_ms=40, seed=3), tmp_path) as prom:
        code, records = run(kube, namespace, prom.url, T0 + timedelta(seconds=300))
    assert code is ExitCode.OK
    judged = judged_ticks(records)
    assert len(judged) >= 3
    assert all(m["comparison"]["verdict"] in ("pass", "marginal") for m in judged)


# ---- canary check ----------------------------------------------------------------------------------


def judged_file(tmp_path: Path, namespace: str, annotations: dict[str, str]) -> Path:
    doc = podinfo_canary(
        namespace,
        [{"name": "request-duration", "thresholdRange": {"max": 500}, "interval": "2m"}],
        annotations=annotations,
    )
    path = tmp_path / f"canary-{namespace}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_canary_check_shows_the_comparison_and_fails_on_it(sandbox: Any, tmp_path: Path) -> None:
    require_prometheus()
    # "late": the canary's traffic starts 50 s before the check, too few samples over 2m
    text = istio_openmetrics(
        T0,
        900,
        5,
        {
            "slow/podinfo-primary": jittered(1, 900, 5, rps=10, latency_ms=40),
            "slow/podinfo": jittered(2, 900, 5, rps=10, latency_ms=48),
            "late/podinfo-primary": jittered(1, 900, 5, rps=10, latency_ms=40),
            "late/podinfo": [
                TrafficPhase(p.start_s + 250, p.rps, 0.0, p.latency_ms)
                for p in jittered(2, 50, 5, rps=10, latency_ms=40)
            ],
        },
    )
    judge = {"progdel.dev/judge": JUDGE_EVERY_10S}
    at = (T0 + timedelta(seconds=300)).strftime("%Y-%m-%dT%H:%M:%SZ")
    with run_prometheus(text, tmp_path) as prom:
        args = ["--prometheus-url", prom.url, "--at", at, "--no-cluster"]
        code, data, err = check(sandbox.kubeconfig, "-f", str(judged_file(tmp_path, "slow", judge)), *args)
        assert code == 3, err
        assert data is not None
        (m,) = data["metrics"]
        assert m["verdict"] == "fail" and m["value"] < 500
        assert m["comparison"]["verdict"] == "fail" and m["comparison"]["samples"] == {
            "canary": 12,
            "primary": 12,
        }
        assert m["message"].startswith("request-duration +")

        human = subprocess.run(
            [
                sys.executable,
                "-m",
                "progdel",
                "--kubeconfig",
                str(sandbox.kubeconfig),
                "canary",
                "check",
                "-f",
                str(judged_file(tmp_path, "slow", judge)),
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert human.returncode == 3
        assert "VS PRIMARY" in human.stdout and "fail +" in human.stdout

        late = judged_file(tmp_path, "late", {**judge, "progdel.dev/no-data": "hold"})
        code, data, err = check(sandbox.kubeconfig, "-f", str(late), *args)
        assert code == 5, err
        assert data is not None
        (m,) = data["metrics"]
        assert m["verdict"] == "hold" and m["comparison"]["verdict"] == "no-data"
        assert "too few samples to compare with the primary (canary " in m["message"]
        assert m["message"].endswith("(no-data policy: hold)")


def test_the_live_view_has_a_column_for_the_comparison_only_when_there_is_one() -> None:
    from rich.console import Console

    def shown(metrics: list[dict[str, Any]]) -> str:
        console = Console(width=160, record=True)
        console.print(render_tick({"canary": "test/podinfo", "phase": "Progressing", "metrics": metrics}, []))
        return console.export_text()

    plain = {"name": "request-success-rate", "value": 100.0, "min": 99, "max": None, "verdict": "pass"}
    judged = {
        "name": "request-duration",
        "value": 48.0,
        "min": None,
        "max": 500,
        "verdict": "fail",
        "comparison": {
            "verdict": "fail",
            "pValue": 1.8e-05,
            "effect": 0.2,
            "samples": {"canary": 12, "primary": 12},
        },
    }
    assert "VS PRIMARY" not in shown([plain])
    text = shown([plain, judged])
    assert "VS PRIMARY" in text and "fail +20.0% p=1.8e-05" in text
