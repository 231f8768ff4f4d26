"""The life of a file under construction, in one place (docs/semantics.md, rules 1-8).

A file under construction is an `Unfinished`: the backend's staging object (the private version
being written), the client incarnation it belongs to, the open that writes it while it is
active, and its `Phase`. Every change of phase is an `Event` looked up in `TRANSITIONS`; an
event the table has no entry for, in the current phase, is a bug and raises LifecycleError (as
h11 does with its connection states)::

    phase \\ event   PUBLISH    UNCHANGED  REMOVED    ABANDON    CRASH      EXPIRE   RESUME  GRACE_END  DEADLINE
    active          published  discarded  discarded  discarded  discarded  retired
    retired                                                     discarded           active             discarded
    recoverable                                                 discarded           active  retired

`UnfinishedFiles` keeps every one of them and is what the operations and the state store call,
one function per rule; nothing else sets an open's `staging`:

    start, borrow .......... rule 1, 2: an OPEN with write access gets a private version
    finish ................. rule 3: CLOSE, or OPEN_DOWNGRADE dropping write, publishes it
                             (UNCHANGED: a write open that wrote nothing publishes nothing;
                             REMOVED: its name was removed meanwhile, rule 5)
    abandon ................ an NFSv4.0 open-owner that never confirmed its first OPEN starts over
    crash, rebooted ........ rule 6: the same client owner with a new boot verifier
    expire ................. rule 7: the client's state ends without a CLOSE (lease expiry)
    resume ................. rule 7, 8: the same incarnation opens the file for write again
    deadline ............... rule 7: retired longer than the retention time
    restart, end_grace ..... rule 8: found on disk at start-up; grace ends unreclaimed

Plain Python over the backend's synchronous calls: the caller runs what must wait for the disk
(`persist`, the durability callable `finish` returns) where waiting is fine.
"""

from __future__ import annotations

import enum
import logging

log = logging.getLogger("nfsd.state")


class Phase(enum.Enum):
    ACTIVE = "active"  # attached to the open that writes it
    RETIRED = "retired"  # its client went silent: kept, hidden, unpublished
    RECOVERABLE = "recoverable"  # found at start-up, until grace ends
    PUBLISHED = "published"
    DISCARDED = "discarded"


class Event(enum.Enum):
    PUBLISH = "publish"
    UNCHANGED = "unchanged"
    REMOVED = "removed"
    ABANDON = "abandon"
    CRASH = "crash"
    EXPIRE = "expire"
    RESUME = "resume"
    GRACE_END = "grace end"
    DEADLINE = "deadline"


A, R, V = Phase.ACTIVE, Phase.RETIRED, Phase.RECOVERABLE
TRANSITIONS: dict[tuple[Phase, Event], Phase] = {
    (A, Event.PUBLISH): Phase.PUBLISHED,
    (A, Event.UNCHANGED): Phase.DISCARDED,
    (A, Event.REMOVED): Phase.DISCARDED,
    (A, Event.ABANDON): Phase.DISCARDED,
    (A, Event.CRASH): Phase.DISCARDED,
    (A, Event.EXPIRE): R,
    (R, Event.CRASH): Phase.DISCARDED,
    (R, Event.RESUME): A,
    (R, Event.DEADLINE): Phase.DISCARDED,
    (V, Event.CRASH): Phase.DISCARDED,
    (V, Event.RESUME): A,
    (V, Event.GRACE_END): R,
}
LIVE = (A, R, V)


class LifecycleError(RuntimeError):
    """An event in a phase that has no transition for it: a bug in the caller."""


class Unfinished:
    """One file under construction."""

    __slots__ = ("staging", "key", "phase", "writer", "borrowers", "created")

    def __init__(self, staging, key: tuple[bytes, bytes], phase: Phase, created: bool):
        self.staging = staging  # the backend's private version
        self.key = key  # (client owner, boot verifier): the incarnation it belongs to
        self.phase = phase
        self.writer = None  # the OpenState that writes it (active only)
        self.borrowers: list = []  # other opens of the same machine sharing it (new files)
        self.created = created  # a new file (its writer's CLOSE publishes even if empty)

    def on(self, event: Event) -> Phase:
        """Take `event`: the phase it leads to, or LifecycleError."""
        nxt = TRANSITIONS.get((self.phase, event))
        if nxt is None:
            raise LifecycleError(f"{event.value} of a {self.phase.value} file ({self.staging.id})")
        self.phase = nxt
        return nxt

    @property
    def handle(self) -> bytes:
        return self.staging.handle

    def __repr__(self):  # pragma: no cover - debugging aid
        return f"<Unfinished {self.staging.id} {self.phase.value}>"


class UnfinishedFiles:
    """Every file under construction of one server, indexed by file and by incarnation.

    `store` gives the clocks, the retention time, `persist(staging)` (makes a changed record
    durable, in a worker thread) and the event log."""

    def __init__(self, store):
        self.store = store
        self.by_handle: dict[bytes, list[Unfinished]] = {}  # every live one of a file
        self.unattached: dict[tuple[bytes, bytes], list[Unfinished]] = {}  # retired/recoverable
        # in_use(staging, then) -> bool: a server-side copy uses that staging object; it is
        # cancelled and `then` runs once it stopped (True), or nothing uses it (False).
        self.in_use = lambda staging, then: False

    # ------------------------------------------------------------------ queries
    def of(self, handle: bytes) -> list[Unfinished]:
        return self.by_handle.get(handle, ())

    def writing(self, handle: bytes) -> bool:
        """Does an open write this file now (rule 1)?"""
        return any(u.phase is A for u in self.by_handle.get(handle, ()))

    def stagings_of(self, handle: bytes, client) -> list:
        """The versions `client`'s machine is writing of this file (it reads what it wrote)."""
        return [u.staging for u in self.by_handle.get(handle, ())
                if u.phase is A and u.writer.client is client]

    def staging_of(self, handle: bytes, client):
        """One version `client`'s machine writes of this file, or None."""
        for u in self.by_handle.get(handle, ()):
            if u.phase is A and u.writer.client is client:
                return u.staging
        return None

    def hidden(self, handle: bytes, viewer: bytes) -> bool:
        """Rule 2: is this a new file, not published yet, that another client is creating (or
        created before it went silent or the server restarted)?"""
        lst = self.by_handle.get(handle)
        if not lst:
            return False
        return all(u.staging.is_new for u in lst) and all(u.staging.viewer != viewer for u in lst)

    def counts(self) -> dict[str, int]:
        n = {p: 0 for p in LIVE}
        for lst in self.by_handle.values():
            for u in lst:
                n[u.phase] += 1
        return {"active": n[A], "retired": n[R], "recoverable": n[V]}

    def retired_keys(self) -> set:
        return {k for k, lst in self.unattached.items() if any(u.phase is R for u in lst)}

    def recoverable_keys(self) -> set:
        return {k for k, lst in self.unattached.items() if any(u.phase is V for u in lst)}

    # ------------------------------------------------------------------ rule 1, 2
    def start(self, st, staging, created: bool) -> Unfinished:
        """Rules 1 and 2: open `st` writes the private version `staging` (a new file it created,
        or a copy-on-write version of a published one)."""
        u = Unfinished(staging, _key(st.client), A, created)
        staging.set_record(self.store.owner_record(st.owner))
        self._add(u)
        self._attach(u, st)
        return u

    def borrow(self, st) -> bool:
        """A second open-owner of the machine that is creating this file opens it for write
        (two users' processes): it shares the creator's version; only the creating open's
        CLOSE publishes it. False if no open of its machine is creating the file."""
        for u in self.by_handle.get(st.fh, ()):
            if u.phase is A and u.created and u.writer.client is st.client:
                u.borrowers.append(st)
                st.staging, st.work = u.staging, u
                return True
        return False

    # ------------------------------------------------------------------ rule 3, 5
    def finish(self, st, sync: bool = False):
        """Rule 3: open `st` stops writing (CLOSE, or OPEN_DOWNGRADE dropping write).

        The writer's version is published (a new file always, a new version if it changed;
        UNCHANGED: discarded) and visible when this returns; a borrower just lets go. Returns
        None, or a callable that makes the publish durable (it blocks: run it in a worker
        thread; see `Backend.publish`), or, for a backend whose publish itself waits for its
        storage (`publish_blocks`), a `Publishing` to run. A backend error leaves everything
        as it was."""
        u = st.work
        if u is None:
            return None
        if st is not u.writer:
            self._let_go(u, st)
            return None
        stg = u.staging
        be = stg.backend
        if not (u.created or stg.dirty):
            self._end(u, Event.UNCHANGED)
            be.discard(stg)
            return None
        if getattr(be, "publish_blocks", False):
            return Publishing(self, u)
        from backend.interface import Gone

        try:
            durable = be.publish(stg, sync=sync)
        except Gone:  # rule 5: its name was removed while it was written
            self._end(u, Event.REMOVED)
            return None
        self._end(u, Event.PUBLISH)
        return durable

    def abandon(self, st):
        """An OPEN that did not happen after all (it failed after its version was attached, or
        an NFSv4.0 open-owner whose first OPEN was never confirmed opens again, RFC 7530 16.18):
        neither did its version."""
        u = st.work
        if u is None:
            return
        if st is not u.writer:
            self._let_go(u, st)
            return
        self._end(u, Event.ABANDON)
        self._discard(u.staging)

    # ------------------------------------------------------------------ rule 6
    def crash(self, owner: bytes, verifier: bytes):
        """Rule 6: client `owner` is back with a new boot verifier: the files its old
        incarnation was writing, retired or left at a restart are discarded now."""
        key = (owner, verifier)
        doomed = [u for lst in self.by_handle.values() for u in lst if u.key == key]
        for u in doomed:
            self._end(u, Event.CRASH)
            self.store._event("discard", f"client {owner!r} rebooted: discarded unpublished "
                                         f"file {u.staging.id}")
            self._discard(u.staging)

    def rebooted(self, owner: bytes, verifier: bytes):
        """Rule 6 for incarnations without a live client record: `owner` presents `verifier`,
        so files left by its other incarnations (retired when their lease expired, or
        recoverable after a server restart) can never be resumed: discarded now."""
        for key in [k for k in self.unattached if k[0] == owner and k[1] != verifier]:
            self.crash(*key)

    # ------------------------------------------------------------------ rule 7
    def expire(self, st):
        """Rule 7: the state of the client of open `st` ends without a CLOSE (its lease
        expired, or a record of the same incarnation replaced it): the version it wrote is
        retired, kept and hidden until the same incarnation resumes it or the deadline."""
        u = st.work
        if u is None:
            return
        if st is not u.writer:
            self._let_go(u, st)
            return
        self._detach(u)
        u.on(Event.EXPIRE)
        self._retire_record(u)
        self.unattached.setdefault(u.key, []).append(u)
        self.store._event("retire", f"unpublished file {u.staging.id} of client {u.key[0]!r} "
                                    "retired")

    def resume(self, st) -> bool:
        """Rules 7 and 8: the same incarnation opens a file it left retired (silence) or
        recoverable (restart) for write: that open writes the same version again. False if
        there is none."""
        key = _key(st.client)
        lst = self.unattached.get(key)
        for u in lst or ():
            if u.handle == st.fh:
                lst.remove(u)
                if not lst:
                    del self.unattached[key]
                u.on(Event.RESUME)
                rec = dict(u.staging.record)
                rec["state"] = "active"
                rec.pop("retired_at", None)
                u.staging.set_record(rec)
                self.store.persist(u.staging)
                self._attach(u, st)
                return True
        return False

    def deadline(self):
        """Rule 7: retired files nobody resumed within the retention time are discarded."""
        limit = self.store.wallclock() - self.store.retire_after
        for key, lst in list(self.unattached.items()):
            for u in [u for u in lst if u.phase is R and
                      u.staging.record.get("retired_at", 0) <= limit]:
                lst.remove(u)
                self._end(u, Event.DEADLINE)
                self.store._event("discard", f"retired file {u.staging.id} not reclaimed within "
                                             f"{self.store.retire_after}s: discarded")
                self._discard(u.staging)
            if not lst:
                del self.unattached[key]

    # ------------------------------------------------------------------ rule 8
    def restart(self, staging):
        """Rule 8: a version found on disk at start-up (written by an earlier run): its
        incarnation may reclaim it during grace (a retired one stays retired)."""
        rec = staging.record
        key = (bytes.fromhex(rec.get("owner", "")), bytes.fromhex(rec.get("verifier", "")))
        phase = R if rec.get("state") == "retired" else V
        u = Unfinished(staging, key, phase, staging.is_new)
        self._add(u)
        self.unattached.setdefault(key, []).append(u)

    def end_grace(self):
        """Rule 8: grace is over; what nobody reclaimed is retired (rule 7 from here on)."""
        for lst in self.unattached.values():
            for u in lst:
                if u.phase is V:
                    u.on(Event.GRACE_END)
                    self._retire_record(u)
                    self.store._event("retire", f"unpublished file {u.staging.id} not "
                                                "reclaimed in grace: retired")

    # ------------------------------------------------------------------ mechanics
    def _add(self, u: Unfinished):
        self.by_handle.setdefault(u.handle, []).append(u)

    def _attach(self, u: Unfinished, st):
        u.writer = st
        st.staging, st.work = u.staging, u

    @staticmethod
    def _let_go(u: Unfinished, st):
        """A borrower stops sharing `u` (nothing happens to the file)."""
        u.borrowers.remove(st)
        st.staging = st.work = None

    def _detach(self, u: Unfinished):
        for st in [u.writer, *u.borrowers]:
            if st is not None:
                st.staging = st.work = None
        u.writer = None
        u.borrowers = []

    def _end(self, u: Unfinished, event: Event):
        """A final event (published or discarded): it leaves every index."""
        if u.phase is A:
            self._detach(u)
        u.on(event)
        lst = self.by_handle.get(u.handle)
        if lst is not None:
            if u in lst:
                lst.remove(u)
            if not lst:
                del self.by_handle[u.handle]
        unattached = self.unattached.get(u.key)
        if unattached is not None and u in unattached:
            unattached.remove(u)
            if not unattached:
                del self.unattached[u.key]

    def _retire_record(self, u: Unfinished):
        rec = dict(u.staging.record)
        rec["state"] = "retired"
        rec["retired_at"] = self.store.wallclock()
        u.staging.set_record(rec)
        self.store.persist(u.staging)

    def _discard(self, staging):
        if self.in_use(staging, lambda: self._discard(staging)):
            return  # discarded when the copy that writes it stopped
        try:
            staging.backend.discard(staging)
        except Exception:  # noqa: BLE001 - a failed discard must not break the caller
            log.exception("discarding %s failed", staging.id)


class Publishing:
    """Rule 3 for a backend whose publish waits for its storage (an object store): `run()`
    publishes, in a worker thread; then `done(run's result)` on the event loop makes the
    transition. Until then the file stays active with its writer (a failed publish leaves it
    so: the client may CLOSE again)."""

    def __init__(self, files: UnfinishedFiles, u: Unfinished):
        self.files, self.u = files, u

    def run(self):
        from backend.interface import Gone

        try:
            self.u.staging.backend.publish(self.u.staging, sync=True)
        except Gone:
            return Event.REMOVED
        return Event.PUBLISH

    def done(self, event: Event):
        if self.u.phase is A:
            self.files._end(self.u, event)


def _key(client) -> tuple[bytes, bytes]:
    return client.owner, client.verifier
