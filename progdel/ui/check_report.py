"""What ``progdel canary check`` shows a person: its report as tables and diffs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from progdel.errors import printable
from progdel.ui.canary_view import _bounds, _fmt_value

if TYPE_CHECKING:
    from progdel.canary.preflight import CheckReport

_VERDICT_STYLE = {
    "pass": "green",
    "skipped": "yellow",
    "hold": "yellow",
    "fail": "red",
    "no-data": "red",
    "unreachable": "magenta",
    "rejected": "red",
    "invalid": "red",
    "marginal": "yellow",
}
_ACTION_STYLE = {"create": "green", "change": "yellow", "delete": "red", "unchanged": "dim"}


def render_report(report: CheckReport) -> Any:
    """The human view: a metrics table, the objects init would touch and their diffs, and the
    RBAC rights init and watch would miss."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    parts: list[Any] = [
        Text.assemble(
            ("Canary ", "bold"),
            report.canary,
            "   Prometheus ",
            report.prometheus,
            "   at ",
            report.at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        )
    ]
    metrics = Table(box=None, pad_edge=False, show_edge=False, header_style="bold")
    compared = any(m.comparison is not None for m in report.metrics)
    for col in ("METRIC", "VALUE", "THRESHOLD", "VERDICT", *(["VS PRIMARY"] if compared else []), "MESSAGE"):
        metrics.add_column(col)
    for m in report.metrics:
        row: list[Any] = [
            printable(m.name),
            _fmt_value(m.value),
            _bounds({"min": m.min, "max": m.max}),
            Text(m.verdict, style=_VERDICT_STYLE.get(m.verdict, "")),
        ]
        if compared:
            judged = m.comparison.verdict if m.comparison is not None else ""
            summary = m.comparison.summary if m.comparison is not None else ""
            row.append(Text(summary, style=_VERDICT_STYLE.get(judged, "")))
        metrics.add_row(*row, printable(m.message))
    parts.append(metrics if report.metrics else Text("No metrics to check."))
    for warning in report.warnings:
        parts.append(Text.assemble(("warning: ", "yellow"), printable(warning)))
    parts.append(Text(""))
    parts.append(Text.assemble(("Cluster ", "bold"), f"(what `canary init` would do): {report.cluster_note}"))
    if report.changes:
        objects = Table(box=None, pad_edge=False, show_edge=False, header_style="bold")
        for col in ("ACTION", "KIND", "NAME"):
            objects.add_column(col)
        for c in report.changes:
            objects.add_row(Text(c.action, style=_ACTION_STYLE.get(c.action, "")), c.kind, printable(c.name))
        parts.append(objects)
        for c in report.changes:
            if c.diff:
                diff = Text()
                for line in map(printable, c.diff.splitlines()):
                    style = ""
                    if line.startswith("+") and not line.startswith("+++"):
                        style = "green"
                    elif line.startswith("-") and not line.startswith("---"):
                        style = "red"
                    elif line.startswith("@@"):
                        style = "cyan"
                    diff.append(line + "\n", style=style)
                parts.append(diff)
    for refusal in report.refusals:
        parts.append(Text.assemble(("refused ", "red"), refusal))
    parts.append(Text(""))
    parts.append(
        Text.assemble(("RBAC ", "bold"), f"(what `canary init` and `watch` need): {report.access_note}")
    )
    if report.missing_access:
        rights = Table(box=None, pad_edge=False, show_edge=False, header_style="bold")
        for col in ("MISSING", "RESOURCE", "NAMESPACE"):
            rights.add_column(col)
        for right in report.missing_access:
            rights.add_row(
                Text(", ".join(right.verbs), style="red"), right.resource, right.namespace or "(cluster)"
            )
        parts.append(rights)
    parts.append(Text(f"exit code {int(report.exit_code)}", style="bold"))
    return Group(*parts)


__all__ = ["render_report"]
