"""Replica processes: scale up/down, fallback for other images, nothing outlives the sandbox."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

from progdel.sandbox.backend import ReplicaSetKey
from progdel.sandbox.processes import ProcessReplicaBackend, spawn, stop_process

from .conftest import alive, demo_template, wait_dead, wait_ready, wait_survivors


def test_scale_up_down_forget_and_close(backend: ProcessReplicaBackend) -> None:
    key = ReplicaSetKey("default", "demo", "h1")
    template = demo_template("demo", "1.0.0")
    first = backend.reconcile(key, template, 3)
    assert (first.current, first.ready) == (3, 0)  # reconcile never waits for readiness
    wait_ready(backend, {key: (template, 3)})
    pids = backend.pids()
    assert len(pids) == 3 and all(alive(p) for p in pids)

    counts = backend.reconcile(key, template, 1)
    assert (counts.current, counts.ready) == (1, 1)
    assert len(backend.endpoints()[key]) == 1  # surplus replicas leave the endpoints at once
    assert wait_survivors(pids, 1) == 1

    other = ReplicaSetKey("default", "demo", "h2")
    wait_ready(backend, {other: (demo_template("demo", "1.1.0"), 1)})
    backend.forget({other})
    assert list(backend.endpoints()) == [other]
    remaining = backend.pids()
    backend.close()
    assert wait_dead(remaining + pids) == []
    assert backend.pids() == []


def test_other_images_are_instantly_ready(backend: ProcessReplicaBackend) -> None:
    key = ReplicaSetKey("default", "web", "h1")
    template = {"spec": {"containers": [{"image": "nginx:1.27"}]}}
    counts = backend.reconcile(key, template, 4)
    assert (counts.current, counts.ready) == (4, 4)
    assert backend.pids() == [] and key not in backend.endpoints()


def test_crashed_replica_is_restarted(backend: ProcessReplicaBackend) -> None:
    key = ReplicaSetKey("default", "demo", "h1")
    template = demo_template("demo", "1.0.0")
    wait_ready(backend, {key: (template, 1)})
    [pid] = backend.pids()
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        counts = backend.reconcile(key, template, 1)
        if counts.ready == 1 and backend.pids() and backend.pids() != [pid]:
            break
        time.sleep(0.05)
    assert backend.pids() and backend.pids() != [pid]


def test_child_started_from_a_finished_thread_survives() -> None:
    """PDEATHSIG follows the forking thread: spawn() must not tie children to a caller thread."""
    procs: list[subprocess.Popen[bytes]] = []
    worker = threading.Thread(target=lambda: procs.append(spawn(["sleep", "30"])))
    worker.start()
    worker.join()
    time.sleep(0.3)
    try:
        assert procs[0].poll() is None
    finally:
        stop_process(procs[0])


def test_kill_9_of_the_parent_ends_every_child(tmp_path: Path) -> None:
    """The Envoy launch pitfall in reverse: children must die with a killed parent."""
    script = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})
        from progdel.sandbox.backend import ReplicaSetKey
        from progdel.sandbox.processes import ProcessReplicaBackend
        from progdel.sandbox.mesh import Envoy
        from progdel.sandbox.processes import free_port
        from pathlib import Path
        envoy = Envoy(Path({str(tmp_path)!r}), free_port(), free_port())
        envoy.start()
        b = ProcessReplicaBackend()
        tpl = {{"metadata": {{"labels": {{"app": "x"}}}},
               "spec": {{"containers": [{{"image": "progdel/demo-app:1.0.0"}}]}}}}
        key = ReplicaSetKey("default", "x", "h")
        while b.reconcile(key, tpl, 2).ready < 2:
            time.sleep(0.02)
        print(" ".join(str(p) for p in b.pids() + [envoy.proc.pid]), flush=True)
        time.sleep(60)
    """)
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    try:
        assert parent.stdout is not None
        pids = [int(p) for p in parent.stdout.readline().split()]
        assert len(pids) == 3 and all(alive(p) for p in pids)
        time.sleep(0.5)  # the pitfall: a live parent must keep its children running
        assert all(alive(p) for p in pids)
        parent.kill()
        parent.wait()
        assert wait_dead(pids) == []
    finally:
        if parent.poll() is None:
            parent.kill()


def test_unpullable_other_images_never_get_ready(backend: ProcessReplicaBackend) -> None:
    key = ReplicaSetKey("default", "web", "h1")
    template = {"spec": {"containers": [{"image": "registry.invalid/web:1"}]}}
    counts = backend.reconcile(key, template, 2)
    assert (counts.current, counts.ready) == (2, 0)
