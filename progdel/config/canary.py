"""Flagger's ``flagger.app/v1beta1`` ``Canary`` and ``MetricTemplate``, as pydantic models.

A Canary file written for Flagger is accepted unchanged, field for field, so the same file can be
applied to a cluster that runs Flagger. Unknown fields are errors naming the field (a typo such as
``stepWieght`` must not silently fall back to a default), except inside the free-form Istio blocks
(``trafficPolicy``, ``match``, ``retries``...) which are kept as opaque dicts and passed through.

What progdel adds lives in annotations, which Flagger ignores:

- ``progdel.dev/no-data``: what a metric with no data (or NaN) means: ``fail`` (Flagger's
  behaviour), ``skip`` (the check passes with a note) or ``hold`` (no advance, no failure).
  Either one word for all metrics or ``name=policy,name=policy``.
- ``progdel.dev/max-infra-errors``: consecutive ticks with infrastructure errors (metrics server
  or API unreachable) before the canary is rolled back; default 5.
- ``progdel.dev/judge``: the metrics also judged against the primary by the statistical judge
  (``progdel.metrics.comparison``), with its options per metric (``JudgeSettings``).

Defaults follow Flagger, with one deliberate difference: analysis intervals under 10s are
honoured rather than raised to 10s, so demos and tests can run fast.
"""

from __future__ import annotations

import enum
import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from progdel.config.yamlfile import Document, format_path, load_documents, validate
from progdel.errors import InvalidInput
from progdel.metrics.comparison import (
    DEFAULT_MIN_SAMPLES,
    DEFAULT_SAMPLES_PER_INTERVAL,
    DEFAULT_SIGNIFICANCE,
    DEFAULT_TOLERANCE,
    Direction,
)

API_VERSION = "flagger.app/v1beta1"
BUILTIN_METRICS = ("request-success-rate", "request-duration")
ANNOTATION_NO_DATA = "progdel.dev/no-data"
ANNOTATION_MAX_INFRA_ERRORS = "progdel.dev/max-infra-errors"
ANNOTATION_MANUAL_GATES = "progdel.dev/manual-gates"
ANNOTATION_SPLIT_TOLERANCE = "progdel.dev/split-tolerance"
ANNOTATION_MIN_REQUESTS = "progdel.dev/min-requests"
ANNOTATION_JUDGE = "progdel.dev/judge"
CONFIRM_GATE_NAMES = ("confirm-rollout", "confirm-traffic-increase", "confirm-promotion")
DEFAULT_SPLIT_TOLERANCE = 10.0  # percentage points
DEFAULT_MAX_INFRA_ERRORS = 5

# --------------------------------------------------------------------------------------------
# Go durations
# --------------------------------------------------------------------------------------------

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


def parse_duration(text: str) -> float:
    """Seconds in a Go duration string (``1m``, ``30s``, ``1m30s``, ``500ms``, ``1.5h``).

    Raises ``ValueError`` naming the text when it is not a duration. As in Go, a bare ``0`` is
    allowed and other numbers need a unit.
    """
    s = text.strip()
    if s in ("0", "+0", "-0"):
        return 0.0
    sign = 1.0
    if s[:1] in "+-" and s:
        sign = -1.0 if s[0] == "-" else 1.0
        s = s[1:]
    if not s:
        raise ValueError(f"invalid duration {text!r}")
    pos, total = 0, 0.0
    while pos < len(s):
        m = _DURATION_PART.match(s, pos)
        if m is None:
            raise ValueError(f"invalid duration {text!r} (expected e.g. 30s, 1m, 1m30s, 500ms)")
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    return sign * total


def format_go_duration(seconds: float) -> str:
    """Format like Go's ``time.Duration.String()`` (``500ms``, ``1.2s``, ``1m30s``, ``0s``)."""
    ns = round(seconds * 1e9)
    if ns == 0:
        return "0s"
    neg = ns < 0
    ns = abs(ns)
    sign = "-" if neg else ""
    if ns < 1_000:
        return f"{sign}{ns}ns"
    if ns < 1_000_000:
        return f"{sign}{_trim(ns / 1_000)}µs"
    if ns < 1_000_000_000:
        return f"{sign}{_trim(ns / 1_000_000)}ms"
    hours, rest = divmod(ns, 3_600_000_000_000)
    minutes, rest = divmod(rest, 60_000_000_000)
    secs = _trim(rest / 1e9)
    out = ""
    if hours:
        out += f"{hours}h"
    if hours or minutes:
        out += f"{minutes}m"
    return f"{sign}{out}{secs}s"


def _trim(x: float) -> str:
    text = f"{x:.9f}".rstrip("0").rstrip(".")
    return text or "0"


def format_go_number(x: float) -> str:
    """Format a float as Go's ``%v`` does for the thresholds in events (``99``, ``99.5``)."""
    if x == int(x) and abs(x) < 1e21:
        return str(int(x))
    return repr(float(x))


# --------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------

#: the pattern Flagger's CRD holds durations to (intervals, webhook timeouts): a prefix match
_CRD_DURATION = re.compile(r"^[0-9]+(m|s)")


class _Model(BaseModel):
    """camelCase fields, unknown fields rejected."""

    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True)


class _OpenModel(BaseModel):
    """Kubernetes-owned structures (metadata): unknown fields are kept."""

    model_config = ConfigDict(extra="allow", alias_generator=to_camel, populate_by_name=True)


OpaqueDict = dict[str, Any]

# Ranges, as Kubernetes validates them: an int32 for counts and seconds, a percentage for weights,
# a port number for ports. Flagger's CRD leaves most of them open; a value outside makes no sense
# (maxWeight 150 would promote without the canary ever reaching it) or overflows int32.
INT32_MAX = 2**31 - 1
Int32 = Annotated[int, Field(ge=0, le=INT32_MAX)]
Percent = Annotated[int, Field(ge=0, le=100)]
Port = Annotated[int, Field(ge=1, le=65535)]


class ObjectMeta(_OpenModel):
    name: str
    namespace: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _name_not_empty(cls, v: str) -> str:
        if not v:
            raise ValueError("must not be empty")
        return v


class LocalObjectReference(_Model):
    api_version: str | None = None
    kind: str | None = None
    name: str


class CrossNamespaceObjectReference(LocalObjectReference):
    namespace: str | None = None


class TargetReference(_Model):
    api_version: str = "apps/v1"
    kind: Literal["Deployment", "DaemonSet", "Service", "Service.serving.knative.dev"] | str = "Deployment"
    name: str


class ScalerReplicas(_Model):
    min_replicas: Annotated[int, Field(ge=1, le=INT32_MAX)] | None = None
    max_replicas: Annotated[int, Field(ge=1, le=INT32_MAX)] | None = None


class AutoscalerReference(_Model):
    api_version: str | None = None
    kind: str | None = None
    name: str
    primary_scaler_queries: dict[str, str] | None = None
    primary_scaler_replicas: ScalerReplicas | None = None


class CustomMetadata(_Model):
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class UnmanagedMetadata(_Model):
    """Label and annotation keys of the generated Services that others own: kept as found."""

    labels: list[str] = Field(default_factory=list)
    annotations: list[str] = Field(default_factory=list)


#: Gateway API's Duration (``HTTPRouteTimeouts``): what the HTTPRoute CRD accepts
GATEWAY_DURATION = re.compile(r"^([0-9]{1,5}(h|m|s|ms)){1,4}$")


class CanaryService(_Model):
    """``spec.service``: ports, apex name, and the routing passthrough blocks (kept opaque)."""

    port: Port
    port_name: str = "http"
    target_port: Port | str | None = None
    port_discovery: bool = False
    app_protocol: str | None = None
    traffic_distribution: Literal["PreferClose", "PreferSameZone", "PreferSameNode"] | None = None
    headless: bool = False
    name: str | None = None
    hosts: list[str] = Field(default_factory=list)
    gateways: list[str] = Field(default_factory=list)
    gateway_refs: list[OpaqueDict] | None = None
    delegation: bool = False
    traffic_policy: OpaqueDict | None = None
    match: list[OpaqueDict] | None = None
    rewrite: OpaqueDict | None = None
    retries: OpaqueDict | None = None
    timeout: str | None = None
    backend_timeout: str | None = None
    headers: OpaqueDict | None = None
    cors_policy: OpaqueDict | None = None
    mirror: list[OpaqueDict] | None = None  # Gateway API RequestMirror filters
    apex: CustomMetadata | None = None
    primary: CustomMetadata | None = None
    canary: CustomMetadata | None = None
    unmanaged_metadata: UnmanagedMetadata | None = None
    mesh_name: str | None = None  # App Mesh's; unused by the Istio and Gateway API routers
    backends: list[str] | None = None  # App Mesh's too

    @field_validator("timeout", "backend_timeout")
    @classmethod
    def _timeout(cls, v: str | None) -> str | None:
        if v is not None:
            parse_duration(v)
        return v


class ThresholdRange(_Model):
    min: float | None = Field(default=None, allow_inf_nan=False)
    max: float | None = Field(default=None, allow_inf_nan=False)

    @model_validator(mode="after")
    def _ordered(self) -> ThresholdRange:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {format_go_number(self.min)} is above max {format_go_number(self.max)}")
        return self


class TemplateRef(_Model):
    name: str
    namespace: str | None = None


class CanaryMetric(_Model):
    """One entry of ``analysis.metrics``."""

    name: str
    interval: str = "1m"
    threshold: float | None = Field(default=None, allow_inf_nan=False)  # deprecated: min for success rate
    threshold_range: ThresholdRange | None = None
    query: str | None = None  # deprecated by Flagger in favour of templateRef
    template_ref: TemplateRef | None = None
    template_variables: dict[str, str] = Field(default_factory=dict)

    @field_validator("interval")
    @classmethod
    def _interval(cls, v: str) -> str:
        parse_duration(v)
        return v

    @model_validator(mode="after")
    def _zero_threshold(self) -> CanaryMetric:
        if self.threshold is None and self.threshold_range is None:
            self.threshold = 0.0  # Flagger's zero value: its checks compare with 0
        return self

    @property
    def is_builtin(self) -> bool:
        return self.template_ref is None and self.query is None and self.name in BUILTIN_METRICS


class CanaryWebhook(_Model):
    type: (
        Literal[
            "",
            "confirm-rollout",
            "pre-rollout",
            "rollout",
            "confirm-traffic-increase",
            "confirm-promotion",
            "post-rollout",
            "rollback",
            "event",
        ]
        | None
    ) = None
    name: str
    url: str
    mute_alert: bool = False
    timeout: str = "10s"
    retries: Int32 = 0
    metadata: dict[str, str] | None = None
    disable_tls: bool = Field(default=False, alias="disableTLS")

    @field_validator("timeout")
    @classmethod
    def _timeout(cls, v: str) -> str:
        parse_duration(v)
        if not _CRD_DURATION.match(v):
            raise ValueError(
                f"{v!r} is refused by Flagger's CRD (pattern ^[0-9]+(m|s)): write whole seconds or "
                "minutes, e.g. 2s"
            )
        return v


class AlertProviderRef(_Model):
    name: str
    namespace: str | None = None


class CanaryAlert(_Model):
    name: str
    severity: Literal["info", "warn", "error"] = "info"
    provider_ref: AlertProviderRef

    @field_validator("severity", mode="before")
    @classmethod
    def _severity(cls, v: object) -> object:
        return "info" if v == "" else v  # the CRD allows "", which Flagger reads as info


class SessionAffinity(_Model):
    cookie_name: str | None = None
    max_age: Int32 | None = None
    primary_cookie_name: str | None = None
    domain: str | None = None
    http_only: bool = False
    partitioned: bool = False
    path: str | None = None
    same_site: Literal["Strict", "Lax", "None"] | None = None
    secure: bool = False

    def cookie_attributes(self) -> str:
        """What follows ``name=value; Max-Age=N`` in the Set-Cookie header, in Flagger's order."""
        out = ""
        if self.domain:
            out += f"; Domain={self.domain}"
        if self.http_only:
            out += "; HttpOnly"
        if self.partitioned:
            out += "; Partitioned"
        if self.path:
            out += f"; Path={self.path}"
        if self.same_site:
            out += f"; SameSite={self.same_site}"
        if self.secure:
            out += "; Secure"
        return out


class CanaryAnalysis(_Model):
    """``spec.analysis`` with Flagger's defaults (``maxWeight`` is filled in when absent)."""

    interval: str = "60s"
    threshold: Annotated[int, Field(le=INT32_MAX)] = 1
    max_weight: Percent | None = None
    step_weight: Percent = 0
    step_weights: list[Percent] = Field(default_factory=list)
    step_weight_promotion: Percent = 0
    iterations: Int32 = 0
    match: list[OpaqueDict] = Field(default_factory=list)
    mirror: bool = False
    mirror_weight: Percent = 0
    primary_ready_threshold: Percent = 100
    canary_ready_threshold: Percent = 100
    session_affinity: SessionAffinity | None = None
    alerts: list[CanaryAlert] = Field(default_factory=list)
    metrics: list[CanaryMetric] = Field(default_factory=list)
    webhooks: list[CanaryWebhook] = Field(default_factory=list)

    @field_validator("interval")
    @classmethod
    def _interval(cls, v: str) -> str:
        if parse_duration(v) < 1:
            raise ValueError(f"interval {v!r} is under 1s")
        return v

    @field_validator("threshold")
    @classmethod
    def _threshold(cls, v: int) -> int:
        if v < 0:
            raise ValueError("must not be negative")
        return max(v, 1)  # Flagger reads 0 (its zero value) as 1

    @field_validator("step_weights")
    @classmethod
    def _step_weights(cls, v: list[int]) -> list[int]:
        if any(b <= a for a, b in itertools.pairwise(v)):
            raise ValueError("must be strictly increasing")
        if any(w <= 0 for w in v):
            raise ValueError("weights must be positive")
        return v

    @model_validator(mode="after")
    def _defaults(self) -> CanaryAnalysis:
        if self.step_weights:
            self.max_weight = min(100, self.step_weights[-1])
        elif not self.max_weight:
            self.max_weight = 100
        return self

    @property
    def interval_seconds(self) -> float:
        """The tick interval; progdel honours values down to 1s (Flagger raises them to 10s)."""
        return parse_duration(self.interval)

    @property
    def effective_max_weight(self) -> int:
        return self.max_weight or 100


class CanarySpecBody(_Model):
    """``spec`` of a Canary."""

    provider: str | None = None
    metrics_server: str | None = None
    target_ref: TargetReference
    autoscaler_ref: AutoscalerReference | None = None
    ingress_ref: LocalObjectReference | None = None
    route_ref: LocalObjectReference | None = None
    upstream_ref: CrossNamespaceObjectReference | None = None
    service: CanaryService
    analysis: CanaryAnalysis | None = None
    skip_analysis: bool = False
    progress_deadline_seconds: Int32 = 600
    revert_on_deletion: bool = False
    suspend: bool = False

    @model_validator(mode="after")
    def _service_defaults(self) -> CanarySpecBody:
        if self.service.name is None:
            self.service.name = self.target_ref.name
        if self.service.target_port is None:
            self.service.target_port = self.service.port
        return self

    def get_analysis(self) -> CanaryAnalysis:
        return self.analysis or CanaryAnalysis()


class Canary(_Model):
    """A ``flagger.app/v1beta1`` Canary (``status`` from the cluster is kept as a plain dict)."""

    api_version: Literal["flagger.app/v1beta1"]
    kind: Literal["Canary"]
    metadata: ObjectMeta
    spec: CanarySpecBody
    status: OpaqueDict | None = None

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def namespace(self) -> str:
        return self.metadata.namespace or "default"

    @property
    def target_name(self) -> str:
        return self.spec.target_ref.name

    @property
    def apex_name(self) -> str:
        return self.spec.service.name or self.spec.target_ref.name

    @property
    def primary_name(self) -> str:
        return f"{self.spec.target_ref.name}-primary"

    @property
    def analysis(self) -> CanaryAnalysis:
        return self.spec.get_analysis()

    @property
    def skip_analysis(self) -> bool:
        """``skipAnalysis``, also true when there is no analysis block at all (as in Flagger)."""
        return self.spec.skip_analysis or self.spec.analysis is None

    @property
    def strategy(self) -> StrategyKind:
        return strategy_of(self)

    @property
    def settings(self) -> ProgdelSettings:
        return parse_settings(self.metadata.annotations)


class MetricTemplateProvider(_Model):
    type: str = "prometheus"
    address: str | None = None
    secret_ref: LocalObjectReference | None = None
    headers: dict[str, list[str]] | None = None  # Go's http.Header: each name has a list of values
    insecure_skip_verify: bool = False
    region: str | None = None


class MetricTemplateSpec(_Model):
    provider: MetricTemplateProvider = Field(default_factory=MetricTemplateProvider)
    query: str


class MetricTemplate(_Model):
    api_version: Literal["flagger.app/v1beta1"]
    kind: Literal["MetricTemplate"]
    metadata: ObjectMeta
    spec: MetricTemplateSpec

    @property
    def namespace(self) -> str:
        return self.metadata.namespace or "default"


# --------------------------------------------------------------------------------------------
# Strategy and progdel's settings
# --------------------------------------------------------------------------------------------


class StrategyKind(enum.StrEnum):
    CANARY = "canary"
    AB = "ab"
    BLUEGREEN = "bluegreen"


def strategy_of(canary: Canary) -> StrategyKind:
    """As Flagger: match + iterations is A/B, iterations alone Blue/Green, else progressive."""
    a = canary.analysis
    if a.iterations > 0 and a.match:
        return StrategyKind.AB
    if a.iterations > 0:
        return StrategyKind.BLUEGREEN
    return StrategyKind.CANARY


class NoDataPolicy(enum.StrEnum):
    FAIL = "fail"
    SKIP = "skip"
    HOLD = "hold"


@dataclass(frozen=True)
class ProgdelSettings:
    """progdel's additions, read from the Canary's annotations."""

    default_no_data: NoDataPolicy = NoDataPolicy.FAIL
    no_data: dict[str, NoDataPolicy] = field(default_factory=dict)
    max_infra_errors: int = DEFAULT_MAX_INFRA_ERRORS
    manual_gates: frozenset[str] = frozenset()
    split_tolerance: float | None = DEFAULT_SPLIT_TOLERANCE  # None: the served split is not checked
    min_requests: int = 0
    """Requests the canary must have served in the metrics' window before they are judged (0: off)."""
    judges: dict[str, JudgeSettings] = field(default_factory=dict)
    """The metrics judged against the primary too (``progdel.dev/judge``), by name."""

    def no_data_policy(self, metric: str) -> NoDataPolicy:
        return self.no_data.get(metric, self.default_no_data)


@dataclass(frozen=True)
class JudgeSettings:
    """How one metric is compared with the primary (``progdel.dev/judge``).

    ``direction`` None follows the metric's thresholds: a ``max`` only guards an increase, a
    ``min`` only a decrease, both either. ``step`` (a Go duration) is the spacing of the samples
    and the window each one is measured over (the query's ``{{ interval }}``); None: the metric's
    interval divided by ten."""

    direction: Direction | None = None
    significance: float = DEFAULT_SIGNIFICANCE
    tolerance: float = DEFAULT_TOLERANCE
    min_samples: int = DEFAULT_MIN_SAMPLES
    step: str | None = None

    def step_seconds(self, interval_seconds: float) -> float:
        if self.step is not None:
            return parse_duration(self.step)
        return max(1.0, interval_seconds / DEFAULT_SAMPLES_PER_INTERVAL)


_JUDGE_OPTIONS = ("direction", "significance", "tolerance", "minSamples", "step")


def _fraction(raw: Any, what: str) -> float:
    """``10%`` or ``0.1``; a bare number above 1 is refused (``10`` is ambiguous)."""
    text = str(raw).strip()
    try:
        if text.endswith("%"):
            return float(text[:-1]) / 100
        value = float(text)
    except ValueError:
        raise ValueError(f"{what}: {raw!r} is not a number or a percentage") from None
    if value > 1:
        raise ValueError(f"{what}: {raw!r} is ambiguous: write a percentage ({text}%) or a fraction")
    return value


def _judge_settings(metric: str, options: Any) -> JudgeSettings:
    what = f"{ANNOTATION_JUDGE}: {metric}"
    if options is None:
        return JudgeSettings()
    if not isinstance(options, dict):
        raise ValueError(f"{what}: expected a mapping of options ({', '.join(_JUDGE_OPTIONS)})")
    unknown = sorted(str(k) for k in options if k not in _JUDGE_OPTIONS)
    if unknown:
        raise ValueError(f"{what}: unknown option {unknown[0]!r} (known: {', '.join(_JUDGE_OPTIONS)})")
    direction = None
    if options.get("direction") is not None:
        try:
            direction = Direction(str(options["direction"]).strip().lower())
        except ValueError:
            raise ValueError(
                f"{what}: direction {options['direction']!r} is not increase, decrease or either"
            ) from None
    significance = DEFAULT_SIGNIFICANCE
    if options.get("significance") is not None:
        significance = _fraction(options["significance"], f"{what}: significance")
        if not 0 < significance <= 0.5:
            raise ValueError(f"{what}: significance must be above 0 and at most 0.5")
    tolerance = DEFAULT_TOLERANCE
    if options.get("tolerance") is not None:
        tolerance = _fraction(options["tolerance"], f"{what}: tolerance")
        if tolerance < 0:
            raise ValueError(f"{what}: tolerance must not be negative")
    min_samples = DEFAULT_MIN_SAMPLES
    if options.get("minSamples") is not None:
        raw = options["minSamples"]
        if isinstance(raw, bool) or not isinstance(raw, int) or raw < 3:
            raise ValueError(f"{what}: minSamples must be a whole number of at least 3")
        min_samples = raw
    step = None
    if options.get("step") is not None:
        step = str(options["step"]).strip()
        try:
            seconds = parse_duration(step)
        except ValueError as err:
            raise ValueError(f"{what}: step: {err}") from None
        if seconds <= 0:
            raise ValueError(f"{what}: step must be longer than 0")
    return JudgeSettings(direction, significance, tolerance, min_samples, step)


def _parse_judges(raw: str | None) -> dict[str, JudgeSettings]:
    """``progdel.dev/judge``: metric names (``a, b``), or YAML mapping each name to its options."""
    if raw is None or not raw.strip():
        return {}
    try:
        data = yaml.safe_load(raw)
    except yaml.YAMLError:
        raise ValueError(f"{ANNOTATION_JUDGE}: not metric names or a YAML mapping of metric names") from None
    if isinstance(data, str):
        data = [name.strip() for name in data.split(",") if name.strip()]
    if isinstance(data, list):
        if not all(isinstance(name, str) for name in data):
            raise ValueError(f"{ANNOTATION_JUDGE}: expected metric names")
        return {name: JudgeSettings() for name in data}
    if isinstance(data, dict):
        return {str(name): _judge_settings(str(name), options) for name, options in data.items()}
    raise ValueError(f"{ANNOTATION_JUDGE}: not metric names or a YAML mapping of metric names")


def _policy(word: str, what: str) -> NoDataPolicy:
    try:
        return NoDataPolicy(word.strip().lower())
    except ValueError:
        raise ValueError(f"{what}: unknown policy {word.strip()!r} (expected fail, skip or hold)") from None


def parse_settings(annotations: dict[str, str]) -> ProgdelSettings:
    """Parse ``progdel.dev/*`` annotations; ``ValueError`` names the annotation at fault."""
    default = NoDataPolicy.FAIL
    per_metric: dict[str, NoDataPolicy] = {}
    raw = annotations.get(ANNOTATION_NO_DATA)
    if raw is not None and raw.strip():
        for item in raw.split(","):
            item = item.strip()
            if not item:
                continue
            if "=" in item:
                name, _, word = item.partition("=")
                if not name.strip():
                    raise ValueError(f"{ANNOTATION_NO_DATA}: empty metric name in {item!r}")
                per_metric[name.strip()] = _policy(word, ANNOTATION_NO_DATA)
            else:
                default = _policy(item, ANNOTATION_NO_DATA)
    max_infra = DEFAULT_MAX_INFRA_ERRORS
    raw = annotations.get(ANNOTATION_MAX_INFRA_ERRORS)
    if raw is not None:
        try:
            max_infra = int(raw.strip())
        except ValueError:
            raise ValueError(f"{ANNOTATION_MAX_INFRA_ERRORS}: {raw!r} is not an integer") from None
        if max_infra < 1:
            raise ValueError(f"{ANNOTATION_MAX_INFRA_ERRORS}: must be at least 1")
    gates = frozenset(w.strip() for w in annotations.get(ANNOTATION_MANUAL_GATES, "").split(",") if w.strip())
    unknown = sorted(gates - set(CONFIRM_GATE_NAMES))
    if unknown:
        raise ValueError(
            f"{ANNOTATION_MANUAL_GATES}: {', '.join(unknown)} is not a confirm gate "
            f"(one of {', '.join(CONFIRM_GATE_NAMES)})"
        )
    min_requests = 0
    raw = annotations.get(ANNOTATION_MIN_REQUESTS)
    if raw is not None and raw.strip():
        try:
            min_requests = int(raw.strip())
        except ValueError:
            raise ValueError(f"{ANNOTATION_MIN_REQUESTS}: {raw!r} is not a number of requests") from None
        if min_requests < 0:
            raise ValueError(f"{ANNOTATION_MIN_REQUESTS}: must not be negative")
    return ProgdelSettings(
        default_no_data=default,
        no_data=per_metric,
        max_infra_errors=max_infra,
        manual_gates=gates,
        split_tolerance=_split_tolerance(annotations.get(ANNOTATION_SPLIT_TOLERANCE)),
        min_requests=min_requests,
        judges=_parse_judges(annotations.get(ANNOTATION_JUDGE)),
    )


def _split_tolerance(raw: str | None) -> float | None:
    """Percentage points from ``progdel.dev/split-tolerance``; ``None`` for ``off``."""
    if raw is None or not raw.strip():
        return DEFAULT_SPLIT_TOLERANCE
    text = raw.strip().lower().removesuffix("%")
    if text in ("off", "false", "none"):
        return None
    try:
        value = float(text)
    except ValueError:
        raise ValueError(
            f"{ANNOTATION_SPLIT_TOLERANCE}: {raw!r} is not a number of percentage points (or 'off')"
        ) from None
    if not 0 <= value <= 100:
        raise ValueError(f"{ANNOTATION_SPLIT_TOLERANCE}: {raw!r} must be between 0 and 100")
    return value


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CanarySpec:
    """A validated Canary and where it came from (a file path, or ``cluster:ns/name``).

    ``document`` is the Canary as it is stored (``v1beta1``: a Flagger 0.x file converted) and
    ``converted`` says what the conversion changed ("" when nothing)."""

    model: Canary
    source: str
    document: dict[str, Any] = field(default_factory=dict)
    converted: str = ""


def _cross_field_problems(canary: Canary) -> list[tuple[tuple[str | int, ...], str]]:
    problems: list[tuple[tuple[str | int, ...], str]] = []
    spec = canary.spec
    if spec.provider == "gatewayapi":
        problems.append(
            (
                ("spec", "provider"),
                "'gatewayapi' is refused by Flagger's CRD: write gatewayapi:v1 (or gatewayapi:v1beta1)",
            )
        )
    if spec.analysis is None:
        problems.append(
            (
                ("spec",),
                "analysis is required (Flagger's CRD refuses a Canary without it; with skipAnalysis "
                "it still needs interval, threshold and stepWeight, stepWeights or iterations)",
            )
        )
    key = "analysis"
    a = spec.analysis
    stepped = a is not None and (a.step_weight > 0 or bool(a.step_weights) or a.iterations > 0)
    if a is not None and not spec.skip_analysis and not stepped:
        problems.append(
            (("spec", key), "one of stepWeight, stepWeights or iterations is required (or skipAnalysis)")
        )
    if a is not None:
        for i, m in enumerate(a.metrics):
            where: tuple[str | int, ...] = ("spec", key, "metrics", i)
            if not (m.name in BUILTIN_METRICS or m.template_ref is not None or m.query):
                problems.append(
                    (
                        (*where, "name"),
                        f"metric {m.name!r} is not built in ({', '.join(BUILTIN_METRICS)}) "
                        "and has no templateRef or query",
                    )
                )
            if m.template_ref is not None and m.query:
                problems.append((where, f"metric {m.name!r} has both templateRef and query"))
    try:
        settings = parse_settings(canary.metadata.annotations)
    except ValueError as err:
        problems.append((("metadata", "annotations"), str(err)))
    else:
        names = {m.name for m in (a.metrics if a else [])}
        for metric in settings.no_data:
            if metric not in names:
                problems.append(
                    (("metadata", "annotations"), f"{ANNOTATION_NO_DATA}: no metric named {metric!r}")
                )
        metrics = {m.name: m for m in (a.metrics if a else [])}
        for metric, judge in settings.judges.items():
            if metric not in metrics:
                problems.append(
                    (("metadata", "annotations"), f"{ANNOTATION_JUDGE}: no metric named {metric!r}")
                )
                continue
            interval = parse_duration(metrics[metric].interval)
            step = judge.step_seconds(interval)
            samples = int(interval // step)
            if samples < judge.min_samples:
                problems.append(
                    (
                        ("metadata", "annotations"),
                        f"{ANNOTATION_JUDGE}: {metric}: a step of {format_go_duration(step)} gives "
                        f"{samples} samples over its interval {metrics[metric].interval}, fewer than "
                        f"minSamples {judge.min_samples}: shorten the step or lengthen the interval",
                    )
                )
    return problems


def _check(canary: Canary, doc: Document) -> None:
    from progdel.config.crdcheck import crd_problems

    problems = _cross_field_problems(canary)
    named = {path for path, _ in problems}
    problems += [(path, msg) for path, msg in crd_problems(doc.data, "Canary") if path not in named]
    _raise_first(problems, doc)


def _raise_first(problems: list[tuple[tuple[str | int, ...], str]], doc: Document) -> None:
    if problems:
        path, msg = problems[0]
        line = doc.line_of(path)
        where = f"{doc.source}:{line}" if line else doc.source
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise InvalidInput(f"{where}: {format_path(path)}: {msg}{more}")


def converted_document(doc: Document) -> tuple[Document, str]:
    """``doc`` as ``v1beta1`` (a Flagger 0.x Canary converted, see ``config.legacy``), with the
    line of every node kept, and what was converted ("" when nothing)."""
    from progdel.config.legacy import convert

    try:
        data, converted, back = convert(doc.data)
    except InvalidInput as err:
        line = doc.line_of(("spec", "canaryAnalysis"))
        raise InvalidInput(f"{doc.source}:{line}: {err}" if line else f"{doc.source}: {err}") from None
    if not converted:
        return doc, ""
    lines: dict[tuple[str | int, ...], int] = {}

    def walk(node: Any, path: tuple[str | int, ...]) -> None:
        line = doc.line_of(back(path))
        if line is not None:
            lines[path] = line
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, (*path, k))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, (*path, i))

    walk(data, ())
    return Document(data=data, source=doc.source, lines=lines), converted


def canary_from_document(doc: Document) -> CanarySpec:
    if not isinstance(doc.data, dict):
        raise InvalidInput(f"{doc.source}: expected a Canary object, got {type(doc.data).__name__}")
    doc, converted = converted_document(doc)
    canary = validate(Canary, doc)
    _check(canary, doc)
    return CanarySpec(canary, doc.source, doc.data, converted)


def parse_canary(data: dict[str, Any], source: str) -> CanarySpec:
    """Validate a Canary given as a dict (e.g. read from the cluster); errors name ``source``."""
    return canary_from_document(Document(data=data, source=source))


def parse_canary_fields(data: dict[str, Any], source: str) -> CanarySpec:
    """The fields of a Canary without the rules across them (a metric with neither a template nor
    a query, A/B without iterations...): enough to route and scale a run that must be ended when
    its spec was edited into one ``parse_canary`` refuses."""
    return CanarySpec(validate(Canary, Document(data=data, source=source)), source)


def load_canary(path: str | Path) -> CanarySpec:
    """Load the one ``Canary`` in a YAML file (other kinds in the file, such as MetricTemplates,
    are ignored here; see ``load_metric_templates``)."""
    return canary_from_document(canary_document(path))


def canary_document(path: str | Path, docs: list[Document] | None = None) -> Document:
    """The one ``Canary`` document of a YAML file, as written (not converted nor validated)."""
    docs = load_documents(path) if docs is None else docs
    canaries = [d for d in docs if isinstance(d.data, dict) and d.data.get("kind") == "Canary"]
    if not canaries:
        if len(docs) == 1:  # let validation say what is wrong with it (kind, apiVersion...)
            return docs[0]
        raise InvalidInput(f"{path}: no Canary (kind: Canary) in the file")
    if len(canaries) > 1:
        line = canaries[1].line_of(())
        raise InvalidInput(f"{path}:{line}: more than one Canary in the file; give one per file")
    return canaries[0]


def _metric_template(doc: Document) -> MetricTemplate:
    from progdel.config.crdcheck import crd_problems

    template = validate(MetricTemplate, doc)
    _raise_first(crd_problems(doc.data, "MetricTemplate"), doc)
    return template


def load_metric_templates(path: str | Path) -> list[MetricTemplate]:
    """Every ``MetricTemplate`` in a YAML file (other kinds are ignored), held to Flagger's CRD."""
    out: list[MetricTemplate] = []
    for doc in load_documents(path):
        if isinstance(doc.data, dict) and doc.data.get("kind") == "MetricTemplate":
            out.append(_metric_template(doc))
    return out


def parse_metric_template(data: dict[str, Any], source: str) -> MetricTemplate:
    return _metric_template(Document(data=data, source=source))
