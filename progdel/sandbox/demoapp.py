"""The sandbox's demo service: a tiny HTTP/1.1 server whose behaviour comes from its pod spec.

The sandbox runs one process of this module per replica of a Deployment whose
first container uses the demo image, so a canary demo has something real to
route to and to measure. It is stdlib only (with ``progdel.sandbox.httpapp``) and
starts in a few tens of milliseconds.

Conventions (what a pod template controls):

- **Image** ``progdel/demo-app:<version>`` (for example ``progdel/demo-app:1.1.0``):
  the tag is the version the service reports. Passed as ``--image`` or ``DEMO_IMAGE``;
  ``--version`` / ``DEMO_VERSION`` set the version directly.
- **DEMO_ERROR_RATE** (0..1, default 0): the fraction of ``GET /`` requests answered 500.
  Errors are spread evenly and deterministically: after ``n`` requests exactly
  ``floor(n * rate)`` have failed, so tests can check ratios on small samples.
- **DEMO_LATENCY_MS** (default 0): delay added before every ``GET /`` answer.
- **DEMO_POD_NAME** (default ``HOSTNAME``, else ``demo-<pid>``): the pod name reported.
- **--port** / ``DEMO_PORT``: the port on 127.0.0.1 (0 picks a free one; the chosen
  port is printed as ``listening <port>`` on stdout); **--metrics-port**: a second port
  that serves the same endpoints (the sandbox maps the container's metrics port to it).
- **DEMO_METRICS_PORT** (default 9797): the container port that stands for the metrics
  port (read by the sandbox, see ``progdel.sandbox.images``); every other container port
  is the HTTP port.

Endpoints: ``GET /`` answers ``{"version": ..., "pod": ...}`` with the header
``x-demo-version``; ``GET /healthz`` answers 200 once the socket is serving; ``GET
/metrics`` has podinfo's ``http_request_duration_seconds`` histogram (labels ``method``,
``path`` = ``root``/``version``/``healthz``/``metrics``, ``status``) and
``http_requests_total``, so Flagger's app-level queries (its Gateway API and other
non-Istio providers) can judge a demo canary. Keep-alive is supported, which is what
Envoy uses upstream.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time

from progdel.sandbox.httpapp import (
    Request,
    RequestMetrics,
    Response,
    image_tag,
    json_response,
    route_label,
    run,
)

DEMO_IMAGE_REPOSITORY = "progdel/demo-app"


def version_from_image(image: str) -> str | None:
    """The version carried by a demo image reference, or None when it is not the demo image.

    Accepts ``progdel/demo-app:1.0.0`` and registry-qualified forms such as
    ``docker.io/progdel/demo-app:1.0.0``; a digest or a missing tag is not a version.
    """
    return image_tag(image, DEMO_IMAGE_REPOSITORY)


class ErrorSchedule:
    """Decides which requests fail: evenly spread, exactly ``floor(n * rate)`` after ``n``."""

    def __init__(self, rate: float) -> None:
        self.rate = min(max(rate, 0.0), 1.0)
        self._count = 0
        self._failed = 0

    def next_fails(self) -> bool:
        self._count += 1
        due = int(self._count * self.rate + 1e-9)
        if due > self._failed:
            self._failed = due
            return True
        return False


class DemoApp:
    """The behaviour of the demo service, independent of sockets."""

    def __init__(self, version: str, pod: str, error_rate: float = 0.0, latency_ms: float = 0.0) -> None:
        self.version = version
        self.pod = pod
        self.errors = ErrorSchedule(error_rate)
        self.latency = max(latency_ms, 0.0) / 1000.0
        self.served = 0
        self.metrics = RequestMetrics()

    async def handle(self, request: Request) -> Response:
        """Answer one request and record it in the metrics, as podinfo's middleware does."""
        started = time.monotonic()
        resp, route = await self.answer(request.method, request.path)
        if route is not None:
            self.metrics.observe(request.method, route, resp.status, time.monotonic() - started)
        resp.headers.append(("x-demo-version", self.version))
        return resp

    async def answer(self, method: str, path: str) -> tuple[Response, str | None]:
        """The answer and the route label it is counted under (None: not counted, like a 404)."""
        if path == "/healthz":
            return json_response(200, {"status": "ok"}, pretty=False), "healthz"
        if path == "/metrics":
            return self.metrics.response(), "metrics"
        if path not in ("/", "/version"):
            return json_response(404, {"error": "not found"}, pretty=False), None
        if method not in ("GET", "HEAD", "POST"):
            return json_response(405, {"error": "method not allowed"}, pretty=False), None
        route = route_label(path)
        self.served += 1
        if self.latency:
            await asyncio.sleep(self.latency)
        if self.errors.next_fails():
            body = {"error": "injected failure", "version": self.version, "pod": self.pod}
            return json_response(500, body, pretty=False), route
        return json_response(200, {"version": self.version, "pod": self.pod}, pretty=False), route


def _float_env(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise SystemExit(f"demo-app: {name}={raw!r} is not a number") from None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="demo-app", description="progdel sandbox demo service")
    parser.add_argument("--port", type=int, default=int(os.environ.get("DEMO_PORT", "0")))
    parser.add_argument("--metrics-port", type=int, default=None)
    parser.add_argument("--image", default=os.environ.get("DEMO_IMAGE", ""))
    parser.add_argument("--version", default=os.environ.get("DEMO_VERSION", ""))
    parser.add_argument("--pod", default=os.environ.get("DEMO_POD_NAME") or os.environ.get("HOSTNAME", ""))
    args = parser.parse_args(argv)
    version = args.version or (version_from_image(args.image) if args.image else None) or "0.0.0"
    app = DemoApp(
        version=version,
        pod=args.pod or f"demo-{os.getpid()}",
        error_rate=_float_env("DEMO_ERROR_RATE", 0.0),
        latency_ms=_float_env("DEMO_LATENCY_MS", 0.0),
    )
    servers = [(args.port, app.handle)]
    if args.metrics_port is not None:
        servers.append((args.metrics_port, app.handle))
    run(servers)


if __name__ == "__main__":
    main()
