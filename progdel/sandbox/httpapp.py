"""What the sandbox's replica programs share: a small HTTP/1.1 server and Prometheus metrics.

The demo app, podinfo and the load tester run as one process per replica. They are stdlib
only, so a replica starts in a few tens of milliseconds. This module gives them:

- ``serve``: asyncio HTTP/1.1 servers (keep-alive, pipelining, ``Content-Length`` and chunked
  request bodies, origin- and absolute-form targets) calling an async handler per request,
  on one or more ports, until SIGTERM/SIGINT;
- ``RequestMetrics``: the RED metrics podinfo exposes (``http_request_duration_seconds``,
  a histogram with the Prometheus client's default buckets and labels ``method``, ``path``,
  ``status``; ``http_requests_total{status}``) in the text exposition format;
- ``listen_map``: which local port stands for which port inside the container
  (``PROGDEL_LISTEN="9898=41234,9797=41235"``, set by the sandbox when it starts a replica);
- ``image_tag``: the version an image reference carries; ``die_on_parent_exit``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes  # imported before any fork: die_on_parent_exit runs in preexec_fn
import os
import re
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

MAX_HEAD = 65536
MAX_BODY = 8 * 1024 * 1024


@dataclass
class Request:
    method: str
    target: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-cased names; repeated headers joined with ", "
    body: bytes = b""


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str = "application/json; charset=utf-8"
    headers: list[tuple[str, str]] = field(default_factory=list)


Handler = Callable[[Request], Awaitable[Response]]

REASONS = {
    200: "OK",
    201: "Created",
    202: "Accepted",
    204: "No Content",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Payload Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class _BadRequest(Exception):
    pass


class _HttpProtocol(asyncio.Protocol):
    """One client connection: parse pipelined HTTP/1.1 requests, answer them in order."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.buffer = b""
        self.transport: asyncio.Transport | None = None
        self.queue: asyncio.Queue[tuple[Request | None, bool] | None] = asyncio.Queue()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self._task = asyncio.get_running_loop().create_task(self._answer_loop())

    def connection_lost(self, exc: Exception | None) -> None:
        self.queue.put_nowait(None)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while self.buffer:
            try:
                parsed = self._parse()
            except _BadRequest:
                self.queue.put_nowait((None, False))
                self.buffer = b""
                return
            if parsed is None:
                return
            self.queue.put_nowait(parsed)

    def _parse(self) -> tuple[Request, bool] | None:
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self.buffer) > MAX_HEAD:
                raise _BadRequest
            return None
        lines = self.buffer[:end].decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            raise _BadRequest
        method, target, proto = parts
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep:
                raise _BadRequest
            key = name.strip().lower()
            headers[key] = f"{headers[key]}, {value.strip()}" if key in headers else value.strip()
        rest = self.buffer[end + 4 :]
        if "chunked" in headers.get("transfer-encoding", "").lower():
            decoded = _dechunk(rest)
            if decoded is None:
                return None
            body, used = decoded
        else:
            try:
                length = int(headers.get("content-length", "0") or 0)
            except ValueError:
                raise _BadRequest from None
            if length < 0 or length > MAX_BODY:
                raise _BadRequest
            if len(rest) < length:
                return None
            body, used = rest[:length], length
        self.buffer = rest[used:]
        token = headers.get("connection", "").lower()
        keep_alive = token != "close" and (proto == "HTTP/1.1" or token == "keep-alive")
        origin = urlsplit(target) if "://" in target else urlsplit("http://x" + target)
        request = Request(
            method=method,
            target=target,
            path=origin.path or "/",
            query=parse_qs(origin.query),
            headers=headers,
            body=body,
        )
        return request, keep_alive

    async def _answer_loop(self) -> None:
        while True:
            item = await self.queue.get()
            if item is None or self.transport is None or self.transport.is_closing():
                return
            request, keep_alive = item
            if request is None:
                resp = Response(400, b'{"error": "bad request"}')
                keep_alive = False
            else:
                try:
                    resp = await self.handler(request)
                except Exception as exc:  # a handler bug answers 500, the server lives on
                    print(f"handler error: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
                    resp = Response(500, b'{"error": "internal error"}')
            if self.transport.is_closing():
                return
            head = [f"HTTP/1.1 {resp.status} {REASONS.get(resp.status, 'Status')}"]
            if resp.content_type:
                head.append(f"content-type: {resp.content_type}")
            head.append(f"content-length: {len(resp.body)}")
            head.extend(f"{k}: {v}" for k, v in resp.headers)
            if not keep_alive:
                head.append("connection: close")
            self.transport.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + resp.body)
            if not keep_alive:
                self.transport.close()
                return


def _dechunk(data: bytes) -> tuple[bytes, int] | None:
    """A chunked body and the bytes it used, or None while incomplete."""
    body = b""
    pos = 0
    while True:
        eol = data.find(b"\r\n", pos)
        if eol < 0:
            return None
        try:
            size = int(data[pos:eol].split(b";", 1)[0].strip() or b"0", 16)
        except ValueError:
            raise _BadRequest from None
        pos = eol + 2
        if size == 0:
            trailer_end = data.find(b"\r\n\r\n", pos - 2)
            if trailer_end < 0:
                return None
            return body, trailer_end + 4
        if len(data) < pos + size + 2:
            return None
        body += data[pos : pos + size]
        if len(body) > MAX_BODY:
            raise _BadRequest
        pos += size + 2


async def serve(servers: Iterable[tuple[int, Handler]], host: str = "127.0.0.1") -> None:
    """Serve every ``(port, handler)`` until SIGTERM or SIGINT; prints ``listening PORT ...``."""
    loop = asyncio.get_running_loop()
    started = []
    for port, handler in servers:
        server = await loop.create_server(
            lambda h=handler: _HttpProtocol(h),  # type: ignore[misc]
            host,
            port,
            reuse_address=True,
        )
        started.append(server)
    ports = " ".join(str(s.sockets[0].getsockname()[1]) for s in started)
    sys.stdout.write(f"listening {ports}\n")
    sys.stdout.flush()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for server in started:
            server.close()


def run(servers: Iterable[tuple[int, Handler]], on_stop: Callable[[], None] | None = None) -> None:
    """``serve`` in a new event loop (the main program of a replica)."""
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(list(servers)))
    if on_stop is not None:
        on_stop()


def listen_map(env: Mapping[str, str] | None = None) -> dict[int, int]:
    """``PROGDEL_LISTEN`` as ``{container port: local port}`` (empty when unset)."""
    raw = (env if env is not None else os.environ).get("PROGDEL_LISTEN", "")
    out: dict[int, int] = {}
    for item in raw.split(","):
        inner, sep, local = item.partition("=")
        if sep and inner.strip().isdigit() and local.strip().isdigit():
            out[int(inner)] = int(local)
    return out


def image_tag(image: str, repository: str) -> str | None:
    """The tag of ``repository:TAG``, also behind any registry (``ghcr.io/REPOSITORY:TAG``).

    None for another repository, a digest or a missing tag.
    """
    name, sep, tag = image.rpartition(":")
    if not sep or not tag or "/" in tag or "@" in image:
        return None
    return tag if name == repository or name.endswith("/" + repository) else None


def die_on_parent_exit(sig: int) -> None:
    """Ask Linux to send ``sig`` to this process when its parent thread ends (PR_SET_PDEATHSIG)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(1, sig, 0, 0, 0)


def json_response(status: int, data: object, *, pretty: bool = True) -> Response:
    import json

    body = json.dumps(data, indent=2 if pretty else None)
    return Response(status, body.encode())


# Metrics ----------------------------------------------------------------------------------

# The Prometheus client libraries' default histogram buckets (seconds).
DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

_INVALID = re.compile(r"[^a-zA-Z0-9]+")


def route_label(route: str) -> str:
    """A route as podinfo labels it: ``/api/delay/{wait}`` -> ``api_delay_wait``, ``/`` -> ``root``."""
    return _INVALID.sub("_", route).strip("_").lower() or "root"


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _number(value: float) -> str:
    if value == float("inf"):
        return "+Inf"
    return repr(float(value)) if value != int(value) or abs(value) >= 1e15 else f"{int(value)}"


class RequestMetrics:
    """``http_request_duration_seconds`` and ``http_requests_total``, as podinfo's middleware keeps them."""

    def __init__(self, buckets: tuple[float, ...] = DEFAULT_BUCKETS) -> None:
        self.buckets = buckets
        # (method, path, status) -> [bucket counts..., count, sum]
        self._histogram: dict[tuple[str, str, str], list[float]] = {}
        self._requests: dict[str, int] = {}
        self.started = time.time()

    def observe(self, method: str, path: str, status: int, seconds: float) -> None:
        key = (method, path, str(status))
        row = self._histogram.get(key)
        if row is None:
            row = self._histogram[key] = [0.0] * (len(self.buckets) + 2)
        for i, bound in enumerate(self.buckets):
            if seconds <= bound:
                row[i] += 1
        row[-2] += 1
        row[-1] += seconds
        self._requests[str(status)] = self._requests.get(str(status), 0) + 1

    def render(self) -> bytes:
        out = [
            "# HELP http_request_duration_seconds Seconds spent serving HTTP requests.",
            "# TYPE http_request_duration_seconds histogram",
        ]
        for (method, path, status), row in sorted(self._histogram.items()):
            labels = f'method="{_escape(method)}",path="{_escape(path)}",status="{status}"'
            for bound, count in zip((*self.buckets, float("inf")), (*row[:-2], row[-2]), strict=True):
                out.append(
                    f'http_request_duration_seconds_bucket{{{labels},le="{_number(bound)}"}} {int(count)}'
                )
            out.append(f"http_request_duration_seconds_sum{{{labels}}} {row[-1]!r}")
            out.append(f"http_request_duration_seconds_count{{{labels}}} {int(row[-2])}")
        out += [
            "# HELP http_requests_total The total number of HTTP requests.",
            "# TYPE http_requests_total counter",
        ]
        out += [f'http_requests_total{{status="{s}"}} {n}' for s, n in sorted(self._requests.items())]
        out += [
            "# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.",
            "# TYPE process_start_time_seconds gauge",
            f"process_start_time_seconds {self.started!r}",
        ]
        return ("\n".join(out) + "\n").encode()

    def response(self) -> Response:
        return Response(200, self.render(), "text/plain; version=0.0.4; charset=utf-8")
