"""The load generator: steady rate, split and errors counted per window."""

from __future__ import annotations

import time

from progdel.sandbox.backend import ReplicaSetKey
from progdel.sandbox.loadgen import LoadGenerator
from progdel.sandbox.processes import ProcessReplicaBackend

from .conftest import demo_template, wait_ready


def test_rate_split_and_windows(backend: ProcessReplicaBackend) -> None:
    key = ReplicaSetKey("default", "demo", "h1")
    wait_ready(backend, {key: (demo_template("demo", "1.2.0", DEMO_ERROR_RATE="0.1"), 1)})
    [ep] = backend.endpoints()[key]
    gen = LoadGenerator(f"http://127.0.0.1:{ep.port}", "demo", rate=100, duration=1.5)
    started = time.monotonic()
    gen.start().wait()
    elapsed = time.monotonic() - started
    assert not gen.running and elapsed < 15  # it ends after its duration, not when the test gives up
    counts = gen.served_since()
    assert counts == {"1.2.0": 150, "errors": 15}
    assert 60 <= gen.achieved_rate() <= 140  # loose: a shared machine may delay the sender
    assert gen.statuses_since() == {200: 135, 500: 15}
    first_half = gen.served_since(started, started + 0.75)
    assert 65 <= first_half["1.2.0"] <= 85
    assert gen.served_since(time.monotonic()) == {"errors": 0}


def test_stop_ends_early_and_failures_count_as_errors() -> None:
    gen = LoadGenerator("http://127.0.0.1:9", "nobody", rate=50, duration=30, timeout=0.5).start()
    time.sleep(0.5)
    gen.stop()
    assert not gen.running
    counts = gen.served_since()
    assert counts["errors"] >= 15 and set(counts) == {"errors"}
