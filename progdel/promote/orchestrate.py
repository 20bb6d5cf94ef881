"""One promotion, start to end: for each step of a plan, record → act → wait → record.

The plan (``plan.py``) has already decided which environments and which
version; this module carries each step out by the environment's kind:

- ``direct``: patch the app's image in the environment's namespace and wait
  for the rollout (``direct.py``); with a ``canary:`` block, patch the canary
  target instead and run the canary loop inline until it promotes or rolls back;
- ``gitops``: commit the version to the environment repository (pushed, or as a
  pull request that is followed until merged), then wait until the cluster runs
  it, unless told not to wait;
- then, where the environment declares ``verify``, check the version there for
  the soak time (``verify.py``): ``verified``, or ``failed-verification`` with a
  direct environment's previous image put back (a GitOps or canary environment
  is told which revert to make).

Every step that acts is recorded (``history.py``) as pending first, then with
its result, and the steps stop at the first one that does not succeed. What a
person sees goes through a ``Reporter``; the canary loop's clock is a
parameter so tests can replay recorded metrics.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, Protocol

from progdel.canary.clock import Clock
from progdel.canary.records import Record, ResultRecord, Sink
from progdel.config.project import App, Environment, Project
from progdel.errors import ExitCode, InvalidInput, ProgdelError
from progdel.kube.client import Kube
from progdel.kube.errors import NamespaceTerminating, NotFound
from progdel.promote import history
from progdel.promote.clusters import Clusters, clusters_of
from progdel.promote.direct import (
    ROLLOUT_FAILED,
    ImageChange,
    RolloutFailed,
    format_duration,
    promote_direct,
    restore,
    set_image,
    wait_for_version,
)
from progdel.promote.inventory import serving_deployment_name
from progdel.promote.plan import Plan, PromotionStep
from progdel.promote.pullrequest import PullRequestClient
from progdel.promote.versions import with_tag

if TYPE_CHECKING:
    from progdel.canary.runner import RunOptions
    from progdel.config.canary import Canary


class Reporter(Protocol):
    """Where progress goes: a line of status, and a sink for a canary run's records."""

    def status(self, text: str) -> None: ...

    def canary(self) -> contextlib.AbstractContextManager[Sink]: ...


class QuietReporter:
    """Keeps every status line and canary record (for callers that render afterwards)."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.records: list[Record] = []

    def status(self, text: str) -> None:
        self.lines.append(text)

    @contextlib.contextmanager
    def canary(self) -> Iterator[Sink]:
        yield self.records.append


@dataclass
class PromoteOptions:
    timeout: float
    """Seconds each step may wait in all (pull request merge + rollout)."""
    wait: bool = True
    """False (``--no-wait``): a step ends once its change is made: the commit pushed or the PR
    opened (GitOps), the image set (direct), the canary's target updated (canary)."""
    poll_interval: float = 20.0
    """How often a pull request is looked at."""
    cache_dir: Path | None = None
    """Where environment repositories are cloned (default: the user's cache directory)."""
    canary_clock: Clock | None = None
    """The clock of the canary loop and of verification (None: the system clock)."""
    pr_client: PullRequestClient | None = None


@dataclass
class StepOutcome:
    app: str
    environment: str
    namespace: str
    version: str
    previous: str | None
    result: str
    """succeeded, verified, failed-verification, rolled-back, failed, pending, or up-to-date
    (nothing done)."""
    message: str
    exit_code: int = 0
    canary: str = ""
    canary_name: str = ""
    canary_run: str = ""
    """The id of the canary run this step drove (its history: ``canary report NAME --run ID``)."""
    canary_report: str = ""
    """The command that writes the report of the canary run this step drove."""
    pull_request: str = ""
    record: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "app": self.app,
            "environment": self.environment,
            "namespace": self.namespace,
            "version": self.version,
            "previous": self.previous,
            "result": self.result,
            "message": self.message,
            "exitCode": self.exit_code,
            "canary": self.canary or None,
            "canaryName": self.canary_name or None,
            "canaryRun": self.canary_run or None,
            "canaryReport": self.canary_report or None,
            "pullRequest": self.pull_request or None,
            "record": self.record or None,
        }


class PromotionFailed(ProgdelError):
    """A step did not succeed; ``outcomes`` holds every step run so far, this one last."""

    def __init__(self, message: str, exit_code: ExitCode | int, outcomes: list[StepOutcome]) -> None:
        super().__init__(message, ExitCode(int(exit_code)))
        self.outcomes = outcomes


def env_repo_cache(repository: str, branch: str, base: Path | None = None) -> Path:
    """``$XDG_CACHE_HOME/progdel/env-repos/<hash>`` (or ``~/.cache/...``): progdel's clone."""
    root = base or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "progdel" / "env-repos"
    return root / hashlib.sha256(f"{repository}#{branch}".encode()).hexdigest()[:16]


def run_plan(
    source: Clusters | Kube, project: Project, plan: Plan, options: PromoteOptions, reporter: Reporter
) -> list[StepOutcome]:
    """Carry out ``plan``'s steps in order, each in its environment's cluster; raises
    ``PromotionFailed`` at the first failure."""
    clusters = clusters_of(source)
    pending = [s for s in plan.steps if not s.up_to_date]
    if not options.wait and len(pending) > 1:
        # the next environment's gate is that this one runs the version: not waiting skips it
        names = ", ".join(s.environment.name for s in pending)
        raise InvalidInput(f"--no-wait promotes into one environment at a time, not {names}")
    _check_inputs(plan.app.name, pending, options)
    if options.wait:
        for step in pending:
            if step.environment.verify is not None:
                _verification_preflight(
                    clusters.kube(step.environment), project, plan.app, step.environment, options
                )
    outcomes: list[StepOutcome] = []
    for step in plan.steps:
        kube = clusters.kube(step.environment)
        outcome = _run_step(kube, project, plan.app, step, options, reporter, outcomes)
        outcomes.append(outcome)
    return outcomes


def _check_inputs(plan_app: str, steps: list[PromotionStep], options: PromoteOptions) -> None:
    """Read the credentials the steps will use now, and name their branches, so that a bad one is
    refused (exit 2) before anything is recorded, pushed or changed."""
    from progdel.metrics.prometheus import resolve_prometheus_credentials
    from progdel.promote.gitops import promotion_branch
    from progdel.promote.pullrequest import read_token

    for step in steps:
        env = step.environment
        if env.canary is not None or env.verify is not None:
            resolve_prometheus_credentials()
        if env.gitops is not None and env.gitops.pull_request is not None:
            promotion_branch(plan_app, step.version)
            if options.pr_client is None:
                read_token(env.gitops.pull_request)


def _previous(step: PromotionStep) -> str | None:
    return ", ".join(step.current) if step.current else None


def _run_step(
    kube: Kube,
    project: Project,
    app: App,
    step: PromotionStep,
    options: PromoteOptions,
    reporter: Reporter,
    done: list[StepOutcome],
) -> StepOutcome:
    env = step.environment
    outcome = StepOutcome(app.name, env.name, env.namespace, step.version, _previous(step), "pending", "")
    if step.up_to_date:
        outcome.result = "up-to-date"
        outcome.message = f"{app.name} {step.version} already runs in {env.name}: nothing to do"
        reporter.status(outcome.message)
        return outcome
    record = history.PromotionRecord(
        app=app.name,
        environment=env.name,
        namespace=env.namespace,
        kind=env.kind + ("+canary" if env.canary else ""),
        from_version=outcome.previous or "",
        to_version=step.version,
        gate=step.gate,
    )
    try:
        history.start(kube, record)
        outcome.record = f"{env.namespace}/{record.name}"
    except NamespaceTerminating:
        raise InvalidInput(
            f"namespace {env.namespace} (environment {env.name}) is being deleted: "
            f"{app.name} {step.version} was not promoted and nothing was changed"
        ) from None
    except NotFound:
        if env.kind == "direct":
            raise InvalidInput(
                f"namespace {env.namespace} (environment {env.name}) does not exist: "
                f"deploy {app.name} there first"
            ) from None
        reporter.status(f"namespace {env.namespace} does not exist yet: this promotion is not recorded")
    reporter.status(f"promoting {app.name} {step.version} to {env.name} ({env.namespace})")
    change: ImageChange | None = None
    try:
        if env.kind == "gitops":
            _gitops(kube, project, app, step, options, reporter, outcome, record)
        elif env.canary:
            _canary(kube, project, app, env, step.version, options, reporter, outcome, patch=True)
        elif not options.wait:
            change = set_image(
                kube, env.namespace, app.deployment_name, app.container, with_tag(app.image, step.version)
            )
            outcome.result = "pending"
            outcome.message = (
                f"set {env.namespace}/{app.deployment_name} image to {change.image} (not waiting: --no-wait; "
                f"progdel get applications -e {env.name} shows when it is ready)"
            )
            reporter.status(outcome.message)
        else:
            change = promote_direct(
                kube, env.namespace, app, step.version, timeout=options.timeout, notify=reporter.status
            )
            outcome.result = "succeeded"
            outcome.message = f"{app.name} {step.version} runs in {env.name} ({env.namespace}), ready"
    except RolloutFailed as err:
        _fail(kube, record, outcome, "rolled-back", err.message, err.exit_code, done)
    except ProgdelError as err:
        undone = err.exit_code in (ExitCode.CANARY_FAILED, ExitCode.ABORTED) and env.canary is not None
        result: history.Result = "rolled-back" if undone else "failed"
        _fail(kube, record, outcome, result, err.message, err.exit_code, done)
    except KeyboardInterrupt:
        _keep_canary(record, outcome)
        _finish_quietly(kube, record, "failed", "interrupted", 130)
        raise
    except Exception as err:
        _keep_canary(record, outcome)
        _finish_quietly(kube, record, "failed", f"{type(err).__name__}: {err}", int(ExitCode.INTERNAL))
        raise
    if env.verify is not None and outcome.result == "succeeded":
        restore_to = change if change is not None and change.previous_image != change.image else None
        verify_outcome(
            kube, project, app, env, step.version, options, reporter, outcome, record, done, restore_to
        )
    elif env.verify is not None and outcome.result == "pending":
        outcome.message += f"; once it runs: progdel promote verify {app.name} --env {env.name}"
    _keep_canary(record, outcome)
    record.pull_request = outcome.pull_request
    history.finish(kube, record, outcome.result, outcome.message, 0)  # type: ignore[arg-type]
    return outcome


def _keep_canary(record: history.PromotionRecord, outcome: StepOutcome) -> None:
    record.canary = outcome.canary
    record.canary_name, record.canary_run = outcome.canary_name, outcome.canary_run


def _finish_quietly(
    kube: Kube, record: history.PromotionRecord, result: history.Result, message: str, code: int
) -> None:
    with contextlib.suppress(Exception):
        history.finish(kube, record, result, message, code)


def _fail(
    kube: Kube,
    record: history.PromotionRecord,
    outcome: StepOutcome,
    result: history.Result,
    message: str,
    code: ExitCode | int,
    done: list[StepOutcome],
) -> NoReturn:
    outcome.result, outcome.message, outcome.exit_code = result, message, int(code)
    _keep_canary(record, outcome)
    record.pull_request = outcome.pull_request
    _finish_quietly(kube, record, result, message, int(code))
    raise PromotionFailed(message, code, [*done, outcome])


# -- verification ------------------------------------------------------------------------


def _verification_preflight(
    kube: Kube, project: Project, app: App, env: Environment, options: PromoteOptions
) -> None:
    from progdel.canary.clock import SystemClock
    from progdel.promote.verify import Checker

    clock = options.canary_clock or SystemClock()
    checker = Checker(kube, project, env, app, clock)
    try:
        checker.preflight(clock.now())
    finally:
        checker.close()


def verify_outcome(
    kube: Kube,
    project: Project,
    app: App,
    env: Environment,
    version: str,
    options: PromoteOptions,
    reporter: Reporter,
    outcome: StepOutcome,
    record: history.PromotionRecord,
    done: list[StepOutcome],
    restore_to: ImageChange | None,
) -> None:
    """Check ``version`` in ``env`` for the soak time, live. Verified: ``outcome`` says so (the
    caller stores the record). Failed: the record says ``failed-verification``, a direct
    environment gets ``restore_to``'s previous image back, others are told which revert to make,
    and ``PromotionFailed`` is raised with the check's exit code."""
    from progdel.canary.clock import SystemClock
    from progdel.promote.verify import Checker, run_checks

    verify = env.verify
    assert verify is not None
    clock = options.canary_clock or SystemClock()
    plan = (
        f"{verify.checks} checks in a row, every {format_duration(verify.interval_seconds)}, "
        f"for {verify.soak}"
    )
    reporter.status(f"verifying {app.name} {version} in {env.name}: {plan}")
    with contextlib.suppress(Exception):
        history.finish(kube, record, "pending", f"verifying {app.name} {version}: {plan}", 0)
    checker = Checker(kube, project, env, app, clock)
    try:
        with reporter.canary() as view:
            progress = run_checks(
                checker.canary,
                env,
                version,
                observe=checker.observe,
                clock=clock,
                sink=view,
                timeout=options.timeout,
            )
    except KeyboardInterrupt:
        _finish_quietly(kube, record, "pending", "verification interrupted", 130)
        raise
    except ProgdelError as err:
        _fail(kube, record, outcome, "failed", f"verification stopped: {err.message}", err.exit_code, done)
    finally:
        checker.close()
    where = f"{env.name} ({env.namespace})"
    if progress.state == "verified":
        outcome.result = "verified"
        outcome.message = (
            f"{app.name} {version} runs in {where}, verified: {progress.message} over {verify.soak}"
        )
        return
    if progress.state == "stopped":
        _fail(
            kube,
            record,
            outcome,
            "failed",
            f"verification stopped: {progress.message}",
            progress.exit_code,
            done,
        )
    message = f"{app.name} {version} failed verification in {where}: {progress.message}"
    if restore_to is not None and env.kind == "direct" and env.canary is None:
        message += "; " + restore(kube, restore_to, reporter.status)
    elif env.kind == "direct" and env.canary is None:
        message += f"; {app.name} {version} still runs there (no previous version is known to put back)"
    else:
        message += f"; {app.name} {version} still runs there: {_revert_hint(env, app, record)}"
    _fail(kube, record, outcome, "failed-verification", message, progress.exit_code, done)


def _revert_hint(env: Environment, app: App, record: history.PromotionRecord) -> str:
    """What to do to take a version that failed verification out of a GitOps or canary environment."""
    previous = record.from_version if record.from_version and "," not in record.from_version else ""
    if env.gitops is not None:
        repo, file = env.gitops.repository, env.gitops.file
        key = env.gitops.key.replace("{app}", app.name)
        back = f" ({file}: {key} back to {previous})" if previous else f" ({file}: {key})"
        if record.pull_request:
            return f"revert the merge of {record.pull_request}{back}"
        if record.commit:
            return f"revert commit {record.commit[:12]} in {repo}{back}"
        return f"set {key} in {file} of {repo} back to the previous version"
    if previous:
        command = f"progdel promote {app.name} --version {previous} --env {env.name} --force"
        return f"promote {previous} again: {command}"
    return f"promote the previous version again with progdel promote {app.name} --env {env.name} --force"


def verify_running(
    source: Clusters | Kube,
    project: Project,
    app: App,
    env: Environment,
    options: PromoteOptions,
    reporter: Reporter,
) -> StepOutcome:
    """``progdel promote verify``: verify the version running in ``env`` now (after a ``--no-wait``
    promotion, or a GitOps sync that landed later). Waits for its rollout, then checks it, and
    writes the outcome into its promotion record (a new one when no promotion brought it)."""
    from progdel.promote.inventory import container_of, locate

    if env.verify is None:
        raise InvalidInput(f"environment {env.name} declares no verify: nothing to verify there")
    kube = clusters_of(source).kube(env)
    placement = locate(kube, env, app, [])
    if not placement.found or not placement.version:
        raise InvalidInput(f"{app.name} does not run in {env.name}: {placement.health}")
    version = placement.version
    reporter.status(f"waiting for {app.name} {version} to be ready in {env.name}")
    dep = wait_for_version(
        kube,
        env.namespace,
        placement.deployment,
        app.container,
        version,
        timeout=options.timeout,
        label=app.name,
        notify=reporter.status,
    )
    _verification_preflight(kube, project, app, env, options)
    record = history.record_of(history.records_in(kube, env, app.name), app.name, env.name, version)
    if record is None:
        record = history.PromotionRecord(
            app=app.name,
            environment=env.name,
            namespace=env.namespace,
            kind="verify",
            from_version="",
            to_version=version,
        )
        history.start(kube, record)
    outcome = StepOutcome(
        app.name, env.name, env.namespace, version, record.from_version or None, "pending", ""
    )
    outcome.record = f"{env.namespace}/{record.name}"
    outcome.pull_request, outcome.canary = record.pull_request, record.canary
    outcome.canary_name, outcome.canary_run = record.canary_name, record.canary_run
    restore_to: ImageChange | None = None
    previous = record.from_version
    container = container_of(dep, app.container)
    if previous and "," not in previous and container is not None and env.kind == "direct" and not env.canary:
        restore_to = ImageChange(
            env.namespace,
            placement.deployment,
            str(container["name"]),
            with_tag(app.image, previous),
            str(container.get("image") or ""),
            0,
        )
    verify_outcome(kube, project, app, env, version, options, reporter, outcome, record, [], restore_to)
    history.finish(kube, record, "verified", outcome.message, 0)
    return outcome


# -- canary ------------------------------------------------------------------------------


def _canary_options(project: Project, **kw: Any) -> RunOptions:
    from progdel.canary.runner import RunOptions

    return RunOptions(
        project_mesh_provider=project.defaults.mesh_provider,
        label_prefixes=tuple(project.defaults.include_label_prefix),
        **kw,
    )


def _apply_env_canary(kube: Kube, project: Project, app: App, env: Environment) -> Canary:
    """Apply the environment's Canary (from its spec file) to the cluster; the validated model."""
    from progdel.canary import store
    from progdel.canary.admission import admit
    from progdel.config.canary import canary_document
    from progdel.promote.direct import get_deployment

    assert env.canary is not None
    admitted = admit(
        canary_document(env.canary.spec), env.namespace, project_default=project.defaults.mesh_provider
    )
    canary = admitted.model
    if canary.target_name != app.deployment_name:
        raise InvalidInput(
            f"{env.canary.spec}: spec.targetRef.name is {canary.target_name}, but app {app.name}'s "
            f"Deployment is {app.deployment_name}"
        )
    get_deployment(kube, env.namespace, app.deployment_name)
    from progdel.canary.preflight import ensure_init_accepted

    options = _canary_options(project)
    ensure_init_accepted(kube, admitted.document, env.namespace, (), options)  # nothing written if refused
    store.apply_canary(kube, admitted.document, env.namespace)
    return canary


def _initialize_canary(
    kube: Kube,
    project: Project,
    env: Environment,
    canary: Canary,
    options: PromoteOptions,
    reporter: Reporter,
    sink: Sink,
) -> None:
    """Initialize the canary unless it is: the primary is created from the target as it runs now,
    so this must happen before the new version reaches the target, or it would skip analysis."""
    from progdel.canary.cluster import initialize
    from progdel.kube.resources import CANARIES

    phase = ((kube.get(CANARIES, canary.name, env.namespace).get("status") or {}).get("phase")) or ""
    if phase and phase != "Initializing":
        return
    reporter.status(f"initializing canary {env.namespace}/{canary.name}")
    code = initialize(
        kube,
        canary.name,
        env.namespace,
        sink,
        timeout=min(options.timeout, 300),
        options=_canary_options(project),
    )
    if code is not ExitCode.OK:
        raise ProgdelError(f"canary {env.namespace}/{canary.name} did not initialize", code)


def _canary(
    kube: Kube,
    project: Project,
    app: App,
    env: Environment,
    version: str,
    options: PromoteOptions,
    reporter: Reporter,
    outcome: StepOutcome,
    *,
    patch: bool,
) -> None:
    from progdel.canary.alerts import targets_from_project
    from progdel.canary.cluster import runner_for

    assert env.canary is not None
    canary = _apply_env_canary(kube, project, app, env)
    records: list[Record] = []
    with reporter.canary() as view:

        def sink(record: Record) -> None:
            records.append(record)
            view(record)

        _initialize_canary(kube, project, env, canary, options, reporter, sink)
        if patch:
            change = set_image(
                kube, env.namespace, app.deployment_name, app.container, with_tag(app.image, version)
            )
            reporter.status(
                f"set canary target {env.namespace}/{app.deployment_name} image to {change.image}; "
                f"analysing with canary {canary.name}"
            )
        if not options.wait:
            outcome.result = "pending"
            outcome.message = (
                f"{app.name} {version} is in canary {env.namespace}/{canary.name}, which moves only while "
                f"progdel drives it (not waiting: --no-wait): progdel -n {env.namespace} canary watch "
                f"{canary.name}"
            )
            reporter.status(outcome.message)
            return
        run_opts = _canary_options(
            project,
            timeout=options.timeout,
            prometheus_url=env.canary.prometheus_url,
            project_prometheus_url=project.defaults.prometheus_url,
            alert_targets=targets_from_project(project.defaults.alerts),
        )
        runner = runner_for(kube, canary.name, env.namespace, sink, run_opts, clock=options.canary_clock)
        try:
            code = runner.run()
        finally:  # an interrupted or timed-out run is recorded too: the promotion's record names it
            ran = runner.history.last or runner.history.record
            if ran is not None:
                outcome.canary_name, outcome.canary_run = canary.name, ran.id
    result: ResultRecord | None = next((r for r in reversed(records) if r["kind"] == "result"), None)
    outcome.canary = result["outcome"] if result else ("promoted" if code is ExitCode.OK else "")
    where = f"{env.namespace}/{canary.primary_name}"
    if result is not None and result.get("run"):
        from progdel.canary.history import report_command

        run_id = str(result["run"])
        outcome.canary_report = report_command(env.namespace, canary.name, run_id, env.context)
        reporter.status(f"report of the canary run: {outcome.canary_report}")
    if code is ExitCode.OK:
        outcome.result = "succeeded"
        outcome.message = f"{app.name} {version} promoted by canary {canary.name}: {where} runs it"
        return
    reason = result["message"] if result else ""
    previous = outcome.previous or "the previous version"
    raise ProgdelError(
        f"canary {env.namespace}/{canary.name} {outcome.canary or 'failed'}"
        + (f" ({reason})" if reason else "")
        + f": {app.name} {version} not promoted; {where} still runs {previous}; "
        + (
            f"report: {outcome.canary_report}"
            if outcome.canary_report
            else f"see progdel -n {env.namespace} canary events {canary.name}"
        ),
        code,
    )


# -- gitops ------------------------------------------------------------------------------


def _gitops(
    kube: Kube,
    project: Project,
    app: App,
    step: PromotionStep,
    options: PromoteOptions,
    reporter: Reporter,
    outcome: StepOutcome,
    record: history.PromotionRecord,
) -> None:
    from progdel.promote.gitops import promote_via_git, wait_for_merge
    from progdel.promote.pullrequest import client_for

    env = step.environment
    assert env.gitops is not None
    started = time.monotonic()
    cfg = env.gitops
    client = options.pr_client
    if cfg.pull_request is not None and client is None:
        client = client_for(cfg.pull_request)
    if env.canary:
        # before the new version can reach the target: the primary must start from the old one
        canary = _apply_env_canary(kube, project, app, env)
        with reporter.canary() as view:
            _initialize_canary(kube, project, env, canary, options, reporter, view)
    workdir = env_repo_cache(cfg.repository, cfg.branch, options.cache_dir)
    result = promote_via_git(env, app, step.version, workdir=workdir, pr_client=client)
    reporter.status(result.message)
    record.commit = result.commit or ""
    if result.pull_request is not None:
        outcome.pull_request = result.pull_request.url
        record.pull_request = outcome.pull_request
        with contextlib.suppress(Exception):
            history.finish(kube, record, "pending", result.message, 0)
    if not options.wait:
        outcome.result = "pending"
        outcome.message = result.message + " (not waiting: --no-wait)"
        return
    if result.pull_request is not None and client is not None:
        reporter.status(f"waiting for {result.pull_request.url} to merge")
        wait_for_merge(
            client,
            cfg.repository,
            result.pull_request,
            timeout=options.timeout,
            poll_interval=options.poll_interval,
        )
        reporter.status(f"{result.pull_request.url} merged")
    remaining = max(0.0, options.timeout - (time.monotonic() - started))
    target = app.deployment_name
    if env.canary:
        reporter.status(
            f"waiting for the cluster to apply {app.name} {step.version} to {env.namespace}/{target}"
        )
        _wait_synced(kube, env, app, target, step.version, remaining, result.message, reporter)
        left = max(1.0, options.timeout - (time.monotonic() - started))
        _canary(
            kube,
            project,
            app,
            env,
            step.version,
            PromoteOptions(**{**options.__dict__, "timeout": left}),
            reporter,
            outcome,
            patch=False,
        )
        return
    serving = serving_deployment_name(env, app)
    reporter.status(f"waiting for the cluster to run {app.name} {step.version} in {env.namespace}")
    _wait_synced(kube, env, app, serving, step.version, remaining, result.message, reporter, ready=True)
    outcome.result = "succeeded"
    outcome.message = f"{app.name} {step.version} runs in {env.name} ({env.namespace}), ready"


def _wait_synced(
    kube: Kube,
    env: Environment,
    app: App,
    deployment: str,
    version: str,
    timeout: float,
    pushed: str,
    reporter: Reporter,
    *,
    ready: bool = False,
) -> None:
    try:
        if ready:
            wait_for_version(
                kube,
                env.namespace,
                deployment,
                app.container,
                version,
                timeout=timeout,
                label=app.name,
                notify=reporter.status,
            )
        else:
            _wait_image(kube, env, app, deployment, version, timeout)
    except RolloutFailed as err:
        # git already says this version: undoing it is a new promotion of the previous one
        raise ProgdelError(
            f"{err.message} (after: {pushed}); promote the previous version to undo it", ROLLOUT_FAILED
        ) from None
    except ProgdelError as err:
        if err.exit_code is not ExitCode.TIMEOUT:
            raise
        raise ProgdelError(
            f"{pushed}, but the cluster did not converge within {format_duration(timeout)}: {err.message}; "
            f"is the GitOps controller syncing namespace {env.namespace}?",
            ExitCode.TIMEOUT,
        ) from None


def _wait_image(
    kube: Kube, env: Environment, app: App, deployment: str, version: str, timeout: float
) -> None:
    from progdel.kube.resources import DEPLOYMENTS
    from progdel.promote.inventory import deployment_version
    from progdel.promote.versions import same_version

    deadline = time.monotonic() + timeout
    while True:
        dep = kube.get_or_none(DEPLOYMENTS, deployment, env.namespace)
        running = deployment_version(dep, app.container) if dep else None
        if running and same_version(running, version):
            return
        if time.monotonic() >= deadline:
            raise ProgdelError(
                f"deployment {env.namespace}/{deployment} runs {running or 'nothing'}, not {version}; "
                f"see kubectl -n {env.namespace} describe deploy {deployment}",
                ExitCode.TIMEOUT,
            )
        time.sleep(0.25)
