"""Webhooks: the HTTP calls against a real loopback server, the engine's decisions, the runner's
wiring against the sandbox."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from progdel.canary import store
from progdel.canary.actions import CallWebhooks
from progdel.canary.cluster import initialize, runner_for
from progdel.canary.engine import NeedsHooks, needs, tick
from progdel.canary.observation import HookResult, HookType, Observation, Weights
from progdel.canary.runner import RunOptions
from progdel.canary.status import CanaryStatus, Phase
from progdel.canary.webhooks import WebhookCaller, mask_url, payload
from progdel.config.canary import Canary, CanaryWebhook, parse_canary
from progdel.errors import ExitCode
from progdel.kube.client import Kube, connect
from progdel.kube.events import list_events
from progdel.kube.resources import CANARIES, DEPLOYMENTS
from tests.canary.test_runner_integration import ReplayClock, deployment, new_revision

T0 = datetime(2024, 1, 1, tzinfo=UTC)


class HookServer:
    """A loopback HTTP server that records every request and answers per path: ``codes[path]``
    is a status or a list of statuses used in turn (the last one repeats)."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.codes: dict[str, int | list[int]] = {}
        self.delays: dict[str, float] = {}
        self.bodies: dict[str, str] = {}
        self.in_flight = 0
        self.most_in_flight = 0  # the most requests it was answering at once
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                with server.lock:
                    server.in_flight += 1
                    server.most_in_flight = max(server.most_in_flight, server.in_flight)
                try:
                    self._answer()
                finally:
                    with server.lock:
                        server.in_flight -= 1

            def _answer(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                server.requests.append((self.path, json.loads(raw or b"{}")))
                time.sleep(server.delays.get(self.path, 0))
                code = server.codes.get(self.path, 200)
                if isinstance(code, list):
                    code = code.pop(0) if len(code) > 1 else code[0]
                text = server.bodies.get(self.path, "").encode()
                try:
                    self.send_response(code)
                    self.send_header("Content-Length", str(len(text)))
                    self.end_headers()
                    self.wfile.write(text)
                except OSError:
                    pass  # the client gave up (a timeout test)

            def log_message(self, *_args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def calls(self, path: str) -> list[dict[str, Any]]:
        return [body for p, body in self.requests if p == path]


@pytest.fixture
def hook_server() -> Iterator[HookServer]:
    server = HookServer()
    server.thread.start()
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()


def canary_doc(namespace: str, webhooks: list[dict[str, Any]], **analysis: Any) -> dict[str, Any]:
    a: dict[str, Any] = {
        "interval": "1s",
        "threshold": 2,
        "maxWeight": 20,
        "stepWeight": 10,
        "webhooks": webhooks,
    }
    a.update(analysis)
    return {
        "apiVersion": "flagger.app/v1beta1",
        "kind": "Canary",
        "metadata": {"name": "podinfo", "namespace": namespace},
        "spec": {
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
            "service": {"port": 9898},
            "analysis": a,
        },
    }


def model(doc: dict[str, Any]) -> Canary:
    return parse_canary(doc, "test").model


# ---- the HTTP client -------------------------------------------------------------------------


def test_payload_is_flaggers_shape(hook_server: HookServer) -> None:
    canary = model(
        canary_doc("test", [{"name": "gate", "type": "confirm-rollout", "url": hook_server.url("/g")}])
    )
    hook = CanaryWebhook(name="ev", type="event", url=hook_server.url("/e"), metadata={"team": "web"})
    status = CanaryStatus(last_applied_spec="abc", tracked_configs={"cm": "1"})
    body = payload(
        canary, "Progressing", status, hook, ("Advance podinfo.test canary weight 10", "Normal", 1700)
    )
    assert set(body) == {"name", "namespace", "phase", "checksum", "metadata"}
    assert (body["name"], body["namespace"], body["phase"]) == ("podinfo", "test", "Progressing")
    assert body["metadata"] == {
        "team": "web",
        "eventMessage": "Advance podinfo.test canary weight 10",
        "eventType": "Normal",
        "timestamp": "1700",
    }
    other = payload(canary, "Progressing", CanaryStatus(last_applied_spec="abd"), hook)
    assert other["checksum"] != body["checksum"], "the checksum follows the applied revision"
    caller = WebhookCaller()
    [result] = caller.call_type(canary, HookType.CONFIRM_ROLLOUT, "Initialized", status)
    caller.close()
    assert result.ok and hook_server.calls("/g")[0]["phase"] == "Initialized"


@pytest.mark.parametrize(("code", "ok"), [(200, True), (202, True), (204, True), (299, True), (403, False)])
def test_any_2xx_is_success(hook_server: HookServer, code: int, ok: bool) -> None:
    hook_server.codes["/h"] = code
    hook_server.bodies["/h"] = "gate closed" if code == 403 else ""
    r = WebhookCaller().call(CanaryWebhook(name="h", url=hook_server.url("/h")), {})
    assert r.ok is ok and r.status_code == code
    if not ok:
        assert r.message == "403 gate closed", "the response body is the error text"


def test_5xx_is_retried_and_4xx_is_not(hook_server: HookServer) -> None:
    hook_server.codes["/flaky"] = [503, 500, 200]
    r = WebhookCaller().call(CanaryWebhook(name="f", url=hook_server.url("/flaky"), retries=2), {})
    assert r.ok and len(hook_server.calls("/flaky")) == 3
    hook_server.codes["/closed"] = 403
    r = WebhookCaller().call(CanaryWebhook(name="c", url=hook_server.url("/closed"), retries=3), {})
    assert not r.ok and len(hook_server.calls("/closed")) == 1


@pytest.mark.parametrize(("code", "calls"), [(429, 3), (502, 3), (501, 1), (404, 1)])
def test_429_is_retried_like_5xx_and_501_is_not(hook_server: HookServer, code: int, calls: int) -> None:
    """TestCallWebhook_Retries (webhook_test.go), with go-retryablehttp's rule: 429 and 5xx but
    501 are retried."""
    hook_server.codes["/r"] = code
    r = WebhookCaller().call(CanaryWebhook(name="r", url=hook_server.url("/r"), retries=2), {})
    assert not r.ok and len(hook_server.calls("/r")) == calls


def test_hooks_of_one_type_run_one_after_another_up_to_the_first_failure(hook_server: HookServer) -> None:
    """runPreRolloutHooks (scheduler_hooks.go): in the spec's order, each after the previous one
    answered, stopping at the first failure; rollback hooks stop at the first that signals; event
    hooks are all called."""
    hooks = [
        {"name": "db-migrate", "type": "pre-rollout", "url": hook_server.url("/migrate")},
        {"name": "smoke", "type": "pre-rollout", "url": hook_server.url("/smoke")},
        {"name": "load", "type": "pre-rollout", "url": hook_server.url("/load")},
        {"name": "r1", "type": "rollback", "url": hook_server.url("/r1")},
        {"name": "r2", "type": "rollback", "url": hook_server.url("/r2")},
        {"name": "r3", "type": "rollback", "url": hook_server.url("/r3")},
        {"name": "e1", "type": "event", "url": hook_server.url("/e1")},
        {"name": "e2", "type": "event", "url": hook_server.url("/e2")},
    ]
    c = model(canary_doc("test", hooks))
    hook_server.delays["/migrate"] = 0.3
    hook_server.codes.update({"/smoke": 500, "/r1": 403, "/e1": 500})
    caller = WebhookCaller()
    status = CanaryStatus()
    results = caller.call_type(c, HookType.PRE_ROLLOUT, "Progressing", status)
    assert [(r.name, r.ok) for r in results] == [("db-migrate", True), ("smoke", False)]
    assert [p for p, _ in hook_server.requests] == ["/migrate", "/smoke"], "load is never called"
    assert hook_server.most_in_flight == 1, "smoke started only after db-migrate answered"
    results = caller.call_type(c, HookType.ROLLBACK, "Progressing", status)
    assert [(r.name, r.ok) for r in results] == [("r1", False), ("r2", True)]
    results = caller.call_type(c, HookType.EVENT, "Progressing", status, ("m", "Normal", 1))
    assert [(r.name, r.ok) for r in results] == [("e1", False), ("e2", True)]
    caller.close()


def test_timeout_and_connection_errors_are_retried(hook_server: HookServer) -> None:
    hook_server.delays["/slow"] = 0.5
    r = WebhookCaller().call(
        CanaryWebhook(name="s", url=hook_server.url("/slow"), timeout="100ms", retries=1), {}
    )
    assert not r.ok and "timed out after 100ms" in r.message
    deadline = time.monotonic() + 60  # the server may read the second request after it timed out
    while len(hook_server.calls("/slow")) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(hook_server.calls("/slow")) == 2
    hook = CanaryWebhook(name="down", url="http://127.0.0.1:9/hook?token=s3cret", retries=1)
    r = WebhookCaller().call(hook, {})
    assert not r.ok and "s3cret" not in r.message and "127.0.0.1:9" in r.message


def test_mask_url_hides_paths_and_credentials() -> None:
    assert mask_url("https://user:pw@hooks.slack.com/services/T0/B0/xyz?x=1") == "https://hooks.slack.com/***"
    assert mask_url("http://127.0.0.1:8080") == "http://127.0.0.1:8080"


# ---- engine decisions --------------------------------------------------------------------------


def hooks(*specs: tuple[str, str]) -> list[dict[str, Any]]:
    return [{"name": n, "type": t, "url": f"http://127.0.0.1:1/{n}"} for n, t in specs]


def decide(canary: Canary, status: CanaryStatus, weights: Weights, results: dict[HookType, bool]) -> Any:
    obs = Observation(now=T0, revision=status.last_applied_spec or "rev-2", weights=weights, metrics={})
    while (need := needs(canary, status, obs)) is not None:
        assert isinstance(need, NeedsHooks)
        got = [
            HookResult(w.name, results[need.hook_type], "403 denied")
            for w in canary.analysis.webhooks
            if (w.type or "rollout") == need.hook_type
        ]
        obs = Observation(**{**obs.__dict__, "webhooks": {**(obs.webhooks or {}), need.hook_type: got}})
    return tick(canary, status, obs)


SETTLED = CanaryStatus(phase=Phase.SUCCEEDED, last_applied_spec="rev-1", last_promoted_spec="rev-1")


def test_confirm_rollout_failure_waits_and_success_starts() -> None:
    c = model(canary_doc("test", hooks(("gate", "confirm-rollout"))))
    obs_status = CanaryStatus(**{**SETTLED.__dict__})
    r = decide(c, obs_status, Weights(100, 0), {HookType.CONFIRM_ROLLOUT: False})
    # the observed revision differs from the applied one: a new revision waits at the gate
    r = tick(
        c,
        obs_status,
        Observation(
            now=T0,
            revision="rev-2",
            weights=Weights(100, 0),
            webhooks={HookType.CONFIRM_ROLLOUT: [HookResult("gate", False)]},
        ),
    )
    assert r.status.phase is Phase.WAITING and r.status.failed_checks == 0
    assert r.messages == ["Halt podinfo.test advancement waiting for approval gate"]
    assert r.status.pending_gate == "confirm-rollout"
    r2 = tick(
        c,
        r.status,
        Observation(
            now=T0,
            revision="rev-2",
            weights=Weights(100, 0),
            webhooks={HookType.CONFIRM_ROLLOUT: [HookResult("gate", True)]},
        ),
    )
    assert r2.status.phase is Phase.PROGRESSING
    assert "New revision detected! Scaling up podinfo.test" in r2.messages


def test_pre_rollout_and_rollout_failures_count_as_failed_checks() -> None:
    c = model(canary_doc("test", hooks(("smoke", "pre-rollout"), ("load", "rollout")), threshold=3))
    start = CanaryStatus(phase=Phase.PROGRESSING, last_applied_spec="rev-2", last_promoted_spec="rev-1")
    r = decide(c, start, Weights(100, 0), {HookType.PRE_ROLLOUT: False})
    assert r.status.failed_checks == 1 and r.status.canary_weight == 0
    assert "Halt podinfo.test advancement pre-rollout check smoke failed 403 denied" in r.messages
    r = decide(c, start, Weights(100, 0), {HookType.PRE_ROLLOUT: True})
    assert r.status.canary_weight == 10 and "Pre-rollout check smoke passed" in r.messages
    at10 = r.status
    r = decide(c, at10, Weights(90, 10), {HookType.ROLLOUT: False})
    assert r.status.failed_checks == 1 and r.status.canary_weight == 10
    assert "Halt podinfo.test advancement external check load failed 403 denied" in r.messages


def test_traffic_increase_gate_holds_without_failing() -> None:
    c = model(canary_doc("test", hooks(("more", "confirm-traffic-increase"))))
    at10 = CanaryStatus(
        phase=Phase.PROGRESSING, canary_weight=10, last_applied_spec="rev-2", last_promoted_spec="r"
    )
    r = decide(c, at10, Weights(90, 10), {HookType.CONFIRM_TRAFFIC_INCREASE: False})
    assert (
        r.status.canary_weight == 10 and r.status.failed_checks == 0 and r.status.phase is Phase.PROGRESSING
    )
    assert r.messages == ["Halt podinfo.test advancement waiting for traffic increase approval more"]
    r = decide(c, at10, Weights(90, 10), {HookType.CONFIRM_TRAFFIC_INCREASE: True})
    assert r.status.canary_weight == 20


def test_confirm_promotion_failure_waits_but_analysis_can_still_roll_back() -> None:
    c = model(canary_doc("test", hooks(("promo", "confirm-promotion"), ("load", "rollout")), threshold=1))
    at_max = CanaryStatus(
        phase=Phase.PROGRESSING, canary_weight=20, last_applied_spec="rev-2", last_promoted_spec="r"
    )
    r = decide(c, at_max, Weights(80, 20), {HookType.ROLLOUT: True, HookType.CONFIRM_PROMOTION: False})
    assert r.status.phase is Phase.WAITING_PROMOTION
    assert "Halt podinfo.test advancement waiting for promotion approval promo" in r.messages
    r2 = decide(c, r.status, Weights(80, 20), {HookType.ROLLOUT: False})
    assert r2.status.phase is Phase.FAILED
    r3 = decide(c, r.status, Weights(80, 20), {HookType.ROLLOUT: True, HookType.CONFIRM_PROMOTION: True})
    assert r3.status.phase is Phase.PROMOTING


def test_rollback_hook_2xx_rolls_back_and_post_rollout_is_an_action() -> None:
    c = model(canary_doc("test", hooks(("stop", "rollback"), ("notify", "post-rollout"))))
    at10 = CanaryStatus(
        phase=Phase.PROGRESSING, canary_weight=10, last_applied_spec="rev-2", last_promoted_spec="r"
    )
    assert decide(c, at10, Weights(90, 10), {HookType.ROLLBACK: False}).status.canary_weight == 20
    r = decide(c, at10, Weights(90, 10), {HookType.ROLLBACK: True})
    assert r.status.phase is Phase.FAILED and r.exit_hint is ExitCode.ABORTED
    assert r.messages[:2] == [
        "Rollback check stop passed",
        "Rolling back podinfo.test manual webhook invoked",
    ]
    assert r.events[1].alert == "warn" and r.events[1].alert_message == "Rolling back manual webhook invoked"
    # the post-rollout hooks' own events are recorded on the canary as it was before the rollback
    assert CallWebhooks(HookType.POST_ROLLOUT, "Failed", "Progressing") in r.actions


# ---- runner wiring against the sandbox -----------------------------------------------------------


@pytest.fixture
def kube(sandbox: Any, namespace: str) -> Kube:
    return connect(str(sandbox.kubeconfig), None, namespace)


def test_runner_calls_every_hook_type_in_order(kube: Kube, namespace: str, hook_server: HookServer) -> None:
    specs = [
        "confirm-rollout",
        "pre-rollout",
        "rollout",
        "confirm-traffic-increase",
        "confirm-promotion",
        "post-rollout",
        "rollback",
        "event",
    ]
    webhooks = [{"name": t, "type": t, "url": hook_server.url(f"/{t}"), "timeout": "2s"} for t in specs]
    hook_server.codes["/confirm-rollout"] = [403, 200]
    hook_server.codes["/rollback"] = 403  # the rollback gate is closed: no rollback
    kube.create(DEPLOYMENTS, deployment("podinfo", "ghcr.io/stefanprodan/podinfo:6.0.0"))
    store.apply_canary(kube, canary_doc(namespace, webhooks), namespace)
    assert initialize(kube, "podinfo", namespace, lambda _r: None, timeout=30) is ExitCode.OK
    new_revision(kube)
    runner = runner_for(kube, "podinfo", namespace, lambda _r: None, RunOptions(), ReplayClock(T0))
    phases = []
    for _ in range(12):
        result = runner.tick()
        phases.append(str(result.status.phase))
        runner.clock.sleep(1)
        if result.settled and result.status.phase is Phase.SUCCEEDED:
            break
    runner.close()
    assert phases[0] == "Waiting" and phases[-1] == "Succeeded", phases
    assert kube.get(CANARIES, "podinfo")["status"]["phase"] == "Succeeded"
    assert [b["phase"] for b in hook_server.calls("/confirm-rollout")] == ["Initialized", "Waiting"]
    assert [b["phase"] for b in hook_server.calls("/post-rollout")] == ["Succeeded"]
    assert all(b["phase"] == "Progressing" for b in hook_server.calls("/rollout"))
    assert hook_server.calls("/pre-rollout") and hook_server.calls("/confirm-promotion")
    # 0 -> 10 -> 20, then once more at maxWeight before confirm-promotion, as Flagger asks it
    assert len(hook_server.calls("/confirm-traffic-increase")) == 3
    first = [p for p, _ in hook_server.requests if p != "/event"]
    assert first.index("/pre-rollout") < first.index("/rollout") < first.index("/confirm-promotion")
    events = hook_server.calls("/event")
    messages = [e["metadata"]["eventMessage"] for e in events]
    assert f"Promotion completed! Scaling down podinfo.{namespace}" in messages
    assert all(e["metadata"]["eventType"] in ("Normal", "Warning") for e in events)
    assert all(int(e["metadata"]["timestamp"]) >= int(T0.timestamp() * 1000) for e in events)
    recorded = [e["message"] for e in list_events(kube, "Canary", "podinfo")]
    assert f"Halt podinfo.{namespace} advancement waiting for approval confirm-rollout" in recorded


def test_runner_post_rollout_gets_failed_after_a_rollback(
    kube: Kube, namespace: str, hook_server: HookServer
) -> None:
    webhooks = [
        {"name": "load", "type": "rollout", "url": hook_server.url("/load")},
        {"name": "notify", "type": "post-rollout", "url": hook_server.url("/post")},
    ]
    hook_server.codes["/load"] = 500
    hook_server.codes["/post"] = 500  # only logged
    kube.create(DEPLOYMENTS, deployment("podinfo", "ghcr.io/stefanprodan/podinfo:6.0.0"))
    store.apply_canary(kube, canary_doc(namespace, webhooks, threshold=2), namespace)
    assert initialize(kube, "podinfo", namespace, lambda _r: None, timeout=30) is ExitCode.OK
    new_revision(kube)
    records: list[dict[str, Any]] = []
    runner = runner_for(
        kube, "podinfo", namespace, records.append, RunOptions(), ReplayClock(T0 + timedelta(1))
    )
    assert runner.run() is ExitCode.CANARY_FAILED
    assert [b["phase"] for b in hook_server.calls("/post")] == ["Failed"]
    assert any("Post-rollout hook notify failed 500" in r.get("message", "") for r in records)


# ---- webhooks naming in-cluster Services ---------------------------------------------------------


def _register_service(
    sandbox: Any, kube: Kube, namespace: str, name: str, port: int, backend_port: int
) -> None:
    """A selector-less Service whose backend is the test's loopback server, as a load tester would
    sit in a cluster. Endpoints may not name a loopback address (nor may the service proxy go to
    one): the sandbox's own registration is the way to put one behind a Service."""
    from progdel.kube.resources import SERVICES

    kube.create(SERVICES, {"metadata": {"name": name}, "spec": {"ports": [{"name": "http", "port": port}]}})
    sandbox.register_backend(namespace, name, "127.0.0.1", backend_port, "http")


def test_in_cluster_webhook_urls_go_through_the_api_servers_service_proxy(
    sandbox: Any, kube: Kube, namespace: str, hook_server: HookServer
) -> None:
    """Flagger's tutorials call ``http://flagger-loadtester.test/``: a name that resolves only in
    the cluster. Reached through the sandbox's service proxy and a real HTTP server behind a
    Service and its Endpoints, with path, query, body and timeout kept."""
    backend = hook_server.httpd.server_address[1]
    _register_service(sandbox, kube, namespace, "loadtester", 80, backend)
    _register_service(sandbox, kube, namespace, "tester", 8080, backend)
    urls = {
        "bare": f"http://loadtester.{namespace}/",
        "port": f"http://tester.{namespace}:8080/gate/check?name=podinfo&x=%2F",
        "svc": f"http://loadtester.{namespace}.svc/rollback/check",
        "fqdn": f"http://tester.{namespace}.svc.cluster.local:8080/hooks/smoke",
    }
    hooks = [{"name": n, "type": "pre-rollout", "url": u, "metadata": {"cmd": n}} for n, u in urls.items()]
    c = model(canary_doc(namespace, hooks))
    caller = WebhookCaller()
    results = caller.call_type(c, HookType.PRE_ROLLOUT, "Progressing", CanaryStatus(), kube=kube)
    assert [(r.name, r.ok) for r in results] == [(n, True) for n in urls]
    assert [p for p, _ in hook_server.requests] == [
        "/",
        "/gate/check?name=podinfo&x=%2F",
        "/rollback/check",
        "/hooks/smoke",
    ]
    assert [b["metadata"]["cmd"] for _, b in hook_server.requests] == list(urls)
    assert all(b["phase"] == "Progressing" and b["name"] == "podinfo" for _, b in hook_server.requests)

    # the hook's timeout holds on the proxied call too, and errors name the hook's own URL
    hook_server.delays["/slow"] = 3
    slow = CanaryWebhook(name="slow", url=f"http://loadtester.{namespace}/slow", timeout="1s")
    r = caller.call(slow, {}, kube)
    via = "(through the Kubernetes API's service proxy)"
    assert not r.ok and r.message == f"POST http://loadtester.{namespace}/*** {via} timed out after 1s"
    # a Service without endpoints: the API server's 503, retried like any 5xx, then failed
    from progdel.kube.resources import SERVICES

    kube.create(SERVICES, {"metadata": {"name": "idle"}, "spec": {"ports": [{"name": "http", "port": 80}]}})
    before = len(hook_server.requests)
    r = caller.call(CanaryWebhook(name="idle", url=f"http://idle.{namespace}/", retries=1), {}, kube)
    assert not r.ok and r.status_code == 503 and "no endpoints available" in r.message
    assert len(hook_server.requests) == before
    caller.close()


def test_canary_check_lists_the_proxy_right_of_in_cluster_webhooks(sandbox: Any, namespace: str) -> None:
    """A user who may not create ``services/proxy`` (RBAC's verb for a POST through the proxy)
    in the load tester's namespace sees it among the rights ``canary check`` finds missing."""
    from progdel.canary.preflight import check_access
    from progdel.kube.resources import Resource
    from tests.sandbox.test_rbac import add_token, unique

    admin = connect(str(sandbox.kubeconfig), None, namespace)
    reader = add_token(sandbox, unique("reader"))
    role = Resource("rbac.authorization.k8s.io", "v1", "roles", "Role")
    binding = Resource("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding")
    rules = [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]
    admin.create(role, {"metadata": {"name": "all-but-proxy"}, "rules": rules}, namespace)
    admin.create(
        binding,
        {
            "metadata": {"name": "reader"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "all-but-proxy"},
            "subjects": [{"kind": "User", "name": reader.name}],
        },
        namespace,
    )
    hooks = [
        {"name": "load", "type": "rollout", "url": "http://flagger-loadtester.test/"},
        {"name": "here", "type": "rollout", "url": f"http://tester.{namespace}:8080/"},
    ]
    c = model(canary_doc(namespace, hooks))
    kubeconfig = yaml.safe_load(Path(sandbox.kubeconfig).read_text())
    kubeconfig["users"][0]["user"]["token"] = reader.token
    restricted = Path(sandbox.data_dir) / f"{reader.name}-kubeconfig"
    restricted.write_text(yaml.safe_dump(kubeconfig))
    missing, _note = check_access(
        connect(str(restricted), None, namespace), c, prometheus_url="http://127.0.0.1:9"
    )
    assert missing is not None
    proxy = [(m.verbs, m.namespace, str(m)) for m in missing if m.resource == "services/proxy"]
    assert proxy == [(("create",), "test", 'create services/proxy in namespace "test"')], [
        m.to_dict() for m in missing
    ]
