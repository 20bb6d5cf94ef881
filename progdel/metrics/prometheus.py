"""Prometheus over its HTTP API (also Thanos, Mimir, Cortex: the same ``/api/v1/query``).

Every query is evaluated at an explicit ``time=`` so that a run can be replayed against recorded
history and so that all the metrics of one tick are judged at the same instant. The queries of
one tick run concurrently: a tick takes as long as its slowest query, not the sum.

Credentials come from files or the environment only, never from flags (flags end up in shell
history and in ``ps``), and TLS is verified unless a CA file says otherwise.
"""

from __future__ import annotations

import math
import os
import ssl
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import httpx

from progdel.errors import InvalidInput, check_credential
from progdel.metrics.comparison import Samples
from progdel.metrics.provider import MetricsError, MetricsUnreachable, NoData, QueryRejected
from progdel.metrics.templates import MetricQuery
from progdel.metrics.window import step_text, unix

if TYPE_CHECKING:
    from progdel.metrics.window import Prefetch

T = TypeVar("T")

DEFAULT_PROMETHEUS_URL = "http://prometheus.istio-system:9090"

ENV_URL = "PROGDEL_PROMETHEUS_URL"
ENV_TOKEN = "PROGDEL_PROMETHEUS_TOKEN"
ENV_TOKEN_FILE = "PROGDEL_PROMETHEUS_TOKEN_FILE"
ENV_USERNAME = "PROGDEL_PROMETHEUS_USERNAME"
ENV_PASSWORD = "PROGDEL_PROMETHEUS_PASSWORD"
ENV_PASSWORD_FILE = "PROGDEL_PROMETHEUS_PASSWORD_FILE"
ENV_CA_FILE = "PROGDEL_PROMETHEUS_CA_FILE"


def resolve_prometheus_url(
    flag: str | None,
    env: Mapping[str, str] = os.environ,
    metrics_server: str | None = None,
    project_default: str | None = None,
) -> str:
    """The Prometheus URL, first set of: ``--prometheus-url``, ``$PROGDEL_PROMETHEUS_URL``, the
    Canary's ``spec.metricsServer``, progdel.yaml's default, ``http://prometheus.istio-system:9090``."""
    for candidate in (flag, env.get(ENV_URL), metrics_server, project_default):
        if candidate and candidate.strip():
            return candidate.strip().rstrip("/")
    return DEFAULT_PROMETHEUS_URL


def configured_prometheus_url(
    flag: str | None, env: Mapping[str, str] = os.environ, project_default: str | None = None
) -> str:
    """The Prometheus URL the operator chose, the only one progdel's own credentials are for: the
    first of ``--prometheus-url``, ``$PROGDEL_PROMETHEUS_URL``, progdel.yaml's, and the default.
    Unlike ``resolve_prometheus_url`` it never comes from a Canary: whoever may edit a Canary
    could otherwise point progdel's token at a server of theirs."""
    return resolve_prometheus_url(flag, env, None, project_default)


Origin = tuple[str, str, int]


def origin(url: str) -> Origin | None:
    """``(scheme, host, port)`` of an http(s) URL, the port made explicit; None for anything else."""
    try:
        parsed = httpx.URL(url.strip())
    except (httpx.InvalidURL, TypeError, ValueError):
        return None
    scheme = parsed.scheme.lower()
    if scheme not in ("http", "https") or not parsed.raw_host:
        return None
    host = parsed.raw_host.decode("ascii", "replace").lower().rstrip(".")
    return scheme, host, parsed.port or (443 if scheme == "https" else 80)


def same_origin(a: str, b: str) -> bool:
    """True when ``a`` and ``b`` name the same server: scheme, host and port, not a string prefix
    (``http://prom:9090.evil.example`` or ``http://prom:9090@evil.example`` is another server)."""
    oa = origin(a)
    return oa is not None and oa == origin(b)


@dataclass(frozen=True)
class PrometheusCredentials:
    """What progdel sends a Prometheus server. The secrets stay out of ``repr`` (a traceback or a
    debug print shows whether a token is set, never the token)."""

    bearer_token: str | None = field(default=None, repr=False)
    basic_auth: tuple[str, str] | None = field(default=None, repr=False)
    verify: bool | str = True

    @property
    def empty(self) -> bool:
        return self.bearer_token is None and self.basic_auth is None and self.verify is True

    @classmethod
    def from_secret(cls, data: Mapping[str, bytes], where: str) -> PrometheusCredentials:
        """A MetricTemplate's ``secretRef`` Secret, read as Flagger reads it: ``token`` (a bearer
        token), else ``username`` and ``password`` (basic auth), both required. ``where`` names the
        Secret in errors; values never appear in them."""
        values: dict[str, str] = {}
        for key in ("token", "username", "password"):
            if key not in data:
                continue
            try:
                values[key] = data[key].decode("utf-8")
            except UnicodeDecodeError:
                raise InvalidInput(f"{where}: key {key} is not UTF-8 text") from None
            check_credential(values[key], f"{where}: key {key}")
        if "token" in values:
            return cls(bearer_token=values["token"] or None)
        for key in ("username", "password"):
            if key not in values:
                raise InvalidInput(f"{where}: no key token, and no key {key} for basic auth")
        return cls(basic_auth=(values["username"], values["password"]))


def _read_secret_file(path: str, env_name: str) -> str:
    try:
        value = Path(path).read_text().strip()
    except OSError as err:
        raise InvalidInput(f"{env_name}={path}: cannot read: {err.strerror or err}") from None
    except UnicodeDecodeError:
        raise InvalidInput(f"{env_name}={path}: not UTF-8 text") from None
    check_credential(value, f"{env_name}={path}: the file")
    return value


def resolve_prometheus_credentials(env: Mapping[str, str] = os.environ) -> PrometheusCredentials:
    """Credentials from the environment: a bearer token (``PROGDEL_PROMETHEUS_TOKEN`` or
    ``PROGDEL_PROMETHEUS_TOKEN_FILE``), or basic auth (``PROGDEL_PROMETHEUS_USERNAME`` with
    ``PROGDEL_PROMETHEUS_PASSWORD_FILE`` or ``PROGDEL_PROMETHEUS_PASSWORD``); a private CA in
    ``PROGDEL_PROMETHEUS_CA_FILE``. Setting both a token and a username is an error, and so is a
    value with a control character."""
    for name in (ENV_TOKEN, ENV_USERNAME, ENV_PASSWORD):
        check_credential(env.get(name, ""), name)
    token = env.get(ENV_TOKEN) or None
    if env.get(ENV_TOKEN_FILE):
        token = _read_secret_file(env[ENV_TOKEN_FILE], ENV_TOKEN_FILE)
    basic: tuple[str, str] | None = None
    if env.get(ENV_USERNAME):
        if env.get(ENV_PASSWORD_FILE):
            password = _read_secret_file(env[ENV_PASSWORD_FILE], ENV_PASSWORD_FILE)
        else:
            password = env.get(ENV_PASSWORD, "")
        basic = (env[ENV_USERNAME], password)
    if token and basic:
        raise InvalidInput(f"both a Prometheus token and {ENV_USERNAME} are set; use one")
    verify: bool | str = True
    if env.get(ENV_CA_FILE):
        ca = env[ENV_CA_FILE]
        if not Path(ca).is_file():
            raise InvalidInput(f"{ENV_CA_FILE}={ca}: no such file")
        verify = ca
    return PrometheusCredentials(bearer_token=token, basic_auth=basic, verify=verify)


def tls_context(verify: bool | str, cert: tuple[str, str] | None = None) -> ssl.SSLContext | bool:
    """What httpx takes as ``verify``: a CA file (``verify`` a path) and a client certificate
    are loaded into a context, as httpx no longer takes them as paths."""
    if isinstance(verify, bool) and cert is None:
        return verify
    ctx = httpx.create_ssl_context(
        verify=ssl.create_default_context(cafile=verify) if isinstance(verify, str) else verify
    )
    if cert is not None:
        ctx.load_cert_chain(*cert)
    return ctx


QUERY_TIMEOUT = 5.0
"""Seconds a query may take before Prometheus counts as unreachable for this tick."""


class PrometheusProvider:
    """Instant queries against one Prometheus-compatible server.

    ``query`` returns one float: for a vector the value of the **last** series (as Flagger),
    for a scalar its value. A matrix is an error (the query needs an aggregation), an empty
    result or NaN raises ``NoData``.

    With ``prefetch`` set (a replay's ticks), ``query_many`` and ``query_range_many`` answer from
    a few range queries over the whole window (``progdel.metrics.window``); ``sent`` counts the
    requests sent.
    """

    def __init__(
        self,
        url: str,
        *,
        bearer_token: str | None = None,
        basic_auth: tuple[str, str] | None = None,
        verify: bool | str = True,
        timeout: float = QUERY_TIMEOUT,
        headers: Mapping[str, str] | None = None,
        max_concurrency: int = 8,
        via: str | None = None,
        auth: httpx.Auth | None = None,
        cert: tuple[str, str] | None = None,
    ) -> None:
        """``via``: the base URL requests really go to (a proxy for ``url``, with its own ``auth``,
        ``cert`` and ``verify``); messages keep naming ``url``."""
        self.url = url.rstrip("/")
        # what messages call the server: its URL, and how it is reached when through a proxy
        self.where = self.url + (" (through the Kubernetes API's service proxy)" if via else "")
        all_headers = dict(headers or {})
        if bearer_token:
            all_headers["Authorization"] = f"Bearer {bearer_token}"
        self._client = httpx.Client(
            base_url=(via or self.url).rstrip("/"),
            headers=all_headers,
            auth=auth if auth is not None else (httpx.BasicAuth(*basic_auth) if basic_auth else None),
            verify=tls_context(verify, cert),
            timeout=timeout,
        )
        self._timeout = timeout
        self._max_concurrency = max(1, max_concurrency)
        self.prefetch: Prefetch | None = None
        self.sent = 0
        self._count = threading.Lock()

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> PrometheusProvider:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def is_online(self) -> bool:
        """Whether the server answers a trivial query (used when a canary initialises)."""
        try:
            return self.query("vector(1)", datetime.now(UTC)) == 1.0
        except MetricsError:
            return False

    def _get(self, path: str, params: Mapping[str, str], query: str) -> Mapping[str, Any]:
        """The ``data`` of a successful answer; the errors of ``query`` otherwise."""
        with self._count:
            self.sent += 1
        try:
            resp = self._client.get(path, params=params)
        except httpx.TimeoutException:
            raise MetricsUnreachable(
                f"Prometheus at {self.where} did not answer within {self._timeout:g}s"
            ) from None
        except httpx.HTTPError as err:
            raise MetricsUnreachable(
                f"cannot reach Prometheus at {self.where}: {_reason(err, self.url)}"
            ) from None
        body = _json(resp)
        if resp.status_code in (400, 422):
            detail = body.get("error") if isinstance(body, dict) else None
            raise QueryRejected(
                f"Prometheus at {self.where} rejected the query: {detail or resp.text.strip()[:200]}"
                f" (query: {query})"
            )
        if resp.status_code >= 400:
            detail = (body.get("error") or body.get("message")) if isinstance(body, dict) else None
            detail = detail or resp.text.strip()[:200]
            raise MetricsUnreachable(f"Prometheus at {self.where} answered HTTP {resp.status_code}: {detail}")
        if not isinstance(body, dict) or body.get("status") != "success":
            raise MetricsUnreachable(
                f"Prometheus at {self.where} sent an unexpected answer: {resp.text[:200]}"
            )
        return body.get("data") or {}

    def query(self, query: str, at: datetime) -> float:
        data = self._get("/api/v1/query", {"query": query, "time": unix(at)}, query)
        return _value(data, self.where)

    def matrix(self, query: str, start: str, end: str, step: str) -> list[dict[str, Any]]:
        """The series of a range query, as Prometheus sends them (``start``, ``end`` and ``step``
        in seconds, as sent)."""
        params = {"query": query, "start": start, "end": end, "step": step}
        data = self._get("/api/v1/query_range", params, query)
        if data.get("resultType") != "matrix":
            raise MetricsUnreachable(
                f"Prometheus at {self.where} answered a range query with {data.get('resultType')!r}"
            )
        return list(data.get("result") or [])

    def query_range(self, query: str, start: datetime, end: datetime, step: float) -> list[float]:
        """The values of ``query`` from ``start`` to ``end`` every ``step`` seconds, oldest first:
        those of the **last** series (as ``query``), NaN and infinite values left out; [] when
        there are none."""
        result = self.matrix(query, unix(start), unix(end), step_text(step))
        if not result:
            return []
        return self.finite([raw for _ts, raw in result[-1].get("values") or []])

    @staticmethod
    def finite(raws: Sequence[Any]) -> list[float]:
        """The finite numbers among a series' raw values."""
        values = []
        for raw in raws:
            try:
                value = float(raw)
            except (TypeError, ValueError):
                continue
            if math.isfinite(value):
                values.append(value)
        return values

    def number(self, raw: Any) -> float:
        """A raw value as ``query`` reads it: NaN is no data, text that is no number an error."""
        return _to_float(raw, self.where)

    def query_range_many(
        self, queries: Sequence[tuple[str, str]], start: datetime, end: datetime, step: float
    ) -> dict[str, list[float] | MetricsError]:
        """``query_range`` for the ``(name, query)`` pairs at once; each result is its values or its
        error (never raised)."""
        if self.prefetch is not None:
            return self.prefetch.query_range_many(queries, start, end, step)
        return self.range_many(queries, start, end, step)

    def range_many(
        self, queries: Sequence[tuple[str, str]], start: datetime, end: datetime, step: float
    ) -> dict[str, list[float] | MetricsError]:
        """``query_range_many``, each by its own range query."""
        return self.run_many(lambda q: self.query_range(q, start, end, step), queries)

    def query_many(self, queries: Sequence[tuple[str, str]], at: datetime) -> dict[str, float | MetricsError]:
        """Run the queries of one tick at once; each result is its value or its error."""
        if self.prefetch is not None:
            return self.prefetch.query_many(queries, at)
        return self.instant_many(queries, at)

    def instant_many(
        self, queries: Sequence[tuple[str, str]], at: datetime
    ) -> dict[str, float | MetricsError]:
        """``query_many``, each by its own instant query."""
        return self.run_many(lambda q: self.query(q, at), queries)

    def run_many(
        self, run: Callable[[str], T], queries: Sequence[tuple[str, str]]
    ) -> dict[str, T | MetricsError]:
        """``run`` on the query of each ``(name, query)`` pair, concurrently: its result or its
        error by name (never raised)."""
        results: dict[str, T | MetricsError] = {}
        if not queries:
            return results

        def one(promql: str) -> T | MetricsError:
            try:
                return run(promql)
            except MetricsError as err:
                return err

        with ThreadPoolExecutor(max_workers=min(self._max_concurrency, len(queries))) as pool:
            futures = {name: pool.submit(one, promql) for name, promql in queries}
            for name, fut in futures.items():
                results[name] = fut.result()
        return results


def compared_samples(
    provider: PrometheusProvider, query: MetricQuery, at: datetime
) -> Samples | MetricsError:
    """The canary's and the primary's samples of a judged metric (``query.comparison``) over its
    window ending at ``at``, both range queries at once, scaled as the metric's value; or the first
    error (never raised)."""
    compared = query.comparison
    assert compared is not None
    start = at - timedelta(seconds=compared.window - compared.step)
    pair = [("canary", compared.canary), ("primary", compared.primary)]
    got = provider.query_range_many(pair, start, at, compared.step)
    canary, primary = got["canary"], got["primary"]
    if isinstance(canary, MetricsError):
        return canary
    if isinstance(primary, MetricsError):
        return primary
    return Samples(tuple(v * query.scale for v in canary), tuple(v * query.scale for v in primary))


def _reason(err: httpx.HTTPError, url: str = "") -> str:
    if isinstance(err, httpx.ConnectError):
        text = str(err)
        if "refused" in text.lower():
            return "connection refused"
        if "Name or service not known" in text or "nodename nor servname" in text:
            return "host not found" + in_cluster_hint(url)
        return f"connection failed ({err})"
    return str(err) or type(err).__name__


@dataclass(frozen=True)
class ServiceAddress:
    scheme: str
    service: str
    namespace: str
    port: int
    host: str

    def proxy_path(self) -> str:
        return f"/api/v1/namespaces/{self.namespace}/services/{self.scheme}:{self.service}:{self.port}/proxy"


def service_address(url: str) -> ServiceAddress | None:
    """The cluster Service ``url`` names (``http://NAME.NAMESPACE[.svc[.cluster.local]]:PORT``), or
    None for any other address."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        return None
    labels = parsed.host.removesuffix(".cluster.local").removesuffix(".svc").split(".")
    if parsed.scheme not in ("http", "https") or len(labels) != 2 or not all(labels):
        return None
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    return ServiceAddress(parsed.scheme, labels[0], labels[1], port, parsed.host)


def in_cluster_hint(url: str) -> str:
    """For a URL naming a cluster Service (``http://prometheus.istio-system:9090``), which only
    resolves inside the cluster: how to reach it from here."""
    address = service_address(url)
    if address is None:
        return ""
    return (
        f" (an in-cluster address: from outside the cluster run 'kubectl -n {address.namespace} "
        f"port-forward svc/{address.service} {address.port}' and pass --prometheus-url "
        f"http://127.0.0.1:{address.port})"
    )


def _json(resp: httpx.Response) -> Any:
    try:
        return resp.json()
    except ValueError:
        return None


def _to_float(raw: Any, url: str) -> float:
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise MetricsUnreachable(f"Prometheus at {url} returned a non-numeric value {raw!r}") from None
    if math.isnan(value):
        raise NoData("no values found (NaN)")
    return value


def _value(data: Mapping[str, Any], url: str) -> float:
    kind = data.get("resultType")
    result = data.get("result")
    if kind == "scalar":
        return _to_float(result[1] if isinstance(result, list) and len(result) == 2 else None, url)
    if kind == "vector":
        if not result:
            raise NoData("no values found")
        last = result[-1]
        return _to_float((last.get("value") or [None, None])[1], url)
    if kind == "matrix":
        raise QueryRejected(
            "the query returns a range vector (matrix); use an instant vector, e.g. wrap it in sum(rate(...))"
        )
    raise MetricsUnreachable(f"Prometheus at {url} returned an unsupported result type {kind!r}")
