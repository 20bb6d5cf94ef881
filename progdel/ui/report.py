"""Reports of one recorded canary run (``progdel canary report``): HTML, Markdown, JSON.

- HTML: one self-contained file (Plotly and its JavaScript embedded, nothing fetched), with
  charts of the canary weight over time, each metric against its threshold with the failed
  checks marked, for a metric judged against the primary the effect (the change of the canary's
  mean from the primary's) against the judge's tolerance with the failed comparisons marked and
  each tick's verdict and p-value, the split the mesh served against the weight set, the events,
  and a header with the outcome, the revision and the duration. Plotly is imported only here.
- Markdown: for a pull request or an issue: the same header, Mermaid ``xychart-beta`` charts
  (which GitHub and GitLab render), a table of the ticks (with the judge's verdict, effect and
  p-value) and the events.
- JSON: the record itself (``RunRecord.to_dict``).

Input is a ``RunRecord`` (``progdel.canary.history``); nothing here reads the cluster.
"""

from __future__ import annotations

import html
import json
import math
from datetime import datetime
from typing import Any

from progdel.canary.history import RunRecord, parse_stamp

#: the most points one Mermaid chart gets (longer runs are sampled evenly, keeping the ends)
MERMAID_POINTS = 60
#: the most rows the Markdown tick table gets (past that, only ticks where something changed)
TABLE_ROWS = 60
_MARK = {"pass": "✓", "fail": "✗", "no-data": "no data", "hold": "hold", "error": "error"}


# -- shared -----------------------------------------------------------------------------------


def _offset(record: RunRecord, stamp: str) -> float:
    start = parse_stamp(record.started_at)
    at = parse_stamp(stamp)
    if start is None or at is None:
        return 0.0
    return (at - start).total_seconds()


def _since(record: RunRecord, item: dict[str, Any]) -> str:
    """When a tick or event happened, as time since the run started."""
    return clock(_offset(record, str(item.get("time") or "")))


def clock(seconds: float) -> str:
    """``1:05`` (m:ss) or ``1:02:05`` (h:mm:ss): time since the run started."""
    s = max(0, round(seconds))
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = round(seconds)
    parts = []
    for unit, size in (("h", 3600), ("m", 60)):
        if s >= size:
            parts.append(f"{s // size}{unit}")
            s %= size
    if s or not parts:
        parts.append(f"{s}s")
    return "".join(parts)


def _utc(stamp: str) -> str:
    at = parse_stamp(stamp)
    return at.strftime("%Y-%m-%d %H:%M:%S UTC") if isinstance(at, datetime) else (stamp or "-")


def _num(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def _bounds(lo: Any, hi: Any) -> str:
    if lo is not None and hi is not None:
        return f"{_num_plain(lo)} .. {_num_plain(hi)}"
    if lo is not None:
        return f">= {_num_plain(lo)}"
    if hi is not None:
        return f"<= {_num_plain(hi)}"
    return "none"


def metric_names(record: RunRecord) -> list[str]:
    """The metrics of the run, in the order of the analysis, then any only the ticks name."""
    names = [str(m["name"]) for m in record.analysis.get("metrics") or []]
    for t in record.ticks:
        for m in t.get("metrics") or []:
            if m.get("name") not in names:
                names.append(str(m.get("name")))
    return names


def metric_series(record: RunRecord, name: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(tick, measurement) for each tick where ``name`` was measured (a value or a verdict)."""
    out = []
    for t in record.ticks:
        for m in t.get("metrics") or []:
            if m.get("name") == name and (m.get("value") is not None or m.get("verdict")):
                out.append((t, m))
    return out


def _threshold(record: RunRecord, name: str) -> tuple[Any, Any]:
    for m in record.analysis.get("metrics") or []:
        if m.get("name") == name:
            return m.get("min"), m.get("max")
    return None, None


def judge_of(record: RunRecord, name: str) -> dict[str, Any]:
    """How the statistical judge compared ``name`` with the primary in this run ({}: it did not)."""
    for m in record.analysis.get("metrics") or []:
        if m.get("name") == name and isinstance(m.get("judge"), dict):
            return dict(m["judge"])
    return {}


def comparison_series(record: RunRecord, name: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(tick, comparison) for each tick where the judge compared ``name`` with the primary."""
    return [
        (t, m["comparison"])
        for t in record.ticks
        for m in t.get("metrics") or []
        if m.get("name") == name and isinstance(m.get("comparison"), dict)
    ]


def compared_names(record: RunRecord) -> list[str]:
    """The metrics the judge compared with the primary in this run."""
    return [n for n in metric_names(record) if judge_of(record, n) or comparison_series(record, n)]


def comparison_cell(comparison: dict[str, Any]) -> str:
    """``fail -3.2% p=1.2e-05``: a comparison's verdict, effect and p-value."""
    from progdel.metrics.comparison import Comparison

    return Comparison.from_dict(comparison).summary


def _tolerance_bounds(record: RunRecord, name: str) -> tuple[float | None, float | None]:
    """The effects (in %) past which the judge fails a significant shift: (below, above)."""
    judge = judge_of(record, name)
    tolerance = judge.get("tolerance")
    if not isinstance(tolerance, int | float):
        return None, None
    directions = {judge.get("direction")} | {c.get("direction") for _, c in comparison_series(record, name)}
    direction = next((d for d in directions if d in ("increase", "decrease", "either")), "either")
    pct = float(tolerance) * 100
    return (
        -pct if direction in ("decrease", "either") else None,
        pct if direction in ("increase", "either") else None,
    )


def _judge_note(record: RunRecord, name: str) -> str:
    judge = judge_of(record, name)
    failed = [_since(record, t) for t, c in comparison_series(record, name) if c.get("verdict") == "fail"]
    parts = []
    if judge:
        tol = judge.get("tolerance")
        tolerance = f"{float(tol) * 100:g}%" if isinstance(tol, int | float) else "-"
        shift = {"increase": "an increase", "decrease": "a decrease"}.get(
            str(judge.get("direction")), "a shift either way"
        )
        significance = _num_plain(judge.get("significance"))
        parts.append(
            f"Compared with the primary (Mann-Whitney U at significance {significance}: "
            f"{shift} beyond {tolerance} fails)"
        )
    else:
        parts.append("Compared with the primary")
    parts.append(f"failed comparisons at {', '.join(failed)}." if failed else "no failed comparison.")
    return "; ".join(parts)


def failed_checks(record: RunRecord) -> int:
    """The checks the run failed: the ticks whose count rose, or that a metric failed (the tick
    that reaches the threshold rolls back, and the rollback resets the count)."""
    count, before = 0, 0
    for t in record.ticks:
        now = int(t.get("failedChecks") or 0)
        verdicts = {m.get("verdict") for m in t.get("metrics") or []}
        if now > before or (now < before and verdicts & {"fail", "error"}):
            count += 1
        before = now
    return count


def reason(record: RunRecord) -> str:
    """Why the run ended as it did, in Flagger's words when an event says it."""
    if record.outcome in ("rolled back", "aborted"):
        for e in reversed(record.events):
            text = str(e.get("message") or "")
            if text.startswith("Rolling back"):
                return text
    return record.message


def header_rows(record: RunRecord) -> list[tuple[str, str]]:
    outcome = record.outcome + (f" (exit {record.exit_code})" if record.exit_code is not None else "")
    threshold = record.analysis.get("threshold")
    top = max((int(t.get("canaryWeight") or 0) for t in record.ticks), default=0)
    rows = [("Outcome", outcome)]
    why = reason(record)
    if why:
        rows.append(("Reason", why))
    rows += [
        ("Revision", record.revision or "-"),
        ("Started", _utc(record.started_at)),
        ("Finished", _utc(record.finished_at) if record.finished_at else "-"),
        ("Duration", duration(record.duration_seconds())),
        ("Ticks", str(len(record.ticks) + record.thinned_ticks)),
        ("Highest canary weight", f"{top}%"),
        (
            "Failed checks",
            f"{failed_checks(record)} (threshold {threshold if threshold is not None else '-'})",
        ),
        ("Driven by", ", ".join(record.drivers) or "-"),
    ]
    if record.thinned_ticks:
        rows.append(("Thinned", f"{record.thinned_ticks} unremarkable ticks left out to bound the record"))
    return rows


# -- Markdown ---------------------------------------------------------------------------------


def _md_cell(text: Any) -> str:
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _mermaid_text(text: str) -> str:
    return text.replace('"', "'")


def _sample(items: list[Any], limit: int) -> list[Any]:
    if len(items) <= limit:
        return items
    step = (len(items) - 1) / (limit - 1)
    return [items[round(i * step)] for i in range(limit)]


#: line colours: the measured value (or the canary share) first, then what it is held against
_PALETTE = ("#0969da", "#cf222e", "#cf222e")
_SERVED_PALETTE = ("#0969da", "#8c959f")


def _mermaid(
    title: str,
    labels: list[str],
    y_title: str,
    lines: list[list[float]],
    top: float | None,
    palette: tuple[str, ...] = _PALETTE,
) -> str:
    lo = min((v for line in lines for v in line), default=0.0)
    hi = max((v for line in lines for v in line), default=1.0)
    margin = (hi - lo) / 2 or abs(hi) / 10 or 1.0
    if top is not None:  # a percentage of traffic: the whole scale
        y_min, y_max = 0.0, top
    else:
        y_min = math.floor(lo - margin)
        y_min = max(0.0, y_min) if lo >= 0 else y_min
        y_max = math.ceil(hi + margin)
    colours = ", ".join(palette[: len(lines)])
    out = [
        "```mermaid",
        '%%{init: {"themeVariables": {"xyChart": {"plotColorPalette": "' + colours + '"}}}}%%',
        "xychart-beta",
        f'    title "{_mermaid_text(title)}"',
        "    x-axis [" + ", ".join(f'"{label}"' for label in labels) + "]",
        f'    y-axis "{_mermaid_text(y_title)}" {_num_plain(y_min)} --> {_num_plain(y_max)}',
    ]
    out += ["    line [" + ", ".join(_num_plain(v) for v in line) + "]" for line in lines]
    out.append("```")
    return "\n".join(out)


def _num_plain(value: Any) -> str:
    if not isinstance(value, int | float):
        return str(value)
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.2f}".rstrip("0").rstrip(".")


def render_markdown(record: RunRecord) -> str:
    where = f"{record.namespace}/{record.canary}"
    out = [f"## Canary run {where} `{record.id}`: {record.outcome}", ""]
    out += ["| | |", "| --- | --- |"]
    out += [f"| {k} | {_md_cell(v)} |" for k, v in header_rows(record)]
    ticks = record.ticks
    if ticks:
        sampled = _sample(ticks, MERMAID_POINTS)
        labels = [_since(record, t) for t in sampled]
        out += ["", "### Canary weight", ""]
        out.append(
            _mermaid(
                f"Canary weight (%) over time{_sampled_note(ticks, sampled)}",
                labels,
                "weight %",
                [[float(t.get("canaryWeight") or 0) for t in sampled]],
                100,
            )
        )
        served = [t for t in ticks if t.get("served")]
        if served:
            s_sampled = _sample(served, MERMAID_POINTS)
            out += ["", "### Served split", ""]
            out.append(
                "Share of requests the canary served (blue) against the weight set for that interval (grey)."
            )
            out += ["", _served_chart(record, s_sampled)]
        for name in metric_names(record):
            series = metric_series(record, name)
            valued = [(t, m) for t, m in series if isinstance(m.get("value"), int | float)]
            lo, hi = _threshold(record, name)
            failed = [_since(record, t) for t, m in series if m.get("verdict") == "fail"]
            out += ["", f"### {name}", ""]
            note = f"Threshold {_bounds(lo, hi)}; "
            note += f"failed checks at {', '.join(failed)}." if failed else "no failed check."
            out.append(note)
            if not valued:
                out += ["", "No values were measured."]
                continue
            v_sampled = _sample(valued, MERMAID_POINTS)
            lines = [[float(m["value"]) for _, m in v_sampled]]
            lines += [[float(b)] * len(v_sampled) for b in (lo, hi) if b is not None]
            legend = " (blue: the value, red: the threshold)" if len(lines) > 1 else ""
            out += [
                "",
                _mermaid(
                    f"{name}{legend}",
                    [_since(record, t) for t, _ in v_sampled],
                    name,
                    lines,
                    None,
                ),
            ]
            out += _md_comparison(record, name)
        out += ["", "### Ticks", ""]
        out += _tick_table(record)
    out += ["", "### Events", ""]
    if record.events:
        out += ["| time | type | message |", "| --- | --- | --- |"]
        out += [
            f"| {_since(record, e)} | {e.get('type', '')} | {_md_cell(e.get('message', ''))} |"
            for e in record.events
        ]
        if record.dropped_events:
            out += ["", f"{record.dropped_events} events left out to bound the record."]
    else:
        out.append("No events.")
    out += [
        "",
        f"<sub>progdel canary report {record.canary} --run {record.id}; times are since the run "
        f"started ({_utc(record.started_at)}).</sub>",
        "",
    ]
    return "\n".join(out)


def _md_comparison(record: RunRecord, name: str) -> list[str]:
    """The judge's comparison of ``name`` with the primary: a note and the effect against the
    tolerance (nothing for a metric the judge does not compare)."""
    if name not in compared_names(record):
        return []
    out = ["", _judge_note(record, name)]
    effects = [
        (t, float(c["effect"]) * 100)
        for t, c in comparison_series(record, name)
        if isinstance(c.get("effect"), int | float)
    ]
    if not effects:
        return out
    sampled = _sample(effects, MERMAID_POINTS)
    lines = [[round(e, 2) for _, e in sampled]]
    lines += [[b] * len(sampled) for b in _tolerance_bounds(record, name) if b is not None]
    legend = " (blue: the effect, red: the tolerance)" if len(lines) > 1 else ""
    out += [
        "",
        _mermaid(
            f"{name} against the primary, change of the mean %{legend}",
            [_since(record, t) for t, _ in sampled],
            "effect %",
            lines,
            None,
        ),
    ]
    return out


def _sampled_note(ticks: list[Any], sampled: list[Any]) -> str:
    return f", {len(sampled)} of {len(ticks)} ticks" if len(sampled) < len(ticks) else ""


def _served_chart(record: RunRecord, served: list[dict[str, Any]]) -> str:
    labels = [_since(record, t) for t in served]
    share = [round(float(t["served"].get("canary") or 0) * 100, 2) for t in served]
    weight = [float(t["served"].get("weight", t.get("canaryWeight") or 0)) for t in served]
    return _mermaid(
        "Canary share served vs weight set (%)", labels, "canary %", [share, weight], 100, _SERVED_PALETTE
    )


def _tick_table(record: RunRecord) -> list[str]:
    names = metric_names(record)
    compared = compared_names(record)
    threshold = record.analysis.get("threshold")
    head = ["time", "phase", "weight", "served", "failed checks", *names]
    head += [f"{name} vs primary" for name in compared]
    rows = ["| " + " | ".join(_md_cell(h) for h in head) + " |", "|" + " --- |" * len(head)]
    ticks = record.ticks
    shown = ticks
    if len(ticks) > TABLE_ROWS:
        from progdel.canary.history import _notable

        shown = [t for i, t in enumerate(ticks) if i in (0, len(ticks) - 1) or _notable(ticks[i - 1], t)]
    for t in shown:
        by_name = {m.get("name"): m for m in t.get("metrics") or []}
        cells = [
            _since(record, t),
            t.get("phase", ""),
            f"{t.get('canaryWeight', 0)}%",
            f"{float(t['served'].get('canary') or 0) * 100:.0f}%" if t.get("served") else "-",
            f"{t.get('failedChecks', 0)}/{threshold if threshold is not None else '-'}",
        ]
        for name in names:
            m = by_name.get(name)
            if m is None:
                cells.append("-")
                continue
            verdict = str(m.get("verdict") or "")
            mark = _MARK.get(verdict, verdict)
            value = _num(m.get("value")) if m.get("value") is not None else ""
            cells.append(f"{value} {mark}".strip() or "-")
        for name in compared:
            c = (by_name.get(name) or {}).get("comparison")
            cells.append(comparison_cell(c) if c else "-")
        rows.append("| " + " | ".join(_md_cell(c) for c in cells) + " |")
    if len(shown) < len(ticks):
        rows += ["", f"{len(ticks) - len(shown)} ticks where nothing changed are not shown."]
    return rows


# -- HTML -------------------------------------------------------------------------------------

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; color: #1f2328; }
h1 { font-size: 1.4rem; } h2 { font-size: 1.1rem; margin-top: 2rem; }
table { border-collapse: collapse; } td, th { padding: .25rem .75rem; border-bottom: 1px solid #d0d7de;
  text-align: left; vertical-align: top; }
.outcome-promoted { color: #1a7f37; } .outcome-rolled-back, .outcome-aborted { color: #cf222e; }
.outcome-interrupted, .outcome-superseded { color: #9a6700; }
.Warning, .verdict-fail { color: #cf222e; } .verdict-marginal { color: #9a6700; }
.meta th { font-weight: 600; }
"""


def render_html(record: RunRecord) -> str:
    """One self-contained HTML document (Plotly's JavaScript embedded once, nothing fetched)."""
    import plotly.graph_objects as go

    figures: list[tuple[str, str, Any, str]] = []  # (id, heading, figure, HTML below it)
    times = [t.get("time") for t in record.ticks]
    weight = go.Figure()
    weight.add_trace(
        go.Scatter(
            x=times,
            y=[t.get("canaryWeight") or 0 for t in record.ticks],
            mode="lines+markers",
            line_shape="hv",
            name="canary weight",
            text=[t.get("phase") for t in record.ticks],
            hovertemplate="%{x}<br>weight %{y}%<br>%{text}<extra></extra>",
        )
    )
    if record.events:
        weight.add_trace(
            go.Scatter(
                x=[e.get("time") for e in record.events],
                y=[102] * len(record.events),
                mode="markers",
                marker={
                    "symbol": "triangle-down",
                    "size": 9,
                    "color": ["#cf222e" if e.get("type") == "Warning" else "#57606a" for e in record.events],
                },
                name="events",
                text=[html.escape(str(e.get("message") or "")) for e in record.events],
                hovertemplate="%{x}<br>%{text}<extra></extra>",
            )
        )
    weight.update_yaxes(title_text="canary weight %", range=[0, 105])
    figures.append(("chart-weight", "Canary weight over time", weight, ""))

    served = [t for t in record.ticks if t.get("served")]
    if served:
        split = go.Figure()
        split.add_trace(
            go.Scatter(
                x=[t["time"] for t in served],
                y=[t["served"].get("weight", t.get("canaryWeight")) for t in served],
                mode="lines",
                line_shape="vh",  # each share is served over the interval before it, at that weight
                name="weight set",
            )
        )
        split.add_trace(
            go.Scatter(
                x=[t["time"] for t in served],
                y=[round(float(t["served"].get("canary") or 0) * 100, 2) for t in served],
                mode="lines+markers",
                name="canary share served",
            )
        )
        split.update_yaxes(title_text="canary %", range=[0, 105])
        figures.append(("chart-served", "Served split against the weight set", split, ""))

    for i, name in enumerate(metric_names(record)):
        series = metric_series(record, name)
        lo, hi = _threshold(record, name)
        fig = go.Figure()
        fig.add_trace(
            go.Scatter(
                x=[t.get("time") for t, _ in series],
                y=[m.get("value") for _, m in series],
                mode="lines+markers",
                name=name,
                text=[str(m.get("verdict") or "") for _, m in series],
                hovertemplate="%{x}<br>%{y}<br>%{text}<extra></extra>",
            )
        )
        failed = [(t, m) for t, m in series if m.get("verdict") == "fail"]
        _mark_failed(
            fig,
            failed,
            [_value_or(m.get("value"), lo, hi) for _, m in failed],
            "failed check",
            [html.escape(str(m.get("message") or "failed")) for _, m in failed],
            "%{x}<br>%{y}<br>%{text}<extra></extra>",
        )
        _limit_lines(
            fig,
            [(v, f"{label} {_num_plain(v)}") for v, label in ((lo, "min"), (hi, "max")) if v is not None],
        )
        fig.update_yaxes(title_text=name)
        figures.append((f"chart-metric-{i}", f"{name} (threshold {_bounds(lo, hi)})", fig, ""))
        if name in compared_names(record):
            figures.append(_comparison_figure(record, name, i))

    parts: list[str] = []
    for n, (div_id, heading, fig, below) in enumerate(figures):
        fig.update_layout(
            height=320,
            margin={"l": 60, "r": 20, "t": 20, "b": 40},
            template="plotly_white",
            legend={"orientation": "h", "y": -0.2},
        )
        chart = fig.to_html(
            full_html=False,
            include_plotlyjs=(n == 0),
            div_id=div_id,
            config={"displaylogo": False, "responsive": True},
        )
        parts.append(f"<h2>{html.escape(heading)}</h2>\n{chart}{below}")

    title = f"Canary run {record.namespace}/{record.canary} {record.id}: {record.outcome}"
    meta = "\n".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in header_rows(record)
    )
    events = (
        "<table><tr><th>time</th><th>since start</th><th>type</th><th>message</th></tr>\n"
        + "\n".join(_event_row(record, e) for e in record.events)
        + "</table>"
        if record.events
        else "<p>No events.</p>"
    )
    outcome_class = "outcome-" + record.outcome.replace(" ", "-")
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
        f"<h1>Canary run {html.escape(record.namespace)}/{html.escape(record.canary)} "
        f"<code>{html.escape(record.id)}</code>: "
        f'<span class="{outcome_class}">{html.escape(record.outcome)}</span></h1>\n'
        f'<table class="meta">\n{meta}\n</table>\n'
        + "\n".join(parts)
        + f"\n<h2>Events</h2>\n{events}\n"
        + f'<script type="application/json" id="progdel-run">{_json_for_script(record)}</script>\n'
        + "</body>\n</html>\n"
    )


_VERDICT_COLOUR = {"pass": "#1a7f37", "marginal": "#bf8700", "fail": "#cf222e", "no-data": "#8c959f"}


def _comparison_figure(record: RunRecord, name: str, i: int) -> tuple[str, str, Any, str]:
    """The judge's comparison of ``name`` with the primary: the effect (the change of the
    canary's mean from the primary's, in %) at each tick against the tolerance, the failed
    comparisons marked; below it, each tick's verdict, effect, p-value and samples."""
    import plotly.graph_objects as go

    series = comparison_series(record, name)

    def effect(c: dict[str, Any]) -> float | None:
        e = c.get("effect")
        return round(float(e) * 100, 2) if isinstance(e, int | float) else None

    def hover(c: dict[str, Any]) -> str:
        return html.escape(comparison_cell(c))

    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=[t.get("time") for t, _ in series],
            y=[effect(c) for _, c in series],
            mode="lines+markers",
            name="canary against primary (change of the mean %)",
            marker={"color": [_VERDICT_COLOUR.get(str(c.get("verdict")), "#0969da") for _, c in series]},
            line={"color": "#0969da"},
            text=[hover(c) for _, c in series],
            hovertemplate="%{x}<br>%{text}<extra></extra>",
        )
    )
    below, above = _tolerance_bounds(record, name)
    failed = [(t, c) for t, c in series if c.get("verdict") == "fail"]
    _mark_failed(
        fig,
        failed,
        [_value_or(effect(c), below, above) for _, c in failed],
        "failed comparison",
        [hover(c) for _, c in failed],
        "%{x}<br>%{text}<extra></extra>",
    )
    _limit_lines(fig, [(bound, f"tolerance {bound:+g}%") for bound in (below, above) if bound is not None])
    fig.add_hline(y=0, line_color="#8c959f", line_width=1)
    fig.update_yaxes(title_text="effect %", ticksuffix="%")
    rows = "\n".join(
        f'<tr class="verdict-{html.escape(str(c.get("verdict")))}"><td>{html.escape(_since(record, t))}</td>'
        f"<td>{html.escape(str(c.get('verdict') or ''))}</td>"
        f"<td>{html.escape(_effect_text(c))}</td><td>{html.escape(_p_text(c))}</td>"
        f"<td>{html.escape(_samples_text(c))}</td></tr>"
        for t, c in series
    )
    table = (
        f'\n<p>{html.escape(_judge_note(record, name))}</p>\n<table class="comparison">'
        "<tr><th>since start</th><th>verdict</th><th>effect</th><th>p-value</th>"
        f"<th>samples (canary/primary)</th></tr>\n{rows}\n</table>"
    )
    return f"chart-compare-{i}", f"{name} against the primary", fig, table


def _effect_text(c: dict[str, Any]) -> str:
    from progdel.metrics.comparison import format_effect

    e = c.get("effect")
    return format_effect(float(e)) if isinstance(e, int | float) else "-"


def _p_text(c: dict[str, Any]) -> str:
    from progdel.metrics.comparison import format_p

    p = c.get("pValue")
    return format_p(float(p)) if isinstance(p, int | float) else "-"


def _samples_text(c: dict[str, Any]) -> str:
    raw = c.get("samples")
    samples: dict[str, Any] = raw if isinstance(raw, dict) else {}
    return f"{samples.get('canary', '-')}/{samples.get('primary', '-')}"


def _mark_failed(
    fig: Any, failed: list[tuple[dict[str, Any], Any]], y: list[Any], name: str, text: list[str], hover: str
) -> None:
    """Mark the failed ticks of a chart with red crosses at ``y`` (nothing when none failed)."""
    import plotly.graph_objects as go

    if failed:
        fig.add_trace(
            go.Scatter(
                x=[t.get("time") for t, _ in failed],
                y=y,
                mode="markers",
                marker={"symbol": "x", "size": 12, "color": "#cf222e"},
                name=name,
                text=text,
                hovertemplate=hover,
            )
        )


def _limit_lines(fig: Any, limits: list[tuple[Any, str]]) -> None:
    """A dashed red line at each limit (a threshold, a tolerance), with its label."""
    for bound, label in limits:
        fig.add_hline(
            y=bound,
            line_dash="dash",
            line_color="#cf222e",
            annotation_text=label,
            annotation_position="top left",
        )


def _value_or(value: Any, lo: Any, hi: Any) -> Any:
    """Where to mark a failed check: at its value, or at the threshold when it had none."""
    if value is not None:
        return value
    return lo if lo is not None else hi


def _event_row(record: RunRecord, e: dict[str, Any]) -> str:
    kind = html.escape(str(e.get("type", "")))
    cells = [str(e.get("time", "")), _since(record, e), str(e.get("type", "")), str(e.get("message", ""))]
    return f'<tr class="{kind}">' + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>"


def _json_for_script(record: RunRecord) -> str:
    """The record itself, embedded so the file carries its own data (``</`` escaped)."""
    return json.dumps(record.to_dict(), separators=(",", ":")).replace("</", "<\\/")


def render_json(record: RunRecord) -> str:
    return json.dumps(record.to_dict(), indent=2) + "\n"


__all__ = ["render_html", "render_json", "render_markdown"]
