"""The metrics port: what the canary loop needs from a metrics backend, and how it fails.

The three failure kinds mean different things to the engine, so they are distinct types:

- ``NoData``: the backend answered, but there is nothing to judge (empty result or NaN),
  typically because the workload gets no traffic. Judged by the metric's no-data policy.
- ``MetricsUnreachable``: the backend could not answer (connection refused, timeout, 5xx).
  Not a failed check: the canary holds, and rolls back only after repeated errors.
- ``QueryRejected``: the backend refused the query itself (Prometheus 400 ``bad_data``).
  A mistake in the spec, which no amount of waiting fixes.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol, runtime_checkable

from progdel.errors import InvalidInput, ProgdelError, Unreachable


class MetricsError(ProgdelError):
    """Base of the errors a metrics backend raises."""


class NoData(MetricsError):
    """The query returned no samples, or NaN."""


class MetricsUnreachable(MetricsError, Unreachable):
    """The metrics server could not be reached or failed (5xx); the message names its URL."""


class QueryRejected(MetricsError, InvalidInput):
    """The metrics server rejected the query (e.g. a PromQL syntax error)."""


@runtime_checkable
class MetricsProvider(Protocol):
    """A backend that evaluates one query to one number at a given time."""

    def query(self, query: str, at: datetime) -> float:
        """The query's value at ``at``; raises ``NoData``, ``MetricsUnreachable`` or ``QueryRejected``."""
        ...

    def query_many(self, queries: Sequence[tuple[str, str]], at: datetime) -> dict[str, float | MetricsError]:
        """Run the ``(name, query)`` pairs of one tick, concurrently; each result is a value or
        the error for that query (never raised)."""
        ...
