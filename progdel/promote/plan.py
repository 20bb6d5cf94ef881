"""Decide a promotion before touching anything: which environments, which version.

Pure: everything it needs from the cluster (what version runs where, and
whether it is healthy) is passed in, so the rules are tested without one.

Rules:

- ``Never`` environments are never promoted into, not even when named with
  ``--env`` or with ``--force``;
- a ``Manual`` environment needs a confirmation unless ``-b`` (batch) is given:
  the plan says so, the CLI asks;
- the version must already run, healthy, in the environment just before the
  target by order (unless ``--force``), and be ``verified`` there when that
  environment declares ``verify``; with ``--all-auto`` an earlier step of the
  same plan counts, since the steps run in order and stop at the first failure;
- without ``--version``, the newest version (semver precedence) running in that
  previous environment is promoted; the first environment has none, so it needs
  ``--version``;
- ``--all-auto`` promotes into every ``Auto`` environment, in order;
- the version, given or picked, must be a valid image tag (or digest).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from progdel.config.project import App, Environment, Project
from progdel.errors import ExitCode, InvalidInput, ProgdelError
from progdel.promote.versions import check_version, compare_versions, newest, same_version

VersionsByEnv = Mapping[str, Sequence[str] | str | None]


@dataclass(frozen=True)
class PromotionStep:
    environment: Environment
    version: str
    previous: Environment | None
    """The environment the version comes from (None for the first by order)."""
    current: tuple[str, ...]
    """What runs in ``environment`` now (several during a rollout)."""
    needs_confirmation: bool
    """A Manual environment without ``-b``: ask before running this step."""
    gate: str
    """How the order rule was met: ``checked``, ``verified`` (the previous environment verifies and
    did), ``previous-step``, ``first``, or ``forced: WHY`` (what ``--force`` overrode)."""

    @property
    def up_to_date(self) -> bool:
        return len(self.current) == 1 and same_version(self.current[0], self.version)


@dataclass(frozen=True)
class Plan:
    app: App
    version: str
    version_source: str
    """``--version``, or where the version was picked (``newest in staging``)."""
    steps: list[PromotionStep]
    warnings: list[str] = field(default_factory=list)

    @property
    def needs_confirmation(self) -> bool:
        return any(s.needs_confirmation for s in self.steps)


def environments_to_read(project: Project, target_env: str | None, all_auto: bool) -> list[Environment]:
    """The environments a plan for ``target_env`` (or ``--all-auto``) looks at: the targets and
    the environment before each, in order. Empty when the arguments are refused anyway."""
    if all_auto == bool(target_env):
        return []
    targets = project.auto_environments() if all_auto else [project.environment(target_env or "")]
    names = {t.name for t in targets}
    for t in targets:
        before = project.previous_environment(t)
        if before is not None:
            names.add(before.name)
    return [e for e in project.ordered_environments() if e.name in names]


def _versions(value: Sequence[str] | str | None) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,) if value else ()
    return tuple(v for v in value if v)


def plan_promotion(
    project: Project,
    app: App,
    target_env: str | None,
    version: str | None,
    *,
    force: bool = False,
    batch: bool = False,
    all_auto: bool = False,
    versions_by_env: VersionsByEnv,
    healthy_by_env: Mapping[str, bool],
    verification_by_env: Mapping[str, str] | None = None,
) -> Plan:
    """The steps to promote ``app`` into ``target_env`` (or every Auto environment).

    ``versions_by_env`` maps environment names to the version(s) of ``app``
    running there (a missing key means nothing runs); ``healthy_by_env`` says
    whether that rollout is complete and ready; ``verification_by_env`` what the
    records say of the running version where the environment declares ``verify``
    (``verified``, ``failed-verification``, ``pending``, ``unverified``). Raises
    ``InvalidInput`` (exit 2) for a refused promotion and ``ProgdelError`` exit 5
    (WAITING) when the version runs in the previous environment but is not healthy,
    or not verified, yet.
    """
    if all_auto and target_env:
        raise InvalidInput("give either --env or --all-auto, not both")
    if not all_auto and not target_env:
        raise InvalidInput("name the target environment with --env, or use --all-auto")

    if all_auto:
        targets = project.auto_environments()
        if not targets:
            raise InvalidInput(f"--all-auto: no environment in {project.source} has promotionStrategy Auto")
    else:
        env = project.environment(target_env or "")
        if env.promotion_strategy == "Never":
            raise InvalidInput(
                f"environment {env.name} has promotionStrategy Never: progdel does not promote into it "
                "(not even with --env or --force)"
            )
        targets = [env]

    first = targets[0]
    source_env = project.previous_environment(first)
    warnings: list[str] = []
    if version:
        chosen, version_source = check_version(version, "--version"), "--version"
    else:
        if source_env is None:
            raise InvalidInput(f"{first.name} is the first environment (order {first.order}): give --version")
        running = _versions(versions_by_env.get(source_env.name))
        picked = newest(running)
        if picked is None:
            raise InvalidInput(
                f"no version of {app.name} runs in {source_env.name} to promote from; give --version"
            )
        version_source = f"newest in {source_env.name}"
        chosen = check_version(picked, f"the {version_source}, {app.name}")

    steps: list[PromotionStep] = []
    planned: set[str] = set()
    for env in targets:
        previous = project.previous_environment(env)
        if previous is None:
            gate = "first"
        elif previous.name in planned:
            gate = "previous-step"
        else:
            gate = _check_gate(
                app,
                chosen,
                previous,
                versions_by_env,
                healthy_by_env,
                verification_by_env or {},
                force,
                warnings,
            )
        current = _versions(versions_by_env.get(env.name))
        higher = [v for v in current if compare_versions(v, chosen) > 0]
        if higher:
            warnings.append(f"{env.name} runs {', '.join(higher)}, newer than {chosen}: this is a downgrade")
        steps.append(
            PromotionStep(
                environment=env,
                version=chosen,
                previous=previous,
                current=current,
                needs_confirmation=env.promotion_strategy == "Manual" and not batch,
                gate=gate,
            )
        )
        planned.add(env.name)
    return Plan(app=app, version=chosen, version_source=version_source, steps=steps, warnings=warnings)


def _check_gate(
    app: App,
    version: str,
    previous: Environment,
    versions_by_env: VersionsByEnv,
    healthy_by_env: Mapping[str, bool],
    verification_by_env: Mapping[str, str],
    force: bool,
    warnings: list[str],
) -> str:
    running = _versions(versions_by_env.get(previous.name))
    there = any(same_version(v, version) for v in running)
    healthy = healthy_by_env.get(previous.name, False)
    state = verification_by_env.get(previous.name) or "unverified"
    if there and healthy and (previous.verify is None or state == "verified"):
        return "verified" if previous.verify is not None else "checked"

    def forced(problem: str) -> str:
        warnings.append(f"{problem}; promoting anyway (--force)")
        return f"forced: {problem}"

    if not there:
        runs = ", ".join(running) if running else "nothing"
        problem = f"{app.name} {version} does not run in {previous.name} (it runs {runs})"
        if force:
            return forced(problem)
        raise InvalidInput(f"{problem}: promote it to {previous.name} first, or use --force")
    if not healthy:
        problem = f"{app.name} {version} runs in {previous.name} but is not healthy yet"
        if force:
            return forced(problem)
        raise ProgdelError(f"{problem}: wait for its rollout, or use --force", ExitCode.WAITING)
    if state == "failed-verification":
        problem = f"{app.name} {version} failed verification in {previous.name}"
        if force:
            return forced(problem)
        raise InvalidInput(
            f"{problem}: it may not go further; promote a version that passes, or use --force "
            f"(see progdel promote history {app.name} -e {previous.name})"
        )
    problem = f"{app.name} {version} runs in {previous.name} but is not verified there ({state})"
    if force:
        return forced(problem)
    raise ProgdelError(
        f"{problem}: {previous.name} declares verify; wait for its verification, or run "
        f"progdel promote verify {app.name} --env {previous.name}, or use --force",
        ExitCode.WAITING,
    )
