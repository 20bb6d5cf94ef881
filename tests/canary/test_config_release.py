"""ConfigMaps and Secrets as Flagger handles them (``pkg/canary/config_tracker.go``,
``deployment_controller.go`` ``Promote``): the primary reads ``-primary`` copies, a config-only
release is a canary like any other, promotion rewrites the copies and rolls the primary, and a
rollback leaves the primary and its copies as they were, so a bad config never reaches it.
"""

from __future__ import annotations

from typing import Any

import pytest

from progdel.canary import store
from progdel.canary.cluster import initialize, runner_for
from progdel.canary.runner import RunOptions
from progdel.canary.status import Phase
from progdel.errors import ExitCode
from progdel.kube.client import Kube, connect
from progdel.kube.resources import CONFIGMAPS, DEPLOYMENTS, SECRETS
from tests.canary.test_runner_integration import T0, ReplayClock, canary_doc, deployment


@pytest.fixture
def kube(sandbox: Any, namespace: str) -> Kube:
    return connect(str(sandbox.kubeconfig), None, namespace)


def app(kube: Kube, namespace: str) -> None:
    dep = deployment("podinfo", "ghcr.io/stefanprodan/podinfo:6.0.0")
    pod = dep["spec"]["template"]["spec"]
    pod["containers"][0]["env"] = [
        {"name": "GREETING", "valueFrom": {"configMapKeyRef": {"name": "podinfo-config", "key": "greeting"}}},
        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "podinfo-token", "key": "token"}}},
    ]
    pod["volumes"] = [
        {"name": "config", "configMap": {"name": "podinfo-config"}},
        {"name": "registry", "secret": {"secretName": "registry-login"}},
        {"name": "optional", "configMap": {"name": "not-there", "optional": True}},
    ]
    kube.create(CONFIGMAPS, {"metadata": {"name": "podinfo-config"}, "data": {"greeting": "hello"}})
    kube.create(
        SECRETS, {"metadata": {"name": "podinfo-token"}, "type": "Opaque", "data": {"token": "czNjcjN0"}}
    )
    kube.create(
        SECRETS,
        {
            "metadata": {"name": "registry-login"},
            "type": "kubernetes.io/dockerconfigjson",
            "data": {".dockerconfigjson": "e30="},
        },
    )
    kube.create(DEPLOYMENTS, dep)
    doc = canary_doc(namespace, metrics=[], interval="5s", threshold=1, maxWeight=50, stepWeight=50)
    store.apply_canary(kube, doc, namespace)
    assert initialize(kube, "podinfo", namespace, lambda _r: None, timeout=30) is ExitCode.OK


def primary_state(kube: Kube) -> tuple[str, str, str, str]:
    """What the primary runs: its ReplicaSet (a new one means restarted pods), its flagger-id,
    the greeting of its ConfigMap copy and which ConfigMap its pods read."""
    primary = kube.get(DEPLOYMENTS, "podinfo-primary")
    progressing = next(c for c in primary["status"]["conditions"] if c["type"] == "Progressing")
    env = primary["spec"]["template"]["spec"]["containers"][0]["env"]
    return (
        progressing["message"].split('"')[1],
        primary["spec"]["template"]["metadata"]["annotations"]["flagger-id"],
        kube.get(CONFIGMAPS, "podinfo-config-primary")["data"]["greeting"],
        env[0]["valueFrom"]["configMapKeyRef"]["name"],
    )


def run(kube: Kube, namespace: str, until: set[Phase], each: Any = None, limit: int = 20) -> Phase:
    runner = runner_for(kube, "podinfo", namespace, lambda _r: None, RunOptions(), ReplayClock(T0))
    phase = Phase.NONE
    for _ in range(limit):
        phase = runner.tick().status.phase
        if each is not None:
            each(phase)
        runner.clock.sleep(5)
        if phase in until:
            break
    return phase


def test_the_primary_reads_its_own_copies(kube: Kube, namespace: str) -> None:
    app(kube, namespace)
    pod = kube.get(DEPLOYMENTS, "podinfo-primary")["spec"]["template"]["spec"]
    env = pod["containers"][0]["env"]
    assert env[0]["valueFrom"]["configMapKeyRef"]["name"] == "podinfo-config-primary"
    assert env[1]["valueFrom"]["secretKeyRef"]["name"] == "podinfo-token-primary"
    assert [v.get("configMap", v.get("secret")) for v in pod["volumes"]] == [
        {"name": "podinfo-config-primary"},
        {"secretName": "registry-login"},  # registry credentials are not tracked, as in Flagger
        {"name": "not-there", "optional": True},  # an optional config that does not exist
    ]
    token = kube.get(SECRETS, "podinfo-token-primary")
    assert (token["type"], token["data"]) == ("Opaque", {"token": "czNjcjN0"})
    assert kube.get_or_none(SECRETS, "registry-login-primary") is None
    target = kube.get(DEPLOYMENTS, "podinfo")["spec"]["template"]["spec"]
    assert target["containers"][0]["env"][0]["valueFrom"]["configMapKeyRef"]["name"] == "podinfo-config"


def test_a_config_only_release_is_promoted_and_restarts_the_primary_on_the_new_data(
    kube: Kube, namespace: str
) -> None:
    app(kube, namespace)
    before = primary_state(kube)
    assert before[2:] == ("hello", "podinfo-config-primary")
    kube.patch(CONFIGMAPS, "podinfo-config", {"data": {"greeting": "hi"}})  # nothing else changes
    seen: list[tuple[Phase, str]] = []
    phase = run(
        kube, namespace, {Phase.SUCCEEDED, Phase.FAILED}, lambda p: seen.append((p, primary_state(kube)[2]))
    )
    assert phase is Phase.SUCCEEDED, seen
    assert ("Progressing", "hello") in [(str(p), g) for p, g in seen], "analysed before promotion"
    after = primary_state(kube)
    assert after[2:] == ("hi", "podinfo-config-primary")
    assert after[0] != before[0] and after[1] != before[1], "the primary rolled: a new ReplicaSet"
    assert kube.get(CONFIGMAPS, "podinfo-config")["data"] == {"greeting": "hi"}


def test_a_bad_config_rolled_back_never_reaches_the_primary(kube: Kube, namespace: str) -> None:
    app(kube, namespace)
    before = primary_state(kube)
    kube.patch(CONFIGMAPS, "podinfo-config", {"data": {"greeting": "bad"}})
    runner = runner_for(kube, "podinfo", namespace, lambda _r: None, RunOptions(), ReplayClock(T0))
    assert runner.tick().status.phase is Phase.PROGRESSING
    assert primary_state(kube) == before
    store.post_request(kube, "podinfo", namespace, "abort")  # the analysis says no
    assert runner.tick().status.phase is Phase.FAILED
    assert primary_state(kube) == before, "the primary and its copy never saw the bad config"
    assert kube.get(DEPLOYMENTS, "podinfo")["spec"]["replicas"] == 0
