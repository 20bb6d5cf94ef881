"""Run history: a compact record of every canary run progdel drives or observes (a canary
Flagger drives, followed by ``canary watch``), kept in the cluster.

Why a ConfigMap per run, in the canary's namespace: the record lives beside what it describes
(deleting the namespace deletes it), anyone who may read the namespace reads it with plain
``kubectl``, no CRD has to be installed, and the Canary's status (which Flagger's schema
bounds, and whose ``progdel.dev/Run`` condition holds only the state a run needs to go on)
stays small. Labels select a canary's runs without reading them::

    app.kubernetes.io/managed-by=progdel
    progdel.dev/canary-run=true
    progdel.dev/canary=<canary name>
    progdel.dev/run-state=running|finished

``data["run.json"]`` is the summary (id, revision, times, outcome), readable as it is;
``binaryData["ticks.json.gz"]`` the whole record (``RunRecord.to_dict``), gzip-compressed:
every tick (time, phase, weights, failed checks, each metric's value, threshold and verdict
and, for a metric judged against the primary, the judge's verdict, p-value and effect; the split
the mesh served), every event, and the outcome.

A record is bounded: at most ``MAX_TICKS`` ticks (past that, the oldest ticks where nothing
changed are thinned out, and the count is kept), ``MAX_EVENTS`` events, and ``KEEP_RUNS`` runs
per canary (the oldest finished ones are deleted when a new run starts).

One run, one record, whichever process drives it: a watcher that starts while a run is under
way (after a crash, a ``kill -9``, a closed lid) finds the open record of the same revision and
goes on writing it, noting the resumption as an event. A watcher that stops while its run goes
on (Ctrl-C, a timeout, the API away past its Lease) marks the record ``interrupted`` with why,
and leaves it open for the next one.
"""

from __future__ import annotations

import base64
import gzip
import json
import logging
import secrets
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from progdel.canary.status import CanaryStatus, FailureReason, Phase
from progdel.config.canary import Canary, CanaryMetric
from progdel.errors import InvalidInput, ProgdelError
from progdel.kube.client import Kube
from progdel.kube.errors import NotFound
from progdel.kube.resources import CONFIGMAPS

log = logging.getLogger("progdel.canary.history")

MANAGED_BY = "app.kubernetes.io/managed-by"
RUN_LABEL = "progdel.dev/canary-run"
CANARY_LABEL = "progdel.dev/canary"
STATE_LABEL = "progdel.dev/run-state"
SUMMARY_KEY = "run.json"
RECORD_KEY = "ticks.json.gz"

MAX_TICKS = 1000
MAX_EVENTS = 500
KEEP_RUNS = 20
MAX_MESSAGE = 1000
#: the compressed record's size at most (a ConfigMap holds 1 MiB, base64 adds a third)
MAX_PACKED = 600_000

#: the phases of a run under way (a run is recorded from the tick that enters one)
RUN_PHASES = (
    Phase.WAITING,
    Phase.PROGRESSING,
    Phase.WAITING_PROMOTION,
    Phase.PROMOTING,
    Phase.FINALISING,
)
RUNNING = "running"
INTERRUPTED = "interrupted"
_SUPERSEDED = "a new revision restarted the analysis"


def label_value(name: str) -> str:
    """``name`` as a label value (63 characters at most); longer names keep a hash of the rest."""
    if len(name) <= 63:
        return name
    import hashlib

    return f"{name[:54]}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"


def _stamp(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_stamp(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        return None


def outcome_of(phase: str, failure_reason: str | None = None) -> str | None:
    """The outcome a run has when it reaches ``phase`` (None while it runs)."""
    if phase == Phase.SUCCEEDED:
        return "promoted"
    if phase == Phase.FAILED:
        return "aborted" if failure_reason == FailureReason.ABORTED else "rolled back"
    return None


@dataclass
class RunRecord:
    """One canary run: its ticks, events and outcome."""

    id: str
    namespace: str
    canary: str
    revision: str
    started_at: str
    finished_at: str = ""
    outcome: str = RUNNING
    message: str = ""
    exit_code: int | None = None
    drivers: list[str] = field(default_factory=list)
    analysis: dict[str, Any] = field(default_factory=dict)
    ticks: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    thinned_ticks: int = 0
    dropped_events: int = 0
    name: str = ""  # the ConfigMap's name, once stored
    stored_summary: dict[str, Any] | None = None  # read without its ticks: the summary stored
    resumable: bool = False  # interrupted while the run went on: the next driver continues it

    @property
    def finished(self) -> bool:
        return self.outcome != RUNNING

    def duration_seconds(self) -> float | None:
        start = parse_stamp(self.started_at)
        end = parse_stamp(self.finished_at or (self.ticks[-1]["time"] if self.ticks else ""))
        if start is None or end is None:
            return None
        return max(0.0, (end - start).total_seconds())

    def summary(self) -> dict[str, Any]:
        if self.stored_summary is not None:
            return dict(self.stored_summary)
        return {
            "id": self.id,
            "canary": self.canary,
            "namespace": self.namespace,
            "revision": self.revision,
            "startedAt": self.started_at,
            "finishedAt": self.finished_at,
            "outcome": self.outcome,
            "message": self.message,
            "exitCode": self.exit_code,
            "durationSeconds": self.duration_seconds(),
            "tickCount": len(self.ticks) + self.thinned_ticks,
            "maxWeight": max((int(t.get("canaryWeight") or 0) for t in self.ticks), default=0),
            # a rollback resets the count: the most the run reached is what tells
            "failedChecks": max((int(t.get("failedChecks") or 0) for t in self.ticks), default=0),
            "drivers": list(self.drivers),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.summary(),
            "analysis": self.analysis,
            "ticks": self.ticks,
            "events": self.events,
            "thinnedTicks": self.thinned_ticks,
            "droppedEvents": self.dropped_events,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], name: str = "") -> RunRecord:
        code = data.get("exitCode")
        ticks = data.get("ticks")
        return cls(
            id=str(data.get("id") or ""),
            namespace=str(data.get("namespace") or ""),
            canary=str(data.get("canary") or ""),
            revision=str(data.get("revision") or ""),
            started_at=str(data.get("startedAt") or ""),
            finished_at=str(data.get("finishedAt") or ""),
            outcome=str(data.get("outcome") or RUNNING),
            message=str(data.get("message") or ""),
            exit_code=int(code) if isinstance(code, int) else None,
            drivers=[str(d) for d in data.get("drivers") or []],
            analysis=dict(data.get("analysis") or {}),
            ticks=list(ticks) if isinstance(ticks, list) else [],
            events=list(data.get("events") or []),
            thinned_ticks=int(data.get("thinnedTicks") or 0),
            dropped_events=int(data.get("droppedEvents") or 0),
            name=name,
        )

    # -- the ConfigMap ----------------------------------------------------------------------

    def labels(self) -> dict[str, str]:
        return {
            MANAGED_BY: "progdel",
            RUN_LABEL: "true",
            CANARY_LABEL: label_value(self.canary),
            # an interrupted run the canary is still in stays open, for its next driver to find
            STATE_LABEL: "running" if not self.finished or self.resumable else "finished",
        }

    def packed(self) -> bytes:
        """The compressed record, thinned until it fits a ConfigMap."""
        limit = MAX_TICKS
        while True:
            raw = json.dumps(self.to_dict(), separators=(",", ":"), allow_nan=False).encode()
            data = gzip.compress(raw, mtime=0)
            if len(data) <= MAX_PACKED or len(self.ticks) <= 2:
                return data
            limit = max(2, len(self.ticks) // 2)
            self.ticks, dropped = thin(self.ticks, limit)
            self.thinned_ticks += dropped

    def to_configmap(self) -> dict[str, Any]:
        return {
            "metadata": {"name": self.name, "namespace": self.namespace, "labels": self.labels()},
            "data": {SUMMARY_KEY: json.dumps(self.summary(), indent=1)},
            "binaryData": {RECORD_KEY: base64.b64encode(self.packed()).decode()},
        }

    @classmethod
    def from_configmap(cls, obj: dict[str, Any], *, full: bool = True) -> RunRecord:
        """The record a ConfigMap holds; with ``full=False`` only its summary (no ticks)."""
        meta = obj.get("metadata") or {}
        name = meta.get("name", "")
        try:
            raw = (obj.get("binaryData") or {}).get(RECORD_KEY) if full else None
            if raw:
                record = cls.from_dict(json.loads(gzip.decompress(base64.b64decode(raw))), name)
            else:
                summary = json.loads((obj.get("data") or {}).get(SUMMARY_KEY) or "{}")
                record = cls.from_dict(summary, name)
                record.stored_summary = summary
        except (ValueError, OSError, EOFError) as err:
            raise InvalidInput(f"configmap {name}: not a readable canary run record ({err})") from None
        state = (meta.get("labels") or {}).get(STATE_LABEL)
        record.resumable = record.outcome == INTERRUPTED and state == "running"
        return record


# -- bounding ---------------------------------------------------------------------------------


def _notable(prev: dict[str, Any], tick: dict[str, Any]) -> bool:
    """A tick that says something its predecessor did not: a phase, weight or count changed, or a
    metric did not pass."""
    for key in ("phase", "canaryWeight", "failedChecks", "iterations"):
        if prev.get(key) != tick.get(key):
            return True
    return any((m.get("verdict") or "pass") != "pass" for m in tick.get("metrics") or [])


def thin(ticks: list[dict[str, Any]], limit: int) -> tuple[list[dict[str, Any]], int]:
    """``ticks`` cut down to ``limit``: every other unremarkable tick of the older half goes first
    (the first and last ticks and every notable one stay while that is enough); returns the ticks
    kept and how many went."""
    dropped = 0
    while len(ticks) > limit:
        half = len(ticks) // 2
        kept: list[dict[str, Any]] = []
        skip = False
        for i, t in enumerate(ticks):
            if 0 < i < half and not _notable(ticks[i - 1], t):
                skip = not skip
                if skip:
                    dropped += 1
                    continue
            kept.append(t)
        if len(kept) == len(ticks):  # every tick is notable: thin the older half evenly
            kept = [t for i, t in enumerate(ticks) if i == 0 or i >= half or i % 2 == 0]
            dropped += len(ticks) - len(kept)
        ticks = kept
    return ticks, dropped


def _bound_events(record: RunRecord) -> None:
    if len(record.events) > MAX_EVENTS:
        head = MAX_EVENTS // 5
        drop = len(record.events) - MAX_EVENTS
        record.events = record.events[:head] + record.events[head + drop :]
        record.dropped_events += drop


# -- reading ----------------------------------------------------------------------------------


def _run_items(kube: Kube, name: str, namespace: str, state: str | None = None) -> list[dict[str, Any]]:
    selector = f"{RUN_LABEL}=true,{MANAGED_BY}=progdel,{CANARY_LABEL}={label_value(name)}"
    if state:
        selector += f",{STATE_LABEL}={state}"
    try:
        items = kube.items(CONFIGMAPS, namespace, label_selector=selector)
    except NotFound:
        return []
    return items


def _mine(record: RunRecord, name: str) -> bool:
    return record.canary == name


def list_runs(kube: Kube, name: str, namespace: str) -> list[RunRecord]:
    """The canary's recorded runs (summaries only), newest first."""
    records = []
    for obj in _run_items(kube, name, namespace):
        try:
            record = RunRecord.from_configmap(obj, full=False)
        except InvalidInput as err:
            log.warning("%s", err)
            continue
        if _mine(record, name):
            records.append(record)
    return sorted(records, key=lambda r: (r.started_at, r.id), reverse=True)


def load_run(kube: Kube, name: str, namespace: str, run_id: str | None = None) -> RunRecord:
    """One run in full: ``run_id`` (or a prefix of one that names it alone), else the newest."""
    runs = list_runs(kube, name, namespace)
    where = f"canary {namespace}/{name}"
    if not runs:
        raise InvalidInput(f"{where}: no runs recorded (a run is recorded when progdel drives it)")
    if run_id is None:
        chosen = runs[0]
    else:
        matches = [r for r in runs if r.id == run_id] or [r for r in runs if r.id.startswith(run_id)]
        if not matches:
            raise InvalidInput(f"{where}: no run {run_id!r}; see progdel canary history {name}")
        if len(matches) > 1:
            ids = ", ".join(r.id for r in matches[:5])
            raise InvalidInput(f"{where}: --run {run_id!r} names several runs ({ids})")
        chosen = matches[0]
    return RunRecord.from_configmap(kube.get(CONFIGMAPS, chosen.name, namespace))


def report_command(namespace: str, name: str, run_id: str, context: str | None = None) -> str:
    """The command that writes a run's report (what ``watch`` and ``promote`` print); ``context``
    names the kubeconfig context of the canary's cluster when it is not the current one."""
    where = f"--context {shlex.quote(context)} " if context else ""
    out = f"{name}-{run_id}.html"
    return f"progdel {where}-n {namespace} canary report {name} --run {run_id} -o html --out {out}"


# -- writing ----------------------------------------------------------------------------------


def _judge_of(canary: Canary, metric: CanaryMetric) -> dict[str, Any] | None:
    """How the statistical judge compares ``metric`` with the primary (None: it does not)."""
    judge = canary.settings.judges.get(metric.name)
    if judge is None:
        return None
    from progdel.canary.judge import direction_of

    return {
        "direction": str(judge.direction or direction_of(metric)),
        "tolerance": judge.tolerance,
        "significance": judge.significance,
        "minSamples": judge.min_samples,
    }


def analysis_of(canary: Canary) -> dict[str, Any]:
    a = canary.analysis
    return {
        "interval": a.interval_seconds,
        "threshold": a.threshold,
        "maxWeight": a.effective_max_weight,
        "stepWeight": a.step_weight or None,
        "stepWeights": list(a.step_weights) or None,
        "iterations": a.iterations or None,
        "metrics": [
            {
                "name": m.name,
                "min": m.threshold_range.min if m.threshold_range else None,
                "max": m.threshold_range.max if m.threshold_range else None,
                **({"judge": judge} if (judge := _judge_of(canary, m)) else {}),
            }
            for m in a.metrics
        ],
    }


def _compact_tick(tick: Mapping[str, Any]) -> dict[str, Any]:
    """A tick record as the history keeps it: what varies from tick to tick."""
    keep = ("time", "phase", "canaryWeight", "primaryWeight", "step", "failedChecks", "iterations", "note")
    out = {k: tick[k] for k in keep if tick.get(k) not in (None, "")}
    metrics = []
    for m in tick.get("metrics") or []:
        entry = {k: m.get(k) for k in ("name", "value", "min", "max", "verdict") if m.get(k) is not None}
        if m.get("message"):
            entry["message"] = str(m["message"])[:MAX_MESSAGE]
        compared = m.get("comparison")
        if compared:  # the judge's numbers (its message repeats them, and the metric's says why)
            entry["comparison"] = {
                k: compared[k]
                for k in ("verdict", "pValue", "effect", "samples", "direction")
                if k in compared
            }
        metrics.append(entry)
    if metrics:
        out["metrics"] = metrics
    served = tick.get("served")
    if served:
        out["served"] = {k: served[k] for k in ("primary", "canary", "rps", "weight") if k in served}
    return out


def _compact_event(event: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "time": event.get("time", ""),
        "type": event.get("type", "Normal"),
        "message": str(event.get("message") or "")[:MAX_MESSAGE],
    }


class RunRecorder:
    """Keeps the history of the runs one watcher drives: fed with the records the runner streams
    (``event``, ``tick``, ``finish``), it writes the run's ConfigMap after every tick.

    Writing history never stops a run: a write that fails is warned about once (``warn``) and
    tried again at the next tick, with everything gathered since."""

    def __init__(
        self,
        kube: Kube,
        name: str,
        namespace: str,
        identity: str,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        self.kube = kube
        self.name = name
        self.namespace = namespace
        self.identity = identity
        self.warn = warn or (lambda message: log.warning("%s", message))
        self.record: RunRecord | None = None
        self.last: RunRecord | None = None  # the last run this recorder closed
        self._pending: list[dict[str, Any]] = []
        self._dirty = False
        self._warned = False
        self._looked = False  # whether an open record in the cluster was looked for

    # -- fed by the runner -------------------------------------------------------------------

    def event(self, event: Mapping[str, Any]) -> None:
        self._pending.append(_compact_event(event))

    def tick(
        self,
        canary: Canary | None,
        before: Phase | None,
        status: CanaryStatus,
        revision: str,
        tick: Mapping[str, Any],
    ) -> None:
        """Record one tick of the canary; ``before`` is the phase the tick started from, and
        ``revision`` the one the target runs (the run's own once it progresses). ``canary`` None:
        a spec progdel cannot parse (a canary another driver runs), recorded without its analysis.
        ``before`` None: not known (an observer's first look), so a run was under way if this
        revision's record is open in the cluster."""
        if before is None:
            before = status.phase
            if status.phase not in RUN_PHASES and self._open_run_of(status.last_applied_spec):
                before = Phase.PROGRESSING
        if before not in RUN_PHASES and status.phase not in RUN_PHASES:
            self._pending.clear()  # a tick outside any run (idle, initializing): not recorded
            return
        run_revision = status.last_applied_spec if status.phase is not Phase.WAITING else revision
        now = str(tick.get("time") or _stamp(datetime.now(UTC)))
        if self.record is None and not self._looked:
            self._looked = True
            self.record = self._open_in_cluster(run_revision, now, before)
        if self.record is not None and self.record.revision not in (run_revision, ""):
            # the target changed during the run: the analysis starts over as a new run
            self._close(self.record, "superseded", _SUPERSEDED, None, now)
            self.record = None
        if self.record is None:
            self.record = self._new(canary, run_revision, now)
        record = self.record
        record.revision = run_revision
        if canary is not None:
            record.analysis = analysis_of(canary)
        record.events.extend(self._pending)
        self._pending.clear()
        _bound_events(record)
        record.ticks.append(_compact_tick(tick))
        if len(record.ticks) > MAX_TICKS:
            record.ticks, dropped = thin(record.ticks, MAX_TICKS)
            record.thinned_ticks += dropped
        ended = outcome_of(str(status.phase), status.failure_reason)
        if ended is not None and before in RUN_PHASES:
            record.outcome = ended
            record.finished_at = now
        self._dirty = True
        self.flush()
        if record.finished:
            self.last, self.record = record, None

    def finish(self, outcome: str, message: str, exit_code: int, at: str) -> None:
        """The run's result, as the runner reports it (after its last tick)."""
        record = self.record or self.last
        if record is None:
            return
        record.events.extend(self._pending)
        self._pending.clear()
        record.outcome = outcome
        record.message = message
        record.exit_code = exit_code
        record.finished_at = record.finished_at or at
        self._write(record)
        self.last, self.record = record, None

    def interrupt(self, why: str, at: str) -> None:
        """The driver stops while its run goes on (Ctrl-C, a timeout, the API away for longer
        than the Lease): the record says ``interrupted``, with why, and stays open, so that the
        next driver of the same run finds it and continues it. (A driver whose Lease another
        took over does not call this: the new driver writes the record.)"""
        record = self.record
        if record is None or record.finished:
            return
        record.events.extend(self._pending)
        self._pending.clear()
        record.events.append({"time": at, "type": "Warning", "message": f"Run interrupted: {why}"})
        _bound_events(record)
        record.outcome = INTERRUPTED
        record.message = why[:MAX_MESSAGE]
        record.finished_at = at
        record.resumable = True
        self._write(record)
        self.last, self.record = record, None

    def flush(self) -> None:
        if self.record is not None and self._dirty:
            self._write(self.record)

    # -- the cluster ------------------------------------------------------------------------

    def _open_in_cluster(self, revision: str, now: str, before: Phase) -> RunRecord | None:
        """The run this canary has under way in the cluster (a watcher before this one drove it,
        and was killed or interrupted). An open run of another revision is closed: superseded when
        the canary was still in a run (a new revision restarted it), else interrupted (it left the
        run with nobody recording)."""
        try:
            items = _run_items(self.kube, self.name, self.namespace, "running")
        except ProgdelError as err:
            self._warn_once(f"canary {self.namespace}/{self.name}: run history not readable: {err}")
            return None
        found: RunRecord | None = None
        for obj in sorted(items, key=lambda o: (o.get("metadata") or {}).get("name", "")):
            try:
                record = RunRecord.from_configmap(obj)
            except InvalidInput:
                continue
            if not _mine(record, self.name):
                continue
            if record.revision == revision and found is None:
                found = record
            else:
                last_phase = str(record.ticks[-1].get("phase") or "") if record.ticks else ""
                ended = outcome_of(last_phase)
                outcome = ended or ("superseded" if before in RUN_PHASES else "interrupted")
                why = {"superseded": _SUPERSEDED, "interrupted": "no driver finished it"}.get(outcome, "")
                self._close(record, outcome, why, None, now)
        if found is not None:
            if found.outcome == INTERRUPTED:  # its driver stopped; the run goes on, so does its record
                found.outcome, found.message, found.finished_at, found.exit_code = RUNNING, "", "", None
                found.resumable = False
            found.drivers.append(self.identity)
            found.events.append({"time": now, "type": "Normal", "message": f"Run resumed by {self.identity}"})
        return found

    def _open_run_of(self, revision: str) -> bool:
        """Whether a record of ``revision`` is open in the cluster."""
        if not revision:
            return False
        try:
            items = _run_items(self.kube, self.name, self.namespace, "running")
        except ProgdelError:
            return False
        for obj in items:
            try:
                record = RunRecord.from_configmap(obj, full=False)
            except InvalidInput:
                continue
            if _mine(record, self.name) and record.revision == revision:
                return True
        return False

    def _new(self, canary: Canary | None, revision: str, now: str) -> RunRecord:
        compact = "".join(ch for ch in now if ch.isdigit())[:14]
        run_id = f"{compact[:8]}-{compact[8:]}-{secrets.token_hex(2)}"
        record = RunRecord(
            id=run_id,
            namespace=self.namespace,
            canary=self.name,
            revision=revision,
            started_at=now,
            drivers=[self.identity],
            analysis=analysis_of(canary) if canary is not None else {},
        )
        record.name = f"progdel-run-{self.name[:200]}-{run_id}"
        self._prune()
        return record

    def _prune(self) -> None:
        """Delete the oldest finished runs past ``KEEP_RUNS - 1`` (room for the one starting)."""
        try:
            finished = [r for r in list_runs(self.kube, self.name, self.namespace) if r.finished]
            for old in finished[KEEP_RUNS - 1 :]:
                self.kube.delete(CONFIGMAPS, old.name, self.namespace, missing_ok=True)
        except ProgdelError as err:
            self._warn_once(f"canary {self.namespace}/{self.name}: old runs not pruned: {err}")

    def _close(self, record: RunRecord, outcome: str, message: str, code: int | None, now: str) -> None:
        if record.outcome == INTERRUPTED:  # left by its driver: why the run ended now says more
            record.message = ""
        record.outcome = outcome
        record.message = record.message or message
        record.exit_code = code
        record.finished_at = record.finished_at or now
        record.resumable = False
        self._write(record)

    def _write(self, record: RunRecord) -> None:
        body = record.to_configmap()
        try:
            try:

                def put(obj: dict[str, Any]) -> None:
                    obj["metadata"]["labels"] = body["metadata"]["labels"]
                    obj["data"] = body["data"]
                    obj["binaryData"] = body["binaryData"]

                self.kube.update(CONFIGMAPS, record.name, put, self.namespace)
            except NotFound:
                self.kube.create(CONFIGMAPS, body, self.namespace)
        except ProgdelError as err:
            self._warn_once(
                f"canary {self.namespace}/{self.name}: run history not written (will retry): {err}"
            )
            return
        if record is self.record:
            self._dirty = False

    def _warn_once(self, message: str) -> None:
        if not self._warned:
            self._warned = True
            self.warn(message)
        else:
            log.warning("%s", message)


class _Nowhere:
    """The store of an unstored recorder: it holds no run and keeps nothing written to it."""

    def items(self, *_args: Any, **_kwargs: Any) -> list[dict[str, Any]]:
        return []

    def update(self, *_args: Any, **_kwargs: Any) -> dict[str, Any]:
        raise NotFound("an unstored run is kept in memory", 404)

    def create(self, *_args: Any, **_kwargs: Any) -> dict[str, Any]:
        return {}

    def delete(self, *_args: Any, **_kwargs: Any) -> None:
        return None


class _Unstored(RunRecorder):
    """Stores nothing after each tick (a watcher stores its record then; ticks that follow one
    another at once, as a replay's, need not): the record is read from the recorder."""

    def flush(self) -> None:
        return None


def unstored_recorder(name: str, namespace: str, identity: str) -> RunRecorder:
    """A recorder of the runs of ``namespace/name`` that writes to no cluster: fed as a watcher
    feeds one, it builds the record a watcher writes and keeps it (``last``, ``record``), for a
    run that deploys nothing (a replay). It finds no run under way and prunes none."""
    return _Unstored(cast(Kube, _Nowhere()), name, namespace, identity)
