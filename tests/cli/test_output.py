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
