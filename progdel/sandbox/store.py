"""Object storage for the sandbox: SQLite on disk, an in-memory index, a watch event ring.

Every write takes ``Store.lock``, bumps one global resourceVersion counter
(persisted with the object in the same SQLite transaction), replaces the
object's entry in the in-memory index (the object and its serialized JSON, so a
GET serves bytes without re-encoding) and appends a watch event to a bounded
ring. Readers never take the lock: entries are immutable once stored and the
index dicts are replaced, not mutated, under the lock.

Callers that read-modify-write (resourceVersion checks, patches) hold
``Store.lock`` around the read and the write; it is re-entrant.
"""

from __future__ import annotations

import builtins
import json
import sqlite3
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ADDED = "ADDED"
MODIFIED = "MODIFIED"
DELETED = "DELETED"


def encode(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True)
class Entry:
    """One stored object: treat ``obj`` as read-only (copy before changing it)."""

    obj: dict[str, Any]
    raw: bytes
    rv: int

    def copy(self) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self.raw)
        return result


@dataclass(frozen=True)
class WatchEvent:
    rv: int
    type: str
    key: str
    namespace: str
    name: str
    entry: Entry
    prev: Entry | None


class Expired(Exception):
    """The requested resourceVersion is older than the watch event ring."""


class Store:
    def __init__(self, path: Path, ring_size: int = 10000) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS objects (rkey TEXT NOT NULL, ns TEXT NOT NULL, name TEXT NOT NULL, "
            "rv INTEGER NOT NULL, data BLOB NOT NULL, PRIMARY KEY (rkey, ns, name))"
        )
        self._db.execute("CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL)")
        self.lock = threading.RLock()
        self._cond = threading.Condition()
        self._index: dict[str, dict[tuple[str, str], Entry]] = {}
        self._ring: deque[WatchEvent] = deque(maxlen=ring_size)
        self._listeners: list[Callable[[WatchEvent], None]] = []
        self.closed = False
        row = self._db.execute("SELECT v FROM meta WHERE k='rv'").fetchone()
        self.rv = int(row[0]) if row else 0
        for rkey, ns, name, rv, data in self._db.execute("SELECT rkey, ns, name, rv, data FROM objects"):
            raw = bytes(data)
            self._index.setdefault(rkey, {})[(ns, name)] = Entry(json.loads(raw), raw, rv)
            self.rv = max(self.rv, rv)
        # Events at or before this resourceVersion are not in the ring (before this process started).
        self.compacted_rv = self.rv

    # ---- reads (no lock) -------------------------------------------------------------------
    def get(self, key: str, namespace: str, name: str) -> Entry | None:
        return self._index.get(key, {}).get((namespace, name))

    def list(self, key: str, namespace: str | None = None) -> tuple[builtins.list[Entry], int]:
        """Entries sorted by namespace then name, and the resourceVersion of the snapshot."""
        rv = self.rv
        items = self._index.get(key, {})
        selected = sorted((k, e) for k, e in list(items.items()) if namespace is None or k[0] == namespace)
        return [e for _, e in selected], rv

    def count(self, key: str) -> int:
        return len(self._index.get(key, {}))

    def keys(self) -> builtins.list[str]:
        return [k for k, v in self._index.items() if v]

    # ---- writes ----------------------------------------------------------------------------
    def subscribe(self, listener: Callable[[WatchEvent], None]) -> None:
        """Call ``listener`` after each committed write (under the write lock: keep it quick)."""
        self._listeners.append(listener)

    def put(self, key: str, obj: dict[str, Any]) -> Entry:
        """Create or replace ``obj``; sets its resourceVersion. ``obj`` is owned by the store after."""
        meta = obj["metadata"]
        ns, name = meta.get("namespace", ""), meta["name"]
        with self.lock:
            prev = self.get(key, ns, name)
            rv = self.rv + 1
            meta["resourceVersion"] = str(rv)
            raw = encode(obj)
            self._db.execute("BEGIN")
            self._db.execute(
                "INSERT OR REPLACE INTO objects (rkey, ns, name, rv, data) VALUES (?, ?, ?, ?, ?)",
                (key, ns, name, rv, raw),
            )
            self._db.execute("INSERT OR REPLACE INTO meta (k, v) VALUES ('rv', ?)", (str(rv),))
            self._db.execute("COMMIT")
            entry = Entry(obj, raw, rv)
            bucket = dict(self._index.get(key, {}))
            bucket[(ns, name)] = entry
            self._index[key] = bucket
            self._publish(WatchEvent(rv, MODIFIED if prev else ADDED, key, ns, name, entry, prev))
            return entry

    def delete(self, key: str, namespace: str, name: str) -> Entry | None:
        """Remove an object; the DELETED event carries a new resourceVersion, as on a real server."""
        with self.lock:
            prev = self.get(key, namespace, name)
            if prev is None:
                return None
            rv = self.rv + 1
            obj = prev.copy()
            obj["metadata"]["resourceVersion"] = str(rv)
            raw = encode(obj)
            self._db.execute("BEGIN")
            self._db.execute("DELETE FROM objects WHERE rkey=? AND ns=? AND name=?", (key, namespace, name))
            self._db.execute("INSERT OR REPLACE INTO meta (k, v) VALUES ('rv', ?)", (str(rv),))
            self._db.execute("COMMIT")
            bucket = dict(self._index.get(key, {}))
            bucket.pop((namespace, name), None)
            self._index[key] = bucket
            entry = Entry(obj, raw, rv)
            self._publish(WatchEvent(rv, DELETED, key, namespace, name, entry, prev))
            return entry

    def _publish(self, ev: WatchEvent) -> None:
        with self._cond:
            self.rv = ev.rv
            if len(self._ring) == self._ring.maxlen:
                self.compacted_rv = self._ring[0].rv
            self._ring.append(ev)
            self._cond.notify_all()
        for listener in self._listeners:
            listener(ev)

    # ---- watch -----------------------------------------------------------------------------
    def events_after(self, rv: int) -> builtins.list[WatchEvent]:
        """Events with resourceVersion greater than ``rv``; ``Expired`` if some were dropped."""
        with self._cond:
            if rv < self.compacted_rv:
                raise Expired(rv)
            out: builtins.list[WatchEvent] = []
            for ev in reversed(self._ring):
                if ev.rv <= rv:
                    break
                out.append(ev)
        out.reverse()
        return out

    def wait_newer(self, rv: int, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self.rv > rv or self.closed, timeout)

    def close(self) -> None:
        with self.lock, self._cond:
            self.closed = True
            self._cond.notify_all()
            self._db.close()
