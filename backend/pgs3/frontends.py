"""Frontends in the shared database: heartbeat, fencing, a dead peer's files, garbage
collection, and what the server keeps with its storage (a mixin of `PgS3Backend`).

Each frontend has a row: `epoch`, bumped every time it starts (and by a peer that declares it
dead), and `heartbeat`, the database's clock at its last upkeep pass. Time is always the
database's `now()`, never a frontend's clock.

* Heartbeat (a thread of its own, every quarter lease, at most 5 s): `heartbeat = now()` where
  the epoch is still ours. Never behind requests: publishes that queue for worker threads, or
  a slow gc pass, must not make a busy frontend look dead. No row updated means a peer declared
  us dead and fenced us: the next upkeep pass raises `Fenced` and the server stops serving (it
  must not answer for state it no longer owns).
* Declaring a peer dead: its heartbeat is older than its lease plus its grace period; its epoch
  is bumped (so its publishes fail the epoch check), its files under construction are retired
  (never published; rule 7) and its locks and share reservations dropped.
* A retired row nobody took back within `retire_after` is discarded: its inode (a new file) and
  the row (nothing of it is in the object store: pieces are uploaded at publish).
* gc: objects whose `not_before` passed are deleted from the object store (uploads aborted).
"""

from __future__ import annotations

import json
import logging
import threading

from .. import interface as I

log = logging.getLogger("nfsd.backend")


class Frontends:
    def _register_frontend(self) -> None:
        with self.db.cursor() as cur:
            cur.execute("INSERT INTO frontends (id, epoch, heartbeat, lease_s, grace_s, state) "
                        "VALUES (%s, 1, now(), %s, %s, 'alive') ON CONFLICT (id) DO UPDATE SET "
                        "epoch = frontends.epoch + 1, heartbeat = now(), lease_s = EXCLUDED.lease_s, "
                        "grace_s = EXCLUDED.grace_s, state = 'alive' RETURNING epoch",
                        (self.frontend, int(self.lease_time), int(self.grace_time)))
            self.epoch = cur.fetchone()[0]
        log.info("frontend %s started (epoch %d)", self.frontend, self.epoch)

    def _start_heartbeat(self) -> None:
        self._stop_beating = threading.Event()
        interval = max(0.2, min(5.0, self.lease_time / 4))
        t = threading.Thread(target=self._beat, args=(interval,), daemon=True,
                             name=f"nfsd-heartbeat-{self.frontend}")
        t.start()
        self._heartbeat_thread = t

    def _beat(self, interval: float) -> None:
        while not self._stop_beating.wait(interval):
            try:
                self._heartbeat()
            except I.Unavailable:
                continue  # logged once by the connection's health; a peer may fence us
            except Exception as e:  # noqa: BLE001 - the next beat tries again
                log.warning("heartbeat failed: %s", e)
            if self.fenced:
                return

    def _heartbeat(self) -> None:
        with self.db.cursor() as cur:
            cur.execute("UPDATE frontends SET heartbeat = now() WHERE id = %s AND epoch = %s "
                        "AND state = 'alive' RETURNING 1", (self.frontend, self.epoch))
            if cur.fetchone() is None:
                self.fenced = True

    def _stop_heartbeat(self) -> None:
        stop = getattr(self, "_stop_beating", None)
        if stop is not None:
            stop.set()
            if self._heartbeat_thread is not threading.current_thread():
                self._heartbeat_thread.join(10)

    def maintenance(self) -> None:
        """Upkeep, from a worker thread every few seconds: Fenced if a peer declared us dead
        (seen by the heartbeat thread), dead peers, retention, gc."""
        if self._closed:
            return
        if self.fenced:
            raise I.Fenced(f"frontend {self.frontend} was declared dead by a peer")
        self._declare_dead()
        self._expire_retired()
        self._collect()

    def _declare_dead(self) -> None:
        with self.db.transaction() as cur:
            cur.execute("UPDATE frontends SET epoch = epoch + 1, state = 'dead' WHERE id <> %s "
                        "AND state = 'alive' AND heartbeat < now() - make_interval(secs => "
                        "lease_s + grace_s) RETURNING id", (self.frontend,))
            dead = [r[0] for r in cur.fetchall()]
            for f in dead:
                cur.execute("UPDATE staging SET state = 'retired', retired_at = now() "
                            "WHERE frontend = %s AND state = 'active'", (f,))
                cur.execute("DELETE FROM locks WHERE frontend = %s", (f,))
                cur.execute("DELETE FROM shares WHERE frontend = %s", (f,))
        for f in dead:
            log.warning("frontend %s declared dead (no heartbeat for its lease and grace): its "
                        "unfinished files are retired", f)

    def _expire_retired(self) -> None:
        with self.db.transaction() as cur:
            cur.execute("DELETE FROM staging WHERE state = 'retired' AND retired_at < now() - "
                        "make_interval(secs => %s) RETURNING id, inode, is_new",
                        (self.retire_after,))
            rows = cur.fetchall()
            for sid, oid, is_new in rows:
                if is_new:
                    cur.execute("DELETE FROM inodes WHERE id = %s AND staged = %s", (oid, sid))
        for sid, *_ in rows:
            log.info("retired file %s of a dead frontend not taken back within %ss: discarded",
                     sid, self.retire_after)

    def _collect(self, limit: int = 256) -> None:
        """Delete what the gc queue says is due (each row after its object is gone)."""
        with self.db.cursor() as cur:
            cur.execute("SELECT id, object_key FROM gc WHERE not_before <= now() "
                        "ORDER BY id LIMIT %s", (limit,))
            rows = cur.fetchall()
        for gid, key in rows:
            try:
                self.objects.delete(key)
            except I.NotFound:
                pass
            with self.db.cursor() as cur:
                cur.execute("DELETE FROM gc WHERE id = %s", (gid,))

    # ---- what the server keeps with its storage
    def client_records(self) -> PgClientRecords:
        return PgClientRecords(self.db, self.frontend)

    def save_status(self, snapshot: dict) -> None:
        with self.db.cursor() as cur:
            cur.execute("INSERT INTO status (frontend, snapshot, updated) VALUES (%s, %s, now()) "
                        "ON CONFLICT (frontend) DO UPDATE SET snapshot = EXCLUDED.snapshot, "
                        "updated = now()", (self.frontend, json.dumps(snapshot)))


class PgClientRecords(I.ClientRecords):
    """Client incarnations holding state on one frontend (its grace after a restart)."""

    def __init__(self, db, frontend: str):
        self.db, self.frontend = db, frontend

    def put_client(self, owner: bytes, verifier: bytes) -> None:
        with self.db.cursor() as cur:
            cur.execute("INSERT INTO clients (frontend, owner, verifier) VALUES (%s, %s, %s) "
                        "ON CONFLICT (frontend, owner) DO UPDATE SET verifier = EXCLUDED.verifier",
                        (self.frontend, bytes(owner), bytes(verifier)))

    def delete_client(self, owner: bytes) -> None:
        with self.db.cursor() as cur:
            cur.execute("DELETE FROM clients WHERE frontend = %s AND owner = %s",
                        (self.frontend, bytes(owner)))

    def clients(self) -> list[tuple[bytes, bytes]]:
        with self.db.cursor() as cur:
            cur.execute("SELECT owner, verifier FROM clients WHERE frontend = %s ORDER BY owner",
                        (self.frontend,))
            return [(bytes(o), bytes(v)) for o, v in cur.fetchall()]
