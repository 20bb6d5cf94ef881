"""The records a canary run streams (``progdel.canary.records``): every builder gives exactly the
keys its type declares, so the live view, ``-o ndjson`` and a stored history read one shape."""

from __future__ import annotations

import json
from typing import Any

from progdel.canary import records
from progdel.canary.status import CanaryStatus, Measurement, Phase
from progdel.errors import ExitCode

from .test_engine import T0, make_canary


def _conforms(record: Any, kind: type) -> None:
    keys = set(record)
    assert kind.__required_keys__ <= keys, kind.__required_keys__ - keys  # type: ignore[attr-defined]
    assert keys <= kind.__required_keys__ | kind.__optional_keys__  # type: ignore[attr-defined]
    assert json.loads(json.dumps(record)) == record  # its own JSON form


def test_tick_record_shows_every_metric_against_its_threshold() -> None:
    canary = make_canary()
    status = CanaryStatus(phase=Phase.PROGRESSING, canary_weight=20, failed_checks=1)
    status.measurements["request-success-rate"] = Measurement(97.5, "fail", "success rate 97.50% < 99%", "")
    record = records.tick_record(canary, status, T0, canary_weight=20, primary_weight=80, note="")
    _conforms(record, records.TickRecord)
    assert record["time"] == "2024-01-01T00:00:00Z"
    assert (record["phase"], record["step"], record["steps"], record["failedChecks"]) == (
        "Progressing",
        2,
        5,
        1,
    )
    assert record["metrics"] == [
        {
            "name": "request-success-rate",
            "value": 97.5,
            "min": 99,
            "max": None,
            "verdict": "fail",
            "message": "success rate 97.50% < 99%",
        },
        {"name": "request-duration", "value": None, "min": None, "max": 500, "verdict": None, "message": ""},
    ]


def test_event_and_result_records() -> None:
    event = records.event_record("Warning", "Halt advancement", T0)
    _conforms(event, records.EventRecord)
    result = records.result_record("test/podinfo", T0, "Failed", "rolled back", ExitCode.CANARY_FAILED)
    _conforms(result, records.ResultRecord)
    assert result["exitCode"] == 3


def test_outcome_words() -> None:
    assert records.outcome_of("Succeeded", ExitCode.OK) == "promoted"
    assert records.outcome_of("Failed", ExitCode.CANARY_FAILED) == "rolled back"
    assert records.outcome_of("Failed", ExitCode.ABORTED) == "aborted"


def test_comparison_record_of_two_replays() -> None:
    from progdel.canary.replay import compare_specs

    def run(ends_at: str, weights: list[int]) -> list[records.Record]:
        ticks: list[records.Record] = []
        for minute, weight in enumerate(weights):
            tick = records.tick_record(
                make_canary(),
                CanaryStatus(phase=Phase.PROGRESSING, canary_weight=weight),
                T0.replace(minute=minute),
                canary_weight=weight,
                primary_weight=100 - weight,
                note="",
            )
            ticks.append(tick)
        end = records.result_record("test/podinfo", T0, "Failed", "rolled back", ExitCode.CANARY_FAILED)
        return [*ticks, {**end, "time": ends_at}]

    strict = run("2024-01-01T00:01:00Z", [0, 10])
    lenient = run("2024-01-01T00:03:00Z", [0, 20, 30, 40])
    record = compare_specs("strict.yaml", strict, "lenient.yaml", lenient, 60).to_dict()
    _conforms(record, records.ComparisonRecord)
    assert record["firstDifference"] == "2024-01-01T00:01:00Z"
    outcomes = record["outcomes"]
    assert outcomes["strict.yaml"] is not None and outcomes["strict.yaml"]["outcome"] == "rolled back"
    assert record["lines"][-1] == "strict.yaml rolls back 2 intervals earlier than lenient.yaml"
