"""How long `progdel canary replay` takes over a 24-hour window at a 1-minute interval.

Backfills 24 hours of healthy Istio traffic into a local Prometheus (promtool), then replays a
Blue/Green canary with enough iterations to analyse at every one of the 1441 ticks (two metrics
each, queried at the tick's time), and prints the wall time, the ticks and the time per tick.
The cost grows with the number of ticks, not with the length of the interval.

    .venv/bin/python bench/bench_replay.py [--hours 24]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from progdel.canary.records import Record
from progdel.canary.replay import Replay, ReplayMetrics
from progdel.config.canary import parse_canary
from tests.canary.test_replay import T0, canary_doc
from tests.promfixture import TrafficPhase, istio_openmetrics, run_prometheus


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hours", type=float, default=24)
    args = parser.parse_args()
    seconds = int(args.hours * 3600)
    text = istio_openmetrics(
        T0,
        seconds,
        30,
        {
            "bench/podinfo-primary": [TrafficPhase(0, 20, 0.0, 40)],
            "bench/podinfo": [TrafficPhase(0, 10, 0.0, 40)],
        },
    )
    canary = parse_canary(canary_doc("bench", iterations=seconds // 60 + 10), "bench").model
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        with run_prometheus(text, Path(tmp)) as prom:
            print(f"backfill and start: {time.perf_counter() - t:.1f}s")
            metrics = ReplayMetrics(prom.url)
            out: list[Record] = []
            replay = Replay(
                canary,
                metrics.for_canary(canary, []),
                out.append,
                start=T0,
                end=T0 + timedelta(seconds=seconds),
            )
            t = time.perf_counter()
            code = replay.run()
            took = time.perf_counter() - t
            metrics.close()
    judged = sum(1 for r in out if r["kind"] == "tick" and any(m["verdict"] == "pass" for m in r["metrics"]))
    print(f"window: {args.hours:g}h at 1m, ticks: {replay.ticks}, judged: {judged}, exit: {int(code)}")
    print(f"replay: {took:.2f}s ({1000 * took / max(1, replay.ticks):.2f} ms per tick)")


if __name__ == "__main__":
    main()
