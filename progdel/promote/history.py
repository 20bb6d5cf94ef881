"""Promotion records: one ConfigMap per promotion, in the target environment's namespace.

Why a ConfigMap there: the record lives with what it describes (deleting an
environment's namespace deletes its history), anyone who may read the
namespace can read it with plain ``kubectl``, and no CRD has to be installed.

A record is created as ``pending`` before progdel acts, then updated with the
result, so a promotion that crashed half-way still shows up (as ``pending``).
Labels select records without reading them::

    app.kubernetes.io/managed-by=progdel
    progdel.dev/promotion=true
    progdel.dev/app=<app>
    progdel.dev/environment=<environment>

``data`` holds the fields (strings, as ConfigMaps require): ``app``,
``environment``, ``namespace``, ``kind`` (direct/gitops), ``from``, ``to``,
``by`` (user@host), ``startedAt``, ``finishedAt``, ``result`` (pending /
succeeded / verified / failed-verification / failed / rolled-back), ``canary``
(the canary's outcome, if one ran), ``canaryName`` and ``canaryRun`` (the canary and the id
of the run progdel drove, whose history ``progdel canary report NAME --run ID`` shows),
``gate`` (how the order gate was passed: ``checked``, ``verified``, ``first``,
``previous-step``, or ``forced: why``), ``pullRequest``, ``commit``, ``message``,
``exitCode``.

Results: ``succeeded`` the environment runs the new version; ``verified`` it
runs it and the version passed the environment's ``verify`` checks for the
soak time; ``failed-verification`` it failed them (a direct environment is
back on the previous version, a GitOps one still runs it until the commit is
reverted); ``rolled-back`` the version was tried and the environment is back on
the previous one (a canary rolled back, or a direct rollout that failed and was
undone); ``failed`` nothing changed or the change could not be confirmed (push
rejected, pull request closed, cluster never converged); ``pending`` still
going (a rollout, or a verification), or left waiting on purpose
(``--no-wait``), until ``progdel promote verify`` verifies it.
"""

from __future__ import annotations

import getpass
import secrets
import socket
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal

from progdel.config.project import Environment, Project
from progdel.errors import ProgdelError, printable
from progdel.kube.client import Kube
from progdel.kube.errors import NotFound
from progdel.kube.resources import CONFIGMAPS
from progdel.promote.clusters import Clusters, clusters_of
from progdel.promote.versions import same_version

Result = Literal["pending", "succeeded", "verified", "failed-verification", "failed", "rolled-back"]

MANAGED_BY = "app.kubernetes.io/managed-by"
PROMOTION_LABEL = "progdel.dev/promotion"
APP_LABEL = "progdel.dev/app"
ENV_LABEL = "progdel.dev/environment"


def who() -> str:
    """``user@host`` of the person (or CI job) promoting."""
    try:
        user = getpass.getuser()
    except Exception:
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def _now() -> str:
    # Microseconds (Kubernetes' MicroTime format): records are ordered by this
    # stamp, and two promotions started within one millisecond are common in CI.
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class PromotionRecord:
    app: str
    environment: str
    namespace: str
    kind: str
    from_version: str
    to_version: str
    by: str = field(default_factory=who)
    started_at: str = field(default_factory=_now)
    finished_at: str = ""
    result: Result = "pending"
    canary: str = ""
    canary_name: str = ""
    canary_run: str = ""
    gate: str = ""
    pull_request: str = ""
    commit: str = ""
    message: str = ""
    exit_code: str = ""
    name: str = ""
    """The ConfigMap's name (set once it is stored)."""

    _KEYS: ClassVar[dict[str, str]] = {
        "from_version": "from",
        "to_version": "to",
        "started_at": "startedAt",
        "finished_at": "finishedAt",
        "pull_request": "pullRequest",
        "exit_code": "exitCode",
        "canary_name": "canaryName",
        "canary_run": "canaryRun",
    }

    def to_data(self) -> dict[str, str]:
        """The ConfigMap's data. Messages carry words from git, providers and the cluster: control
        characters are stored as escapes, so that no record can rewrite a terminal that lists it."""
        return {
            self._KEYS.get(f.name, f.name): printable(str(getattr(self, f.name)))
            for f in fields(self)
            if f.name != "name"
        }

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, **self.to_data()}
        data["exitCode"] = int(self.exit_code) if self.exit_code.isdigit() else None
        return data

    @classmethod
    def from_configmap(cls, obj: dict[str, Any]) -> PromotionRecord:
        data = obj.get("data") or {}
        reverse = {v: k for k, v in cls._KEYS.items()}
        values = {reverse.get(k, k): str(v) for k, v in data.items()}
        required = {
            "app": "",
            "environment": "",
            "namespace": "",
            "kind": "",
            "from_version": "",
            "to_version": "",
        }
        known = {f.name for f in fields(cls)}
        record = cls(**{**required, **{k: v for k, v in values.items() if k in known}})  # type: ignore[arg-type]
        record.name = obj.get("metadata", {}).get("name", "")
        return record

    def labels(self) -> dict[str, str]:
        return {
            MANAGED_BY: "progdel",
            PROMOTION_LABEL: "true",
            APP_LABEL: self.app,
            ENV_LABEL: self.environment,
        }


def _name_for(record: PromotionRecord) -> str:
    stamp = "".join(ch for ch in record.started_at if ch.isdigit())
    base = f"progdel-promotion-{record.app}-{record.environment}"[: 253 - len("-YYYYMMDDhhmmssffffff-xxxx")]
    return f"{base}-{stamp}-{secrets.token_hex(2)}"


def start(kube: Kube, record: PromotionRecord) -> PromotionRecord:
    """Store ``record`` (as ``pending``) in its environment's namespace."""
    body = {
        "metadata": {"name": _name_for(record), "namespace": record.namespace, "labels": record.labels()},
        "data": record.to_data(),
    }
    created = kube.create(CONFIGMAPS, body, record.namespace)
    record.name = created["metadata"]["name"]
    return record


def finish(
    kube: Kube, record: PromotionRecord, result: Result, message: str = "", exit_code: int = 0
) -> None:
    """Write the result of a stored record."""
    record.result = result
    record.message = message
    record.exit_code = str(exit_code)
    record.finished_at = _now() if result != "pending" else ""
    if not record.name:
        return

    def put(obj: dict[str, Any]) -> None:
        obj["data"] = record.to_data()

    kube.update(CONFIGMAPS, record.name, put, record.namespace)


def newest_first(records: Sequence[PromotionRecord]) -> list[PromotionRecord]:
    return sorted(records, key=lambda r: (r.started_at, r.name), reverse=True)


def records_in(kube: Kube, env: Environment, app: str | None = None) -> list[PromotionRecord]:
    """The promotions recorded in ``env`` (of ``app``, if given), newest first; ``NotFound`` when
    the environment's namespace does not exist."""
    selector = f"{PROMOTION_LABEL}=true,{MANAGED_BY}=progdel,{ENV_LABEL}={env.name}"
    if app:
        selector += f",{APP_LABEL}={app}"
    items = kube.items(CONFIGMAPS, env.namespace, label_selector=selector)
    return newest_first([PromotionRecord.from_configmap(o) for o in items])


def record_of(records: Sequence[PromotionRecord], app: str, env: str, version: str) -> PromotionRecord | None:
    """The newest record of the promotion that brought ``version`` of ``app`` into ``env``."""
    for r in newest_first(records):
        if r.app == app and r.environment == env and r.to_version and same_version(r.to_version, version):
            return r
    return None


def verification_state(records: Sequence[PromotionRecord], app: str, env: str, version: str) -> str:
    """Whether ``version`` proved itself in ``env``, as its newest promotion record says:
    ``verified``, ``failed-verification``, ``pending`` (promoted without waiting, or being
    verified), or ``unverified`` (no record, or one from before the environment verified)."""
    record = record_of(records, app, env, version)
    if record is None:
        return "unverified"
    if record.result in ("verified", "failed-verification", "pending"):
        return record.result
    return "unverified"


@dataclass(frozen=True)
class Unread:
    """An environment whose records could not be read: its cluster did not answer, or RBAC."""

    environment: str
    error: ProgdelError


def list_records(
    source: Clusters | Kube,
    project: Project,
    app: str | None = None,
    env: str | None = None,
    *,
    unread: list[Unread] | None = None,
) -> list[PromotionRecord]:
    """The promotions recorded in the project's environments, each read in its own cluster
    (concurrently), merged newest first.

    An environment that cannot be read raises, unless ``unread`` is given: then it is added
    there and the records of the others are returned."""
    clusters = clusters_of(source)
    envs = [project.environment(env)] if env else project.ordered_environments()
    clusters.connect_all(envs)

    def read(e: Environment) -> list[PromotionRecord] | ProgdelError:
        try:
            return records_in(clusters.kube(e), e, app)
        except NotFound:
            return []
        except ProgdelError as err:
            return err

    with ThreadPoolExecutor(max_workers=max(1, min(8, len(envs)))) as pool:
        results = list(pool.map(read, envs))
    records: list[PromotionRecord] = []
    for e, result in zip(envs, results, strict=True):
        if isinstance(result, ProgdelError):
            if unread is None:
                raise result
            unread.append(Unread(e.name, result))
            continue
        records.extend(result)
    return newest_first(records)
