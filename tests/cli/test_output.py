"""Human output: tables keep every column and character when piped, as kubectl's do."""

from __future__ import annotations

import pytest

from progdel.cli.options import GlobalOptions, OutputFormat
from progdel.ui.output import emit, table

LONG = "Halt podinfo.test advancement request-success-rate 91.20 < 99 (the canary may be getting no traffic)"


def test_a_piped_table_is_not_clipped_to_80_columns(capsys: pytest.CaptureFixture[str]) -> None:
    rows = [
        ["2026-11-26T15:46:43Z", "Warning", "Synced", LONG],
        ["2026-11-26T15:47:43Z", "Normal", "Synced", "ok"],
    ]
    emit(
        GlobalOptions(output=OutputFormat.table),
        rows,
        lambda r: table(["time", "type", "reason", "message"], r),
    )
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["TIME", "TYPE", "REASON", "MESSAGE"]
    assert lines[1].split(maxsplit=3) == ["2026-11-26T15:46:43Z", "Warning", "Synced", LONG]
    assert lines[2].endswith("ok"), "no trailing padding"


def test_a_result_line_has_no_dangling_colon_without_a_message() -> None:
    from progdel.ui.canary_view import plain_line

    base = {"kind": "result", "time": "2026-11-26T15:50:02Z", "outcome": "promoted"}
    assert plain_line({**base, "message": ""}) == "2026-11-26T15:50:02Z result  promoted"
    assert plain_line({**base, "outcome": "rolled back", "message": "analysis"}) == (
        "2026-11-26T15:50:02Z result  rolled back: analysis"
    )


VERIFY = {
    "kind": "verify",
    "environment": "dev",
    "target": "shop-dev/web",
    "version": "1.4.0",
    "time": "2026-11-26T15:50:02Z",
    "state": "verifying",
    "check": 4,
    "passed": 3,
    "needed": 6,
    "soak": "1m",
    "interval": "10s",
    "infraErrors": 1,
    "maxInfraErrors": 5,
    "metrics": [
        {"name": "request-success-rate", "value": 99.5, "min": 99, "max": None, "verdict": "pass"},
        {"name": "request-duration", "value": None, "min": None, "max": 500, "verdict": "hold"},
    ],
    "note": "holding: no data",
}


def test_a_verification_check_is_shown_live_and_as_a_line() -> None:
    """A verified environment's soak shows in the live view as a canary run does: checks passed in
    a row of those needed, infrastructure errors, each metric against its threshold, the time to
    the next check."""
    from rich.console import Console

    from progdel.ui.canary_view import plain_line, render_record

    console = Console(width=200, record=True, color_system=None)
    console.print(render_record({**VERIFY, "nextTickIn": 7.2}, []))
    shown = console.export_text()
    assert "progdel verify" in shown
    assert "shop-dev/web 1.4.0" in shown and "environment dev" in shown and "soak 1m" in shown
    assert "3/6 checks in a row" in shown and "infrastructure errors 1/5" in shown
    assert "next check in 7s" in shown and "holding: no data" in shown
    rows = [line.split() for line in shown.splitlines()]
    assert any(r[1:3] == ["request-success-rate", "99.50"] and "pass" in r for r in rows)
    assert any(r[1] == "request-duration" and "hold" in r for r in rows)

    assert plain_line(VERIFY) == (
        "2026-11-26T15:50:02Z verify  shop-dev/web 1.4.0 state=verifying passed=3/6 "
        "request-success-rate=99.50(pass) request-duration=-(hold) holding: no data"
    )
