"""Run history: every run progdel drives leaves one compact record in the canary's namespace.

Runs are replayed over recorded Prometheus history (as in ``test_runner_integration``); the
kill -9 case runs ``progdel canary watch`` as a user would and kills it with SIGKILL.
"""

from __future__ import annotations

import gzip
import hashlib
import itertools
import json
import signal
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from progdel.canary import history, store
from progdel.canary.cluster import runner_for
from progdel.canary.history import RunRecord, list_runs, load_run, thin
from progdel.canary.runner import RunOptions
from progdel.errors import ExitCode, ProgdelError
from progdel.kube.client import Kube, connect
from progdel.kube.resources import CANARIES, CONFIGMAPS, DEPLOYMENTS, LEASES
from tests.canary.test_runner_integration import (
    T0,
    ReplayClock,
    deployment,
    new_revision,
    run,
    setup_canary,
)
from tests.canary.test_runner_integration import history as prom_history
from tests.canary.test_watch_cli import always_failing_canary, read_until, run_progdel, start_watch
from tests.promfixture import TrafficPhase, require_prometheus, run_prometheus


@pytest.fixture
def kube(sandbox: Any, namespace: str) -> Kube:
    require_prometheus()
    return connect(str(sandbox.kubeconfig), None, namespace)


def test_a_promoted_run_is_recorded_tick_by_tick(kube: Kube, namespace: str, tmp_path: Path) -> None:
    setup_canary(kube, namespace)
    new_revision(kube)
    with run_prometheus(prom_history(namespace, [TrafficPhase(0, 10, 0.0, 40)]), tmp_path) as prom:
        code, records = run(kube, namespace, prom.url, T0 + timedelta(seconds=300))
    assert code is ExitCode.OK
    runs = list_runs(kube, "podinfo", namespace)
    assert len(runs) == 1, "initialization is no run; the run is one record"
    summary = runs[0]
    assert summary.outcome == "promoted" and summary.exit_code == 0
    assert records[-1]["run"] == summary.id
    record = load_run(kube, "podinfo", namespace)
    ticks = [r for r in records if r["kind"] == "tick" and r["phase"] not in ("Initialized", "")]
    assert [t["time"] for t in record.ticks] == [t["time"] for t in ticks]
    assert [t["canaryWeight"] for t in record.ticks] == [t["canaryWeight"] for t in ticks]
    judged = [t for t in record.ticks if t.get("metrics") and t["metrics"][0].get("value") is not None]
    assert judged, "metric values are kept"
    assert {m["name"] for m in judged[0]["metrics"]} == {"request-success-rate", "request-duration"}
    assert judged[0]["metrics"][0]["verdict"] == "pass" and judged[0]["metrics"][0]["min"] == 99
    assert record.ticks[-1]["phase"] == "Succeeded"
    messages = [e["message"] for e in record.events]
    assert f"New revision detected! Scaling up podinfo.{namespace}" in messages
    assert f"Promotion completed! Scaling down podinfo.{namespace}" in messages
    assert record.revision == kube.get(CANARIES, "podinfo")["status"]["lastAppliedSpec"]
    assert record.started_at == ticks[0]["time"] and record.finished_at
    cm = kube.get(CONFIGMAPS, record.name)
    assert cm["metadata"]["labels"][history.CANARY_LABEL] == "podinfo"
    assert cm["metadata"]["labels"][history.STATE_LABEL] == "finished"
    assert json.loads(cm["data"]["run.json"])["outcome"] == "promoted", "the summary reads as it is"


def test_a_rolled_back_run_keeps_its_failed_checks_and_a_new_run_gets_a_new_record(
    kube: Kube, namespace: str, tmp_path: Path
) -> None:
    setup_canary(kube, namespace)
    new_revision(kube)
    text = prom_history(namespace, [TrafficPhase(0, 10, 0.0, 40), TrafficPhase(200, 10, 0.3, 40)])
    with run_prometheus(text, tmp_path) as prom:
        code, _ = run(kube, namespace, prom.url, T0 + timedelta(seconds=300))
        assert code is ExitCode.CANARY_FAILED
        new_revision(kube, "ghcr.io/stefanprodan/podinfo:6.0.2")
        code, _ = run(kube, namespace, prom.url, T0 + timedelta(seconds=300))
    runs = list_runs(kube, "podinfo", namespace)
    assert [r.outcome for r in runs] == ["rolled back", "rolled back"]
    assert runs[0].revision != runs[1].revision
    first = load_run(kube, "podinfo", namespace, runs[1].id)
    failing = [t for t in first.ticks if any(m.get("verdict") == "fail" for m in t.get("metrics", []))]
    assert failing and failing[0]["metrics"][0]["value"] == pytest.approx(70.0)
    assert first.ticks[-1]["phase"] == "Failed" and first.exit_code == int(ExitCode.CANARY_FAILED)


def test_kill_9_and_resume_keep_one_history(sandbox: Any, kube: Kube, namespace: str, tmp_path: Path) -> None:
    """Follows ``test_watch_cli.test_kill_9_then_watch_again_continues_without_counting_twice``."""
    kube.create(DEPLOYMENTS, deployment("podinfo", "ghcr.io/stefanprodan/podinfo:6.0.0"))
    store.apply_canary(kube, always_failing_canary(namespace, threshold=5), namespace)
    with run_prometheus(None, tmp_path) as prom:
        init = run_progdel(
            "-n",
            namespace,
            "canary",
            "watch",
            "podinfo",
            "--once",
            "--prometheus-url",
            prom.url,
            kubeconfig=sandbox.kubeconfig,
        )
        assert init.returncode == 0, init.stderr
        new_revision(kube)
        first = start_watch(sandbox, namespace, prom.url)
        before = read_until(first, lambda r: r.get("kind") == "tick" and r.get("failedChecks") == 2)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        assert first.stdout is not None
        before += [json.loads(line) for line in first.stdout.read().splitlines() if line.strip()]
        open_runs = list_runs(kube, "podinfo", namespace)
        assert [r.outcome for r in open_runs] == ["running"], "the killed run's record is there, open"
        second = start_watch(sandbox, namespace, prom.url)
        out, err = second.communicate(timeout=60)
        assert second.returncode == 3, err
    after = [json.loads(line) for line in out.splitlines() if line.strip()]
    runs = list_runs(kube, "podinfo", namespace)
    assert len(runs) == 1, f"one run, one record: {[r.summary() for r in runs]}"
    record = load_run(kube, "podinfo", namespace)
    assert record.id == open_runs[0].id and record.outcome == "rolled back"
    assert len(record.drivers) == 2 and record.drivers[0] != record.drivers[1]
    shown = [t for t in before + after if t.get("kind") == "tick" and t["phase"] != "Initialized"]
    recorded = [(t["time"], t["failedChecks"]) for t in record.ticks]
    # a tick is stored before it is printed: the killed driver may have stored one it never showed
    unshown = [r for r in recorded if r not in [(t["time"], t["failedChecks"]) for t in shown]]
    assert len(unshown) <= 1 and len(recorded) == len(shown) + len(unshown), (recorded, shown)
    counts = [t["failedChecks"] for t in record.ticks if t["phase"] != "Failed"]
    assert all(b - a in (0, 1) for a, b in itertools.pairwise(counts)) and counts[-1] == 4, counts
    assert [t for t, _ in recorded] == sorted(t for t, _ in recorded), "one timeline, in order"
    assert any(e["message"].startswith("Run resumed by ") for e in record.events)
    assert after[-1]["run"] == record.id
    assert f"canary report podinfo --run {record.id}" in err, "watch says where the report is"


def test_an_interrupted_watch_leaves_an_interrupted_record_that_the_next_watcher_continues(
    sandbox: Any, kube: Kube, namespace: str, tmp_path: Path
) -> None:
    """Ctrl-C (SIGINT) on ``canary watch``: the run goes on in the cluster without a driver, and its
    record says so; the next watcher of the same run takes the record up again (as after kill -9)."""
    kube.create(DEPLOYMENTS, deployment("podinfo", "ghcr.io/stefanprodan/podinfo:6.0.0"))
    store.apply_canary(kube, always_failing_canary(namespace, threshold=5), namespace)
    with run_prometheus(None, tmp_path) as prom:
        init = run_progdel(
            "-n", namespace, "canary", "watch", "podinfo", "--once", "--prometheus-url", prom.url,
            kubeconfig=sandbox.kubeconfig,
        )  # fmt: skip
        assert init.returncode == 0, init.stderr
        new_revision(kube)
        first = start_watch(sandbox, namespace, prom.url)
        read_until(first, lambda r: r.get("kind") == "tick" and r.get("failedChecks") == 2)
        first.send_signal(signal.SIGINT)
        _out, first_err = first.communicate(timeout=60)
        assert first.returncode == 130, first_err
        [left] = list_runs(kube, "podinfo", namespace)
        assert (left.outcome, left.message) == ("interrupted", "the watcher was stopped (interrupt)")
        assert f"canary report podinfo --run {left.id}" in first_err, "watch still says where the report is"
        record = load_run(kube, "podinfo", namespace)
        assert record.events[-1]["message"] == "Run interrupted: the watcher was stopped (interrupt)"
        assert record.ticks and record.ticks[-1]["phase"] == "Progressing", "stopped mid-run"
        report = run_progdel(
            "-n", namespace, "canary", "report", "podinfo", "-o", "md", kubeconfig=sandbox.kubeconfig
        )  # fmt: skip
        assert report.returncode == 0, report.stderr
        assert report.stdout.startswith(f"## Canary run {namespace}/podinfo `{left.id}`: interrupted")
        assert "| Outcome | interrupted |" in report.stdout
        assert "| Reason | the watcher was stopped (interrupt) |" in report.stdout
        html = run_progdel(
            "-n", namespace, "canary", "report", "podinfo", "-o", "html", kubeconfig=sandbox.kubeconfig
        )  # fmt: skip
        assert '<span class="outcome-interrupted">interrupted</span>' in html.stdout

        second = start_watch(sandbox, namespace, prom.url)
        out, err = second.communicate(timeout=60)
        assert second.returncode == 3, err
    runs = list_runs(kube, "podinfo", namespace)
    assert [r.id for r in runs] == [left.id], "one run, one record"
    record = load_run(kube, "podinfo", namespace)
    assert (record.outcome, record.exit_code) == ("rolled back", 3)
    assert record.finished_at >= record.ticks[-1]["time"], "the interruption's end was taken back"
    messages = [e["message"] for e in record.events]
    interrupted = messages.index("Run interrupted: the watcher was stopped (interrupt)")
    assert messages[interrupted + 1].startswith("Run resumed by "), messages
    assert len(record.drivers) == 2
    counts = [t["failedChecks"] for t in record.ticks if t["phase"] != "Failed"]
    assert all(b - a in (0, 1) for a, b in itertools.pairwise(counts)) and counts[-1] == 4, counts
    assert json.loads(out.splitlines()[-1])["run"] == record.id


def test_a_watch_that_times_out_mid_run_leaves_it_interrupted(
    kube: Kube, namespace: str, tmp_path: Path
) -> None:
    setup_canary(kube, namespace)
    new_revision(kube)
    with run_prometheus(prom_history(namespace, [TrafficPhase(0, 10, 0.0, 40)]), tmp_path) as prom:
        runner = runner_for(
            kube,
            "podinfo",
            namespace,
            lambda _r: None,
            RunOptions(prometheus_url=prom.url, timeout=25),
            clock=ReplayClock(T0 + timedelta(seconds=300)),
        )
        with pytest.raises(ProgdelError) as stopped:
            runner.run()
    assert stopped.value.exit_code is ExitCode.TIMEOUT
    [run_] = list_runs(kube, "podinfo", namespace)
    assert run_.outcome == "interrupted" and run_.message == stopped.value.message
    [obj] = kube.items(CONFIGMAPS, namespace, label_selector="progdel.dev/canary-run=true")
    assert obj["metadata"]["labels"]["progdel.dev/run-state"] == "running", "open for the next driver"


def test_a_watcher_whose_lease_is_taken_over_leaves_the_record_to_the_new_driver(
    kube: Kube, namespace: str, tmp_path: Path
) -> None:
    """The run is not interrupted: another driver has it, and goes on writing its record."""
    from progdel.kube.lease import LeaseHeld

    setup_canary(kube, namespace)
    new_revision(kube)

    def take_over(record: dict[str, Any]) -> None:
        """Mid-run, the Lease lapses (as if this driver had been away past it) and bob takes it."""
        if record.get("kind") != "tick" or record.get("canaryWeight") != 20:
            return

        def lapsed(obj: dict[str, Any]) -> None:
            obj["spec"]["renewTime"] = "2000-01-01T00:00:00.000000Z"

        kube.update(LEASES, "progdel-canary-podinfo", lapsed, namespace)
        store.lease_for(kube, "podinfo", namespace, 300, identity="bob@elsewhere/1").acquire()

    with run_prometheus(prom_history(namespace, [TrafficPhase(0, 10, 0.0, 40)]), tmp_path) as prom:
        runner = runner_for(
            kube,
            "podinfo",
            namespace,
            take_over,
            RunOptions(prometheus_url=prom.url),
            clock=ReplayClock(T0 + timedelta(seconds=300)),
        )
        with pytest.raises(LeaseHeld):
            runner.run()
    [run_] = list_runs(kube, "podinfo", namespace)
    assert run_.outcome == "running", "still under way, now in bob's hands"


def tick_once(kube: Kube, namespace: str, prom_url: str, at: Any) -> ExitCode:
    """One tick by a short-lived driver (as ``watch --once``), at replayed time ``at``."""
    runner = runner_for(
        kube,
        "podinfo",
        namespace,
        lambda _r: None,
        RunOptions(prometheus_url=prom_url, once=True),
        clock=ReplayClock(at),
    )
    return runner.run()


def test_a_new_revision_mid_run_supersedes_the_run_whoever_drives(
    kube: Kube, namespace: str, tmp_path: Path
) -> None:
    setup_canary(kube, namespace)
    new_revision(kube)
    text = prom_history(namespace, [TrafficPhase(0, 10, 0.0, 40)])
    with run_prometheus(text, tmp_path) as prom:
        for i in range(3):  # three drivers, one tick each: still one run
            tick_once(kube, namespace, prom.url, T0 + timedelta(seconds=300 + 10 * i))
        [first] = list_runs(kube, "podinfo", namespace)
        assert first.outcome == "running" and len(load_run(kube, "podinfo", namespace).drivers) == 3
        new_revision(kube, "ghcr.io/stefanprodan/podinfo:6.0.2")
        code, _ = run(kube, namespace, prom.url, T0 + timedelta(seconds=330))
    assert code is ExitCode.OK
    runs = list_runs(kube, "podinfo", namespace)
    assert [r.outcome for r in runs] == ["promoted", "superseded"]
    assert runs[1].id == first.id and runs[0].revision != runs[1].revision
    restarted = load_run(kube, "podinfo", namespace, runs[0].id)
    assert any(
        e["message"].startswith("New revision detected! Restarting analysis") for e in restarted.events
    )


def test_history_command_lists_runs_newest_first(
    sandbox: Any, kube: Kube, namespace: str, tmp_path: Path
) -> None:
    setup_canary(kube, namespace)
    new_revision(kube)
    with run_prometheus(prom_history(namespace, [TrafficPhase(0, 10, 0.0, 40)]), tmp_path) as prom:
        run(kube, namespace, prom.url, T0 + timedelta(seconds=300))
        new_revision(kube, "ghcr.io/stefanprodan/podinfo:6.0.2")
        run(kube, namespace, prom.url, T0 + timedelta(seconds=900))
    listed = run_progdel(
        "-n", namespace, "-o", "json", "canary", "history", "podinfo", kubeconfig=sandbox.kubeconfig
    )
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert [r["outcome"] for r in rows] == ["promoted", "promoted"]
    assert rows[0]["startedAt"] > rows[1]["startedAt"]
    table = run_progdel("-n", namespace, "canary", "history", "podinfo", kubeconfig=sandbox.kubeconfig)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split()[:2] == ["RUN", "STARTED"] and rows[0]["id"] in lines[1]
    none = run_progdel("-n", namespace, "canary", "history", "nothing", kubeconfig=sandbox.kubeconfig)
    assert none.returncode == 0 and "No runs recorded" in none.stdout


def test_a_run_past_the_tick_limit_is_thinned_keeping_what_changed() -> None:
    ticks = [
        {"time": f"t{i}", "phase": "Progressing", "canaryWeight": 10 * (i // 300), "failedChecks": 0}
        for i in range(1500)
    ]
    ticks[100]["metrics"] = [{"name": "m", "value": 1, "verdict": "fail"}]
    kept, dropped = thin(ticks, 1000)
    assert len(kept) <= 1000 and dropped == 1500 - len(kept)
    assert kept[0] is ticks[0] and kept[-1] is ticks[-1]
    assert ticks[100] in kept, "a failed check is never thinned out"
    assert all(ticks[i] in kept for i in (300, 600, 900, 1200)), "weight changes stay"


def test_a_record_fits_a_configmap_however_long_the_run() -> None:
    def noise(*seed: int) -> str:  # text that does not compress
        return "".join(hashlib.sha256(f"{seed}-{k}".encode()).hexdigest() for k in range(8))

    record = RunRecord(id="x", namespace="n", canary="c", revision="r", started_at="2024-01-01T00:00:00Z")
    record.ticks = [
        {
            "time": f"2024-01-01T00:00:{i:07d}Z",
            "phase": "Progressing",
            "canaryWeight": i % 97,
            "metrics": [{"name": f"m{j}", "value": i + j, "message": noise(i, j)} for j in range(5)],
        }
        for i in range(history.MAX_TICKS)
    ]
    packed = record.packed()
    assert len(packed) <= history.MAX_PACKED
    assert record.thinned_ticks > 0 and len(record.ticks) + record.thinned_ticks == history.MAX_TICKS
    assert RunRecord.from_dict(json.loads(gzip.decompress(packed))).thinned_ticks == record.thinned_ticks


def test_the_report_command_names_the_context_of_a_cluster_that_is_not_the_current_one() -> None:
    run_id = "20240101-000500-ab12"
    assert history.report_command("shop", "web", run_id) == (
        f"progdel -n shop canary report web --run {run_id} -o html --out web-{run_id}.html"
    )
    assert history.report_command("shop", "web", "x", "prod eu").startswith(
        "progdel --context 'prod eu' -n shop "
    )
