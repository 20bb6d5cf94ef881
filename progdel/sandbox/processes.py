"""Replicas as real local processes, and the one safe way the sandbox starts child processes.

``ProcessReplicaBackend`` is the sandbox's mesh-mode ``ReplicaBackend``: every replica of a
Deployment whose first container uses an image the sandbox runs (the demo app, podinfo,
Flagger's load tester: see ``progdel.sandbox.images``) is one process on loopback ports of
its own; a replica is ready once its readiness endpoint answers. Deployments with any other
image are "instantly ready", as with the default backend (images from ``.invalid``
registries never get ready), so other workloads still roll out.

Child processes must never outlive the sandbox, even when it is killed with ``kill -9``.
Every child therefore gets ``PR_SET_PDEATHSIG`` (Linux). That signal fires when the
*thread* that forked the child ends, not the process, so all children are started from a
single long-lived launcher thread (``spawn``): a request-handler thread of the API server
that calls ``reconcile`` and then ends must not take the replicas with it.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import queue
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from progdel.sandbox.backend import ReplicaCounts, ReplicaSetKey
from progdel.sandbox.httpapp import die_on_parent_exit
from progdel.sandbox.images import ContainerView, LaunchContext, Program, kind_of, plan
from progdel.sandbox.replicas import pullable


def _die_with_parent() -> None:  # pragma: no cover - runs in the forked child
    """preexec_fn: ask the kernel to SIGKILL this child when its parent (thread) dies."""
    die_on_parent_exit(signal.SIGKILL)
    if sys.platform.startswith("linux") and os.getppid() == 1:  # the parent died before prctl took effect
        os._exit(1)


class _Launcher:
    """A daemon thread that runs every ``Popen`` so PDEATHSIG binds to a thread that lives on."""

    def __init__(self) -> None:
        self._requests: queue.Queue[tuple[Callable[[], subprocess.Popen[bytes]], _Result]] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def run(self, make: Callable[[], subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="progdel-launcher", daemon=True)
                self._thread.start()
        result = _Result()
        self._requests.put((make, result))
        result.done.wait()
        if result.error is not None:
            raise result.error
        assert result.value is not None
        return result.value

    def _loop(self) -> None:
        while True:
            make, result = self._requests.get()
            try:
                result.value = make()
            except BaseException as exc:
                result.error = exc
            result.done.set()


@dataclass
class _Result:
    done: threading.Event = field(default_factory=threading.Event)
    value: subprocess.Popen[bytes] | None = None
    error: BaseException | None = None


_LAUNCHER = _Launcher()


def spawn(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    stdout: IO[Any] | int | None = subprocess.DEVNULL,
    stderr: IO[Any] | int | None = subprocess.DEVNULL,
    cwd: str | Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start a child that dies with this process (``kill -9`` included).

    The child stays in our session and process group (``start_new_session=False``), so a
    Ctrl-C in the terminal reaches it too.
    """

    def make() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            list(argv),
            env=dict(env) if env is not None else None,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            cwd=cwd,
            start_new_session=False,
            preexec_fn=_die_with_parent,
        )

    return _LAUNCHER.run(make)


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 2.0) -> None:
    """SIGTERM, then SIGKILL after ``timeout``; always reaps the child."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait()


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Endpoint:
    """One replica (a pod) as the mesh and Prometheus see it.

    ``host``/``port`` is its main address (where it answers readiness); ``ports`` maps the
    ports inside the container to local ones, and ``catch_all`` (the demo app) serves any
    other container port too. Without a port map the main address serves every port.
    """

    host: str
    port: int
    ready: bool
    labels: Mapping[str, str]
    pod: str
    ports: Mapping[int, int] = field(default_factory=dict)
    catch_all: int | None = None
    port_names: Mapping[str, int] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)

    def local_port(self, target: int | str | None) -> int | None:
        """The local port for a Service's ``targetPort`` (a number or a container port name)."""
        if target is None or not self.ports:
            return self.port
        number = self.port_names.get(target) if isinstance(target, str) else target
        if number is None:
            if isinstance(target, str) and target.isdigit():
                number = int(target)
            else:
                return None
        return self.ports.get(number, self.catch_all)


@dataclass
class _Replica:
    pod: str
    program: Program | None = None
    proc: subprocess.Popen[bytes] | None = None
    ready: bool = False
    restarts: int = 0
    next_start: float = 0.0
    stop_at: float | None = None


@dataclass
class _ReplicaSet:
    key: ReplicaSetKey
    container: ContainerView
    labels: dict[str, str]
    annotations: dict[str, str]
    runs: bool  # a process per replica (else: instantly ready)
    replicas: list[_Replica] = field(default_factory=list)
    desired: int = 0


_POD_SUFFIX = "bcdfghjklmnpqrstvwxz2456789"  # the alphabet of a ReplicaSet's pod name suffixes


class ProcessReplicaBackend:
    """Runs one demo-service process per replica; reports a replica ready once it serves.

    ``reconcile`` only records what is wanted and reads counts: a supervisor thread starts
    processes, probes ``/healthz``, restarts crashed replicas and stops surplus ones, so the
    controller never waits. Scaled-down replicas leave the endpoints at once and are stopped
    ``grace`` seconds later, so the mesh stops sending them traffic before they go away.
    """

    def __init__(
        self,
        *,
        log_dir: str | Path | None = None,
        grace: float = 0.5,
        probe_interval: float = 0.05,
        context: LaunchContext | None = None,
    ) -> None:
        self.context = context or LaunchContext(python=sys.executable)
        self.log_dir = Path(log_dir) if log_dir is not None else None
        self.grace = grace
        self.probe_interval = probe_interval
        self._sets: dict[ReplicaSetKey, _ReplicaSet] = {}
        self._terminating: list[_Replica] = []
        self._lock = threading.RLock()
        self._wake = threading.Event()
        self._closed = False
        self._listeners: list[Callable[[], None]] = []
        self._changed = False
        self._supervisor = threading.Thread(target=self._supervise, name="progdel-replicas", daemon=True)
        self._supervisor.start()

    # ReplicaBackend -----------------------------------------------------------------------

    def reconcile(self, key: ReplicaSetKey, template: dict[str, Any], replicas: int) -> ReplicaCounts:
        container = ContainerView.of(template)
        with self._lock:
            rs = self._sets.get(key)
            if rs is None or rs.container != container:
                meta = template.get("metadata") or {}
                rs = _ReplicaSet(
                    key=key,
                    container=container,
                    labels={str(k): str(v) for k, v in (meta.get("labels") or {}).items()},
                    annotations={str(k): str(v) for k, v in (meta.get("annotations") or {}).items()},
                    runs=kind_of(container.image) is not None,
                )
                old = self._sets.get(key)
                if old is not None:
                    self._retire(old.replicas)
                self._sets[key] = rs
            rs.desired = max(int(replicas), 0)
            if not rs.runs or self._closed:  # the default backend's rule: ready unless unpullable
                return ReplicaCounts(current=rs.desired, ready=rs.desired if pullable(template) else 0)
            while len(rs.replicas) < rs.desired:
                suffix = "".join(secrets.choice(_POD_SUFFIX) for _ in range(5))
                rs.replicas.append(_Replica(pod=f"{key.deployment}-{key.template_hash}-{suffix}"))
            if len(rs.replicas) > rs.desired:
                surplus = rs.replicas[rs.desired :]
                del rs.replicas[rs.desired :]
                self._retire(surplus)
            counts = ReplicaCounts(current=len(rs.replicas), ready=sum(r.ready for r in rs.replicas))
        self._wake.set()
        return counts

    def forget(self, keep: set[ReplicaSetKey]) -> None:
        with self._lock:
            for key in [k for k in self._sets if k not in keep]:
                self._retire(self._sets.pop(key).replicas)
        self._wake.set()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            procs = [r.proc for rs in self._sets.values() for r in rs.replicas if r.proc is not None]
            procs += [r.proc for r in self._terminating if r.proc is not None]
            self._sets.clear()
            self._terminating.clear()
        self._wake.set()
        self._supervisor.join(timeout=2)
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
        for proc in procs:
            stop_process(proc, timeout=1.0)
        self._notify(force=True)

    # What the mesh reads ------------------------------------------------------------------

    def endpoints(self) -> dict[ReplicaSetKey, list[Endpoint]]:
        """Every replica process that is running, with its readiness, ports and pod metadata."""
        with self._lock:
            return {
                key: [
                    Endpoint(
                        "127.0.0.1",
                        r.program.probe[0],
                        r.ready,
                        dict(rs.labels),
                        r.pod,
                        dict(r.program.ports),
                        r.program.catch_all,
                        dict(rs.container.port_names),
                        dict(rs.annotations),
                    )
                    for r in rs.replicas
                    if r.proc is not None and r.program is not None
                ]
                for key, rs in self._sets.items()
                if rs.runs
            }

    def pids(self) -> list[int]:
        """Process ids of every replica still running or terminating (for tests and status)."""
        with self._lock:
            reps = [r for rs in self._sets.values() for r in rs.replicas] + list(self._terminating)
            return [r.proc.pid for r in reps if r.proc is not None and r.proc.poll() is None]

    def add_listener(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (from the supervisor thread) whenever endpoints change."""
        with self._lock:
            self._listeners.append(callback)

    # Internals ----------------------------------------------------------------------------

    def _retire(self, replicas: list[_Replica]) -> None:
        stop_at = time.monotonic() + self.grace
        for rep in replicas:
            rep.stop_at = stop_at
            rep.ready = False
            if rep.proc is not None:
                self._terminating.append(rep)
                self._changed = True

    def _notify(self, force: bool = False) -> None:
        with self._lock:
            if not (self._changed or force):
                return
            self._changed = False
            listeners = list(self._listeners)
        for callback in listeners:
            with contextlib.suppress(Exception):
                callback()

    def _supervise(self) -> None:
        while True:
            self._wake.wait(self.probe_interval)
            self._wake.clear()
            with self._lock:
                if self._closed:
                    return
                work = [(rs, rep) for rs in self._sets.values() if rs.runs for rep in rs.replicas]
                now = time.monotonic()
                dying = [r for r in self._terminating if r.stop_at is not None and r.stop_at <= now]
            now = time.monotonic()
            for rs, rep in work:
                self._tend(rs, rep, now)
            for rep in dying:
                assert rep.proc is not None
                stop_process(rep.proc, timeout=1.0)
                with self._lock:
                    if rep in self._terminating:
                        self._terminating.remove(rep)
            self._notify()

    def _tend(self, rs: _ReplicaSet, rep: _Replica, now: float) -> None:
        if rep.proc is None:
            if now < rep.next_start:
                return
            started = self._start(rs, rep)
            if started is None:
                return
            program, proc = started
            with self._lock:
                if rep.stop_at is not None or self._closed or rep not in rs.replicas:
                    stop_process(proc, timeout=1.0)  # scaled away while starting
                    return
                rep.program, rep.proc = program, proc
            return
        if rep.proc.poll() is not None:  # crashed: restart with a back-off, like a kubelet
            with self._lock:
                rep.proc = None
                rep.restarts += 1
                rep.next_start = now + min(0.2 * 2 ** min(rep.restarts, 6), 10.0)
                if rep.ready:
                    rep.ready = False
                    self._changed = True
            return
        if not rep.ready and rep.program is not None and self._healthy(*rep.program.probe):
            with self._lock:
                if rep.stop_at is None:
                    rep.ready = True
                    self._changed = True

    def _start(self, rs: _ReplicaSet, rep: _Replica) -> tuple[Program, subprocess.Popen[bytes]] | None:
        program = plan(
            rs.container, pod=rep.pod, namespace=rs.key.namespace, ctx=self.context, allocate=free_port
        )
        if program is None:
            return None
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            with open(self.log_dir / f"{rs.key.namespace}_{rep.pod}.log", "ab") as log:
                return program, spawn(program.argv, env=program.env, stdout=log, stderr=subprocess.STDOUT)
        return program, spawn(program.argv, env=program.env)

    @staticmethod
    def _healthy(port: int, path: str) -> bool:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=0.2)
        try:
            conn.request("GET", path)
            return conn.getresponse().status == 200
        except OSError:
            return False
        finally:
            conn.close()
