"""``progdel canary``: drive Flagger-compatible canaries from the client."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from progdel.cli import complete
from progdel.cli.canary_inputs import admit_file, run_options, show_notes
from progdel.cli.options import GlobalOptions, OutputFormat, connect, global_options, project_defaults
from progdel.errors import ExitCode, InvalidInput, ProgdelError

app = typer.Typer(
    help="Drive Flagger-compatible canaries from the client: no controller in the cluster.",
    no_args_is_help=True,
)

NameArg = Annotated[
    str, typer.Argument(help="The Canary's name.", metavar="NAME", autocompletion=complete.canaries)
]


def _namespace(opts: GlobalOptions, kube: Any) -> str:
    return opts.namespace or kube.namespace


def _view_mode(opts: GlobalOptions) -> str:
    if opts.output is OutputFormat.ndjson:
        return "ndjson"
    if opts.output is not OutputFormat.table:
        raise InvalidInput("this command streams: use -o ndjson (or the default view)")
    return "auto"


@app.command()
def init(
    ctx: typer.Context,
    file: Annotated[Path, typer.Option("-f", "--file", help="The Canary YAML (flagger.app/v1beta1).")],
    templates: Annotated[
        list[Path] | None,
        typer.Option("--templates", help="YAML files with MetricTemplates to create beside the Canary."),
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the primary to become ready.")] = 300,
) -> None:
    """Create what Flagger creates for the canary's provider, then hand the canary to progdel.

    Applies the Canary object, creates <target>-primary (with -primary copies of its ConfigMaps
    and Secrets) and the Services <apex>-primary and <apex>-canary, waits for the primary, then
    points the Service <apex> and the VirtualService (or HTTPRoute) at it, 100/0, and scales the
    target to 0: an app that serves traffic keeps serving. An existing VirtualService, HTTPRoute
    or Service keeps everything progdel does not manage. A Flagger 0.x Canary is converted to
    v1beta1 first. Afterwards every other command needs only the name and -n.
    """
    from progdel.canary import cluster, store
    from progdel.canary.preflight import ensure_init_accepted
    from progdel.config.canary import load_metric_templates
    from progdel.kube.resources import METRICTEMPLATES
    from progdel.ui.canary_view import CanaryView

    opts = global_options(ctx)
    defaults = project_defaults(opts)
    admit_file(opts, file, defaults)  # what progdel cannot drive is said before connecting
    tmpl_models = [t for path in templates or [] for t in load_metric_templates(path)]
    kube = connect(opts)
    admitted = admit_file(opts, file, defaults, kube)
    model = admitted.model
    namespace = opts.namespace or model.metadata.namespace or kube.namespace
    show_notes(admitted.notes)
    options = run_options(opts, defaults)
    # nothing is written if the cluster refuses one object
    ensure_init_accepted(kube, admitted.document, namespace, tmpl_models, options)
    for t in tmpl_models:
        body = t.model_dump(by_alias=True, exclude_none=True)
        body["metadata"]["namespace"] = t.metadata.namespace or namespace
        kube.apply(METRICTEMPLATES, body)
    store.apply_canary(kube, admitted.document, namespace)
    with CanaryView(_view_mode(opts)) as view:
        code = cluster.initialize(kube, model.name, namespace, view.show, timeout=timeout, options=options)
    if code is ExitCode.OK and opts.output is OutputFormat.table:
        print(f"canary {namespace}/{model.name} initialized: traffic 100% to {model.primary_name}")
    raise typer.Exit(int(code))


@app.command()
def convert(
    ctx: typer.Context,
    file: Annotated[
        Path, typer.Option("-f", "--file", help="A Canary file, e.g. one written for Flagger 0.x.")
    ],
) -> None:
    """Print the Canary as flagger.app/v1beta1, ready to commit.

    A Flagger 0.x Canary (flagger.app/v1alpha1-3, spec.canaryAnalysis, the 0.x metric names
    istio_requests_total and istio_request_duration_seconds_bucket) is converted with 0.x's
    meaning; what changed is said on stderr. A v1beta1 file is printed as it is. -o json prints JSON.
    """
    import json

    import yaml

    from progdel.config.canary import canary_document, canary_from_document

    opts = global_options(ctx)
    spec = canary_from_document(canary_document(file))
    show_notes([spec.converted or f"{file}: already flagger.app/v1beta1, nothing to convert"])
    if opts.output is OutputFormat.json:
        print(json.dumps(spec.document, indent=2))
    else:
        print(yaml.safe_dump(spec.document, sort_keys=False, default_flow_style=False), end="")


@app.command()
def watch(
    ctx: typer.Context,
    name: NameArg,
    once: Annotated[
        bool, typer.Option("--once", help="Run one tick and exit with the state's code.")
    ] = False,
    follow: Annotated[
        bool, typer.Option("--follow", help="Keep watching for the next revision after a run ends.")
    ] = False,
    prometheus_url: Annotated[
        str | None,
        typer.Option(
            "--prometheus-url",
            help="Prometheus base URL (else $PROGDEL_PROMETHEUS_URL, the Canary's metricsServer, "
            "progdel.yaml, http://prometheus.istio-system:9090).",
        ),
    ] = None,
    templates: Annotated[
        list[Path] | None, typer.Option("--templates", help="YAML files with MetricTemplates to use.")
    ] = None,
    timeout: Annotated[
        float | None, typer.Option(help="Give up (exit 7) when the run takes longer, in seconds.")
    ] = None,
    observe: Annotated[
        bool,
        typer.Option("--observe", help="Only show a canary another driver (Flagger) runs; never drive it."),
    ] = False,
) -> None:
    """Wait for a new revision of the target, then run the analysis loop to promotion or rollback.

    A canary that Flagger drives (annotation progdel.dev/driver: flagger, or a status written by
    another field manager) is only observed: the same view, the same exit codes, nothing written
    but the run's history.
    Exit codes: 0 promoted, 3 rolled back, 4 aborted, 5 still waiting (--once), 6 unreachable,
    7 timed out. Credentials for Prometheus come from $PROGDEL_PROMETHEUS_TOKEN(_FILE) or
    $PROGDEL_PROMETHEUS_USERNAME/$PROGDEL_PROMETHEUS_PASSWORD(_FILE), never from a flag.
    """
    from progdel.canary.alerts import targets_from_project
    from progdel.canary.cluster import runner_for
    from progdel.canary.observe import FlaggerObserver, detect_driver
    from progdel.config.canary import load_metric_templates
    from progdel.kube.resources import CANARIES
    from progdel.ui.canary_view import CanaryView

    opts = global_options(ctx)
    defaults = project_defaults(opts)
    kube = connect(opts)
    namespace = _namespace(opts, kube)
    decision = detect_driver(kube.get(CANARIES, name, namespace))
    if observe or decision.observe:
        with CanaryView(_view_mode(opts)) as view:
            observer = FlaggerObserver(
                kube,
                name,
                namespace,
                view.show,
                once=once,
                follow=follow,
                timeout=timeout,
                decision=decision if decision.observe else None,
            )
            try:
                code = observer.run()
            finally:
                report_hint(observer, opts.context)
        raise typer.Exit(int(code))
    run_opts = run_options(
        opts,
        defaults,
        once=once,
        follow=follow,
        timeout=timeout,
        prometheus_url=prometheus_url,
        project_prometheus_url=defaults.prometheus_url if defaults else None,
        templates=[t for path in templates or [] for t in load_metric_templates(path)],
        alert_targets=targets_from_project(defaults.alerts) if defaults else [],
    )
    with CanaryView(_view_mode(opts)) as view:
        runner = runner_for(kube, name, namespace, view.show, run_opts)
        try:
            code = runner.run()
        finally:
            report_hint(runner, opts.context)
    raise typer.Exit(int(code))


def _when(text: str, flag: str) -> Any:
    from datetime import UTC, datetime

    try:
        t = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"{flag} {text!r}: expected an RFC 3339 time (2026-11-24T14:00:00Z)") from None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


@app.command()
def replay(
    ctx: typer.Context,
    file: Annotated[Path, typer.Option("-f", "--file", help="The Canary YAML to rehearse.")],
    start: Annotated[str, typer.Option("--from", help="When the release starts (RFC 3339).")],
    end: Annotated[str, typer.Option("--to", help="When the window ends (RFC 3339).")],
    templates: Annotated[
        list[Path] | None, typer.Option("--templates", help="YAML files with MetricTemplates to use.")
    ] = None,
    prometheus_url: Annotated[
        str | None,
        typer.Option(
            "--prometheus-url",
            help="Prometheus base URL holding the history (else $PROGDEL_PROMETHEUS_URL, the Canary's "
            "metricsServer, progdel.yaml).",
        ),
    ] = None,
    compare: Annotated[
        Path | None,
        typer.Option("--compare", help="Another Canary YAML: replay both and show where they first differ."),
    ] = None,
    assume_hooks_pass: Annotated[
        bool,
        typer.Option(
            "--assume-hooks-pass", help="Take webhooks and manual gates to pass instead of skipping them."
        ),
    ] = False,
    record: Annotated[
        Path | None,
        typer.Option(
            "--record",
            help="Write the replayed run's record (the JSON a run's history holds) to this file; "
            "canary report --from-file reads it.",
        ),
    ] = None,
    report_file: Annotated[
        Path | None,
        typer.Option("--report", help="Write the replayed run's report to this file: .html, .md or .json."),
    ] = None,
) -> None:
    """Rehearse a canary on recorded history: what would this spec have decided?

    Runs the same engine and judging as watch, tick by tick at the spec's interval from --from,
    every query evaluated at its tick's time against Prometheus; no cluster is needed and nothing
    is written but the files asked for (--record, --report). Webhooks and gates are skipped (or,
    with --assume-hooks-pass, taken to pass). Exit codes: 0 promoted, 3 rolled back, 5 still
    running at --to, 2 invalid spec, 6 Prometheus unreachable.
    """
    from progdel.canary.replay import rehearse, replay_recorder, replayed_run, run_document
    from progdel.config.canary import load_canary, load_metric_templates
    from progdel.ui.canary_view import CanaryView
    from progdel.ui.output import emit_line

    opts = global_options(ctx)
    mode = _view_mode(opts)
    defaults = project_defaults(opts)
    fmt = _report_format(report_file, "--report") if report_file is not None else None
    for out, flag in ((record, "--record"), (report_file, "--report")):
        if out is not None:
            _check_writable(out, flag)  # before the replay, not after it
    canary = load_canary(file).model
    other = (file.name, compare.name, load_canary(compare).model) if compare is not None else None
    window = _when(start, "--from"), _when(end, "--to")
    history = replay_recorder(canary, *window) if record is not None or report_file is not None else None
    with CanaryView(mode) as view:
        code, divergence = rehearse(
            canary,
            view.show,
            start=window[0],
            end=window[1],
            templates=[t for path in templates or [] for t in load_metric_templates(path)],
            prometheus_url=prometheus_url,
            project_url=defaults.prometheus_url if defaults else None,
            assume_hooks_pass=assume_hooks_pass,
            compare=other,
            history=history,
        )
    if divergence is not None:
        if mode == "ndjson":
            emit_line(divergence.to_dict())
        else:
            print("\n".join(divergence.lines()), flush=True)
    run = replayed_run(history) if history is not None else None
    if run is not None and record is not None:
        document = run_document(
            run, start=window[0], end=window[1], spec=str(file), assume_hooks_pass=assume_hooks_pass
        )
        _write_file(record, json.dumps(document, indent=1) + "\n", "--record")
        print(f"record of the replayed run written to {record}", file=sys.stderr)
    if run is not None and report_file is not None and fmt is not None:
        _write_file(report_file, _render_report(run, fmt), "--report")
        print(f"report of the replayed run written to {report_file}", file=sys.stderr)
    raise typer.Exit(int(code))


def _status_row(obj: dict[str, Any]) -> dict[str, Any]:
    status = obj.get("status") or {}
    return {
        "name": obj["metadata"]["name"],
        "namespace": obj["metadata"].get("namespace"),
        "phase": status.get("phase") or "",
        "weight": status.get("canaryWeight", 0),
        "failedChecks": status.get("failedChecks", 0),
        "lastTransitionTime": status.get("lastTransitionTime") or "",
    }


@app.command("list")
def list_(
    ctx: typer.Context,
    all_namespaces: Annotated[
        bool, typer.Option("-A", "--all-namespaces", help="List in every namespace.")
    ] = False,
) -> None:
    """List canaries with their phase, weight and failed checks."""
    from progdel.kube.resources import CANARIES
    from progdel.ui.output import emit, table

    opts = global_options(ctx)
    kube = connect(opts)
    items = kube.items(CANARIES, _namespace(opts, kube), all_namespaces=all_namespaces)
    rows = [_status_row(o) for o in items]
    cols = ["namespace", "name", "phase", "weight", "failedChecks", "lastTransitionTime"]
    emit(
        opts, rows, lambda rs: table(cols, [[r[c] for c in cols] for r in rs]) if rs else "No canaries found."
    )


@app.command()
def status(ctx: typer.Context, name: NameArg) -> None:
    """Show a canary's state: phase, weights, checks and the last measurements."""
    from progdel.canary.status import CanaryStatus
    from progdel.kube.resources import CANARIES
    from progdel.ui.canary_view import comparison_summary
    from progdel.ui.output import emit

    opts = global_options(ctx)
    kube = connect(opts)
    obj = kube.get(CANARIES, name, _namespace(opts, kube))
    stored = obj.get("status") or {}
    measurements = CanaryStatus.from_dict(stored).measurements
    data = {
        "name": name,
        "namespace": obj["metadata"].get("namespace"),
        "status": stored,
        "measurements": {k: m.to_dict() for k, m in measurements.items()},
    }

    def human(d: dict[str, Any]) -> str:
        s = d["status"]
        lines = [
            f"Canary:        {d['namespace']}/{d['name']}",
            f"Phase:         {s.get('phase') or '(not initialized)'}",
            f"Canary weight: {s.get('canaryWeight', 0)}",
            f"Failed checks: {s.get('failedChecks', 0)}",
            f"Iterations:    {s.get('iterations', 0)}",
            f"Last change:   {s.get('lastTransitionTime') or '-'}",
        ]
        for mname, m in d["measurements"].items():
            lines.append(
                f"  {mname}: {m.get('value')} ({m.get('verdict')}) {m.get('message') or ''}".rstrip()
            )
            if m.get("comparison"):
                lines.append(f"    vs primary: {comparison_summary(m['comparison'])}")
        return "\n".join(lines)

    emit(opts, data, human)


@app.command()
def events(ctx: typer.Context, name: NameArg) -> None:
    """Show the Kubernetes Events of a canary, oldest first (Flagger's wording)."""
    from progdel.kube.events import list_events
    from progdel.ui.output import emit, table

    opts = global_options(ctx)
    kube = connect(opts)
    evs = list_events(kube, "Canary", name, _namespace(opts, kube))
    rows = [
        {
            "time": e.get("lastTimestamp"),
            "type": e.get("type"),
            "reason": e.get("reason"),
            "count": e.get("count", 1),
            "message": e.get("message"),
        }
        for e in evs
    ]
    cols = ["time", "type", "reason", "message"]
    emit(opts, rows, lambda rs: table(cols, [[r[c] for c in cols] for r in rs]) if rs else "No events.")


@app.command()
def history(ctx: typer.Context, name: NameArg) -> None:
    """List the canary's recorded runs, newest first (one ConfigMap each, in its namespace)."""
    from progdel.canary.history import list_runs
    from progdel.ui.output import emit, table
    from progdel.ui.report import duration

    opts = global_options(ctx)
    kube = connect(opts)
    rows = [r.summary() for r in list_runs(kube, name, _namespace(opts, kube))]

    def human(rs: list[dict[str, Any]]) -> Any:
        if not rs:
            return "No runs recorded."
        return table(
            ["run", "started", "duration", "outcome", "max weight", "failed checks", "ticks", "revision"],
            [
                [
                    r["id"],
                    r["startedAt"][:19].replace("T", " "),
                    duration(r["durationSeconds"]),
                    r["outcome"],
                    f"{r['maxWeight']}%",
                    r["failedChecks"],
                    r["tickCount"],
                    r["revision"][:12],
                ]
                for r in rs
            ],
        )

    emit(opts, rows, human)


_REPORT_SUFFIXES = {".html": "html", ".htm": "html", ".md": "md", ".markdown": "md", ".json": "json"}


def _report_format(path: Path, flag: str) -> str:
    """The report format ``path``'s suffix names; a suffix naming none is refused."""
    fmt = _REPORT_SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise InvalidInput(f"{flag} {path}: a report file ends in .html, .md or .json")
    return fmt


def _render_report(record: Any, fmt: str) -> str:
    from progdel.ui import report as render

    return {"html": render.render_html, "md": render.render_markdown, "json": render.render_json}[fmt](record)


def _check_writable(path: Path, flag: str) -> None:
    """Refuse an output file that cannot be written (its folder missing or read-only, a folder
    named instead of a file), without creating or changing anything."""
    import os

    folder = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise InvalidInput(f"{flag} {path}: Is a directory")
    if not folder.is_dir():
        raise InvalidInput(f"{flag} {path}: No such directory {folder}")
    if not os.access(path if path.exists() else folder, os.W_OK):
        raise InvalidInput(f"{flag} {path}: Permission denied")


def _write_file(path: Path, text: str, flag: str) -> None:
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as err:
        raise InvalidInput(f"{flag} {path}: {err.strerror or err}") from None


def _run_from_file(path: Path) -> Any:
    """A run's record from a file: what ``replay --record`` writes, or a history ConfigMap's
    ``ticks.json.gz`` (gzip-compressed or not)."""
    import gzip

    from progdel.canary.history import RunRecord

    try:
        raw = path.read_bytes()
        data = json.loads(gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw)
    except OSError as err:
        raise InvalidInput(f"--from-file {path}: {err.strerror or err}") from None
    except (ValueError, EOFError) as err:
        raise InvalidInput(f"--from-file {path}: not a canary run record ({err})") from None
    if not isinstance(data, dict) or not isinstance(data.get("ticks"), list):
        raise InvalidInput(f"--from-file {path}: not a canary run record (no list of ticks)")
    return RunRecord.from_dict(data)


@app.command()
def report(
    ctx: typer.Context,
    name: Annotated[
        str | None,
        typer.Argument(
            help="The Canary's name (not with --from-file).", metavar="NAME", autocompletion=complete.canaries
        ),
    ] = None,
    run: Annotated[
        str | None,
        typer.Option("--run", help="The run's id (or a prefix naming it alone); default: the newest."),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Write the report to this file (default: stdout).")
    ] = None,
    from_file: Annotated[
        Path | None,
        typer.Option("--from-file", help="Report the run recorded in this file (canary replay --record)."),
    ] = None,
) -> None:
    """Write the report of a recorded run: -o html (one self-contained file with charts),
    -o md (Markdown with Mermaid charts, for a pull request) or -o json (the record).

    Without -o the format follows --out's suffix (.html, .md, .json), else Markdown. The run is
    read from the cluster (NAME, --run), or from a file (--from-file, what canary replay --record
    writes).
    """
    from progdel.canary.history import load_run
    from progdel.cli.options import OutputFormat as Fmt

    opts = global_options(ctx, documents=True)
    if opts.output in (Fmt.html, Fmt.md, Fmt.json):
        fmt = str(opts.output)
    elif opts.output is Fmt.table:
        fmt = _REPORT_SUFFIXES.get(out.suffix.lower(), "md") if out is not None else "md"
    else:
        raise InvalidInput(f"-o {opts.output}: a report is html, md or json")
    if from_file is not None:
        if name is not None or run is not None:
            raise InvalidInput("--from-file names the run: give no NAME and no --run with it")
        record = _run_from_file(from_file)
    elif name is None:
        raise InvalidInput("name the canary (NAME), or give --from-file")
    else:
        kube = connect(opts)
        record = load_run(kube, name, _namespace(opts, kube), run)
    text = _render_report(record, fmt)
    if out is None:
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    _write_file(out, text, "--out")
    print(f"report of canary run {record.id} written to {out}", file=sys.stderr)


def report_hint(runner: Any, context: str | None) -> None:
    """Say, on stderr, how to get the report of the run ``runner`` drove or observed (if it
    recorded one)."""
    from progdel.canary.history import report_command

    record = runner.history.last or runner.history.record
    if record is not None:
        command = report_command(record.namespace, record.canary, record.id, context)
        print(f"report: {command}", file=sys.stderr)


def _driven_by_progdel(kube: Any, name: str, namespace: str) -> dict[str, Any]:
    """The Canary object, after making sure progdel drives it: an operator command never acts on
    a canary that Flagger drives."""
    from progdel.canary import store
    from progdel.canary.observe import detect_driver

    obj, _ = store.read(kube, name, namespace)
    decision = detect_driver(obj)
    if decision.observe:
        raise InvalidInput(
            f"canary {namespace}/{name} is driven by {decision.driver} ({decision.reason}); "
            "progdel only observes it"
        )
    return obj


def _request(ctx: typer.Context, name: str, action: str) -> None:
    from progdel.canary import store
    from progdel.canary.cluster import carry_out_request
    from progdel.ui.output import emit

    opts = global_options(ctx)
    kube = connect(opts)
    namespace = _namespace(opts, kube)
    _driven_by_progdel(kube, name, namespace)
    req = store.post_request(kube, name, namespace, action)
    if carry_out_request(kube, name, namespace, run_options(opts, project_defaults(opts), once=True)):
        handled_by = "progdel (no watcher was running)"
    else:
        handled_by = "the running watcher"
    data = {"canary": f"{namespace}/{name}", "action": action, "by": req.by, "handledBy": handled_by}
    emit(
        opts,
        data,
        lambda d: f"canary {d['canary']}: {action} requested by {d['by']}, handled by {d['handledBy']}",
    )


@app.command()
def abort(ctx: typer.Context, name: NameArg) -> None:
    """Roll the canary back now; a running watcher exits with code 4."""
    _request(ctx, name, "abort")


@app.command()
def promote(ctx: typer.Context, name: NameArg) -> None:
    """Skip the rest of the analysis and promote (recorded as an event)."""
    _request(ctx, name, "promote")


def _gate_of(obj: dict[str, Any]) -> str | None:
    """The confirm gate a canary waits at, from its status."""
    from progdel.canary.status import CanaryStatus

    status = obj.get("status") or {}
    pending = CanaryStatus.from_dict(status).pending_gate
    if pending:
        return pending
    return {"Waiting": "confirm-rollout", "WaitingPromotion": "confirm-promotion"}.get(
        status.get("phase", "")
    )


def _record(kube: Any, obj: dict[str, Any], reason: str, message: str) -> None:
    from progdel.kube.events import EventRecorder

    EventRecorder(kube).record(obj, "Normal", reason, message)


@app.command()
def approve(
    ctx: typer.Context,
    name: NameArg,
    gate: Annotated[
        str | None,
        typer.Option(
            "--gate",
            help="The gate to approve (confirm-rollout, confirm-traffic-increase, confirm-promotion); "
            "default: the one the canary waits at. Naming one approves it in advance.",
        ),
    ] = None,
) -> None:
    """Open the confirm gate the canary waits at (recorded as an Event with who approved)."""
    from progdel.canary import store
    from progdel.canary.observation import CONFIRM_GATES
    from progdel.kube.lease import default_identity
    from progdel.ui.output import emit

    opts = global_options(ctx)
    kube = connect(opts)
    namespace = _namespace(opts, kube)
    obj = _driven_by_progdel(kube, name, namespace)
    chosen = gate or _gate_of(obj)
    if chosen is None:
        raise InvalidInput(
            f"canary {namespace}/{name} is not waiting at a gate; "
            "name one with --gate to approve it in advance"
        )
    if chosen not in {str(g) for g in CONFIRM_GATES}:
        raise InvalidInput(f"--gate {chosen!r}: expected one of {', '.join(str(g) for g in CONFIRM_GATES)}")
    who = default_identity()
    store.post_approval(kube, name, namespace, chosen, who)
    _record(kube, obj, "Approved", f"Gate {chosen} of {name}.{namespace} approved by {who}")
    data = {"canary": f"{namespace}/{name}", "gate": chosen, "by": who}
    emit(opts, data, lambda d: f"canary {d['canary']}: {d['gate']} approved by {d['by']}")


def _pause(ctx: typer.Context, name: str, paused: bool) -> None:
    from progdel.canary import store
    from progdel.kube.lease import default_identity
    from progdel.ui.output import emit

    opts = global_options(ctx)
    kube = connect(opts)
    namespace = _namespace(opts, kube)
    obj = _driven_by_progdel(kube, name, namespace)
    who = default_identity()
    store.set_paused(kube, name, namespace, paused, who)
    weight = (obj.get("status") or {}).get("canaryWeight", 0)
    word = "Paused" if paused else "Resumed"
    _record(kube, obj, word, f"{word} {name}.{namespace} at canary weight {weight} by {who}")
    data = {"canary": f"{namespace}/{name}", "paused": paused, "canaryWeight": weight, "by": who}
    emit(opts, data, lambda d: f"canary {d['canary']}: {word.lower()} at weight {weight} by {d['by']}")


@app.command()
def pause(ctx: typer.Context, name: NameArg) -> None:
    """Hold the run at its current weight: no advancement, no checks, until resume."""
    _pause(ctx, name, True)


@app.command()
def resume(ctx: typer.Context, name: NameArg) -> None:
    """Release a paused run."""
    _pause(ctx, name, False)


@app.command()
def delete(
    ctx: typer.Context,
    name: NameArg,
    revert: Annotated[
        bool,
        typer.Option(
            "--revert",
            help="Put the app back as before the canary: the target takes the primary's replicas and "
            "traffic, the Services and the VirtualService (HTTPRoute) return to their originals, and "
            "what init created goes (always, when the Canary says revertOnDeletion: true).",
        ),
    ] = False,
    file: Annotated[
        Path | None,
        typer.Option(
            "-f", "--file", help="The Canary file, to revert a canary whose object is already gone."
        ),
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the target to become ready.")] = 300,
) -> None:
    """Delete the Canary object (and with --revert, everything init changed, without downtime)."""
    from progdel.canary import store
    from progdel.canary.revert import revert_canary
    from progdel.kube.resources import CANARIES

    opts = global_options(ctx)
    defaults = project_defaults(opts)
    kube = connect(opts)
    namespace = _namespace(opts, kube)
    obj = kube.get_or_none(CANARIES, name, namespace)
    if obj is None and file is None:
        obj = kube.get(CANARIES, name, namespace)  # not found: says so
    if obj is not None:
        from progdel.routing import resolve

        _, spec = store.read(kube, name, namespace)
        canary = resolve(spec.model, opts.mesh_provider, defaults.mesh_provider if defaults else None)
    else:
        assert file is not None
        canary = admit_file(opts, file, defaults, namespace=namespace).model
        if canary.name != name:
            raise InvalidInput(f"{file}: the Canary is {canary.name}, not {name}")
        canary.metadata.namespace = namespace
    revert = revert or canary.spec.revert_on_deletion  # Flagger's finalizer does the same
    if revert:
        revert_canary(kube, canary, timeout=timeout, progress=lambda m: print(m, file=sys.stderr))
    if obj is not None:
        kube.delete(CANARIES, name, namespace)
    print(f"canary {namespace}/{name} deleted" + (" and reverted" if revert else ""), file=sys.stderr)


__all__ = ["ProgdelError", "app"]


def _register_check() -> None:
    from progdel.cli.canary_check import check

    app.command("check")(check)


_register_check()
