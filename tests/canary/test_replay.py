"""``progdel canary replay``: a spec rehearsed on Prometheus history, with no cluster at all.

The histories are backfilled with ``promtool tsdb create-blocks-from openmetrics`` into a real
Prometheus (``tests/promfixture.py``); each namespace holds one release's traffic:

- ``healthy``: the canary answers as well as the primary all along;
- ``bad``: the canary's error rate climbs to 20% at minute 12 of the window;
- ``silent``: the canary serves nothing (no data for its metrics);
- ``slow``: the canary's latency is drawn around 48 ms, its primary's around 40 ms (for the
  statistical judge).
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from progdel.canary.history import RunRecord
from progdel.canary.records import Record
from progdel.canary.replay import Replay, ReplayMetrics, rehearse, replay_recorder, replayed_run
from progdel.config.canary import Canary, parse_canary
from progdel.errors import ExitCode
from tests.browser import open_page, require_chromium
from tests.canary.test_report import POINTS_JS
from tests.canary.test_report import _expected_points as expected_points
from tests.promfixture import (
    PrometheusInstance,
    TrafficPhase,
    istio_openmetrics,
    jittered,
    require_prometheus,
    run_prometheus,
)

T0 = datetime(2024, 1, 1, tzinfo=UTC)
WINDOW = 45 * 60
CLIMB = 12 * 60  # the bad release's errors start here


@pytest.fixture(scope="module")
def prom(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusInstance]:
    require_prometheus()
    primary = [TrafficPhase(0, 20, 0.0, 40)]
    text = istio_openmetrics(
        T0,
        WINDOW,
        10,
        {
            "healthy/podinfo-primary": primary,
            "healthy/podinfo": [TrafficPhase(0, 10, 0.0, 40)],
            "bad/podinfo-primary": primary,
            "bad/podinfo": [TrafficPhase(0, 10, 0.0, 40), TrafficPhase(CLIMB, 10, 0.2, 40)],
            "silent/podinfo-primary": primary,
            "slow/podinfo-primary": jittered(1, WINDOW, 10, rps=10, latency_ms=40),
            "slow/podinfo": jittered(2, WINDOW, 10, rps=10, latency_ms=48),
        },
    )
    with run_prometheus(text, tmp_path_factory.mktemp("replay")) as instance:
        yield instance


def canary_doc(namespace: str, annotations: dict[str, str] | None = None, **analysis: Any) -> dict[str, Any]:
    spec_analysis: dict[str, Any] = {
        "interval": "1m",
        "threshold": 2,
        "maxWeight": 50,
        "stepWeight": 10,
        "metrics": [
            {"name": "request-success-rate", "thresholdRange": {"min": 99}, "interval": "1m"},
            {"name": "request-duration", "thresholdRange": {"max": 500}, "interval": "1m"},
        ],
    }
    spec_analysis.update(analysis)
    return {
        "apiVersion": "flagger.app/v1beta1",
        "kind": "Canary",
        "metadata": {"name": "podinfo", "namespace": namespace, "annotations": annotations or {}},
        "spec": {
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
            "service": {"port": 9898},
            "analysis": spec_analysis,
        },
    }


def spec(namespace: str, annotations: dict[str, str] | None = None, **analysis: Any) -> Canary:
    return parse_canary(canary_doc(namespace, annotations, **analysis), "test").model


def replay(
    prom: PrometheusInstance, canary: Canary, minutes: int = 40, **kwargs: Any
) -> tuple[ExitCode, list[Record]]:
    out: list[Record] = []
    code, _ = rehearse(
        canary, out.append, start=T0, end=T0 + timedelta(minutes=minutes), prometheus_url=prom.url, **kwargs
    )
    return code, out


def at(minutes: int) -> str:
    return (T0 + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")


def ticks(records: list[Record]) -> list[tuple[str, str, int, int]]:
    return [
        (r["time"], r["phase"], r["canaryWeight"], r["failedChecks"]) for r in records if r["kind"] == "tick"
    ]


def test_a_healthy_release_is_promoted_with_the_weights_the_spec_sets(prom: PrometheusInstance) -> None:
    code, records = replay(prom, spec("healthy"))
    assert code is ExitCode.OK
    # Flagger's sequence, one tick a minute: new revision, 10..50 by 10, promotion, finalising
    assert ticks(records) == [
        (at(0), "Progressing", 0, 0),
        (at(1), "Progressing", 10, 0),
        (at(2), "Progressing", 20, 0),
        (at(3), "Progressing", 30, 0),
        (at(4), "Progressing", 40, 0),
        (at(5), "Progressing", 50, 0),
        (at(6), "Promoting", 50, 0),
        (at(7), "Finalising", 0, 0),
        (at(8), "Succeeded", 0, 0),
    ]
    judged = [m for r in records if r["kind"] == "tick" for m in r["metrics"] if m["value"] is not None]
    assert judged and all(m["verdict"] == "pass" for m in judged)
    assert {round(m["value"]) for m in judged if m["name"] == "request-success-rate"} == {100}
    result = records[-1]
    assert result["kind"] == "result" and (result["outcome"], result["exitCode"]) == ("promoted", 0)


def test_errors_climbing_at_minute_12_roll_back_at_the_predicted_tick(prom: PrometheusInstance) -> None:
    # 25 steps of 2%: still analysing at minute 12. The check at 12:00 sees the first errors (its
    # 1m window ends on the first erroring sample), the second failed check at 13:00 reaches the
    # threshold of 2, and progdel rolls back on that tick.
    code, records = replay(prom, spec("bad", stepWeight=2))
    assert code is ExitCode.CANARY_FAILED
    by_time = {t: (phase, weight, failed) for t, phase, weight, failed in ticks(records)}
    assert by_time[at(11)] == ("Progressing", 22, 0)
    assert by_time[at(12)] == ("Progressing", 22, 1)
    assert by_time[at(13)][0] == "Failed"
    assert max(by_time) == at(13)
    warnings = [r["message"] for r in records if r["kind"] == "event" and r["type"] == "Warning"]
    assert any("success rate" in w and "< 99%" in w for w in warnings)
    assert "Rolling back podinfo.bad failed checks threshold reached 2" in warnings
    result = records[-1]
    assert result["kind"] == "result" and (result["outcome"], result["time"]) == ("rolled back", at(13))


def test_two_thresholds_compared(prom: PrometheusInstance) -> None:
    strict, lenient = spec("bad", stepWeight=2), spec("bad", stepWeight=2, threshold=5)
    out: list[Record] = []
    code, divergence = rehearse(
        lenient,
        out.append,
        start=T0,
        end=T0 + timedelta(minutes=40),
        prometheus_url=prom.url,
        compare=("lenient.yaml", "strict.yaml", strict),
    )
    assert code is ExitCode.CANARY_FAILED
    assert divergence is not None
    assert divergence.time == at(13)  # strict rolls back there, lenient counts its second check
    assert divergence.lines() == [
        f"first difference at {at(13)}: lenient.yaml Progressing at weight 22, failed checks 2, "
        "strict.yaml Failed at weight 0, failed checks 0",
        f"lenient.yaml rolls back at {at(16)}",
        f"strict.yaml rolls back at {at(13)}",
        "strict.yaml rolls back 3 intervals earlier than lenient.yaml",
    ]


@pytest.mark.parametrize(
    ("policy", "code", "outcome", "verdict"),
    [
        ("fail", ExitCode.CANARY_FAILED, "rolled back", "no-data"),
        ("skip", ExitCode.OK, "promoted", "skipped"),
        ("hold", ExitCode.WAITING, "still running", "hold"),
    ],
)
def test_a_window_without_data_under_each_policy(
    prom: PrometheusInstance, policy: str, code: ExitCode, outcome: str, verdict: str
) -> None:
    got, records = replay(prom, spec("silent", {"progdel.dev/no-data": policy}), minutes=20)
    assert got is code
    assert records[-1]["kind"] == "result" and records[-1]["outcome"] == outcome
    verdicts = {m["verdict"] for r in records if r["kind"] == "tick" for m in r["metrics"]}
    assert verdict in verdicts
    if policy == "hold":  # held at the first step to the end of the window
        assert ticks(records)[-1] == (at(20), "Progressing", 10, 0)


def test_webhooks_are_skipped_or_assumed_to_pass(prom: PrometheusInstance) -> None:
    hooks = [
        {"name": "load", "type": "pre-rollout", "url": "http://loadtester.test/"},
        {"name": "approve", "type": "confirm-promotion", "url": "http://gate.test/"},
    ]
    code, records = replay(prom, spec("healthy", webhooks=hooks))
    events = [r["message"] for r in records if r["kind"] == "event"]
    assert code is ExitCode.OK
    assert any(
        "skips" in e and "load (pre-rollout)" in e and "approve (confirm-promotion)" in e for e in events
    )
    assert not any("check load passed" in e for e in events)
    code, records = replay(prom, spec("healthy", webhooks=hooks), assume_hooks_pass=True)
    events = [r["message"] for r in records if r["kind"] == "event"]
    assert code is ExitCode.OK
    assert "Pre-rollout check load passed" in events
    assert "Confirm-promotion check approve passed" in events


def progdel(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "progdel", *args], capture_output=True, text=True, timeout=120
    )


def test_cli_prints_the_timeline_and_the_comparison(prom: PrometheusInstance, tmp_path: Path) -> None:
    strict, lenient = tmp_path / "strict.yaml", tmp_path / "lenient.yaml"
    strict.write_text(yaml.safe_dump(canary_doc("bad", stepWeight=2)))
    lenient.write_text(yaml.safe_dump(canary_doc("bad", stepWeight=2, threshold=5)))
    window = ["--from", at(0), "--to", at(40), "--prometheus-url", prom.url]
    proc = progdel("-o", "ndjson", "canary", "replay", "-f", str(strict), *window, "--compare", str(lenient))
    assert proc.returncode == 3, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["kind"] for r in lines][-2:] == ["result", "comparison"]
    assert lines[-1]["lines"][-1] == "strict.yaml rolls back 3 intervals earlier than lenient.yaml"
    plain = progdel("canary", "replay", "-f", str(strict), *window)
    assert plain.returncode == 3
    assert f"{at(13)} result  rolled back" in plain.stdout
    assert "weight=22 failed=1/2" in plain.stdout


def test_cli_refuses_bad_input_in_one_line(prom: PrometheusInstance, tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(canary_doc("healthy")))
    backwards = progdel(
        "canary", "replay", "-f", str(path), "--from", at(10), "--to", at(0), "--prometheus-url", prom.url
    )
    assert backwards.returncode == 2 and "is not after --from" in backwards.stderr
    assert "Traceback" not in backwards.stderr
    nowhere = progdel(
        "canary",
        "replay",
        "-f",
        str(path),
        "--from",
        at(0),
        "--to",
        at(10),
        "--prometheus-url",
        "http://127.0.0.1:1",
    )
    assert nowhere.returncode == 6 and "does not answer" in nowhere.stderr


# -- the same timeline from range queries over the window as from a query per tick ------------

# compared with the primary over 5 minutes, 30 s a sample; too few samples early on pass
JUDGED = {"progdel.dev/judge": "request-duration", "progdel.dev/no-data": "skip"}
SAMPLED = {"name": "request-duration", "thresholdRange": {"max": 500}, "interval": "5m"}
BY_WORKLOAD = (
    'sum by (destination_workload) (rate(istio_requests_total{destination_workload_namespace="healthy"}[1m]))'
)


def both_ways(
    prom: PrometheusInstance, canary: Canary, minutes: int = 40
) -> tuple[list[Record], list[Record], int, int]:
    """The records of ``canary`` replayed query by query, then batched, and the queries each sent."""
    runs = []
    for batched in (False, True):
        metrics = ReplayMetrics(prom.url, batched=batched)
        try:
            port = metrics.for_canary(canary, [], T0, T0 + timedelta(minutes=minutes))
            before = metrics.queries_sent()
            out: list[Record] = []
            Replay(canary, port, out.append, start=T0, end=T0 + timedelta(minutes=minutes)).run()
            runs.append((out, metrics.queries_sent() - before))
        finally:
            metrics.close()
    (per_tick, sent_per_tick), (batched_out, sent_batched) = runs
    return per_tick, batched_out, sent_per_tick, sent_batched


@pytest.mark.parametrize(
    ("namespace", "annotations", "analysis", "outcome"),
    [
        ("healthy", {}, {"stepWeight": 1}, "still running"),
        ("bad", {}, {"stepWeight": 2}, "rolled back"),
        ("silent", {"progdel.dev/no-data": "hold"}, {}, "still running"),
        ("slow", JUDGED, {"stepWeight": 2, "metrics": [SAMPLED]}, "rolled back"),
        # samples every 18 s, ticks every 60 s: the window's range query steps by 6 s
        ("slow", JUDGED, {"stepWeight": 2, "metrics": [{**SAMPLED, "interval": "3m"}]}, "rolled back"),
    ],
)
def test_range_queries_over_the_window_give_the_timeline_of_a_query_per_tick(
    prom: PrometheusInstance, namespace: str, annotations: dict[str, str], analysis: Any, outcome: str
) -> None:
    per_tick, batched, sent_per_tick, sent_batched = both_ways(prom, spec(namespace, annotations, **analysis))
    assert batched == per_tick
    assert per_tick[-1]["kind"] == "result" and per_tick[-1]["outcome"] == outcome
    # two metrics, each fetched once over the window (and the judge's canary and primary samples)
    assert sent_batched <= (4 if annotations.get("progdel.dev/judge") else 2) < sent_per_tick
    if namespace == "slow":
        compared = [m.get("comparison") for r in batched if r["kind"] == "tick" for m in r["metrics"]]
        assert any(c and c["verdict"] == "fail" for c in compared)


def test_range_queries_split_where_prometheus_would_refuse_them(
    prom: PrometheusInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    from progdel.metrics import window

    monkeypatch.setattr(window, "MAX_POINTS", 7)  # 40 one-minute ticks: six range queries a metric
    canary = spec("slow", JUDGED, stepWeight=1, threshold=30, metrics=[SAMPLED])
    per_tick, batched, _, sent_batched = both_ways(prom, canary)
    assert batched == per_tick
    assert sent_batched > 4


def test_what_a_range_query_cannot_answer_as_the_instant_query_falls_back_to_it(
    prom: PrometheusInstance,
) -> None:
    # several series (an instant query's last one is its own order's), a range vector (refused as
    # a metric by the instant query, in its words): asked tick by tick, with the same answers
    several = {"name": "by-workload", "query": BY_WORKLOAD, "thresholdRange": {"max": 1000}, "interval": "1m"}
    per_tick, batched, sent_per_tick, sent_batched = both_ways(
        prom, spec("healthy", metrics=[several], iterations=10), minutes=12
    )
    assert batched == per_tick
    assert sent_batched == sent_per_tick + 1  # the range query that showed several series
    # a query whose value depends on the range asked: never asked over the window
    at_end = BY_WORKLOAD.replace("[1m]", "[1m] @ end()").replace("sum by (destination_workload)", "sum")
    bounded = {"name": "at-end", "query": at_end, "thresholdRange": {"max": 1000}, "interval": "1m"}
    per_tick, batched, sent_per_tick, sent_batched = both_ways(
        prom, spec("healthy", metrics=[bounded], stepWeight=1), minutes=12
    )
    assert batched == per_tick and sent_batched == sent_per_tick
    matrix = {
        "name": "raw",
        "query": "istio_requests_total[1m]",
        "thresholdRange": {"max": 1},
        "interval": "1m",
    }
    per_tick, batched, _, _ = both_ways(prom, spec("healthy", metrics=[matrix]), minutes=5)
    assert batched == per_tick
    assert any("range vector" in str(r.get("message")) for r in batched)


# -- the record and the report of a replayed run ----------------------------------------------


def test_cli_records_the_replayed_run_as_a_run_history_keeps_it(
    prom: PrometheusInstance, tmp_path: Path
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(canary_doc("bad", stepWeight=2)))
    record, md = tmp_path / "run.json", tmp_path / "run.md"
    proc = progdel(
        "-o", "ndjson", "canary", "replay", "-f", str(path), "--from", at(0), "--to", at(40),
        "--prometheus-url", prom.url, "--record", str(record), "--report", str(md),
    )  # fmt: skip
    assert proc.returncode == 3, proc.stderr
    timeline = [json.loads(line) for line in proc.stdout.splitlines()]
    data = json.loads(record.read_text())
    assert (data["outcome"], data["exitCode"], data["revision"]) == ("rolled back", 3, "replay-release")
    assert data["replay"] == {"from": at(0), "to": at(40), "spec": str(path), "assumeHooksPass": False}
    assert data["drivers"] == [f"progdel canary replay of {at(0)} to {at(40)} (nothing deployed)"]
    assert data["startedAt"] == at(0) and data["finishedAt"] == at(13)
    # every tick of the timeline, as the history keeps ticks, and every event
    assert [(t["time"], t["phase"], t["canaryWeight"], t.get("failedChecks", 0)) for t in data["ticks"]] == [
        (r["time"], r["phase"], r["canaryWeight"], r["failedChecks"]) for r in timeline if r["kind"] == "tick"
    ]
    assert data["ticks"][12]["metrics"][0]["verdict"] == "fail"
    assert [e["message"] for e in data["events"]] == [r["message"] for r in timeline if r["kind"] == "event"]
    # the history's reader reads it whole; the report of the file is the report written
    assert {**RunRecord.from_dict(data).to_dict(), "replay": data["replay"]} == data
    report = progdel("canary", "report", "--from-file", str(record), "-o", "md")
    assert report.returncode == 0, report.stderr
    assert report.stdout == md.read_text()
    packed = tmp_path / "ticks.json.gz"  # as a history ConfigMap keeps it
    packed.write_bytes(gzip.compress(record.read_bytes()))
    assert progdel("canary", "report", "--from-file", str(packed), "-o", "md").stdout == md.read_text()
    assert md.read_text().startswith(f"## Canary run bad/podinfo `{data['id']}`: rolled back")
    assert "Rolling back podinfo.bad failed checks threshold reached 2" in md.read_text()


def test_the_html_report_of_a_replay_opens_offline_and_draws_every_tick(
    prom: PrometheusInstance, tmp_path: Path
) -> None:
    require_chromium()
    path, page_file = tmp_path / "bad.yaml", tmp_path / "run.html"
    path.write_text(yaml.safe_dump(canary_doc("bad", stepWeight=2)))
    window = ["--from", at(0), "--to", at(40), "--prometheus-url", prom.url]
    proc = progdel("canary", "replay", "-f", str(path), *window, "--report", str(page_file))
    assert proc.returncode == 3, proc.stderr
    assert f"report of the replayed run written to {page_file}" in proc.stderr
    embedded = page_file.read_text().split('<script type="application/json" id="progdel-run">')[1]
    record = RunRecord.from_dict(json.loads(embedded.split("</script>")[0]))
    assert record.outcome == "rolled back" and len(record.ticks) == 14
    with open_page(page_file, tmp_path) as page:
        drawn = json.loads(page.wait_for(f"document.querySelectorAll('path.point').length && {POINTS_JS}"))
        assert page.errors == [], page.errors
        assert page.requests == [], page.requests
    # a replay serves nothing: no chart of the served split
    assert drawn == {k: v for k, v in expected_points(record).items() if k != "chart-served"}


def test_a_window_that_ends_first_leaves_the_run_under_way(prom: PrometheusInstance) -> None:
    canary = spec("silent", {"progdel.dev/no-data": "hold"})
    recorder = replay_recorder(canary, T0, T0 + timedelta(minutes=5))
    code, _ = rehearse(
        canary,
        lambda _r: None,
        start=T0,
        end=T0 + timedelta(minutes=5),
        prometheus_url=prom.url,
        history=recorder,
    )
    run = replayed_run(recorder)
    assert code is ExitCode.WAITING and run is not None
    assert (run.outcome, run.exit_code, len(run.ticks)) == ("running", 5, 6)
    assert run.message == f"still running: the window ends at {at(5)}"


def test_cli_refuses_a_report_file_or_a_record_it_cannot_use(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(canary_doc("healthy")))
    window = ["--from", at(0), "--to", at(10), "--prometheus-url", "http://127.0.0.1:1"]
    txt = progdel("canary", "replay", "-f", str(path), *window, "--report", str(tmp_path / "out.txt"))
    # refused before anything is replayed (Prometheus is not even asked)
    assert txt.returncode == 2 and txt.stderr.count("\n") == 1
    assert "a report file ends in .html, .md or .json" in txt.stderr
    (tmp_path / "folder.html").mkdir()
    for flag, out, why in (
        ("--record", tmp_path / "no" / "run.json", "No such directory"),
        ("--report", tmp_path / "folder.html", "Is a directory"),
    ):
        refused = progdel("canary", "replay", "-f", str(path), *window, flag, str(out))
        assert refused.returncode == 2 and refused.stderr.count("\n") == 1, refused.stderr
        assert refused.stderr.startswith(f"error: {flag} {out}: {why}"), refused.stderr
    missing = progdel("canary", "report", "--from-file", str(tmp_path / "none.json"))
    assert missing.returncode == 2 and "none.json" in missing.stderr and "Traceback" not in missing.stderr
    (tmp_path / "bad.json").write_text("[1, 2]")
    bad = progdel("canary", "report", "--from-file", str(tmp_path / "bad.json"))
    assert bad.returncode == 2 and "not a canary run record" in bad.stderr
    both = progdel("canary", "report", "podinfo", "--from-file", str(tmp_path / "bad.json"))
    assert both.returncode == 2 and "give no NAME" in both.stderr
