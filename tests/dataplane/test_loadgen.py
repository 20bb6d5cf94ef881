"""The load generator: every scheduled request sent, split and errors counted per window.

How fast it manages to send on this machine is ``bench/``'s business: nothing here depends on it.
"""

from __future__ import annotations

import time

from progdel.sandbox.backend import ReplicaSetKey
from progdel.sandbox.loadgen import LoadGenerator
from progdel.sandbox.processes import ProcessReplicaBackend

from .conftest import demo_template, wait_answers, wait_ready


def test_every_request_is_sent_split_and_counted_per_window(backend: ProcessReplicaBackend) -> None:
    key = ReplicaSetKey("default", "demo", "h1")
    wait_ready(backend, {key: (demo_template("demo", "1.2.0", DEMO_ERROR_RATE="0.1"), 1)})
    [ep] = backend.endpoints()[key]
    gen = LoadGenerator(f"http://127.0.0.1:{ep.port}", "demo", rate=100, duration=1.5, timeout=30)
    gen.start().wait()
    assert not gen.running  # it ends after its duration's worth of requests
    assert gen.served_since() == {"1.2.0": 150, "errors": 15}  # 150 scheduled, exactly 1 in 10 fails
    assert gen.statuses_since() == {200: 135, 500: 15}
    # windows are by send time: two halves split at any request add up to the whole
    middle = sorted(s.sent for s in gen.samples)[75]
    first, second = gen.served_since(None, middle), gen.served_since(middle)
    assert first["1.2.0"] + second["1.2.0"] == 150 and first["errors"] + second["errors"] == 15
    assert len(gen.samples_between(None, middle)) == 75
    assert gen.served_since(time.monotonic()) == {"errors": 0}


def test_stop_ends_early_and_failures_count_as_errors() -> None:
    gen = LoadGenerator("http://127.0.0.1:9", "nobody", rate=50, duration=600, timeout=0.5).start()
    wait_answers(gen, 15)
    gen.stop()
    assert not gen.running
    counts = gen.served_since()
    assert counts["errors"] >= 15 and set(counts) == {"errors"}
    assert counts["errors"] < 50 * 600, "stopped long before its schedule ended"
