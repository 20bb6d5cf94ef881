"""How long `progdel canary replay` takes over a 24-hour window at a 1-minute interval.

Backfills 24 hours of healthy Istio traffic into a local Prometheus (promtool), then replays a
canary with enough iterations to analyse at every one of the 1441 ticks (two metrics each,
evaluated at the tick's time), twice: as a replay runs, each metric fetched over the window in a
few range queries, and with one instant query per metric and tick. For each it prints the ticks,
the wall time and the queries sent to Prometheus, and checks that both decided the same.

With ``--record`` the batched replay also keeps the run's record, as ``replay --record`` does.

    .venv/bin/python bench/bench_replay.py [--hours 24] [--batched-only] [--record]
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
from progdel.canary.replay import Replay, ReplayMetrics, replay_recorder, replayed_run
from progdel.config.canary import parse_canary
from tests.canary.test_replay import T0, canary_doc
from tests.promfixture import TrafficPhase, istio_openmetrics, run_prometheus


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hours", type=float, default=24)
    parser.add_argument("--batched-only", action="store_true", help="skip the query-per-tick run")
    parser.add_argument("--record", action="store_true", help="keep the run's record in the batched run")
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
    end = T0 + timedelta(seconds=seconds)
    timelines = []
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        with run_prometheus(text, Path(tmp)) as prom:
            print(f"backfill and start: {time.perf_counter() - t:.1f}s")
            print(f"window: {args.hours:g}h at 1m")
            for batched in (True,) if args.batched_only else (True, False):
                metrics = ReplayMetrics(prom.url, batched=batched)
                port = metrics.for_canary(canary, [], T0, end)
                before = metrics.queries_sent()
                out: list[Record] = []
                history = replay_recorder(canary, T0, end) if batched and args.record else None
                replay = Replay(canary, port, out.append, start=T0, end=end, history=history)
                t = time.perf_counter()
                code = replay.run()
                run = replayed_run(history) if history is not None else None
                took = time.perf_counter() - t
                sent = metrics.queries_sent() - before
                metrics.close()
                judged = sum(
                    1
                    for r in out
                    if r["kind"] == "tick" and any(m["verdict"] == "pass" for m in r["metrics"])
                )
                how = "range queries over the window" if batched else "one query per metric and tick"
                if run is not None:
                    how += f", keeping the run's record ({len(run.ticks)} ticks kept)"
                print(
                    f"{how}: ticks {replay.ticks}, judged {judged}, exit {int(code)}, "
                    f"{took:.2f}s ({1000 * took / max(1, replay.ticks):.2f} ms per tick), queries sent {sent}"
                )
                timelines.append(out)
    if len(timelines) == 2:
        print("same timeline both ways:", "yes" if timelines[0] == timelines[1] else "NO")


if __name__ == "__main__":
    main()
