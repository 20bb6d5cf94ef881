"""What a person sees while a canary runs.

A driver emits the records of ``progdel.canary.records`` (tick, event, result, countdown,
outage): this module turns them into a live rich view on a TTY, into one plain line per record
otherwise, or prints them as they are with ``-o ndjson``. A countdown refreshes the time to the
next step in the live view; an outage (the cluster API does not answer and the run holds,
retrying for that long at most) says so there; neither is printed as a line or as NDJSON, the
outage's start and end are Warning and Normal events. A verification check (a verified
environment's soak, ``promote/verify.py``) is shown as a tick is::

    {"kind": "verify", "environment": "dev", "target": "shop-dev/web", "version": "1.4.0",
     "time": "...", "state": "verifying", "check": 3, "passed": 3, "needed": 10, "soak": "10m",
     "interval": "1m", "infraErrors": 0, "maxInfraErrors": 5, "metrics": [...], "note": ""}

Records of other kinds (the demo's ``run``) are printed with ``-o ndjson`` and otherwise left to
their command.
"""

from __future__ import annotations

import sys
from collections import deque
from collections.abc import Mapping
from typing import Any

from progdel.errors import printable
from progdel.ui.output import emit_line

_VERDICT_STYLE = {
    "pass": "green",
    "fail": "red",
    "no-data": "yellow",
    "hold": "yellow",
    "error": "magenta",
    "marginal": "yellow",
}


def comparison_summary(comparison: dict[str, Any] | None) -> str:
    """The statistical judge's verdict on a metric, ``fail +20.3% p=4.1e-05`` ("" without one)."""
    if not comparison:
        return ""
    from progdel.metrics.comparison import Comparison

    return Comparison.from_dict(comparison).summary


def _fmt_value(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def _bounds(metric: Mapping[str, Any]) -> str:
    lo, hi = metric.get("min"), metric.get("max")
    if lo is not None and hi is not None:
        return f"{lo} .. {hi}"
    if lo is not None:
        return f">= {lo}"
    if hi is not None:
        return f"<= {hi}"
    return ""


def _served(served: Mapping[str, Any]) -> str:
    """``23% (set 20%, 412 requests)``: what the mesh served beside the weight set for that time."""
    text = f"{served.get('canary', 0) * 100:.0f}%"
    details = []
    if served.get("weight") is not None:
        details.append(f"set {served['weight']}%")
    if served.get("requests") is not None:
        details.append(f"{served['requests']} requests")
    return text + (f" ({', '.join(details)})" if details else "")


def _bar(weight: int, width: int = 30) -> str:
    filled = round(width * max(0, min(100, weight)) / 100)
    return "█" * filled + "░" * (width - filled)


def render_tick(
    tick: Mapping[str, Any], events: list[Mapping[str, Any]], outage: Mapping[str, Any] | None = None
) -> Any:
    from rich.console import Group
    from rich.panel import Panel
    from rich.text import Text

    weight = int(tick.get("canaryWeight") or 0)
    header = Text()
    header.append(f"{printable(str(tick.get('canary')))}  ", style="bold")
    header.append(printable(str(tick.get("phase") or "-")), style="cyan")
    steps = tick.get("steps")
    if steps:
        header.append(f"   step {tick.get('step', 0)}/{steps}")
    header.append(f"   failed checks {tick.get('failedChecks', 0)}/{tick.get('threshold', '-')}")
    nxt = tick.get("nextTickIn")
    if nxt is not None:
        header.append(f"   next step in {nxt:.0f}s")

    traffic = Text()
    traffic.append("canary  ")
    traffic.append(_bar(weight), style="yellow")
    traffic.append(f" {weight:3d}%   primary {int(tick.get('primaryWeight') or 0):3d}%")
    served = tick.get("served")
    if served:
        traffic.append(f"   served canary {_served(served)}", style="dim")

    parts: list[Any] = [header, traffic]
    if outage is not None:
        parts.append(_outage(outage))
    if tick.get("metrics"):
        parts.append(_metrics_table(tick["metrics"]))
    parts.append(_recent(events))
    return Panel(Group(*parts), title="progdel canary", expand=False)


def _outage(outage: Mapping[str, Any]) -> Any:
    from rich.text import Text

    return Text(
        f"cluster API unreachable: holding, retrying for {float(outage.get('seconds') or 0):.0f}s "
        f"more ({printable(str(outage.get('message') or ''))})",
        style="bold red",
    )


def _metrics_table(rows: list[Mapping[str, Any]]) -> Any:
    from rich.table import Table
    from rich.text import Text

    metrics = Table(box=None, pad_edge=False, header_style="bold")
    compared = any(m.get("comparison") for m in rows)
    for col in ("METRIC", "VALUE", "THRESHOLD", "VERDICT", *(["VS PRIMARY"] if compared else [])):
        metrics.add_column(col)
    for m in rows:
        verdict = str(m.get("verdict") or "")
        row: list[Any] = [
            printable(str(m.get("name"))),
            _fmt_value(m.get("value")),
            _bounds(m),
            Text(verdict, style=_VERDICT_STYLE.get(verdict, "")),
        ]
        if compared:
            judged = str((m.get("comparison") or {}).get("verdict") or "")
            row.append(Text(comparison_summary(m.get("comparison")), style=_VERDICT_STYLE.get(judged, "")))
        metrics.add_row(*row)
    return metrics


def _recent(events: list[Mapping[str, Any]]) -> Any:
    from rich.text import Text

    recent = Text()
    for ev in events[-6:]:
        style = "red" if ev.get("type") == "Warning" else ""
        recent.append(f"{str(ev.get('time', ''))[11:19]}  {printable(str(ev.get('message')))}\n", style=style)
    return recent


def _passed_bar(passed: int, needed: int, width: int = 30) -> str:
    return _bar(round(100 * passed / needed) if needed else 0, width)


def render_verification(
    check: Mapping[str, Any], events: list[Mapping[str, Any]], outage: Mapping[str, Any] | None = None
) -> Any:
    """A verified environment's soak: the checks passed in a row of those needed, each metric's
    value against its threshold, the time to the next check, recent events."""
    from rich.console import Group
    from rich.panel import Panel
    from rich.text import Text

    passed, needed = int(check.get("passed") or 0), int(check.get("needed") or 0)
    header = Text()
    header.append(
        f"{printable(str(check.get('target')))} {printable(str(check.get('version')))}  ", style="bold"
    )
    header.append(printable(str(check.get("state") or "-")), style="cyan")
    header.append(f"   environment {printable(str(check.get('environment')))}   soak {check.get('soak')}")
    header.append(f"   every {check.get('interval')}")
    nxt = check.get("nextTickIn")
    if nxt is not None and check.get("state") == "verifying":
        header.append(f"   next check in {nxt:.0f}s")
    progress = Text()
    progress.append("passed  ")
    progress.append(_passed_bar(passed, needed), style="green")
    progress.append(f" {passed}/{needed} checks in a row")
    infra = int(check.get("infraErrors") or 0)
    if infra:
        progress.append(f"   infrastructure errors {infra}/{check.get('maxInfraErrors')}", style="magenta")
    if check.get("note"):
        progress.append(f"   {printable(str(check.get('note')))}", style="yellow")
    parts: list[Any] = [header, progress]
    if outage is not None:
        parts.append(_outage(outage))
    if check.get("metrics"):
        parts.append(_metrics_table(check["metrics"]))
    parts.append(_recent(events))
    return Panel(Group(*parts), title="progdel verify", expand=False)


def render_record(
    record: Mapping[str, Any], events: list[Mapping[str, Any]], outage: Mapping[str, Any] | None = None
) -> Any:
    """The live panel for the last tick or verification check."""
    if record.get("kind") == "verify":
        return render_verification(record, events, outage)
    return render_tick(record, events, outage)


class CanaryView:
    """Shows records: live panel on a TTY, plain lines otherwise, NDJSON when asked."""

    def __init__(self, mode: str = "auto") -> None:
        if mode == "auto":
            mode = "live" if sys.stdout.isatty() else "plain"
        self.mode = mode  # live | plain | ndjson | quiet
        self.events: deque[Mapping[str, Any]] = deque(maxlen=50)
        self.last_tick: Mapping[str, Any] | None = None
        self.outage: Mapping[str, Any] | None = None  # while the cluster API does not answer
        self._live: Any = None

    def __enter__(self) -> CanaryView:
        if self.mode == "live":
            from rich.live import Live

            from progdel.ui.output import console

            self._live = Live(console=console(), refresh_per_second=4, transient=False)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._live is not None:
            self._live.__exit__(*exc)
            self._live = None

    def show(self, record: Mapping[str, Any]) -> None:
        kind = record.get("kind")
        if kind == "countdown":  # only the live view shows the time to the next step
            self.countdown(float(record.get("seconds") or 0))
            return
        if kind == "outage":  # the live view says how long the run holds on; events say the rest
            self.outage = record
            self._refresh()
            return
        if kind == "event":
            self.events.append(record)
            if record.get("type") == "Normal":
                self.outage = None
        elif kind in ("tick", "verify"):
            self.last_tick = record
            self.outage = None
        if self.mode == "ndjson":
            emit_line(record)
        elif self.mode == "plain":
            line = plain_line(record)
            if line:
                print(line, flush=True)
        else:
            self._refresh()

    def countdown(self, seconds_left: float) -> None:
        """Refresh the time to the next step (live view only)."""
        if self.last_tick is not None:
            self.last_tick = {**self.last_tick, "nextTickIn": max(0.0, seconds_left)}
        self._refresh()

    def _refresh(self) -> None:
        if self.mode == "live" and self._live is not None and self.last_tick is not None:
            self._live.update(render_record(self.last_tick, list(self.events), self.outage))


def plain_line(record: Mapping[str, Any]) -> str | None:
    """One line for a record, with any control character in it written as an escape."""
    line = _plain_line(record)
    return None if line is None else printable(line)


def _plain_line(record: Mapping[str, Any]) -> str | None:
    kind = record.get("kind")
    if kind == "event":
        return f"{record.get('time', '')} {record.get('type', 'Normal'):7} {record.get('message')}"
    if kind == "tick":
        metrics = " ".join(
            f"{m.get('name')}={_fmt_value(m.get('value'))}({m.get('verdict')})"
            + (f"[vs-primary {comparison_summary(m['comparison'])}]" if m.get("comparison") else "")
            for m in record.get("metrics") or []
        )
        served = record.get("served")
        extra = f" served-canary={_served(served)}" if served else ""
        return (
            f"{record.get('time', '')} tick    phase={record.get('phase')} "
            f"weight={record.get('canaryWeight')} "
            f"failed={record.get('failedChecks')}/{record.get('threshold')}{extra}"
            + (f" {metrics}" if metrics else "")
        )
    if kind == "verify":
        metrics = " ".join(
            f"{m.get('name')}={_fmt_value(m.get('value'))}({m.get('verdict')})"
            for m in record.get("metrics") or []
        )
        note = f" {record.get('note')}" if record.get("note") else ""
        return (
            f"{record.get('time', '')} verify  {record.get('target')} {record.get('version')} "
            f"state={record.get('state')} passed={record.get('passed')}/{record.get('needed')}"
            + (f" {metrics}" if metrics else "")
            + note
        )
    if kind == "result":
        message = record.get("message") or ""
        line = f"{record.get('time', '')} result  {record.get('outcome')}"
        return f"{line}: {message}" if message else line
    return None
