"""podinfo in the sandbox: the part of its HTTP API that Flagger's tutorials and tests use.

Flagger's tutorials deploy ``ghcr.io/stefanprodan/podinfo:TAG`` (or ``stefanprodan/podinfo``)
and drive it with ``hey`` and ``curl``. In ``progdel sandbox up --mesh`` each replica of such
a Deployment is one process of this module, configured by the container's own
``command``/``args`` (podinfo's flags, ``--flag=value`` or ``--flag value``) and its
``PODINFO_*`` environment variables (podinfo reads them for any flag not given):

- ``--port`` (9898; 0: no HTTP server), ``--port-metrics`` (0: none; else a second server
  with ``/metrics`` and ``/healthz``), ``--random-error`` (a third of the requests answer
  500, 400 or 409, at random), ``--random-delay`` with ``--random-delay-min`` (0),
  ``--random-delay-max`` (5) and ``--random-delay-unit`` (``s`` or ``ms``), ``--unhealthy``,
  ``--unready``, ``--ui-color``, ``--ui-message``, ``--ui-logo``. Other podinfo flags
  (``--level``, ``--grpc-port``, ``--data-path``...) are accepted and ignored.
- Routes: ``GET /`` and ``/api/info`` (runtime info: ``hostname``, ``version`` = the image
  tag, ``revision``, ``color``, ``logo``, ``message``, ``goos``, ``goarch``, ``runtime``,
  ``num_goroutine``, ``num_cpu``), ``GET /version``, ``GET /healthz``, ``GET /readyz``,
  ``POST /readyz/enable|disable``, ``GET|POST|PUT /status/{code}``, ``GET /delay/{seconds}``,
  ``POST /token`` (a JWT for the request body's name, valid one minute),
  ``GET /token/validate``, ``/echo`` (the body back, 202), ``GET|POST /headers``, ``/metrics``.
  A known path with another method answers 405, an unknown path 404.
- Metrics as podinfo's middleware records them: ``http_request_duration_seconds``
  (labels ``method``, ``path`` = the route's name or template made a label: ``root``,
  ``status``, ``delay``, ``token``, ``healthz``...; ``status``) and
  ``http_requests_total{status}``, for every routed request including the injected errors
  and delays; 404s and 405s are not counted.

The sandbox maps podinfo's ports inside the container to local ports (``PROGDEL_LISTEN``);
the image tag is the version (``PROGDEL_IMAGE``), the pod name the hostname (``HOSTNAME``).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import platform
import random
import re
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from progdel.sandbox.httpapp import (
    Request,
    RequestMetrics,
    Response,
    image_tag,
    json_response,
    listen_map,
    route_label,
    run,
)

REPOSITORY = "stefanprodan/podinfo"  # on ghcr.io, Docker Hub or a mirror
DEFAULT_PORT = 9898

_BOOL_FLAGS = {"random-delay", "random-error", "unhealthy", "unready", "h2c", "cache-tls-enabled", "version"}
_VALUE_FLAGS = {
    "port",
    "port-metrics",
    "secure-port",
    "grpc-port",
    "grpc-service-name",
    "level",
    "backend-url",
    "http-client-timeout",
    "http-server-timeout",
    "http-server-shutdown-timeout",
    "data-path",
    "config-path",
    "cert-path",
    "config",
    "ui-path",
    "ui-logo",
    "ui-color",
    "ui-message",
    "random-delay-unit",
    "random-delay-min",
    "random-delay-max",
    "stress-cpu",
    "stress-memory",
    "cache-server",
    "otel-service-name",
    "host",
}


def version_from_image(image: str) -> str | None:
    """The tag of a podinfo image reference, or None when it is not podinfo."""
    return image_tag(image, REPOSITORY)


@dataclass
class Settings:
    """podinfo's configuration, from its flags, then ``PODINFO_*`` variables, then defaults."""

    values: dict[str, str] = field(default_factory=dict)
    ignored: list[str] = field(default_factory=list)

    def get(self, name: str, default: str) -> str:
        return self.values.get(name, default)

    def flag(self, name: str) -> bool:
        return self.get(name, "false").strip().lower() in ("1", "t", "true", "yes")

    def number(self, name: str, default: int) -> int:
        try:
            return int(self.get(name, str(default)))
        except ValueError:
            return default


def parse_args(argv: Sequence[str], env: Mapping[str, str] | None = None) -> Settings:
    """podinfo's command line (pflag syntax) and environment, as podinfo reads them.

    ``argv`` is the container's ``command`` + ``args``; leading words that are not flags
    (``./podinfo``) are the program and skipped.
    """
    settings = Settings()
    args = list(argv)
    while args and not args[0].startswith("-"):
        args.pop(0)
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if not arg.startswith("-") or arg in ("-", "--"):
            settings.ignored.append(arg)
            continue
        name, sep, value = arg.lstrip("-").partition("=")
        if name == "v":
            name = "version"
        if name in _BOOL_FLAGS:
            settings.values[name] = value if sep else "true"
        elif name in _VALUE_FLAGS:
            if not sep:
                if i >= len(args):
                    settings.ignored.append(arg)
                    continue
                value = args[i]
                i += 1
            settings.values[name] = value
        else:
            settings.ignored.append(arg)
    for name in _BOOL_FLAGS | _VALUE_FLAGS | {"jwt-secret"}:
        variable = "PODINFO_" + name.upper().replace("-", "_")
        if name not in settings.values and env is not None and variable in env:
            settings.values[name] = env[variable]
    return settings


def listen_ports(settings: Settings) -> dict[str, int]:
    """The ports podinfo listens on inside the container: ``{"http": 9898, "metrics": 9797}``."""
    ports = {"http": settings.number("port", DEFAULT_PORT), "metrics": settings.number("port-metrics", 0)}
    return {role: port for role, port in ports.items() if port > 0}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _goarch() -> str:
    machine = platform.machine().lower()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


# Routes: (template, regex, methods, name for the metrics label or None for the template's).
_ROUTES: list[tuple[str, re.Pattern[str], tuple[str, ...] | None, str | None]] = [
    (template, re.compile(pattern), methods, name)
    for template, pattern, methods, name in [
        ("/", r"/", ("GET",), None),
        ("/api/info", r"/api/info", ("GET",), None),
        ("/version", r"/version", ("GET",), None),
        ("/healthz", r"/healthz", ("GET",), None),
        ("/readyz", r"/readyz", ("GET",), None),
        ("/readyz/enable", r"/readyz/enable", ("POST",), None),
        ("/readyz/disable", r"/readyz/disable", ("POST",), None),
        ("/status/{code}", r"/status/(?P<code>[0-9]+)", ("GET", "POST", "PUT"), "status"),
        ("/delay/{wait}", r"/delay/(?P<wait>[0-9]+)", ("GET",), "delay"),
        ("/token", r"/token", ("POST",), None),
        ("/token/validate", r"/token/validate", ("GET",), None),
        ("/echo", r"/echo(/.*)?", None, None),
        ("/api/echo", r"/api/echo(/.*)?", None, None),
        ("/headers", r"/headers", ("GET", "POST"), None),
        ("/metrics", r"/metrics", None, None),
    ]
]


class Podinfo:
    """podinfo's behaviour, independent of sockets."""

    def __init__(
        self, settings: Settings, version: str, hostname: str, rng: random.Random | None = None
    ) -> None:
        self.settings = settings
        self.version = version
        self.hostname = hostname
        self.rng = rng or random.Random()
        self.metrics = RequestMetrics()
        self.healthy = not settings.flag("unhealthy")
        self.ready = not settings.flag("unready")
        self.secret = settings.get("jwt-secret", "progdel-sandbox-podinfo").encode()
        self.random_error = settings.flag("random-error")
        self.random_delay = settings.flag("random-delay")
        self.delay_min = settings.number("random-delay-min", 0)
        self.delay_max = settings.number("random-delay-max", 5)
        self.delay_unit = 0.001 if settings.get("random-delay-unit", "s") == "ms" else 1.0

    async def handle(self, request: Request) -> Response:
        """The main HTTP server: route, then podinfo's middleware chain around the handler."""
        matched = None
        allowed = False
        for template, pattern, methods, name in _ROUTES:
            m = pattern.fullmatch(request.path)
            if m is None:
                continue
            matched = (template, m, name)
            if methods is None or request.method in methods:
                allowed = True
                break
        if matched is None:
            return Response(404, b"404 page not found\n", "text/plain; charset=utf-8")
        if not allowed:
            return Response(405, b"", "")
        template, m, name = matched
        started = time.monotonic()
        resp = await self._middleware(request, template, m)
        self.metrics.observe(
            request.method, route_label(name or template), resp.status, time.monotonic() - started
        )
        return resp

    async def handle_metrics_port(self, request: Request) -> Response:
        """The ``--port-metrics`` server: ``/metrics`` and ``/healthz`` only, never counted."""
        if request.path == "/metrics":
            return self.metrics.response()
        if request.path == "/healthz":
            return Response(200, b"OK", "text/plain; charset=utf-8")
        return Response(404, b"404 page not found\n", "text/plain; charset=utf-8")

    async def _middleware(self, request: Request, template: str, m: re.Match[str]) -> Response:
        if self.random_delay:
            low, high = self.delay_min, self.delay_max
            delay = self.rng.randrange(low, high) if high > low else low
            await asyncio.sleep(delay * self.delay_unit)
        if self.random_error and self.rng.randrange(3) == 0:
            return Response(self.rng.choice((500, 400, 409)), b"", "")
        return await self._route(request, template, m)

    async def _route(self, request: Request, template: str, m: re.Match[str]) -> Response:
        if template in ("/", "/api/info"):
            return json_response(200, self.info())
        if template == "/version":
            return json_response(200, {"version": self.version, "commit": "unknown"})
        if template in ("/healthz", "/readyz"):
            ok = self.healthy if template == "/healthz" else self.ready
            return json_response(200, {"status": "OK"}) if ok else Response(503, b"", "")
        if template in ("/readyz/enable", "/readyz/disable"):
            self.ready = template.endswith("enable")
            return Response(202, b"", "")
        if template == "/status/{code}":
            code = int(m.group("code"))
            if not 100 <= code <= 999:
                return json_response(200, {"code": 400, "message": f"invalid status code {code}"})
            return json_response(code, {"status": code})
        if template == "/delay/{wait}":
            wait = int(m.group("wait"))
            await asyncio.sleep(wait)
            return json_response(200, {"delay": wait})
        if template == "/token":
            return json_response(200, self.token(request.body.decode("utf-8", "replace") or "anonymous"))
        if template == "/token/validate":
            return self.validate(request.headers.get("authorization", ""))
        if template in ("/echo", "/api/echo"):
            return Response(
                202, request.body, request.headers.get("content-type", "text/plain; charset=utf-8")
            )
        if template == "/headers":
            return json_response(200, {k.title(): [v] for k, v in request.headers.items()})
        return self.metrics.response()  # /metrics

    def info(self) -> dict[str, str]:
        return {
            "hostname": self.hostname,
            "version": self.version,
            "revision": "unknown",
            "color": self.settings.get("ui-color", "#34577c"),
            "logo": self.settings.get("ui-logo", ""),
            "message": self.settings.get("ui-message", f"greetings from podinfo v{self.version}"),
            "goos": sys.platform if sys.platform != "darwin" else "darwin",
            "goarch": _goarch(),
            "runtime": f"python{platform.python_version()}",
            "num_goroutine": str(threading.active_count()),
            "num_cpu": str(os.cpu_count() or 1),
        }

    def token(self, name: str, now: float | None = None) -> dict[str, str]:
        expires = int((now if now is not None else time.time()) + 60)
        header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
        claims = {"name": name, "exp": expires, "iss": "podinfo"}
        payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
        signature = _b64(hmac.new(self.secret, f"{header}.{payload}".encode(), hashlib.sha256).digest())
        return {
            "token": f"{header}.{payload}.{signature}",
            "expires_at": datetime.fromtimestamp(expires, UTC).isoformat().replace("+00:00", "Z"),
        }

    def validate(self, authorization: str) -> Response:
        def unauthorized(message: str) -> Response:
            return json_response(401, {"code": 401, "message": message})

        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return unauthorized("authorization bearer header required")
        try:
            header, payload, signature = token.split(".")
            expected = hmac.new(self.secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
            claims = json.loads(_unb64(payload))
            valid = hmac.compare_digest(_unb64(signature), expected)
        except (ValueError, TypeError):
            return unauthorized("token is malformed")
        if not valid:
            return unauthorized("signature is invalid")
        if int(claims.get("exp", 0)) < time.time():
            return unauthorized("token is expired")
        if claims.get("iss") != "podinfo":
            return unauthorized("invalid issuer")
        expires = datetime.fromtimestamp(int(claims["exp"]), UTC).isoformat().replace("+00:00", "Z")
        return json_response(200, {"token_name": claims.get("name", ""), "expires_at": expires})


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    settings = parse_args(args, os.environ)
    if settings.flag("version"):
        print(version_from_image(os.environ.get("PROGDEL_IMAGE", "")) or "0.0.0")
        return
    for word in settings.ignored:
        print(f"podinfo (sandbox): ignoring argument {word!r}", file=sys.stderr, flush=True)
    app = Podinfo(
        settings,
        version=version_from_image(os.environ.get("PROGDEL_IMAGE", "")) or "0.0.0",
        hostname=os.environ.get("HOSTNAME") or f"podinfo-{os.getpid()}",
    )
    local = listen_map()
    ports = listen_ports(settings)
    servers = []
    for role, port in ports.items():
        handler = app.handle if role == "http" else app.handle_metrics_port
        servers.append((local.get(port, port), handler))
    if not servers:
        raise SystemExit("podinfo: no port to listen on (--port=0 and no --port-metrics)")
    run(servers)


if __name__ == "__main__":
    main()
