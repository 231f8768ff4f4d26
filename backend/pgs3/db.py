"""PostgreSQL connections for one frontend: bounded waits, outages as `Unavailable`.

Each thread gets its own connection (psycopg connections are not for concurrent use): the
reactor thread answers requests with one, worker threads (publish, upkeep) with theirs. Every
statement runs under `statement_timeout` and every connect under `connect_timeout`, so a
database that hangs costs a request at most that long; a database that is down makes the call
raise `Unavailable` at once (the protocol layer answers NFS4ERR_DELAY and the client retries).
One log line when the database goes away, one when it is back (`Health`).

Changes to the namespace made through these connections are reported, once their statement or
transaction has ended, to `on_change(changes)` (the trigger's NOTICEs, see metacache.py): this
frontend's cache never answers from a row its own change replaced.
"""

from __future__ import annotations

import logging
import threading
from contextlib import contextmanager

import psycopg
import psycopg.errors
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from .. import interface as I
from .metacache import changed

log = logging.getLogger("nfsd.backend")


class Health:
    """Whether a dependency answers: logs its outages once each, and their end."""

    def __init__(self, what: str):
        self.what = what
        self.down_since = None
        self._lock = threading.Lock()

    def failed(self, why) -> None:
        with self._lock:
            if self.down_since is None:
                self.down_since = True
                log.warning("%s unavailable: %s (requests answer NFS4ERR_DELAY until it is back)",
                            self.what, why)

    def ok(self) -> None:
        if self.down_since is not None:
            with self._lock:
                if self.down_since is not None:
                    self.down_since = None
                    log.warning("%s available again", self.what)


class Database:
    """Connections to the metadata database `url` (a libpq URL or key=value string)."""

    def __init__(self, url: str, statement_timeout: float = 5.0, connect_timeout: float = 2.0):
        self.url = url
        self.statement_timeout_ms = int(statement_timeout * 1000)
        self.connect_timeout = max(1, int(connect_timeout))
        self.health = Health("database")
        self._local = threading.local()
        self._all: list[psycopg.Connection] = []
        self._lock = threading.Lock()
        self._closed = False
        self.on_change = None  # called with what a statement or transaction changed

    def _connect(self, notices: bool = True) -> psycopg.Connection:
        params = conninfo_to_dict(self.url)
        params["options"] = " ".join(filter(None, (
            params.get("options"), f"-c statement_timeout={self.statement_timeout_ms}",
            "-c idle_in_transaction_session_timeout=60000",
            "-c nfsd.notices=on" if notices else "")))
        params["connect_timeout"] = self.connect_timeout
        conn = psycopg.connect(make_conninfo(**params), autocommit=True)
        if notices:
            self._local.changed = []

            def note(diag, seen=self._local.changed):
                what = changed(diag)
                if what is not None:
                    seen.append(what)
            conn.add_notice_handler(note)
        with self._lock:
            self._all.append(conn)
        return conn

    def listener(self) -> psycopg.Connection:
        """A connection of its own (for LISTEN): no statement timeout, no notices."""
        params = conninfo_to_dict(self.url)
        params["connect_timeout"] = self.connect_timeout
        conn = psycopg.connect(make_conninfo(**params), autocommit=True)
        with self._lock:
            self._all.append(conn)
        return conn

    def _enter(self):
        self._local.depth = getattr(self._local, "depth", 0) + 1

    def _leave(self):
        self._local.depth -= 1
        if self._local.depth == 0:
            seen = getattr(self._local, "changed", None)
            if seen:
                what = list(seen)
                seen.clear()
                if self.on_change is not None:
                    self.on_change(what)

    def _conn(self) -> psycopg.Connection:
        c = getattr(self._local, "conn", None)
        if c is None or c.closed or c.broken:
            if self._closed:
                raise I.IOFailure("backend closed")
            c = self._local.conn = self._connect()
        return c

    def _drop(self):
        c = getattr(self._local, "conn", None)
        self._local.conn = None
        if c is not None:
            try:
                c.close()
            except Exception:  # noqa: BLE001 - it is broken already
                pass

    @contextmanager
    def cursor(self):
        """A cursor on this thread's connection (autocommit: each statement is its own
        transaction). Database errors that mean "not now" raise Unavailable."""
        self._enter()
        try:
            c = self._conn()
            with c.cursor() as cur:
                yield cur
        except _CONTENTION as e:  # the database is fine: this statement lost a race
            log.debug("database contention: %s", _first_line(e))
            raise I.Unavailable(_first_line(e)) from None
        except (psycopg.OperationalError, psycopg.InterfaceError) as e:
            self._drop()
            self.health.failed(_first_line(e))
            raise I.Unavailable(_first_line(e)) from None
        else:
            self.health.ok()
        finally:
            self._leave()

    @contextmanager
    def transaction(self):
        """A cursor inside one transaction on this thread's connection: committed when the
        block ends, rolled back if it raises.

        Not in psycopg's pipeline mode: there a cursor that already holds an earlier
        statement's result may answer `fetchone()` with it instead of waiting for the last
        statement's (seen under load: "the last operation didn't produce records (command
        status: DELETE 1)" from an UPDATE ... RETURNING)."""
        self._enter()
        try:
            c = self._conn()
            with c.transaction(), c.cursor() as cur:
                yield cur
        except _CONTENTION as e:  # the database is fine: this statement lost a race
            log.debug("database contention: %s", _first_line(e))
            raise I.Unavailable(_first_line(e)) from None
        except (psycopg.OperationalError, psycopg.InterfaceError) as e:
            self._drop()
            self.health.failed(_first_line(e))
            raise I.Unavailable(_first_line(e)) from None
        else:
            self.health.ok()
        finally:
            self._leave()

    def close(self):
        self._closed = True
        with self._lock:
            conns, self._all = self._all, []
        for c in conns:
            try:
                c.close()
            except Exception:  # noqa: BLE001
                pass


# a deadlock or serialization failure (the transaction was rolled back; the client asks again),
# or a lock not granted: NFS4ERR_DELAY, the connection stays and no outage is logged (a
# statement that ran out of time is an outage: the database may be hanging)
_CONTENTION = (psycopg.errors.TransactionRollback, psycopg.errors.LockNotAvailable)


def _first_line(e) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]
