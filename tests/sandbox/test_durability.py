"""The sandbox's write guarantees: optimistic concurrency never loses an update, a kill -9
never loses a write it acknowledged (nor an unfinished namespace deletion), and a full disk
refuses writes with a 500 Status while what was acknowledged stays."""

from __future__ import annotations

import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from kubernetes import client, config
from kubernetes.client import ApiException

from tests.sandbox.processes import serve


def test_concurrent_read_modify_write_loses_no_increment(sandbox: Any, namespace: str) -> None:
    """8 clients x 50 increments of one counter, each a GET then a PUT carrying the
    resourceVersion read, retried on 409: exactly 400."""
    clients, rounds = 8, 50
    client.CoreV1Api(
        config.new_client_from_config(config_file=str(sandbox.kubeconfig))
    ).create_namespaced_config_map(namespace, {"metadata": {"name": "counter"}, "data": {"n": "0"}})
    conflicts = [0]
    lock = threading.Lock()
    errors: list[BaseException] = []

    def worker() -> None:
        api = config.new_client_from_config(config_file=str(sandbox.kubeconfig))
        core = client.CoreV1Api(api)
        try:
            for _ in range(rounds):
                while True:
                    cm = core.read_namespaced_config_map("counter", namespace)
                    cm.data["n"] = str(int(cm.data["n"]) + 1)
                    try:
                        core.replace_namespaced_config_map("counter", namespace, cm)
                        break
                    except ApiException as err:
                        if err.status != 409:
                            raise
                        with lock:
                            conflicts[0] += 1
        except BaseException as err:  # surfaced below
            errors.append(err)
        finally:
            api.close()

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors
    core = client.CoreV1Api(config.new_client_from_config(config_file=str(sandbox.kubeconfig)))
    assert core.read_namespaced_config_map("counter", namespace).data["n"] == str(clients * rounds)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_kill_9_loses_no_acknowledged_write(tmp_path: Path) -> None:
    data, port = tmp_path / "sb", _free_port()
    proc, api = serve(data, port)
    acknowledged: list[str] = []
    try:
        with api.http_client() as http:
            http.post("/api/v1/namespaces", json={"metadata": {"name": "w"}}).raise_for_status()
            # a namespace being deleted when the process dies: a finalizer holds it
            http.post("/api/v1/namespaces", json={"metadata": {"name": "doomed"}}).raise_for_status()
            held = {"metadata": {"name": "held", "finalizers": ["example.com/hold"]}}
            http.post("/api/v1/namespaces/doomed/configmaps", json=held).raise_for_status()
            http.delete("/api/v1/namespaces/doomed").raise_for_status()

            stop = threading.Event()

            def write() -> None:
                i = 0
                while not stop.is_set():
                    try:
                        r = http.post(
                            "/api/v1/namespaces/w/configmaps", json={"metadata": {"name": f"c-{i}"}}
                        )
                    except httpx.HTTPError:
                        return  # the server died under this request: not acknowledged
                    if r.status_code == 201:
                        acknowledged.append(f"c-{i}")
                    i += 1

            writer = threading.Thread(target=write)
            writer.start()
            while len(acknowledged) < 50:
                time.sleep(0.01)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
            stop.set()
            writer.join(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    proc, api = serve(data, port)
    try:
        with api.http_client() as http:
            stored = {
                i["metadata"]["name"] for i in http.get("/api/v1/namespaces/w/configmaps").json()["items"]
            }
            assert set(acknowledged) <= stored
            assert http.get("/api/v1/namespaces/doomed").json()["status"]["phase"] == "Terminating"
            http.patch(
                "/api/v1/namespaces/doomed/configmaps/held",
                json={"metadata": {"finalizers": None}},
                headers={"Content-Type": "application/merge-patch+json"},
            ).raise_for_status()
            deadline = time.monotonic() + 30
            while http.get("/api/v1/namespaces/doomed").status_code != 404:
                assert time.monotonic() < deadline, "the interrupted namespace deletion did not finish"
                time.sleep(0.05)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_a_full_disk_refuses_writes_with_500_and_keeps_what_was_acknowledged(tmp_path: Path) -> None:
    """No file of the data dir may grow by more than a few hundred kilobytes: writes soon fail
    in SQLite, as on a full disk. Each refused write is a 500 Status; the server goes on
    answering, stores nothing of the refused write, and keeps every acknowledged one."""
    data, port = tmp_path / "sb", _free_port()
    proc, _ = serve(data, port)  # a first start makes the database and the certificates
    proc.terminate()
    proc.wait(timeout=30)
    largest = max(f.stat().st_size for f in data.iterdir() if f.is_file())
    proc, api = serve(data, port, file_size_limit=largest + 500_000)
    acknowledged: list[str] = []
    try:
        with api.http_client(timeout=60) as http:
            http.post("/api/v1/namespaces", json={"metadata": {"name": "w"}}).raise_for_status()
            blob = "x" * 100_000
            for i in range(1000):
                body = {"metadata": {"name": f"c-{i}"}, "data": {"a": blob}}
                answer = http.post("/api/v1/namespaces/w/configmaps", json=body)
                if answer.status_code != 201:
                    break
                acknowledged.append(f"c-{i}")
            assert answer.status_code == 500, answer.text
            status = answer.json()
            assert (status["kind"], status["reason"], status["code"]) == ("Status", "InternalError", 500)
            refused = f"c-{len(acknowledged)}"
            assert http.get("/readyz").status_code == 200
            assert http.get(f"/api/v1/namespaces/w/configmaps/{refused}").status_code == 404
            listed = http.get("/api/v1/namespaces/w/configmaps").json()["items"]
            assert sorted(i["metadata"]["name"] for i in listed) == sorted(acknowledged)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert acknowledged, "the limit left no room for a single write"
    proc, api = serve(data, port)
    try:
        with api.http_client() as http:
            listed = http.get("/api/v1/namespaces/w/configmaps").json()["items"]
            assert sorted(i["metadata"]["name"] for i in listed) == sorted(acknowledged)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
