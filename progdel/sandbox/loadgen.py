"""A steady load generator for the sandbox mesh that remembers what was actually served.

It sends requests at a fixed rate to the mesh listener with a chosen ``Host`` header (the
service a client inside the mesh would call) and records, per request, when it was sent,
the version that answered (``x-demo-version``) and the status. A caller can then ask for
the traffic split served since any moment: ``served_since(t)`` returns
``{"1.0.0": n, "1.1.0": m, "errors": k}`` where versions count every answer carrying the
header (the split), and ``errors`` counts 5xx answers and failed requests.

Times are ``time.monotonic()`` values. The generator is bounded: it stops after
``duration`` seconds or on ``stop()``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import httpx


@dataclass(frozen=True)
class Sample:
    sent: float  # time.monotonic() when the request was sent
    status: int  # 0 when no HTTP answer came back
    version: str | None


class LoadGenerator:
    """Sends ``rate`` requests per second to ``url`` with ``Host: host``, in a background thread."""

    def __init__(
        self,
        url: str,
        host: str,
        *,
        rate: float = 50.0,
        duration: float = 60.0,
        path: str = "/",
        concurrency: int = 32,
        timeout: float = 5.0,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.url = url.rstrip("/") + path
        self.host = host
        self.rate = rate
        self.duration = duration
        self.concurrency = concurrency
        self.timeout = timeout
        self.samples: list[Sample] = []
        self.started_at: float | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # Control ------------------------------------------------------------------------------

    def start(self) -> LoadGenerator:
        self._thread = threading.Thread(
            target=lambda: asyncio.run(self.run()), name="progdel-loadgen", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.timeout + 2)

    def wait(self) -> None:
        """Block until the generator has run its ``duration`` (and its last answers are in)."""
        if self._thread is not None:
            self._thread.join(self.duration + self.timeout + 2)

    def __enter__(self) -> LoadGenerator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    async def run(self) -> None:
        """Send at the configured rate until ``duration`` has passed or ``stop()`` is called."""
        sem = asyncio.Semaphore(self.concurrency)
        limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
        tasks: set[asyncio.Task[None]] = set()
        headers = {"host": self.host}
        async with httpx.AsyncClient(limits=limits, timeout=self.timeout, headers=headers) as client:
            start = self.started_at = time.monotonic()
            i = 0
            while not self._stop.is_set():
                due = start + i / self.rate
                if due - start >= self.duration:
                    break
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                await sem.acquire()
                task = asyncio.create_task(self._one(client, sem))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                i += 1
            if tasks:
                await asyncio.wait(tasks, timeout=self.timeout)

    async def _one(self, client: httpx.AsyncClient, sem: asyncio.Semaphore) -> None:
        sent = time.monotonic()
        status, version = 0, None
        try:
            resp = await client.get(self.url)
            status, version = resp.status_code, resp.headers.get("x-demo-version")
        except httpx.HTTPError:
            pass
        finally:
            sem.release()
        with self._lock:
            self.samples.append(Sample(sent, status, version))

    # Reading ------------------------------------------------------------------------------

    def samples_between(self, since: float | None = None, until: float | None = None) -> list[Sample]:
        with self._lock:
            return [
                s
                for s in self.samples
                if (since is None or s.sent >= since) and (until is None or s.sent < until)
            ]

    def served_since(self, since: float | None = None, until: float | None = None) -> dict[str, int]:
        """``{version: answers, ..., "errors": 5xx answers + failed requests}`` sent in [since, until)."""
        counts: Counter[str] = Counter()
        counts["errors"] = 0
        for s in self.samples_between(since, until):
            if s.version is not None:
                counts[s.version] += 1
            if s.status == 0 or s.status >= 500:
                counts["errors"] += 1
        return dict(counts)

    def statuses_since(self, since: float | None = None, until: float | None = None) -> dict[int, int]:
        """Answers per HTTP status (0 = no answer) for requests sent in [since, until)."""
        return dict(Counter(s.status for s in self.samples_between(since, until)))

    def snapshot(self) -> dict[str, int]:
        """The split served since the start."""
        return self.served_since()

    def achieved_rate(self) -> float:
        with self._lock:
            if len(self.samples) < 2:
                return 0.0
            first = min(s.sent for s in self.samples)
            last = max(s.sent for s in self.samples)
            return (len(self.samples) - 1) / (last - first) if last > first else 0.0


def wait_for_split(
    gen: LoadGenerator,
    predicate: Callable[[dict[str, int]], bool],
    *,
    since: float,
    window: float = 0.25,
    timeout: float = 5.0,
    settle: float = 0.1,
) -> float | None:
    """Seconds from ``since`` to the first ``window``-long slice of traffic satisfying ``predicate``.

    Slices start at each request sent after ``since``; ``predicate`` gets
    ``served_since(t, t + window)``. Returns None when no slice satisfied it within
    ``timeout``. Answers get ``settle`` seconds to come back before a slice is judged.
    """
    deadline = since + timeout
    t = since
    step = 1.0 / gen.rate
    while t + window <= deadline:
        wait = t + window + settle - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        counts = gen.served_since(t, t + window)
        if any(v for k, v in counts.items() if k != "errors") and predicate(counts):
            return t - since
        t += step
    return None
