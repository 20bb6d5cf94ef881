"""``progdel canary report``: the Markdown of a known run against a reviewed golden file, the HTML
opened in a real headless browser (Debian's chromium), and the command as a user runs it."""

from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from progdel.canary.history import RunRecord, list_runs
from progdel.kube.client import Kube, connect
from progdel.ui.report import render_html, render_markdown
from tests.browser import open_page, require_chromium
from tests.canary.test_runner_integration import T0, new_revision, run, setup_canary
from tests.canary.test_runner_integration import history as prom_history
from tests.canary.test_watch_cli import run_progdel
from tests.promfixture import TrafficPhase, require_prometheus, run_prometheus

DATA = Path(__file__).parent / "data"
KNOWN_RUN = DATA / "run-rolled-back.json"
GOLDEN_MD = DATA / "run-rolled-back.md"

#: per chart, the number of points each of its traces draws (``path.point`` in Plotly's SVG)
POINTS_JS = """JSON.stringify(Object.fromEntries(Array.from(document.querySelectorAll('.js-plotly-plot'))
  .map(gd => [gd.id, Array.from(gd.querySelectorAll('.scatterlayer .trace'))
  .map(tr => tr.querySelectorAll('path.point').length)])))"""


def known_run() -> RunRecord:
    return RunRecord.from_dict(json.loads(KNOWN_RUN.read_text()))


def test_markdown_of_a_known_run_matches_the_reviewed_golden_file() -> None:
    text = render_markdown(known_run())
    if os.environ.get("PROGDEL_UPDATE_GOLDEN"):
        GOLDEN_MD.write_text(text)
    assert text == GOLDEN_MD.read_text(), "the Markdown report changed: review it, then update the golden"


def test_markdown_samples_a_long_run_and_keeps_the_table_to_what_changed() -> None:
    record = known_run()
    first = record.ticks[2]
    record.ticks = [
        {**first, "time": f"2024-05-06T{10 + i // 60:02d}:{i % 60:02d}:00Z", "canaryWeight": 10 * (i // 100)}
        for i in range(400)
    ]
    text = render_markdown(record)
    axis = next(line for line in text.splitlines() if line.strip().startswith("x-axis"))
    assert axis.count(",") + 1 == 60 and '"0:00"' in axis and '"6:39:00"' in axis
    table = [
        line
        for line in text.split("### Ticks")[1].split("### Events")[0].splitlines()
        if line.startswith("| ")
    ]
    assert len(table) - 2 == 5, "the first and last ticks and the three weight changes"
    assert "395 ticks where nothing changed are not shown." in text


def _expected_points(record: RunRecord) -> dict[str, list[int]]:
    """The points each chart draws for ``record``: its weight and served split, then each metric of
    its analysis against the threshold and, for a metric judged against the primary, the effect."""
    points = {
        "chart-weight": [len(record.ticks), len(record.events)],
        "chart-served": [0, sum(1 for t in record.ticks if t.get("served"))],  # the weight is a line
    }
    for i, spec in enumerate(record.analysis.get("metrics") or []):
        measured = [m for t in record.ticks for m in t.get("metrics", []) if m["name"] == spec["name"]]
        valued = [m for m in measured if "value" in m]
        failed = sum(1 for m in valued if m["verdict"] == "fail")
        points[f"chart-metric-{i}"] = [len(valued), failed] if failed else [len(valued)]
        compared = [m["comparison"] for m in measured if "comparison" in m]
        if compared:  # the effect at each tick, then the failed comparisons marked
            failed = sum(1 for c in compared if c["verdict"] == "fail")
            points[f"chart-compare-{i}"] = [len(compared), failed] if failed else [len(compared)]
    return points


def test_html_report_opens_offline_without_errors_and_draws_every_point(tmp_path: Path) -> None:
    require_chromium()
    record = known_run()
    page_file = tmp_path / "report.html"
    page_file.write_text(render_html(record))
    with open_page(page_file, tmp_path) as page:
        drawn = json.loads(page.wait_for(f"document.querySelectorAll('path.point').length && {POINTS_JS}"))
        title = page.evaluate("document.querySelector('h1').textContent")
        header = page.evaluate("document.querySelector('table.meta').innerText")
        events = page.evaluate("document.querySelectorAll('tr.Warning').length")
        compared = page.evaluate("document.querySelectorAll('table.comparison tr.verdict-fail').length")
        assert page.errors == [], page.errors
        assert page.requests == [], f"the report fetched {page.requests}: it must open offline"
    assert drawn == _expected_points(record)
    assert title == "Canary run test/podinfo 20240506-100000-a1b2: rolled back"
    assert "6d5f8c7b9a" in header and "6m" in header and "rolled back (exit 3)" in header
    assert events == 4
    assert compared == 2, "each failed comparison with the primary has its row"


@pytest.fixture
def kube(sandbox: Any, namespace: str) -> Kube:
    require_prometheus()
    return connect(str(sandbox.kubeconfig), None, namespace)


def test_report_command_writes_each_format_of_a_recorded_run(
    sandbox: Any, kube: Kube, namespace: str, tmp_path: Path
) -> None:
    setup_canary(kube, namespace)
    new_revision(kube)
    text = prom_history(namespace, [TrafficPhase(0, 10, 0.0, 40), TrafficPhase(200, 10, 0.3, 40)])
    with run_prometheus(text, tmp_path) as prom:
        run(kube, namespace, prom.url, T0 + timedelta(seconds=300))
    (run_id,) = [r.id for r in list_runs(kube, "podinfo", namespace)]

    def report(*args: str) -> Any:
        return run_progdel(
            "-n", namespace, "canary", "report", "podinfo", *args, kubeconfig=sandbox.kubeconfig
        )

    md = report("-o", "md")
    assert md.returncode == 0, md.stderr
    assert md.stdout.startswith(f"## Canary run {namespace}/podinfo `{run_id}`: rolled back")
    assert (
        "\nxychart-beta\n" in md.stdout
        and "```mermaid" in md.stdout
        and "| 0:20 | Progressing | 20% |" in md.stdout
    )

    as_json = report("-o", "json", "--run", run_id[:15])
    assert as_json.returncode == 0, as_json.stderr
    data = json.loads(as_json.stdout)
    assert data["id"] == run_id and data["outcome"] == "rolled back" and len(data["ticks"]) == 4

    out = tmp_path / "run.html"
    written = report("--out", str(out))  # the format follows the suffix
    assert written.returncode == 0, written.stderr
    assert f"written to {out}" in written.stderr
    html = out.read_text()
    assert html.startswith("<!DOCTYPE html>") and "plotly" in html.lower()
    embedded = html.split('<script type="application/json" id="progdel-run">')[1].split("</script>")[0]
    assert json.loads(embedded)["id"] == run_id

    missing = report("--run", "19990101")
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1
    assert "no run '19990101'" in missing.stderr and "Traceback" not in missing.stderr
    nothing = run_progdel("-n", namespace, "canary", "report", "other", kubeconfig=sandbox.kubeconfig)
    assert nothing.returncode == 2 and "no runs recorded" in nothing.stderr
    elsewhere = run_progdel("-n", namespace, "-o", "html", "canary", "list", kubeconfig=sandbox.kubeconfig)
    assert elsewhere.returncode == 2 and "only `canary report` writes html" in elsewhere.stderr
