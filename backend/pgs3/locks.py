"""Locks and share reservations across frontends, in PostgreSQL (`SharedLocks`).

Each frontend keeps its own clients' locks and share reservations in memory (the state store)
and writes them here, so the others see them. A new lock or reservation is checked against the
other frontends' rows and recorded in one transaction that locks the file's inode row, so two
frontends cannot both grant conflicting ones. Rows carry the writer's epoch: after a restart a
frontend keeps its old rows until its grace period is over (its clients reclaim them meanwhile,
and the other frontends must go on respecting them), then drops the ones not reclaimed; a
frontend declared dead loses them all (frontends.py).
"""

from __future__ import annotations

import threading

from .. import interface as I

END = 2 ** 63 - 1  # "to the end of the file"


class PgSharedLocks(I.SharedLocks):
    def __init__(self, backend):
        self.b = backend
        self.pending: list[tuple[int, bytes]] = []  # releases the database could not take yet
        self._flushing = threading.Lock()

    def _oid(self, handle):
        try:
            return self.b._oid(handle)
        except I.BackendError:
            return None  # not this namespace's: nothing shared about it

    def share(self, handle, key, access, deny) -> bool:
        oid = self._oid(handle)
        if oid is None:
            return True
        with self.b.db.transaction() as cur:
            if access:
                cur.execute("SELECT 1 FROM inodes WHERE id = %s FOR UPDATE", (oid,))
                cur.execute("SELECT 1 FROM shares WHERE inode = %s AND frontend <> %s AND "
                            "((access & %s) <> 0 OR (deny & %s) <> 0) LIMIT 1",
                            (oid, self.b.frontend, deny, access))
                if cur.fetchone() is not None:
                    return False
                cur.execute("INSERT INTO shares (inode, frontend, epoch, open_key, access, deny) "
                            "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (inode, frontend, "
                            "open_key) DO UPDATE SET access = EXCLUDED.access, "
                            "deny = EXCLUDED.deny, epoch = EXCLUDED.epoch",
                            (oid, self.b.frontend, self.b.epoch, bytes(key), access, deny))
            else:
                cur.execute("DELETE FROM shares WHERE inode = %s AND frontend = %s AND "
                            "open_key = %s", (oid, self.b.frontend, bytes(key)))
        return True

    def lock(self, handle, owner, ranges, want=None):
        oid = self._oid(handle)
        if oid is None:
            return None
        with self.b.db.transaction() as cur:
            if want is not None:
                cur.execute("SELECT 1 FROM inodes WHERE id = %s FOR UPDATE", (oid,))
                c = self._conflict(cur, oid, *want)
                if c is not None:
                    return c
            cur.execute("DELETE FROM locks WHERE inode = %s AND frontend = %s AND owner = %s",
                        (oid, self.b.frontend, bytes(owner)))
            for start, end, write in ranges:
                cur.execute("INSERT INTO locks (inode, frontend, epoch, owner, start_, end_, "
                            "exclusive) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                            (oid, self.b.frontend, self.b.epoch, bytes(owner), start,
                             min(end, END), bool(write)))
        return None

    def test(self, handle, start, end, write):
        oid = self._oid(handle)
        if oid is None:
            return None
        with self.b.db.cursor() as cur:
            return self._conflict(cur, oid, start, end, write)

    def _conflict(self, cur, oid, start, end, write):
        cur.execute("SELECT start_, end_, exclusive FROM locks WHERE inode = %s AND "
                    "frontend <> %s AND start_ < %s AND end_ > %s AND (exclusive OR %s) LIMIT 1",
                    (oid, self.b.frontend, min(end, END), start, bool(write)))
        row = cur.fetchone()
        return None if row is None else (row[0], row[1], row[2])

    def release(self, handle, key) -> None:
        oid = self._oid(handle)
        if oid is not None:
            self.pending.append((oid, bytes(key)))
            self.flush()

    def flush(self) -> None:
        """Delete the rows of released opens and lock states (kept for later if the database
        is down; the upkeep pass calls this too)."""
        if not self._flushing.acquire(blocking=False):
            return  # another thread is at it
        try:
            self._flush()
        finally:
            self._flushing.release()

    def _flush(self) -> None:
        while self.pending:
            oid, key = self.pending[0]
            try:
                with self.b.db.cursor() as cur:
                    cur.execute("WITH s AS (DELETE FROM shares WHERE inode = %s AND "
                                "frontend = %s AND open_key = %s) DELETE FROM locks WHERE "
                                "inode = %s AND frontend = %s AND owner = %s",
                                (oid, self.b.frontend, key, oid, self.b.frontend, key),
                                prepare=True)
            except I.BackendError:
                return
            self.pending.pop(0)

    def drop_old(self) -> None:
        """After this frontend's grace period: its rows from before the restart go."""
        with self.b.db.cursor() as cur:
            cur.execute("DELETE FROM locks WHERE frontend = %s AND epoch < %s",
                        (self.b.frontend, self.b.epoch))
            cur.execute("DELETE FROM shares WHERE frontend = %s AND epoch < %s",
                        (self.b.frontend, self.b.epoch))
