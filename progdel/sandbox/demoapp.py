"""The sandbox's demo service: a tiny HTTP/1.1 server whose behaviour comes from its pod spec.

The sandbox runs one process of this module per replica of a Deployment whose
first container uses the demo image, so a canary demo has something real to
route to and to measure. It is stdlib only and starts in a few tens of
milliseconds.

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
  port is printed as ``listening <port>`` on stdout).

Endpoints: ``GET /`` answers ``{"version": ..., "pod": ...}`` with the header
``x-demo-version``; ``GET /healthz`` answers 200 once the socket is serving.
Keep-alive is supported, which is what Envoy uses upstream.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys

DEMO_IMAGE_REPOSITORY = "progdel/demo-app"


def version_from_image(image: str) -> str | None:
    """The version carried by a demo image reference, or None when it is not the demo image.

    Accepts ``progdel/demo-app:1.0.0`` and registry-qualified forms such as
    ``docker.io/progdel/demo-app:1.0.0``; a digest or a missing tag is not a version.
    """
    name, sep, tag = image.rpartition(":")
    if not sep or "/" in tag or "@" in image:
        return None
    if name != DEMO_IMAGE_REPOSITORY and not name.endswith("/" + DEMO_IMAGE_REPOSITORY):
        return None
    return tag or None


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


class _HttpProtocol(asyncio.Protocol):
    """One client connection: parse pipelined HTTP/1.1 requests, answer them in order."""

    def __init__(self, app: DemoApp) -> None:
        self.app = app
        self.buffer = b""
        self.transport: asyncio.Transport | None = None
        self.queue: asyncio.Queue[tuple[str, str, bool] | None] = asyncio.Queue()
        self.writer_task: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.writer_task = asyncio.get_running_loop().create_task(self._answer_loop())

    def connection_lost(self, exc: Exception | None) -> None:
        self.queue.put_nowait(None)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buffer) > 65536 and self.transport is not None:
                    self.transport.close()
                return
            head = self.buffer[:end].decode("latin-1")
            lines = head.split("\r\n")
            parts = lines[0].split(" ")
            if len(parts) != 3:
                self.queue.put_nowait(("BAD", "", False))
                self.buffer = b""
                return
            method, target, proto = parts
            length = 0
            keep_alive = proto == "HTTP/1.1"
            for line in lines[1:]:
                key, _, value = line.partition(":")
                key = key.strip().lower()
                if key == "content-length":
                    length = int(value.strip() or 0)
                elif key == "connection":
                    token = value.strip().lower()
                    keep_alive = token != "close" and (keep_alive or token == "keep-alive")
            total = end + 4 + length
            if len(self.buffer) < total:
                return
            self.buffer = self.buffer[total:]
            self.queue.put_nowait((method, target.split("?", 1)[0], keep_alive))

    async def _answer_loop(self) -> None:
        while True:
            item = await self.queue.get()
            if item is None or self.transport is None or self.transport.is_closing():
                return
            method, path, keep_alive = item
            status, body, headers = await self.app.answer(method, path)
            head = [f"HTTP/1.1 {status} {_REASONS.get(status, 'OK')}"]
            head.append("content-type: application/json")
            head.append(f"content-length: {len(body)}")
            head.extend(f"{k}: {v}" for k, v in headers)
            if not keep_alive:
                head.append("connection: close")
            self.transport.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
            if not keep_alive:
                self.transport.close()
                return


_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    500: "Internal Server Error",
}


class DemoApp:
    """The behaviour of the demo service, independent of sockets."""

    def __init__(self, version: str, pod: str, error_rate: float = 0.0, latency_ms: float = 0.0) -> None:
        self.version = version
        self.pod = pod
        self.errors = ErrorSchedule(error_rate)
        self.latency = max(latency_ms, 0.0) / 1000.0
        self.served = 0

    async def answer(self, method: str, path: str) -> tuple[int, bytes, list[tuple[str, str]]]:
        version_header = [("x-demo-version", self.version)]
        if method == "BAD":
            return 400, b'{"error": "bad request"}', version_header
        if path == "/healthz":
            return 200, b'{"status": "ok"}', version_header
        if path not in ("/", "/version"):
            return 404, b'{"error": "not found"}', version_header
        if method not in ("GET", "HEAD", "POST"):
            return 405, b'{"error": "method not allowed"}', version_header
        self.served += 1
        if self.latency:
            await asyncio.sleep(self.latency)
        if self.errors.next_fails():
            body = json.dumps({"error": "injected failure", "version": self.version, "pod": self.pod})
            return 500, body.encode(), version_header
        body = json.dumps({"version": self.version, "pod": self.pod})
        return 200, body.encode(), version_header


async def serve(app: DemoApp, port: int, host: str = "127.0.0.1") -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _HttpProtocol(app), host, port, reuse_address=True)
    bound = server.sockets[0].getsockname()[1]
    sys.stdout.write(f"listening {bound}\n")
    sys.stdout.flush()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


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
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(app, args.port))


if __name__ == "__main__":
    main()
