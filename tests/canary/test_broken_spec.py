"""A spec that breaks while a run moves traffic ends the run in a defined state, never stranded.

Flagger's scheduler (``scheduler_metrics.go`` runMetricChecks) counts "Metric template NAME.NS
error" as a failed check and rolls back at the threshold; progdel does the same for a
MetricTemplate or its Secret deleted mid-run and for a Canary edited into a spec that no longer validates,
against the sandbox API server and a real Prometheus, through ``CanaryRunner`` ticks.
"""

from __future__ import annotations

import base64
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from progdel.canary import store
from progdel.canary.cluster import initialize, runner_for
from progdel.canary.runner import CanaryRunner, RunOptions
from progdel.canary.status import Phase
from progdel.errors import ExitCode, InvalidInput
from progdel.kube.client import Kube, connect
from progdel.kube.events import list_events
from progdel.kube.resources import CANARIES, DEPLOYMENTS, METRICTEMPLATES, SECRETS
from tests.canary.specs import podinfo_canary
from tests.canary.test_runner_integration import T0, ReplayClock, deployment, new_revision, vs_weights
from tests.promfixture import require_prometheus, run_prometheus


@pytest.fixture
def kube(sandbox: Any, namespace: str) -> Kube:
    require_prometheus()
    return connect(str(sandbox.kubeconfig), None, namespace)


def start(kube: Kube, namespace: str, secret: str | None = None) -> None:
    """A canary judged by one MetricTemplate that always passes (its credentials in the Secret
    ``secret`` if given), initialized, then a new revision."""
    provider: dict[str, Any] = {"type": "prometheus"}
    if secret is not None:
        provider["secretRef"] = {"name": secret}
        token = base64.b64encode(b"not-checked-by-this-prometheus").decode()
        kube.create(
            SECRETS,
            {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": secret}, "data": {"token": token}},
        )
    kube.create(
        METRICTEMPLATES,
        {
            "apiVersion": "flagger.app/v1beta1",
            "kind": "MetricTemplate",
            "metadata": {"name": "always"},
            "spec": {"provider": provider, "query": "vector(100)"},
        },
    )
    kube.create(DEPLOYMENTS, deployment("podinfo", "ghcr.io/stefanprodan/podinfo:6.0.0"))
    doc = podinfo_canary(
        namespace,
        [{"name": "ok", "templateRef": {"name": "always"}, "thresholdRange": {"min": 1}}],
        maxWeight=60,
    )
    store.apply_canary(kube, doc, namespace)
    assert initialize(kube, "podinfo", namespace, lambda _r: None, timeout=30) is ExitCode.OK
    new_revision(kube)


def runner(kube: Kube, namespace: str, url: str, clock: ReplayClock) -> CanaryRunner:
    return runner_for(kube, "podinfo", namespace, lambda _r: None, RunOptions(prometheus_url=url), clock)


def to_weight(r: CanaryRunner, kube: Kube, weight: int) -> None:
    for _ in range(10):
        r.tick()
        r.clock.sleep(10)
        if vs_weights(kube)[1] == weight:
            return
    raise AssertionError(f"never reached weight {weight}: {vs_weights(kube)}")


def settle(r: CanaryRunner) -> Any:
    for _ in range(10):
        result = r.tick()
        r.clock.sleep(10)
        if result.settled:
            return result
    raise AssertionError("the run did not end")


def test_a_metric_template_deleted_mid_run_fails_checks_then_rolls_back(
    kube: Kube, namespace: str, tmp_path: Path
) -> None:
    start(kube, namespace)
    with run_prometheus(None, tmp_path) as prom:
        r = runner(kube, namespace, prom.url, ReplayClock(T0 + timedelta(days=1)))
        to_weight(r, kube, 40)
        kube.delete(METRICTEMPLATES, "always")
        result = settle(r)
        r.close()
    assert result.status.phase is Phase.FAILED and result.exit_hint is ExitCode.CANARY_FAILED
    assert vs_weights(kube) == (100, 0), "no traffic is left on the canary"
    assert kube.get(DEPLOYMENTS, "podinfo")["spec"]["replicas"] == 0
    messages = [e["message"] for e in list_events(kube, "Canary", "podinfo")]
    why = f"Metric template always.{namespace} error:"
    assert any(m.startswith(why) and "not found" in m for m in messages), messages
    assert f"Rolling back podinfo.{namespace} failed checks threshold reached 2" in messages


def test_a_templates_secret_deleted_mid_run_fails_checks_then_rolls_back(
    kube: Kube, namespace: str, tmp_path: Path
) -> None:
    """runMetricChecks reads a template's Secret at every check; one it cannot read is a failed
    check ("Metric template NAME.NS secret NAME error: ..." in Flagger's words)."""
    start(kube, namespace, secret="prom-auth")
    with run_prometheus(None, tmp_path) as prom:
        r = runner(kube, namespace, prom.url, ReplayClock(T0 + timedelta(days=1)))
        to_weight(r, kube, 40)
        kube.delete(SECRETS, "prom-auth")
        result = settle(r)
        r.close()
    assert result.status.phase is Phase.FAILED and result.exit_hint is ExitCode.CANARY_FAILED
    assert vs_weights(kube) == (100, 0), "no traffic is left on the canary"
    messages = [e["message"] for e in list_events(kube, "Canary", "podinfo")]
    why = (
        f"Metric query failed for ok: secret {namespace}/prom-auth (a MetricTemplate's secretRef): not found"
    )
    assert why in messages, messages
    assert f"Rolling back podinfo.{namespace} failed checks threshold reached 2" in messages


def test_a_canary_edited_invalid_mid_run_rolls_back_even_for_a_new_watcher(
    kube: Kube, namespace: str, tmp_path: Path
) -> None:
    start(kube, namespace)
    with run_prometheus(None, tmp_path) as prom:
        clock = ReplayClock(T0 + timedelta(days=1))
        first = runner(kube, namespace, prom.url, clock)
        to_weight(first, kube, 40)
        first.close()
        # a metric with neither a template nor a query: Flagger's CRD stores it, progdel's spec rules
        # refuse it
        obj = kube.get(CANARIES, "podinfo")
        obj["spec"]["analysis"]["metrics"][0].pop("templateRef")
        kube.replace(CANARIES, obj)
        with pytest.raises(InvalidInput):
            store.read(kube, "podinfo", namespace)
        second = runner(kube, namespace, prom.url, clock)  # never saw the spec valid
        result = settle(second)
        second.close()
    assert result.status.phase is Phase.FAILED and result.exit_hint is ExitCode.CANARY_FAILED
    assert vs_weights(kube) == (100, 0)
    messages = [e["message"] for e in list_events(kube, "Canary", "podinfo")]
    assert any(
        m.startswith(f"Halt podinfo.{namespace} advancement invalid spec:") and "templateRef" in m
        for m in messages
    ), messages


def test_an_invalid_spec_with_no_run_under_way_is_still_a_spec_error(
    kube: Kube, namespace: str, tmp_path: Path
) -> None:
    start(kube, namespace)
    obj = kube.get(CANARIES, "podinfo")
    obj["spec"]["analysis"]["metrics"][0].pop("templateRef")
    kube.replace(CANARIES, obj)
    with run_prometheus(None, tmp_path) as prom:
        r = runner(kube, namespace, prom.url, ReplayClock(T0))
        with pytest.raises(InvalidInput, match="templateRef"):
            r.run()
    assert kube.get(CANARIES, "podinfo")["status"]["phase"] == "Initialized"
