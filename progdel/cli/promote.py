"""``progdel promote``: move a version along the environments of progdel.yaml.

``progdel promote [APP] ...`` promotes; ``progdel promote history [APP]`` lists
what was promoted; ``progdel promote verify [APP] --env ENV`` verifies the version
running in an environment that declares ``verify``. The first arguments ``history``
and ``verify`` always mean the subcommands, so an app cannot be named so for this
command.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperCommand, TyperGroup

from progdel.cli import complete
from progdel.cli.options import GlobalOptions, OutputFormat, connect_clusters, global_options
from progdel.errors import ExitCode, InvalidInput

_DEFAULT = "promote"
_SUBCOMMANDS = ("history", "verify")


class _PromoteGroup(TyperGroup):
    """A group whose default command is the promotion itself (kubectl-like: ``promote APP``)."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if not args or args[0] not in _SUBCOMMANDS:
            args = [_DEFAULT, *args]
        return super().parse_args(ctx, args)

    def format_usage(self, ctx: Any, formatter: Any) -> None:
        formatter.write_usage(ctx.command_path, "[APP] [OPTIONS] | history [APP] | verify [APP] --env ENV")


class _PromoteCommand(TyperCommand):
    """The default command: its usage reads ``progdel promote [APP] [OPTIONS]``."""

    def format_usage(self, ctx: Any, formatter: Any) -> None:
        path = ctx.parent.command_path if ctx.parent is not None else ctx.command_path
        formatter.write_usage(path, "[APP] [OPTIONS]   (or: history [APP] [-e ENV], verify [APP] -e ENV)")


app = typer.Typer(
    cls=_PromoteGroup,
    help="Promote a version into an environment (or list past promotions: promote history).",
)


class TerminalReporter:
    """Progress on stderr: a spinner with the latest step on a TTY, plain lines otherwise."""

    def __init__(self, opts: GlobalOptions) -> None:
        from progdel.ui.output import err_console

        self.opts = opts
        self.console = err_console()
        self.tty = sys.stderr.isatty()
        self._spinner: Any = None

    def status(self, text: str) -> None:
        from rich.markup import escape

        from progdel.errors import printable

        text = printable(text)
        if self.tty:
            self.console.print(f"[dim]·[/dim] {escape(text)}", highlight=False, markup=True)
            if self._spinner is None:
                self._spinner = self.console.status(escape(text))
                self._spinner.start()
            else:
                self._spinner.update(escape(text))
        else:
            print(f"progdel: {text}", file=sys.stderr, flush=True)

    def stop(self) -> None:
        if self._spinner is not None:
            self._spinner.stop()
            self._spinner = None

    @contextlib.contextmanager
    def canary(self) -> Iterator[Any]:
        from progdel.ui.canary_view import CanaryView

        self.stop()
        fmt = self.opts.output
        mode = {OutputFormat.ndjson: "ndjson", OutputFormat.table: "auto"}.get(fmt, "quiet")
        with CanaryView(mode) as view:
            yield view.show


def _timeout_seconds(text: str | None, default: float) -> float:
    from progdel.config.project import parse_duration

    if text is None:
        return default
    try:
        return parse_duration(text)
    except ValueError as err:
        raise InvalidInput(f"--timeout: {err}") from None


def _confirm(plan: Any) -> None:
    manual = [s.environment.name for s in plan.steps if s.needs_confirmation]
    question = f"Promote {plan.app.name} {plan.version} to {', '.join(manual)} (promotionStrategy Manual)?"
    if not sys.stdin.isatty():
        raise InvalidInput(
            f"{', '.join(manual)} is Manual and there is no terminal to confirm on: "
            "pass -b/--batch-mode to promote without asking"
        )
    if not typer.confirm(question, default=False, err=True):
        from progdel.errors import ProgdelError

        raise ProgdelError("promotion cancelled", ExitCode.ABORTED)


#: the APP argument of ``promote`` and ``promote verify``
AppArgument = Annotated[
    str | None,
    typer.Argument(
        metavar="APP",
        help="The app (default: the only app, or the one whose repository is the current directory).",
        autocompletion=complete.apps,
    ),
]


@app.command(_DEFAULT, hidden=True, cls=_PromoteCommand)
def promote(
    ctx: typer.Context,
    app_name: AppArgument = None,
    version: Annotated[
        str | None,
        typer.Option(
            "--version",
            help="The version to promote (default: the newest in the previous environment).",
            autocompletion=complete.versions,
        ),
    ] = None,
    env: Annotated[
        str | None,
        typer.Option("-e", "--env", help="The target environment.", autocompletion=complete.environments),
    ] = None,
    batch: Annotated[
        bool,
        typer.Option("-b", "--batch-mode", help="Do not ask before promoting into a Manual env."),
    ] = False,
    timeout: Annotated[
        str | None,
        typer.Option(
            "--timeout",
            help="How long each environment may take: merge + rollout, and how long holding checks may "
            "stretch a verification beyond its soak (default: defaults.timeout).",
        ),
    ] = None,
    no_wait: Annotated[
        bool,
        typer.Option(
            "--no-wait",
            help="Stop once the change is made (commit pushed or PR opened, image set, canary target "
            "updated), with no verification (the record stays pending); one environment at a time.",
        ),
    ] = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Promote even if the version does not run healthy, or verified, in the previous env "
            "(recorded in the promotion's gate).",
        ),
    ] = False,
    all_auto: Annotated[
        bool, typer.Option("--all-auto", help="Promote into every Auto environment, in order.")
    ] = False,
    poll_interval: Annotated[
        str, typer.Option("--poll-interval", help="How often to look at a pull request (GitOps).")
    ] = "20s",
) -> None:
    """Promote APP's version into an environment: directly, through git, or progressively.

    Each environment is read and changed in its own cluster (its context in progdel.yaml). The
    version must run, ready, in the environment before the target, and be verified there when
    that environment declares verify (--force overrides, and is recorded). Promoting into an
    environment that declares verify then checks the version there for its soak time, live:
    verified, or failed-verification (a direct environment gets its previous image back; a
    GitOps one is told which revert to make). With --no-wait it stays pending until
    progdel promote verify. Past promotions: progdel promote history.

    Exit codes: 0 promoted (or already there), and verified where the environment declares
    verify; 2 refused (Never, order gate, a version that failed verification, unknown app or
    environment, Manual without -b and no terminal, a metric query Prometheus rejects); 3 a canary
    rolled back, or the version failed verification; 4 cancelled, or the pull request was closed
    unmerged; 5 the version is not healthy, or not verified, yet in the previous environment; 6 a
    cluster (named by its context), git provider or Prometheus unreachable; 7 not ready in time,
    or the rollout failed (a direct environment is then set back to its previous image).
    """
    from progdel.config.project import load_project
    from progdel.promote.inventory import inventory
    from progdel.promote.orchestrate import PromoteOptions, PromotionFailed, run_plan
    from progdel.promote.plan import environments_to_read, plan_promotion
    from progdel.promote.versions import check_version
    from progdel.ui.output import emit

    opts = global_options(ctx)
    if version is not None:
        check_version(version, "--version")  # before anything else: it names images, branches, records
    project = load_project(opts.config, Path.cwd())
    the_app = project.resolve_app(app_name, Path.cwd())
    seconds = _timeout_seconds(timeout, project.defaults.timeout_seconds)
    poll = _timeout_seconds(poll_interval, 20.0)
    if env:
        project.environment(env)  # unknown environment: exit 2 before connecting
    clusters = connect_clusters(opts)
    inv = inventory(clusters, project, the_app, environments_to_read(project, env, all_auto))
    plan = plan_promotion(
        project,
        the_app,
        env,
        version,
        force=force,
        batch=batch,
        all_auto=all_auto,
        versions_by_env=inv.versions_by_env,
        healthy_by_env=inv.healthy_by_env,
        verification_by_env=inv.verification_by_env,
    )
    reporter = TerminalReporter(opts)
    for warning in plan.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if plan.needs_confirmation:
        _confirm(plan)
    options = PromoteOptions(timeout=seconds, wait=not no_wait, poll_interval=poll)
    try:
        outcomes = run_plan(clusters, project, plan, options, reporter)
    except PromotionFailed as err:
        reporter.stop()
        if opts.output in (OutputFormat.json, OutputFormat.yaml):
            emit(opts, [o.to_dict() for o in err.outcomes], lambda _d: "")
        raise
    finally:
        reporter.stop()
    emit(opts, [o.to_dict() for o in outcomes], lambda rows: "\n".join(r["message"] for r in rows))


@app.command("history")
def history_(
    ctx: typer.Context,
    app_name: Annotated[
        str | None, typer.Argument(metavar="APP", help="Only this app.", autocompletion=complete.apps)
    ] = None,
    env: Annotated[
        str | None,
        typer.Option("-e", "--env", help="Only this environment.", autocompletion=complete.environments),
    ] = None,
) -> None:
    """List recorded promotions, newest first (one ConfigMap each, in the environment's namespace).

    Each environment's records are read in its own cluster, all at once. An environment whose
    cluster cannot be reached is named on stderr (with its context) and the command exits 6
    after listing the others' records.
    """
    from progdel.config.project import load_project
    from progdel.promote.history import Unread, list_records
    from progdel.ui.output import emit, exit_after_partial, table

    opts = global_options(ctx)
    project = load_project(opts.config, Path.cwd())
    if app_name:
        project.app(app_name)
    if env:
        project.environment(env)
    unread: list[Unread] = []
    found = list_records(connect_clusters(opts), project, app_name, env, unread=unread)
    records = [r.to_dict() for r in found]
    cols = [
        "startedAt",
        "app",
        "environment",
        "from",
        "to",
        "result",
        "canary",
        "canaryRun",
        "by",
        "pullRequest",
    ]

    def human(rows: list[dict[str, Any]]) -> Any:
        if not rows:
            return "No promotions recorded."
        return table(
            ["time", "app", "env", "from", "to", "result", "canary", "canary run", "by", "pull request"],
            [[r["startedAt"][:19].replace("T", " "), *(r[c] or "" for c in cols[1:])] for r in rows],
        )

    emit(opts, records, human)
    exit_after_partial([(u.environment, u.error.message, int(u.error.exit_code)) for u in unread])


@app.command("verify")
def verify_(
    ctx: typer.Context,
    app_name: AppArgument = None,
    env: Annotated[
        str | None,
        typer.Option(
            "-e",
            "--env",
            help="The environment (one that declares verify).",
            autocompletion=complete.verified_environments,
        ),
    ] = None,
    timeout: Annotated[
        str | None,
        typer.Option(
            "--timeout",
            help="How long the rollout may take to be ready, and how long holding checks may stretch "
            "the soak (default: defaults.timeout).",
        ),
    ] = None,
) -> None:
    """Verify the version running in ENV now: after promote --no-wait, or a GitOps sync that
    landed later.

    Waits until its rollout is ready, then checks the environment's verify metrics every interval
    for the soak time, live (-o ndjson: one record per check and event), and writes the outcome
    into the promotion record of that version (a new record if no promotion brought it):
    verified, or failed-verification. A direct environment that fails gets the version the record
    says it came from back; a GitOps one is told which revert to make.

    Exit codes: 0 verified; 2 ENV declares no verify, APP does not run there, or a metric query
    is refused; 3 it failed verification; 4 the Deployment started running another version
    meanwhile; 6 the cluster (named by its context) or Prometheus unreachable; 7 not ready, or
    not verified, in time.
    """
    from progdel.config.project import load_project
    from progdel.promote.orchestrate import PromoteOptions, PromotionFailed, verify_running
    from progdel.ui.output import emit

    opts = global_options(ctx)
    project = load_project(opts.config, Path.cwd())
    the_app = project.resolve_app(app_name, Path.cwd())
    if not env:
        raise InvalidInput("name the environment to verify with --env")
    environment = project.environment(env)
    if environment.verify is None:
        raise InvalidInput(f"environment {env} declares no verify in {project.source}: nothing to verify")
    seconds = _timeout_seconds(timeout, project.defaults.timeout_seconds)
    reporter = TerminalReporter(opts)
    try:
        outcome = verify_running(
            connect_clusters(opts), project, the_app, environment, PromoteOptions(timeout=seconds), reporter
        )
    except PromotionFailed as err:
        reporter.stop()
        if opts.output in (OutputFormat.json, OutputFormat.yaml, OutputFormat.ndjson):
            emit(opts, err.outcomes[-1].to_dict(), lambda _d: "")
        raise
    finally:
        reporter.stop()
    emit(opts, outcome.to_dict(), lambda row: str(row["message"]))
