"""Observing a canary Flagger drives: a thread plays Flagger (status subresource + Events)."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest

from progdel.canary.history import list_runs, load_run
from progdel.canary.observe import DRIVER_ANNOTATION, FlaggerObserver, detect_driver
from progdel.canary.status import CanaryStatus, Phase, progdel_wrote_last
from progdel.errors import ExitCode
from progdel.kube.client import Kube, connect
from progdel.kube.resources import CANARIES, EVENTS, LEASES, VIRTUALSERVICES
from progdel.ui.report import render_markdown

FLAGGER = "flagger"


@pytest.fixture
def kube(sandbox: Any, namespace: str) -> Kube:
    return connect(str(sandbox.kubeconfig), None, namespace)


def flagger_canary(namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "flagger.app/v1beta1",
        "kind": "Canary",
        "metadata": {"name": "podinfo", "namespace": namespace},
        "spec": {
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
            "service": {"port": 9898},
            "analysis": {
                "interval": "10s",
                "threshold": 2,
                "maxWeight": 30,
                "stepWeight": 10,
                "metrics": [
                    {"name": "request-success-rate", "thresholdRange": {"min": 99}, "interval": "1m"}
                ],
            },
        },
    }


class FlaggerPlayer:
    """Writes status the way Flagger does: PUT on the status subresource, field manager
    ``flagger``, Flagger's fields only; and Events from component ``flagger``."""

    def __init__(self, api_client: Any, kube: Kube, namespace: str) -> None:
        from kubernetes import client

        self.custom = client.CustomObjectsApi(api_client)
        self.kube = kube
        self.namespace = namespace

    def status(self, phase: str, weight: int = 0, failed: int = 0) -> None:
        obj = self.kube.get(CANARIES, "podinfo")
        obj["status"] = {
            "phase": phase,
            "canaryWeight": weight,
            "failedChecks": failed,
            "iterations": 0,
            "lastAppliedSpec": "5f8d9c",
            "lastTransitionTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "conditions": [{"type": "Promoted", "status": "Unknown", "reason": phase}],
        }
        self.custom.replace_namespaced_custom_object_status(
            "flagger.app", "v1beta1", self.namespace, "canaries", "podinfo", obj, field_manager=FLAGGER
        )

    def event(self, message: str, warning: bool = False) -> None:
        canary = self.kube.get(CANARIES, "podinfo")
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self.kube.create(
            EVENTS,
            {
                "metadata": {"generateName": "podinfo.", "namespace": self.namespace},
                "involvedObject": {
                    "apiVersion": "flagger.app/v1beta1",
                    "kind": "Canary",
                    "name": "podinfo",
                    "namespace": self.namespace,
                    "uid": canary["metadata"]["uid"],
                },
                "reason": "Synced",
                "message": message,
                "type": "Warning" if warning else "Normal",
                "source": {"component": FLAGGER},
                "firstTimestamp": stamp,
                "lastTimestamp": stamp,
                "count": 1,
            },
        )

    def play(
        self, steps: list[tuple[str, int, int, str, bool]], records: list[dict[str, Any]]
    ) -> threading.Thread:
        """Flagger's steps, one at a time: the next is written once the observer has shown this one
        (its records), as a real Flagger moves on only an interval later. No step is missed however
        slowly the machine runs, and none is waited for with a guess of how long a poll takes."""

        def shown(state: tuple[str, int, int], since: int) -> bool:
            return any(
                r.get("kind") == "tick" and (r["phase"], r["canaryWeight"], r["failedChecks"]) == state
                for r in records[since:]
            )

        def run() -> None:
            previous: tuple[str, int, int] | None = None
            for phase, weight, failed, message, warning in steps:
                mark = len(records)
                if message:
                    self.event(message, warning)
                self.status(phase, weight, failed)
                if (phase, weight, failed) != previous:
                    deadline = time.monotonic() + 60
                    while not shown((phase, weight, failed), mark) and time.monotonic() < deadline:
                        time.sleep(0.01)
                previous = (phase, weight, failed)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        return thread


def user_virtualservice(namespace: str) -> dict[str, Any]:
    return {
        "metadata": {"name": "podinfo", "namespace": namespace},
        "spec": {
            "hosts": ["podinfo"],
            "http": [
                {
                    "route": [
                        {"destination": {"host": "podinfo-primary"}, "weight": 100},
                        {"destination": {"host": "podinfo-canary"}, "weight": 0},
                    ]
                }
            ],
        },
    }


def observe(kube: Kube, namespace: str, steps: list[Any], api_client: Any) -> tuple[ExitCode, list[dict]]:
    kube.create(CANARIES, flagger_canary(namespace))
    vs = kube.create(VIRTUALSERVICES, user_virtualservice(namespace))
    player = FlaggerPlayer(api_client, kube, namespace)
    player.status("Succeeded")  # a previous run: observing waits for the next one to end
    assert detect_driver(kube.get(CANARIES, "podinfo")).driver == "flagger"
    records: list[dict[str, Any]] = []
    thread = player.play(steps, records)
    code = FlaggerObserver(kube, "podinfo", namespace, records.append, poll_interval=0.03, timeout=120).run()
    thread.join(timeout=60)
    # read only: no Lease, the VirtualService untouched, no Event from progdel
    assert kube.get_or_none(LEASES, "progdel-canary-podinfo") is None
    assert (
        kube.get(VIRTUALSERVICES, "podinfo")["metadata"]["resourceVersion"]
        == vs["metadata"]["resourceVersion"]
    )
    sources = {(e.get("source") or {}).get("component") for e in kube.items(EVENTS)}
    assert sources <= {FLAGGER}, sources
    status = kube.get(CANARIES, "podinfo")["status"]
    assert not progdel_wrote_last(status), "the observer never wrote a status"
    return code, records


def test_observing_a_promotion_exits_0_with_the_runners_records(
    kube: Kube, namespace: str, api_client: Any
) -> None:
    ns = namespace
    steps = [
        ("Progressing", 0, 0, f"New revision detected! Scaling up podinfo.{ns}", False),
        ("Progressing", 0, 0, f"Starting canary analysis for podinfo.{ns}", False),
        ("Progressing", 10, 0, f"Advance podinfo.{ns} canary weight 10", False),
        ("Progressing", 20, 0, f"Advance podinfo.{ns} canary weight 20", False),
        ("Progressing", 30, 0, f"Advance podinfo.{ns} canary weight 30", False),
        ("Promoting", 30, 0, f"Copying podinfo.{ns} template spec to podinfo-primary.{ns}", False),
        ("Finalising", 0, 0, "Routing all traffic to primary", False),
        ("Succeeded", 0, 0, f"Promotion completed! Scaling down podinfo.{ns}", False),
    ]
    code, records = observe(kube, namespace, steps, api_client)
    assert code is ExitCode.OK
    ticks = [r for r in records if r["kind"] == "tick"]
    weights = [t["canaryWeight"] for t in ticks if t["phase"] == "Progressing"]
    assert [w for i, w in enumerate(weights) if i == 0 or w != weights[i - 1]] == [0, 10, 20, 30]
    assert [t["phase"] for t in ticks][-1] == "Succeeded"
    progressing = next(t for t in ticks if t["canaryWeight"] == 20)
    assert progressing["primaryWeight"] == 80 and progressing["steps"] == 3 and progressing["step"] == 2
    assert progressing["metrics"][0]["name"] == "request-success-rate" and progressing["threshold"] == 2
    assert progressing["note"] == "observing: driven by flagger"
    messages = [r["message"] for r in records if r["kind"] == "event"]
    assert messages.index(f"Advance podinfo.{ns} canary weight 20") < messages.index(
        f"Promotion completed! Scaling down podinfo.{ns}"
    )
    assert records[-1]["kind"] == "result" and records[-1]["outcome"] == "promoted"
    assert records[-1]["exitCode"] == 0
    # the run Flagger drove is in the history, from what the observer saw
    [run] = list_runs(kube, "podinfo", namespace)
    assert (run.outcome, run.exit_code, run.revision) == ("promoted", 0, "5f8d9c")
    assert records[-1]["run"] == run.id
    record = load_run(kube, "podinfo", namespace)
    assert record.drivers[0].startswith("flagger (observed by ")
    assert [t["phase"] for t in record.ticks] == [
        t["phase"] for t in ticks if t["phase"] != "Succeeded" or t is ticks[-1]
    ][-len(record.ticks) :]
    assert [t["canaryWeight"] for t in record.ticks if t["phase"] == "Progressing"][-3:] == [10, 20, 30]
    assert record.ticks[-1]["phase"] == "Succeeded"
    assert [m["name"] for m in record.ticks[-1]["metrics"]] == ["request-success-rate"]
    assert record.analysis["threshold"] == 2 and record.analysis["maxWeight"] == 30
    recorded = [e["message"] for e in record.events]
    assert f"Advance podinfo.{ns} canary weight 20" in recorded
    assert recorded[-1] == f"Promotion completed! Scaling down podinfo.{ns}"
    assert render_markdown(record).startswith(f"## Canary run {ns}/podinfo `{run.id}`: promoted")


def test_observing_a_rollback_exits_3(kube: Kube, namespace: str, api_client: Any) -> None:
    ns = namespace
    halt = f"Halt podinfo.{ns} advancement success rate 69.17% < 99%"
    steps = [
        ("Progressing", 0, 0, f"New revision detected! Scaling up podinfo.{ns}", False),
        ("Progressing", 10, 0, f"Advance podinfo.{ns} canary weight 10", False),
        ("Progressing", 10, 1, halt, True),
        ("Progressing", 10, 2, halt, True),
        ("Failed", 0, 0, f"Rolling back podinfo.{ns} failed checks threshold reached 2", True),
    ]
    code, records = observe(kube, namespace, steps, api_client)
    assert code is ExitCode.CANARY_FAILED
    assert [t["failedChecks"] for t in records if t["kind"] == "tick"][-2] == 2
    warnings = [r["message"] for r in records if r["kind"] == "event" and r["type"] == "Warning"]
    assert halt in warnings
    assert records[-1]["outcome"] == "rolled back" and records[-1]["exitCode"] == 3
    [run] = list_runs(kube, "podinfo", namespace)
    assert (run.outcome, run.exit_code) == ("rolled back", 3) and records[-1]["run"] == run.id
    record = load_run(kube, "podinfo", namespace)
    assert max(t["failedChecks"] for t in record.ticks) == 2 and record.ticks[-1]["phase"] == "Failed"
    assert halt in [e["message"] for e in record.events if e["type"] == "Warning"]
    assert render_markdown(record).count("| Reason | Rolling back podinfo.") == 1


def test_the_driver_rule() -> None:
    progdel_status = CanaryStatus(
        Phase.PROGRESSING, canary_weight=10, last_transition_time="2024-01-01T00:00:00Z"
    )
    progdel_status = progdel_status.to_dict()
    flagger_status = {"phase": "Progressing", "canaryWeight": 10, "failedChecks": 0}
    assert not detect_driver({"metadata": {}, "status": progdel_status}).observe
    assert not detect_driver({"metadata": {}}).observe, "nobody has driven it yet: progdel may"
    assert detect_driver({"metadata": {}, "status": flagger_status}).driver == "flagger"
    pinned = {"metadata": {"annotations": {DRIVER_ANNOTATION: "flagger"}}, "status": progdel_status}
    assert detect_driver(pinned).observe
    mine = {"metadata": {"annotations": {DRIVER_ANNOTATION: "progdel"}}, "status": flagger_status}
    assert not detect_driver(mine).observe
    written_by_flagger = {
        "metadata": {
            "managedFields": [
                {"manager": "progdel", "operation": "Update", "fieldsV1": {"f:spec": {}}},
                {
                    "manager": "flagger",
                    "operation": "Update",
                    "subresource": "status",
                    "fieldsV1": {"f:status": {"f:phase": {}, "f:canaryWeight": {}}},
                },
            ]
        },
        "status": progdel_status,
    }
    decision = detect_driver(written_by_flagger)
    assert decision.driver == "flagger" and "field manager 'flagger'" in decision.reason
    # what a cluster records for progdel's own status writes (operation Update on the status
    # subresource, field manager progdel) and kubectl's apply of the spec: progdel drives
    written_by_progdel = {
        "metadata": {
            "managedFields": [
                {
                    "manager": "kubectl-client-side-apply",
                    "operation": "Update",
                    "fieldsV1": {"f:metadata": {"f:annotations": {}}, "f:spec": {"f:analysis": {}}},
                },
                {
                    "manager": "progdel",
                    "operation": "Update",
                    "subresource": "status",
                    "fieldsV1": {"f:status": {".": {}, "f:phase": {}, "f:conditions": {}}},
                },
            ]
        },
        "status": progdel_status,
    }
    assert not detect_driver(written_by_progdel).observe
    # Flagger wrote after progdel without changing the phase (it stamps lastTransitionTime and
    # keeps the conditions): progdel's condition is stale, so another driver wrote last
    rewritten = {**progdel_status, "failedChecks": 1, "lastTransitionTime": "2024-01-01T00:00:10Z"}
    assert detect_driver({"metadata": {}, "status": rewritten}).driver == "flagger"


def test_the_driver_rule_on_a_live_object(kube: Kube, namespace: str, api_client: Any) -> None:
    """The sandbox records managedFields as a cluster does: Flagger's status write is seen."""
    from progdel.canary import store

    kube.create(CANARIES, flagger_canary(namespace))
    store.write_status(kube, "podinfo", namespace, CanaryStatus(Phase.INITIALIZED).to_dict())
    assert not detect_driver(kube.get(CANARIES, "podinfo")).observe
    obj = kube.get(CANARIES, "podinfo")
    obj["status"] = {**obj["status"], "phase": "Progressing"}
    from kubernetes import client

    client.CustomObjectsApi(api_client).replace_namespaced_custom_object_status(
        "flagger.app", "v1beta1", namespace, "canaries", "podinfo", obj, field_manager=FLAGGER
    )
    assert detect_driver(kube.get(CANARIES, "podinfo")).driver == "flagger"


def test_observing_with_once_builds_one_history_across_invocations(
    kube: Kube, namespace: str, api_client: Any
) -> None:
    """``watch --once`` on a Flagger canary, run by a cron job say: each call adds what it saw to
    the same run's record, and the one that sees the end closes it."""
    kube.create(CANARIES, flagger_canary(namespace))
    player = FlaggerPlayer(api_client, kube, namespace)
    player.status("Succeeded")
    FlaggerObserver(kube, "podinfo", namespace, lambda _r: None, once=True).run()
    assert list_runs(kube, "podinfo", namespace) == [], "a settled canary is no run"
    for phase, weight in (("Progressing", 10), ("Progressing", 20), ("Failed", 0)):
        player.status(phase, weight)
        FlaggerObserver(kube, "podinfo", namespace, lambda _r: None, once=True).run()
    [run] = list_runs(kube, "podinfo", namespace)
    record = load_run(kube, "podinfo", namespace)
    assert run.outcome == "rolled back"
    assert [(t["phase"], t["canaryWeight"]) for t in record.ticks] == [
        ("Progressing", 10),
        ("Progressing", 20),
        ("Failed", 0),
    ]
    assert len(record.drivers) == 3, "each observer that took the record up is named"


def test_watch_on_a_flagger_canary_says_where_its_report_is_and_history_lists_it(
    sandbox: Any, kube: Kube, namespace: str, api_client: Any
) -> None:
    from tests.canary.test_watch_cli import run_progdel

    kube.create(CANARIES, flagger_canary(namespace))
    player = FlaggerPlayer(api_client, kube, namespace)
    player.status("Progressing", 10)
    watched = run_progdel(
        "-n", namespace, "canary", "watch", "podinfo", "--once", kubeconfig=sandbox.kubeconfig
    )
    assert watched.returncode == ExitCode.WAITING, watched.stderr
    [run] = list_runs(kube, "podinfo", namespace)
    assert f"report: progdel -n {namespace} canary report podinfo --run {run.id}" in watched.stderr
    listed = run_progdel(
        "-n", namespace, "-o", "json", "canary", "history", "podinfo", kubeconfig=sandbox.kubeconfig
    )
    assert listed.returncode == 0, listed.stderr
    [shown] = json.loads(listed.stdout)
    assert (shown["id"], shown["outcome"], shown["maxWeight"]) == (run.id, "running", 10)


def test_once_reports_the_current_state(kube: Kube, namespace: str, api_client: Any) -> None:
    kube.create(CANARIES, flagger_canary(namespace))
    player = FlaggerPlayer(api_client, kube, namespace)
    player.status("Progressing", 20)
    records: list[dict[str, Any]] = []
    assert FlaggerObserver(kube, "podinfo", namespace, records.append, once=True).run() is ExitCode.WAITING
    assert records[-1]["canaryWeight"] == 20
    player.status("Failed")
    assert (
        FlaggerObserver(kube, "podinfo", namespace, records.append, once=True).run() is ExitCode.CANARY_FAILED
    )


def test_a_canary_handed_from_flagger_to_progdel_keeps_flaggers_counters(
    kube: Kube, namespace: str, api_client: Any
) -> None:
    """progdel initialized it; Flagger then drove it (its write keeps the conditions, so progdel's
    is there but stale); the user hands it back with the annotation: progdel continues from
    Flagger's counters and replaces its stale bookkeeping."""
    from progdel.canary import store
    from progdel.canary.cluster import initialize, runner_for
    from progdel.canary.runner import RunOptions
    from progdel.kube.resources import DEPLOYMENTS
    from tests.canary.test_runner_integration import deployment, new_revision

    kube.create(DEPLOYMENTS, deployment("podinfo", "ghcr.io/stefanprodan/podinfo:6.0.0"))
    store.apply_canary(kube, flagger_canary(namespace), namespace)
    assert initialize(kube, "podinfo", namespace, lambda _r: None, timeout=30) is ExitCode.OK
    new_revision(kube)
    runner_for(kube, "podinfo", namespace, lambda _r: None, RunOptions(once=True)).tick()  # scaled up
    mine = kube.get(CANARIES, "podinfo")["status"]
    assert progdel_wrote_last(mine) and mine["phase"] == "Progressing"

    from progdel.routing.base import Weights

    model = store.read(kube, "podinfo", namespace)[1].model
    runner_for(kube, "podinfo", namespace, lambda _r: None).router(model).set_weights(Weights(90, 10))
    obj = kube.get(CANARIES, "podinfo")
    obj["status"] = {
        **mine,
        "canaryWeight": 10,
        "failedChecks": 1,
        "lastTransitionTime": "2030-01-01T00:00:00Z",
    }
    from kubernetes import client

    client.CustomObjectsApi(api_client).replace_namespaced_custom_object_status(
        "flagger.app", "v1beta1", namespace, "canaries", "podinfo", obj, field_manager=FLAGGER
    )
    assert detect_driver(kube.get(CANARIES, "podinfo")).driver == "flagger"

    kube.patch(CANARIES, "podinfo", {"metadata": {"annotations": {DRIVER_ANNOTATION: "progdel"}}})
    assert not detect_driver(kube.get(CANARIES, "podinfo")).observe
    dead = RunOptions(once=True, prometheus_url="http://127.0.0.1:9")
    runner_for(kube, "podinfo", namespace, lambda _r: None, dead).tick()  # Prometheus down: holds
    status = kube.get(CANARIES, "podinfo")["status"]
    assert progdel_wrote_last(status), "the stale bookkeeping was replaced"
    assert (status["phase"], status["canaryWeight"], status["failedChecks"]) == ("Progressing", 10, 1)
    assert CanaryStatus.from_dict(status).infra_errors == 1
