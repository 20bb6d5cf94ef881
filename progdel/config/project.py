"""progdel.yaml: the environments a version moves through, and the applications.

The file is looked up as ``./progdel.yaml`` unless ``--config`` names it. Paths
inside it (a Canary spec, an environment repository given as a directory) are
relative to the file, and are made absolute when it is loaded.

Every mistake is reported as ``progdel.yaml:LINE: field.path: message``.
"""

from __future__ import annotations

import math
import re
import subprocess
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from progdel.config.canary import (
    ANNOTATION_MAX_INFRA_ERRORS,
    ANNOTATION_NO_DATA,
    Canary,
    CanaryMetric,
    format_go_duration,
)
from progdel.config.canary import API_VERSION as CANARY_API_VERSION
from progdel.config.canary import _cross_field_problems as canary_problems
from progdel.config.canary import parse_duration as parse_go_duration
from progdel.config.keys import parse_key
from progdel.config.providers import check_provider
from progdel.config.yamlfile import Document, PathKey, format_path, parse_documents, read_text, validate
from progdel.errors import InvalidInput

DEFAULT_FILE = "progdel.yaml"
RESERVED_APP_NAMES = ("history", "verify")
"""Words ``progdel promote`` takes as subcommands, which therefore cannot name an app."""

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def parse_duration(text: str) -> float:
    """Seconds in a duration such as ``1h``, ``30m``, ``90s`` or ``1h30m``; ``ValueError`` if malformed."""
    m = _DURATION.match(text.strip())
    if not text.strip() or m is None or not any(m.groups()):
        raise ValueError(f"invalid duration {text!r} (examples: 1h, 30m, 90s, 1h30m)")
    h, mi, s = (int(g) if g else 0 for g in m.groups())
    return float(h * 3600 + mi * 60 + s)


def _dns_label(value: str) -> str:
    if len(value) > 63 or not _DNS1123_LABEL.match(value):
        raise _invalid(
            "must be a DNS-1123 label: lower-case letters, digits and '-', "
            "starting and ending with a letter or digit, at most 63 characters"
        )
    return value


def is_url(text: str) -> bool:
    """True for ``scheme://...`` and scp-like ``user@host:path`` git remotes."""
    return "://" in text or bool(re.match(r"^[\w.-]+@[\w.-]+:", text))


def _invalid(message: str) -> PydanticCustomError:
    """A validation error whose message is shown as is (no "Value error, " prefix)."""
    return PydanticCustomError("progdel", message)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True)


class PullRequestConfig(_Model):
    """Open a pull request instead of pushing to the environment branch."""

    provider: Literal["github", "gitlab"]
    api_url: str | None = None
    """Defaults to https://api.github.com or https://gitlab.com/api/v4."""
    token_env: str | None = None
    token_file: str | None = None


class GitOpsConfig(_Model):
    repository: str
    """A git URL, or a directory path (relative to progdel.yaml)."""
    branch: str = "main"
    file: str
    """The file to edit, relative to the repository root."""
    key: str
    """Where the version sits: ``apps.{app}.version``, ``releases[name={app}].version``..."""
    pull_request: PullRequestConfig | None = None

    @field_validator("key")
    @classmethod
    def _key_parses(cls, value: str) -> str:
        try:
            parse_key(value)
        except ValueError as err:
            raise _invalid(str(err)) from None
        return value

    @field_validator("file")
    @classmethod
    def _relative_file(cls, value: str) -> str:
        if Path(value).is_absolute() or ".." in Path(value).parts:
            raise _invalid("must be a path inside the repository (relative, without '..')")
        return value


class CanaryConfig(_Model):
    spec: str
    """Path to a Canary YAML, relative to progdel.yaml."""
    prometheus_url: str | None = None


class VerifyConfig(_Model):
    """How a version proves itself in an environment before it may go further: the environment's
    Deployment must stay ready and pass every metric check, taken every ``interval``, for ``soak``.

    ``metrics`` are written as in a Canary's analysis (built-in metrics, ``query``,
    ``templateRef``) and held to the same rules; ``noData`` and ``maxInfraErrors`` mean what the
    Canary annotations ``progdel.dev/no-data`` and ``progdel.dev/max-infra-errors`` mean.
    """

    soak: str
    """How long the version must pass, healthy: ``10m``, ``1h``."""
    interval: str | None = None
    """How often the metrics are checked; default: the shortest of the metrics' intervals."""
    prometheus_url: str | None = None
    no_data: str | None = None
    """``fail`` (default), ``skip`` or ``hold``, or per metric: ``request-success-rate=hold,...``."""
    max_infra_errors: int = Field(default=5, ge=1)
    metrics: list[CanaryMetric] = Field(min_length=1)

    @field_validator("soak", "interval")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            if parse_duration(value) <= 0:
                raise ValueError(f"{value!r} must be longer than 0s")
        except ValueError as err:
            raise _invalid(str(err)) from None
        return value

    @property
    def soak_seconds(self) -> float:
        return parse_duration(self.soak)

    @property
    def interval_seconds(self) -> float:
        if self.interval is not None:
            return parse_duration(self.interval)
        return min(parse_go_duration(m.interval) for m in self.metrics)

    @property
    def checks(self) -> int:
        """Consecutive passing checks that cover the soak time."""
        return max(1, math.ceil(self.soak_seconds / self.interval_seconds - 1e-9))

    def canary(self, *, name: str, namespace: str, target: str) -> Canary:
        """These metrics as the analysis of a Canary of the Deployment ``target``, so that they are
        rendered, queried and judged by the canary's own code."""
        return Canary.model_validate(self._canary_document(name=name, namespace=namespace, target=target))

    def _canary_document(self, *, name: str, namespace: str, target: str) -> dict[str, Any]:
        annotations = {ANNOTATION_MAX_INFRA_ERRORS: str(self.max_infra_errors)}
        if self.no_data:
            annotations[ANNOTATION_NO_DATA] = self.no_data
        return {
            "apiVersion": CANARY_API_VERSION,
            "kind": "Canary",
            "metadata": {"name": name, "namespace": namespace, "annotations": annotations},
            "spec": {
                "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
                "service": {"port": 80},
                "analysis": {
                    "interval": format_go_duration(self.interval_seconds),
                    "threshold": 1,
                    "iterations": self.checks,
                    "metrics": [m.model_dump(by_alias=True, exclude_unset=True) for m in self.metrics],
                },
            },
        }

    def problems(self) -> list[tuple[PathKey, str]]:
        """What the canary's rules find wrong with these metrics, as paths inside ``verify``."""
        canary = self.canary(name="verify", namespace="default", target="app")
        out: list[tuple[PathKey, str]] = []
        for path, message in canary_problems(canary):
            if path[:3] == ("spec", "analysis", "metrics"):
                out.append((("metrics", *path[3:]), message))
            elif path[:2] == ("metadata", "annotations"):
                out.append((("noData",), message.replace(ANNOTATION_NO_DATA, "noData")))
            else:
                out.append(((), message))
        return out


class Environment(_Model):
    name: str
    namespace: str
    order: int
    promotion_strategy: Literal["Auto", "Manual", "Never"]
    kind: Literal["direct", "gitops"] = "direct"
    context: str | None = None
    """The kubeconfig context of the environment's cluster; default: ``--context``, else the
    kubeconfig's current context."""
    gitops: GitOpsConfig | None = None
    canary: CanaryConfig | None = None
    verify: VerifyConfig | None = None
    url: str | None = None
    """A URL template for ``get applications``: ``{app}``, ``{namespace}`` and ``{env}`` are filled in."""

    @field_validator("name", "namespace")
    @classmethod
    def _dns(cls, value: str) -> str:
        return _dns_label(value)

    @field_validator("context")
    @classmethod
    def _context(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise _invalid("must name a kubeconfig context (or be left out for the current one)")
        return value


class App(_Model):
    name: str
    image: str
    """The image repository, without tag: ``registry.example.com/shop/web``."""
    deployment: str | None = None
    container: str | None = None
    """The container to set the image on; default: the Deployment's first container."""
    repository: str | None = None
    """A git URL or directory; lets ``progdel promote`` find the app from the current directory."""

    @property
    def deployment_name(self) -> str:
        return self.deployment or self.name

    @field_validator("name")
    @classmethod
    def _app_name(cls, value: str) -> str:
        if value in RESERVED_APP_NAMES:
            raise _invalid(f"{value!r} is reserved: 'progdel promote {value}' is a command")
        return _dns_label(value)

    @field_validator("image")
    @classmethod
    def _no_tag(cls, value: str) -> str:
        from progdel.config.images import split_image

        repo, tag, digest = split_image(value)
        if tag or digest:
            raise _invalid(f"must be the image repository without tag or digest (e.g. {repo})")
        return value


class AlertConfig(_Model):
    """A notification channel for every canary progdel drives (beside the Canary's own alerts).

    The webhook URL is a secret: it comes from a file or an environment variable, never from
    progdel.yaml itself.
    """

    name: str
    type: Literal["slack", "discord", "rocket", "msteams", "gchat", "generic"]
    severity: Literal["info", "warn", "error"] = "info"
    address_file: str | None = None
    address_env: str | None = None
    channel: str | None = None

    @model_validator(mode="after")
    def _one_address(self) -> AlertConfig:
        if bool(self.address_file) == bool(self.address_env):
            raise _invalid("give exactly one of addressFile or addressEnv")
        return self


class Defaults(_Model):
    prometheus_url: str | None = None
    timeout: str = "1h"
    alerts: list[AlertConfig] = Field(default_factory=list)
    #: the provider of Canaries that set no spec.provider (Flagger's -mesh-provider)
    mesh_provider: str | None = None
    #: label (and annotation) prefixes copied to the primary (Flagger's -include-label-prefix)
    include_label_prefix: list[str] = Field(default_factory=list)

    @field_validator("mesh_provider")
    @classmethod
    def _provider(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return check_provider(value, "provider")
        except InvalidInput as err:
            raise _invalid(str(err).partition(": ")[2]) from None

    @field_validator("include_label_prefix", mode="before")
    @classmethod
    def _prefixes(cls, value: object) -> object:
        if isinstance(value, str):  # Flagger's flag is a comma-separated list
            return [p.strip() for p in value.split(",") if p.strip()]
        return value

    @field_validator("timeout")
    @classmethod
    def _duration(cls, value: str) -> str:
        try:
            parse_duration(value)
        except ValueError as err:
            raise _invalid(str(err)) from None
        return value

    @property
    def timeout_seconds(self) -> float:
        return parse_duration(self.timeout)


class Project(_Model):
    environments: list[Environment] = Field(min_length=1)
    apps: list[App] = Field(min_length=1)
    defaults: Defaults = Field(default_factory=Defaults)

    _source: str = PrivateAttr(default=DEFAULT_FILE)
    _base_dir: Path = PrivateAttr(default_factory=Path.cwd)

    @property
    def source(self) -> str:
        """The file this project was read from (for messages)."""
        return self._source

    @property
    def base_dir(self) -> Path:
        return self._base_dir

    def ordered_environments(self) -> list[Environment]:
        return sorted(self.environments, key=lambda e: (e.order, e.name))

    def environment(self, name: str) -> Environment:
        for env in self.environments:
            if env.name == name:
                return env
        known = ", ".join(e.name for e in self.ordered_environments())
        raise InvalidInput(f"unknown environment {name!r} (known in {self._source}: {known})")

    def app(self, name: str) -> App:
        for app in self.apps:
            if app.name == name:
                return app
        known = ", ".join(a.name for a in self.apps)
        raise InvalidInput(f"unknown app {name!r} (known in {self._source}: {known})")

    def previous_environment(self, env: Environment | str) -> Environment | None:
        """The environment just before ``env`` by order, or None for the first one."""
        name = env if isinstance(env, str) else env.name
        ordered = self.ordered_environments()
        index = [e.name for e in ordered].index(self.environment(name).name)
        return ordered[index - 1] if index > 0 else None

    def auto_environments(self) -> list[Environment]:
        return [e for e in self.ordered_environments() if e.promotion_strategy == "Auto"]

    def canary_spec_path(self, env: Environment) -> Path | None:
        return Path(env.canary.spec) if env.canary else None

    def resolve_app(self, name: str | None, cwd: Path) -> App:
        """The app named ``name``; else the only app; else the app whose repository is ``cwd``.

        ``cwd`` matches an app when its git remote ``origin`` is the app's repository
        URL, or when ``cwd`` lies inside the app's repository directory.
        """
        if name:
            return self.app(name)
        if len(self.apps) == 1:
            return self.apps[0]
        origin = _origin_url(cwd)
        here = cwd.resolve()
        for app in self.apps:
            if not app.repository:
                continue
            if is_url(app.repository):
                if origin and normalize_git_url(origin) == normalize_git_url(app.repository):
                    return app
            else:
                repo_dir = Path(app.repository)
                if here == repo_dir or repo_dir in here.parents:
                    return app
        known = ", ".join(a.name for a in self.apps)
        raise InvalidInput(
            f"which app? {cwd} is not the repository of any app in {self._source}; name one of: {known}"
        )


def normalize_git_url(url: str) -> str:
    """``host/path`` of a git URL, so that https, ssh and scp-like forms compare equal."""
    text = url.strip()
    m = re.match(r"^[\w.-]+@([\w.-]+):(.*)$", text)
    if m and "://" not in text:
        host, path = m[1], m[2]
    elif "://" in text:
        rest = text.split("://", 1)[1]
        host, _, path = rest.partition("/")
        host = host.rsplit("@", 1)[-1].split(":")[0]
    else:
        return str(Path(text).resolve())
    path = path.strip("/")
    if path.endswith(".git"):
        path = path[:-4]
    return f"{host.lower()}/{path}"


def _origin_url(cwd: Path) -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(cwd), "config", "--get", "remote.origin.url"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def _fail(doc: Document, path: PathKey, message: str) -> InvalidInput:
    line = doc.line_of(path)
    where = f"{doc.source}:{line}" if line else doc.source
    return InvalidInput(f"{where}: {format_path(path)}: {message}")


def project_from_document(doc: Document, base_dir: Path) -> Project:
    """Validate one parsed progdel.yaml document; relative paths are resolved against ``base_dir``."""
    if not isinstance(doc.data, dict):
        raise InvalidInput(f"{doc.source}: expected a mapping with environments and apps")
    project = validate(Project, doc)
    _check_unique(doc, "environments", [e.name for e in project.environments], "name")
    _check_unique(doc, "environments", [e.namespace for e in project.environments], "namespace")
    _check_unique(doc, "environments", [e.order for e in project.environments], "order")
    _check_unique(doc, "apps", [a.name for a in project.apps], "name")
    for i, env in enumerate(project.environments):
        if env.kind == "gitops" and env.gitops is None:
            raise _fail(doc, ("environments", i, "kind"), "kind gitops needs a gitops block")
        if env.kind == "direct" and env.gitops is not None:
            raise _fail(doc, ("environments", i, "gitops"), "only used with kind: gitops")
        if env.gitops and not is_url(env.gitops.repository):
            env.gitops.repository = str((base_dir / env.gitops.repository).resolve())
        if env.canary:
            env.canary.spec = str((base_dir / env.canary.spec).resolve())
        pr = env.gitops.pull_request if env.gitops else None
        if pr and pr.token_env and pr.token_file:
            raise _fail(
                doc,
                ("environments", i, "gitops", "pullRequest", "tokenFile"),
                "give tokenEnv or tokenFile, not both",
            )
        if pr and pr.token_file:
            pr.token_file = str((base_dir / Path(pr.token_file).expanduser()).resolve())
        if env.verify is not None:
            problems = env.verify.problems()
            if problems:
                path, message = problems[0]
                more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
                raise _fail(doc, ("environments", i, "verify", *path), message + more)
    for app in project.apps:
        if app.repository and not is_url(app.repository):
            app.repository = str((base_dir / app.repository).resolve())
    project._source = doc.source
    project._base_dir = base_dir
    return project


def _check_unique(doc: Document, section: str, values: list[object], field: str) -> None:
    seen: dict[object, int] = {}
    for i, value in enumerate(values):
        if value in seen:
            raise _fail(
                doc,
                (section, i, field),
                f"duplicate {field} {value!r} (also {section}[{seen[value]}].{field})",
            )
        seen[value] = i


def load_project(path: str | None, cwd: Path) -> Project:
    """Read progdel.yaml: ``path`` if given (``--config``), else ``cwd/progdel.yaml``."""
    file = Path(path) if path else cwd / DEFAULT_FILE
    if not file.is_absolute():
        file = cwd / file
    if not file.exists():
        if path:
            raise InvalidInput(f"{path}: no such file")
        raise InvalidInput(
            f"no {DEFAULT_FILE} in {cwd}: create one (see examples/progdel.yaml) or pass --config PATH"
        )
    source = str(path) if path else DEFAULT_FILE
    docs = parse_documents(read_text(file, source), source)
    if not docs:
        raise InvalidInput(f"{file}: empty; expected environments and apps")
    if len(docs) > 1:
        raise InvalidInput(f"{file}: expected one YAML document, found {len(docs)}")
    return project_from_document(docs[0], file.resolve().parent)
