"""Gates without a load tester: approve, pause and resume, in the engine and from a second
process while a watcher runs."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime
from typing import Any

import pytest

from progdel.canary import store
from progdel.canary.actions import ConsumeApproval
from progdel.canary.engine import needs_metrics, tick
from progdel.canary.observation import Command, HookResult, HookType, Observation, Weights
from progdel.canary.status import CanaryStatus, Phase
from progdel.config.canary import Canary, parse_canary
from progdel.kube.client import Kube, connect
from progdel.kube.events import list_events
from progdel.kube.lease import default_identity
from progdel.kube.resources import CANARIES, DEPLOYMENTS
from tests.canary.test_runner_integration import deployment, new_revision
from tests.canary.test_watch_cli import progdel, read_until

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def gated(namespace: str, gates: str, webhooks: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "flagger.app/v1beta1",
        "kind": "Canary",
        "metadata": {
            "name": "podinfo",
            "namespace": namespace,
            "annotations": {"progdel.dev/manual-gates": gates},
        },
        "spec": {
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
            "service": {"port": 9898},
            "analysis": {
                "interval": "1s",
                "threshold": 1,
                "stepWeight": 50,
                "maxWeight": 50,
                "webhooks": webhooks or [],
            },
        },
    }


def model(doc: dict[str, Any]) -> Canary:
    return parse_canary(doc, "test").model


AT50 = CanaryStatus(
    phase=Phase.PROGRESSING, canary_weight=50, last_applied_spec="rev-2", last_promoted_spec="r"
)


def test_a_manual_gate_opens_only_on_approval_and_the_approval_is_used_once() -> None:
    c = model(gated("test", "confirm-promotion"))
    r = tick(c, AT50, Observation(now=T0, revision="rev-2", weights=Weights(50, 50), metrics={}))
    assert r.status.phase is Phase.WAITING_PROMOTION and r.status.pending_gate == "confirm-promotion"
    assert r.messages == [
        "Halt podinfo.test advancement waiting for promotion approval (progdel canary approve)"
    ]
    assert r.events[0].alert == "warn", "entering a wait alerts once"
    assert r.events[0].alert_message == "Canary promotion is waiting for approval."
    again = tick(c, r.status, Observation(now=T0, revision="rev-2", weights=Weights(50, 50), metrics={}))
    # as Flagger, the Halt event of a confirm-promotion wait is emitted when the wait begins
    assert again.status.phase is Phase.WAITING_PROMOTION and again.events == []
    wrong = tick(
        c,
        r.status,
        Observation(
            now=T0, revision="rev-2", weights=Weights(50, 50), metrics={}, approval=HookType.CONFIRM_ROLLOUT
        ),
    )
    assert wrong.status.phase is Phase.WAITING_PROMOTION, "an approval opens only its own gate"
    ok = tick(
        c,
        r.status,
        Observation(
            now=T0,
            revision="rev-2",
            weights=Weights(50, 50),
            metrics={},
            approval=HookType.CONFIRM_PROMOTION,
            approved_by="alice@laptop/1",
        ),
    )
    assert ok.status.phase is Phase.PROMOTING and ok.status.pending_gate is None
    assert ConsumeApproval(HookType.CONFIRM_PROMOTION) in ok.actions
    assert "Gate confirm-promotion of podinfo.test opened: approved by alice@laptop/1" in ok.messages


def test_an_approval_opens_a_gate_whose_webhook_fails() -> None:
    c = model(gated("test", "", [{"name": "lt", "type": "confirm-promotion", "url": "http://127.0.0.1:1/"}]))
    closed = {HookType.CONFIRM_PROMOTION: [HookResult("lt", False, "403")]}
    obs = Observation(now=T0, revision="rev-2", weights=Weights(50, 50), metrics={}, webhooks=closed)
    assert tick(c, AT50, obs).status.phase is Phase.WAITING_PROMOTION
    approved = Observation(**{**obs.__dict__, "approval": HookType.CONFIRM_PROMOTION})
    assert tick(c, AT50, approved).status.phase is Phase.PROMOTING


def test_no_webhook_and_no_manual_gate_means_no_gate() -> None:
    c = model(gated("test", ""))
    r = tick(c, AT50, Observation(now=T0, revision="rev-2", weights=Weights(50, 50), metrics={}))
    assert r.status.phase is Phase.PROMOTING


def test_pause_holds_without_metrics_or_failures_and_abort_still_works() -> None:
    c = model(gated("test", ""))
    at0 = CanaryStatus(
        phase=Phase.PROGRESSING, canary_weight=0, last_applied_spec="rev-2", last_promoted_spec="r"
    )
    paused = Observation(now=T0, revision="rev-2", weights=Weights(100, 0), paused=True, paused_by="bob@h/2")
    assert not needs_metrics(c, at0, paused)
    r = tick(c, at0, paused)
    assert r.actions == [] and r.status.canary_weight == 0 and r.note == "paused by bob@h/2"
    r = tick(c, at0, Observation(**{**paused.__dict__, "revision": "rev-3"}))
    assert r.actions == [], "a new revision does not restart a paused run"
    r = tick(c, at0, Observation(**{**paused.__dict__, "command": Command.ABORT}))
    assert r.status.phase is Phase.FAILED


@pytest.fixture
def kube(sandbox: Any, namespace: str) -> Kube:
    return connect(str(sandbox.kubeconfig), None, namespace)


def cli(sandbox: Any, namespace: str, *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        progdel("-n", namespace, "canary", *args, kubeconfig=sandbox.kubeconfig),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done


def test_approve_pause_resume_from_a_second_process(sandbox: Any, kube: Kube, namespace: str) -> None:
    kube.create(DEPLOYMENTS, deployment("podinfo", "ghcr.io/stefanprodan/podinfo:6.0.0"))
    store.apply_canary(kube, gated(namespace, "confirm-traffic-increase,confirm-promotion"), namespace)
    watcher = subprocess.Popen(
        progdel(
            "-n",
            namespace,
            "-o",
            "ndjson",
            "canary",
            "watch",
            "podinfo",
            "--follow",
            kubeconfig=sandbox.kubeconfig,
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        read_until(watcher, lambda r: r.get("kind") == "tick" and r.get("phase") == "Initialized")
        new_revision(kube)
        read_until(watcher, lambda r: r.get("note") == "waiting at gate confirm-traffic-increase")
        cli(sandbox, namespace, "pause", "podinfo")
        read_until(watcher, lambda r: str(r.get("note", "")).startswith("paused by"))
        cli(sandbox, namespace, "approve", "podinfo")
        ticks: list[dict[str, Any]] = []

        def third_tick(record: dict[str, Any]) -> bool:
            if record.get("kind") == "tick":
                ticks.append(record)
            return len(ticks) >= 3

        read_until(watcher, third_tick)  # three more ticks, however long they take: paused, it waits
        assert all(str(t.get("note")).startswith("paused by") for t in ticks)
        obj = kube.get(CANARIES, "podinfo")
        assert obj["status"]["canaryWeight"] == 0
        approval = store.pending_approval(obj)
        assert approval is not None and approval.gate == "confirm-traffic-increase"
        cli(sandbox, namespace, "resume", "podinfo")
        # 0 -> 50, then at maxWeight the traffic-increase gate is asked again, as Flagger asks it
        read_until(
            watcher,
            lambda r: (
                r.get("canaryWeight") == 50 and r.get("note") == "waiting at gate confirm-traffic-increase"
            ),
        )
        assert store.pending_approval(kube.get(CANARIES, "podinfo")) is None, "the approval was used"
        cli(sandbox, namespace, "approve", "podinfo")
        read_until(watcher, lambda r: r.get("phase") == "WaitingPromotion")
        cli(sandbox, namespace, "approve", "podinfo")
        read_until(watcher, lambda r: r.get("kind") == "result" and r.get("outcome") == "promoted")
    finally:
        watcher.terminate()
        watcher.wait(timeout=10)
    user = default_identity().split("/")[0]
    messages = [e["message"] for e in list_events(kube, "Canary", "podinfo")]
    assert any(m.startswith(f"Paused podinfo.{namespace} at canary weight 0 by {user}") for m in messages), (
        messages
    )
    assert any(m.startswith(f"Resumed podinfo.{namespace}") and user in m for m in messages)
    assert any(
        m.startswith(f"Gate confirm-traffic-increase of podinfo.{namespace} approved by {user}")
        for m in messages
    )
    assert any(
        m.startswith(f"Gate confirm-promotion of podinfo.{namespace} approved by {user}") for m in messages
    )
