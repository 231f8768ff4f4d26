"""A frontend's cache of the namespace: inode rows, names and listings, kept coherent by the
database telling every frontend what changed.

Every change to `inodes` or `entries` runs a trigger (schema.py) that sends what changed (an
inode's row, an inode deleted, one name of a directory) on the namespace's notification
channel; the notification is delivered when the transaction commits, to every frontend, in
commit order. A listener thread per frontend (its own connection, `LISTEN`) drops what the
cache holds of it: a row; a deleted directory's names and listing; one name and the listing.
The same trigger raises a NOTICE on the connection that made the change, so this frontend's own
changes are dropped when its statement or transaction ends, before it answers anybody: a
client talking to one frontend always sees its own changes and everybody's that frontend saw.

What a client of another frontend changed shows here as soon as the notification arrives (well
under a millisecond on one network). Where NFS promises more - an OPEN sees what any CLOSE
before it published (close-to-open), a LOCK what was written under the lock before it - the
protocol layer calls `barrier()`: a notification of this frontend's own on the same channel,
waited for by the listener. Notifications arrive in commit order, so once it is heard every
change committed before it has been applied.

Races: a row read from the database is kept only if no id was dropped between the read's start
and its `put` (`gen`), so a read that raced a change never stores what the change replaced.

The cache is used only while the listener is connected and has confirmed so recently
(`usable`); without it (database down, connection lost, listener stuck) every read goes to the
database, and when the listener is back everything cached before is dropped (notifications may
have been missed meanwhile). Its size is bounded: past `max_rows` it starts over.
"""

from __future__ import annotations

import logging
import os
import threading
import time

log = logging.getLogger("nfsd.backend")

NOTICE = "nfsd changed "  # the trigger's NOTICE text, then what changed
LIVE = 2.0  # seconds the listener's last confirmation keeps the cache usable
BARRIER_WAIT = 2.0


class MetaCache:
    def __init__(self, db, channel: str, max_rows: int = 200_000, max_listing: int = 10_000):
        self.db = db
        self.channel = channel
        self.max_rows = max_rows
        self.max_listing = max_listing
        self.rows: dict[int, tuple] = {}  # inode id -> row (namespace.COLS)
        self.names: dict[int, dict] = {}  # dir id -> {name: child id, or None: no such name}
        self.listings: dict[int, list] = {}  # dir id -> [(cookie, name, child id)], complete
        self.gen = 0
        self.hits = self.misses = 0
        self._lock = threading.Lock()
        self._heard = threading.Condition(self._lock)
        self._live_until = 0.0
        self._nonce = os.urandom(4).hex()
        self.listener_pid = None  # the listener's database session (for operators, tests)
        self._asked = 0  # barriers sent / heard back
        self._answered = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._listen, name="nfsd-pgs3-listener",
                                        daemon=True)
        self._thread.start()

    # ---- reading
    def usable(self) -> bool:
        return time.monotonic() < self._live_until

    def token(self):
        """Taken before a database read whose result may be kept (`put_*`); None: do not keep."""
        return self.gen if self.usable() else None

    def row(self, oid: int):
        if not self.usable():
            return None
        r = self.rows.get(oid)
        if r is None:
            self.misses += 1
        else:
            self.hits += 1
        return r

    def name(self, d: int, name: bytes):
        """(True, child id or None) if cached, else (False, None)."""
        if not self.usable():
            return False, None
        names = self.names.get(d)
        if names is None or name not in names:
            return False, None
        return True, names[name]

    def listing(self, d: int):
        return self.listings.get(d) if self.usable() else None

    def put_rows(self, token, rows) -> None:
        if token is None:
            return
        with self._lock:
            if token != self.gen:
                return
            if len(self.rows) + len(rows) > self.max_rows:
                self._clear()
                return
            for r in rows:
                self.rows[r[0]] = r

    def put_name(self, token, d: int, name: bytes, child) -> None:
        if token is None:
            return
        with self._lock:
            if token != self.gen:
                return
            names = self.names.get(d)
            if names is None:
                if len(self.names) >= self.max_rows // 8:
                    self.names.clear()
                names = self.names[d] = {}
            if len(names) < self.max_listing:
                names[name] = child

    def put_listing(self, token, d: int, entries) -> None:
        if token is None or len(entries) > self.max_listing:
            return
        with self._lock:
            if token != self.gen:
                return
            if len(self.listings) >= self.max_rows // self.max_listing + 16:
                self.listings.clear()
            self.listings[d] = entries

    # ---- dropping
    def drop(self, changes) -> None:
        """Forget what `changes` (the trigger's texts) make stale."""
        with self._lock:
            self.gen += 1
            for what in changes:
                c = what[:1]
                try:
                    if c == "e":
                        d, _, name = what[1:].partition(":")
                        d = int(d)
                        self.listings.pop(d, None)
                        names = self.names.get(d)
                        if names is not None:
                            names.pop(bytes.fromhex(name), None)
                    elif c == "x":
                        o = int(what[1:])
                        self.rows.pop(o, None)
                        self.names.pop(o, None)
                        self.listings.pop(o, None)
                    else:
                        self.rows.pop(int(what), None)
                except ValueError:
                    self._clear()  # not ours to parse: start over rather than keep stale data

    def _clear(self) -> None:
        self.gen += 1
        self.rows.clear()
        self.names.clear()
        self.listings.clear()

    def clear(self) -> None:
        with self._lock:
            self._clear()

    # ---- coherence with the other frontends
    def barrier(self) -> None:
        """Return once every change committed anywhere before this call is applied here."""
        if not self.usable():
            return  # nothing is read from the cache anyway
        with self._lock:
            self._asked += 1
            n = self._asked
        with self.db.cursor() as cur:
            cur.execute("SELECT pg_notify(%s, %s)", (self.channel, f"b{self._nonce}:{n}"),
                        prepare=True)
        with self._heard:
            if not self._heard.wait_for(lambda: self._answered >= n or self._stop.is_set(),
                                        BARRIER_WAIT):
                log.warning("namespace cache: no answer from the listener in %.0f s; reading "
                            "from the database until it is back", BARRIER_WAIT)
                self._live_until = 0.0
                self._clear()

    def _listen(self) -> None:
        delay = 0.2
        while not self._stop.is_set():
            conn = None
            try:
                conn = self.db.listener()
                conn.execute(f'LISTEN "{self.channel}"')
                self.listener_pid = conn.info.backend_pid
                with self._lock:
                    self._clear()  # what was missed while nobody listened
                delay = 0.2
                while not self._stop.is_set():
                    with self._lock:
                        self._live_until = time.monotonic() + LIVE
                    for n in conn.notifies(timeout=0.5):
                        self._heard_of(n.payload)
                        if self._stop.is_set():
                            break
                    conn.execute("SELECT 1")  # still connected: the cache stays usable
            except Exception as e:  # noqa: BLE001 - any failure: read the database meanwhile
                with self._lock:
                    self._live_until = 0.0
                    self._clear()
                if not self._stop.is_set():
                    log.debug("namespace cache listener: %s", e)
                self._stop.wait(delay)
                delay = min(delay * 2, 5.0)
            finally:
                if conn is not None:
                    try:
                        conn.close()
                    except Exception:  # noqa: BLE001
                        pass
        with self._heard:
            self._heard.notify_all()

    def _heard_of(self, payload: str) -> None:
        if payload[:1] == "b":
            nonce, _, n = payload[1:].partition(":")
            if nonce == self._nonce:
                with self._heard:
                    self._answered = max(self._answered, int(n))
                    self._live_until = time.monotonic() + LIVE
                    self._heard.notify_all()
            return
        if payload[:1] == "s":
            return
        self.drop((payload,))

    def close(self) -> None:
        self._stop.set()
        self._live_until = 0.0
        try:  # wake the listener now rather than at its next timeout
            with self.db.cursor() as cur:
                cur.execute("SELECT pg_notify(%s, %s)", (self.channel, f"s{self._nonce}"))
        except Exception:  # noqa: BLE001 - it stops at its timeout anyway
            pass
        self._thread.join(5)


def changed(diag) -> str | None:
    """What a NOTICE of the trigger says changed, else None."""
    msg = diag.message_primary or ""
    return msg[len(NOTICE):] if msg.startswith(NOTICE) else None

