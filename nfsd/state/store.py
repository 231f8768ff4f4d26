"""All NFSv4 state in one place: clients, sessions, slots, opens, stateids, leases, grace, and
(through `nfsd.state.lifecycle`, which owns its transitions) the files under construction.

Plain Python: no sockets, no XDR. Time and randomness are injected (`clock`, `rand`) so leases and
identifiers can be driven from tests. Operations call the methods here; every state transition
happens in this module or in lifecycle.py.

Client records: EXCHANGE_ID creates an unconfirmed record; CREATE_SESSION confirms it (and a
confirmed record of the same owner with another verifier is replaced: that client rebooted).
"""

from __future__ import annotations

import logging
import os
import struct
import time
from collections import deque

from ..errors import NFS4Error
from ..xdr import nfs4 as x
from . import locks as L
from .clients import Clients
from .delegations import DELEG_BLOCK, RECALL_TIMEOUT, Delegations
from .lifecycle import UnfinishedFiles
from .model import (
    ONES_OTHER,
    ZERO_OTHER,
    Client,
    Delegation,
    LockOwner,
    LockState,
    OpenOwner,
    OpenState,
    Session,
)

log = logging.getLogger("nfsd.state")

SHARE_ACCESS_MASK = 0x3

# Errors after which a 4.0 owner's seqid does not advance (RFC 7530 section 9.1.7).
SEQID_NO_BUMP = frozenset({
    x.NFS4ERR_STALE_CLIENTID, x.NFS4ERR_STALE_STATEID, x.NFS4ERR_BAD_STATEID,
    x.NFS4ERR_BAD_SEQID, x.NFS4ERR_BADXDR, x.NFS4ERR_RESOURCE, x.NFS4ERR_NOFILEHANDLE,
    x.NFS4ERR_MOVED,
})  # OPEN4_SHARE_ACCESS_BOTH; 4.1 puts WANT flags in the upper bits


class StateStore(Clients, Delegations):
    """The state of one server (see the module text); client records, sessions and leases are
    the `Clients` part (clients.py)."""

    def __init__(self, clock=time.monotonic, rand=os.urandom, lease_time=90,
                 retire_after=3600, grace_time=None, records=None, wallclock=time.time,
                 max_clients=10_000, max_opens_per_client=10_000, recall_timeout=None):
        self.clock = clock
        self.rand = rand
        self.wallclock = wallclock
        self.lease_time = lease_time
        self.retire_after = retire_after
        self.grace_time = lease_time if grace_time is None else grace_time
        self.records = records  # durable client records (backend.records.RecordStore) or None
        self.max_clients = max_clients
        self.max_opens_per_client = max_opens_per_client
        # A server instance ("boot epoch") is part of every clientid, sessionid and stateid.
        self.epoch = (int(wallclock()) ^ int.from_bytes(rand(4), "big")) & 0xFFFFFFFF or 1
        self._counter = 0
        self.clients: dict[int, Client] = {}  # clientid -> Client (confirmed or not)
        self.unconfirmed40: dict[int, Client] = {}  # 4.0 SETCLIENTID records awaiting confirm
        # 4.0: closed opens, kept one lease so a retransmitted CLOSE is replayed (other -> st)
        self.closed40: dict[bytes, tuple] = {}
        # What an expired client held, remembered a while so it hears EXPIRED, not BAD_STATEID.
        self.expired_ids: dict[int, float] = {}
        self.expired_others: dict[bytes, float] = {}
        self.by_owner: dict[bytes, list[Client]] = {}  # owner -> records with that owner
        self.sessions: dict[bytes, Session] = {}
        self.states: dict[bytes, object] = {}  # stateid other -> OpenState / LockState
        self.opens_by_file: dict[bytes, list[OpenState]] = {}  # handle -> opens
        self.locks_by_file: dict[bytes, list[LockState]] = {}  # handle -> lock states
        self.delegs_by_file: dict[bytes, list[Delegation]] = {}  # handle -> delegations
        self.recall_timeout = min(lease_time, RECALL_TIMEOUT) if recall_timeout is None \
            else recall_timeout
        self.recalled: deque[Delegation] = deque()  # recalled, in order of recall
        self.blocked: dict[bytes, float] = {}  # handle -> clock of its last recall
        # How a delegation is recalled (the server sends CB_RECALL); set by the server.
        self.send_recall = lambda deleg: None
        self.unfinished = UnfinishedFiles(self)  # every file under construction
        # Locks and share reservations of other servers sharing the storage (SharedLocks of a
        # backend several frontends serve), told ours; None: this server is alone.
        self.shared = None
        self.grace_until = None  # clock value when grace ends, or None
        self.reclaimers: set[bytes] = set()  # owners that held state before the restart
        self.events: list[tuple[str, str]] = []  # (kind, text) of recent lifecycle events
        # How a changed staging record is made durable (the server runs it in a thread).
        self.persist = lambda staging: staging.sync()

    # ------------------------------------------------------------------ identifiers
    def _next(self) -> int:
        self._counter += 1
        return self._counter

    def new_clientid(self) -> int:
        return (self.epoch << 32) | (self._next() & 0xFFFFFFFF)

    def new_other(self) -> bytes:
        return struct.pack(">IQ", self.epoch, self._next())

    def new_sessionid(self, client: Client) -> bytes:
        return struct.pack(">QII", client.clientid, self.epoch, self._next() & 0xFFFFFFFF)

    def is_stale_clientid(self, clientid: int) -> bool:
        return (clientid >> 32) != self.epoch

    # ------------------------------------------------------------------ leases and time
    def now(self) -> float:
        return self.clock()

    def renew(self, client: Client):
        client.last_renew = self.clock()

    def lease_expired(self, client: Client) -> bool:
        return self.clock() - client.last_renew > self.lease_time

    def in_grace(self) -> bool:
        if self.grace_until is None:
            return False
        if self.clock() >= self.grace_until:
            self.end_grace()
            return False
        return True

    def start_grace(self, owners: set[bytes]):
        """After a restart: clients that held state may reclaim it for one grace period."""
        if owners:
            self.reclaimers = set(owners)
            self.grace_until = self.clock() + self.grace_time
            log.info("grace period of %ss for %d client(s)", self.grace_time, len(owners))

    def end_grace(self):
        if self.grace_until is None:
            return
        self.grace_until = None
        if self.records is not None:
            # Clients that did not come back lose their right to reclaim at the next restart.
            live = {c.owner for c in self.clients.values() if c.recorded}
            for owner in self.reclaimers - live:
                self.records.delete_client(owner)
        self.reclaimers.clear()
        self.unfinished.end_grace()
        log.info("grace period over")

    def tick(self):
        """Periodic housekeeping: expire leases, end grace, drop retired files past retention."""
        now = self.clock()
        self.in_grace()
        for client in list(self.clients.values()):
            if now - client.last_renew > self.lease_time and not self._busy(client):
                self.expire_client(client)
        for other, (_, when) in list(self.closed40.items()):
            if now - when > self.lease_time:
                del self.closed40[other]
        for table in (self.expired_ids, self.expired_others):
            if table:
                horizon = now - max(self.retire_after, 10 * self.lease_time)
                for k in [k for k, t in table.items() if t < horizon or len(table) > 100_000]:
                    del table[k]
        self.revoke_due()
        for fh in [fh for fh, t in self.blocked.items() if now - t >= DELEG_BLOCK]:
            del self.blocked[fh]
        self.unfinished.deadline()

    def snapshot(self) -> dict:
        """What an operator sees in `nfsd inspect`: clients, their leases, pending files."""
        now = self.clock()
        clients = []
        for c in self.clients.values():
            opens = [st for st in c.states.values() if isinstance(st, OpenState)]
            clients.append({
                "owner": _text(c.owner),
                "clientid": f"{c.clientid:#018x}",
                "minor_version": c.minor,
                "confirmed": c.confirmed,
                "lease": "expired" if c.expired else "active",
                "lease_remaining_s": round(self.lease_time - (now - c.last_renew), 1),
                "sessions": len(c.sessions),
                "opens": len(opens),
                "writing": sum(1 for st in opens if st.staging is not None),
            })
        grace = None if self.grace_until is None else round(self.grace_until - now, 1)
        n = self.unfinished.counts()
        return {"lease_time_s": self.lease_time, "grace_remaining_s": grace,
                "clients": clients, "retired": n["retired"], "recoverable": n["recoverable"]}

    def _busy(self, client: Client) -> bool:
        return any(s.busy for sess in client.sessions.values() for s in sess.slots)

    def _event(self, kind: str, text: str):
        log.info("%s", text)
        self.events.append((kind, text))
        del self.events[:-100]

    # ------------------------------------------------------------------ staging records
    @staticmethod
    def owner_record(owner: OpenOwner) -> dict:
        """The staging record of a file `owner` writes (also given before its open exists,
        to `create_staged`, so the first record written is already the right one)."""
        c = owner.client
        return {
            "owner": c.owner.hex(),
            "verifier": c.verifier.hex(),
            "open_owner": owner.owner.hex(),
            "state": "active",
        }

    @staticmethod
    def viewer(client: Client) -> bytes:
        """The key under which a client's files under construction are visible to it."""
        return client.owner + b"\0" + client.verifier

    # ------------------------------------------------------------------ opens
    def open_owner(self, client: Client, owner: bytes) -> OpenOwner:
        oo = client.open_owners.get(owner)
        if oo is None:
            oo = OpenOwner(client, owner)
            client.open_owners[owner] = oo
        return oo

    def check_share(self, fh: bytes, access: int, deny: int, owner: OpenOwner):
        """Share reservations (RFC 8881 section 9.7): checked against every open of the file,
        the owner's own included (an owner that denies WRITE cannot then open for WRITE), as
        Linux nfsd does."""
        for st in self.opens_by_file.get(fh, ()):
            if st.closed:
                continue
            if (access & st.deny) or (deny & st.access):
                raise NFS4Error(x.NFS4ERR_SHARE_DENIED)

    def denied(self, fh: bytes, access: int) -> bool:
        """Does some open deny this access (for I/O without an open: NFS4ERR_LOCKED)?"""
        return any(st.deny & access for st in self.opens_by_file.get(fh, ()) if not st.closed)

    def open_file(self, owner: OpenOwner, fh: bytes, export, access: int, deny: int) -> OpenState:
        """Create or upgrade the open of `fh` by `owner`; bumps the stateid seqid."""
        self.check_share(fh, access, deny, owner)
        st = owner.opens.get(fh)
        if st is None:
            client = owner.client
            if len(client.states) >= self.max_opens_per_client:
                # Open files (and lock/delegation states) per client are bounded.
                raise NFS4Error(x.NFS4ERR_RESOURCE if client.minor == 0 else x.NFS4ERR_NOSPC)
        other = st.other if st is not None else self.new_other()
        if self.shared is not None and not _shared(
                self.shared.share, fh, other, (st.access if st else 0) | access,
                (st.deny if st else 0) | deny):
            raise NFS4Error(x.NFS4ERR_SHARE_DENIED)  # an open through another server
        self._record(owner.client)
        if st is None:
            st = OpenState(other, owner, fh, export)
            owner.opens[fh] = st
            owner.client.states[st.other] = st
            self.states[st.other] = st
            self.opens_by_file.setdefault(fh, []).append(st)
        st.access |= access
        st.deny |= deny
        st.access_modes.add(access)
        st.deny_modes.add(deny)
        st.seqid = (st.seqid + 1) & 0xFFFFFFFF or 1
        return st

    def pinned(self, fh: bytes):
        """A pinned version of `fh` held by some open (it stays readable after REMOVE)."""
        for st in self.opens_by_file.get(fh, ()):
            if st.pin is not None:
                return st.pin
        return None

    @staticmethod
    def check_downgrade(st: OpenState, access: int, deny: int):
        """OPEN_DOWNGRADE may only go to modes this open was opened with (RFC 7530 16.19.4)."""
        if access not in st.access_modes or deny not in st.deny_modes:
            raise NFS4Error(x.NFS4ERR_INVAL)

    def downgrade(self, st: OpenState, access: int, deny: int):
        """OPEN_DOWNGRADE (`check_downgrade` first)."""
        self.check_downgrade(st, access, deny)
        if self.shared is not None:
            _shared(self.shared.share, st.fh, st.other, access, deny)
        st.access = access
        st.deny = deny
        st.access_modes = {m for m in st.access_modes if not m & ~access}
        st.deny_modes = {m for m in st.deny_modes if not m & ~deny}
        st.seqid = (st.seqid + 1) & 0xFFFFFFFF or 1

    def close_open(self, st: OpenState):
        """Forget an open (after its staging, if any, was published or discarded)."""
        if any(ls.ranges for ls in st.locks.values()):
            raise NFS4Error(x.NFS4ERR_LOCKS_HELD)
        self._drop_open(st)
        st.owner.client.states.pop(st.other, None)
        st.seqid = (st.seqid + 1) & 0xFFFFFFFF or 1
        if st.owner.client.minor == 0:
            self.closed40[st.other] = (st, self.clock())

    def closed_state(self, other: bytes):
        """A recently closed 4.0 open (for replaying its CLOSE), or None."""
        v = self.closed40.get(other)
        return None if v is None else v[0]

    def _drop_open(self, st: OpenState):
        if self.shared is not None:
            self.shared.release(st.fh, st.other)
        st.closed = True
        self.states.pop(st.other, None)
        st.owner.opens.pop(st.fh, None)
        lst = self.opens_by_file.get(st.fh)
        if lst is not None:
            if st in lst:
                lst.remove(st)
            if not lst:
                del self.opens_by_file[st.fh]
        for ls in list(st.locks.values()):
            self._drop_lock(ls)
        st.locks.clear()
        if st.pin is not None:
            try:
                st.pin.close()
            except Exception:
                log.exception("unpinning failed")
            st.pin = None

    def _drop_lock(self, ls):
        if self.shared is not None and ls.ranges:
            self.shared.release(ls.fh, ls.other)
        ls.closed = True
        ls.ranges = []
        self.states.pop(ls.other, None)
        ls.owner.client.states.pop(ls.other, None)
        ls.owner.states.pop(ls.fh, None)
        lst = self.locks_by_file.get(ls.fh)
        if lst is not None:
            if ls in lst:
                lst.remove(ls)
            if not lst:
                del self.locks_by_file[ls.fh]

    # ------------------------------------------------------------------ byte-range locks
    def lock_state(self, lo: LockOwner, open_state: OpenState) -> LockState:
        """The lock stateid of a lock-owner for the file of `open_state` (made on first use)."""
        ls = lo.states.get(open_state.fh)
        if ls is None or ls.closed:
            ls = LockState(self.new_other(), lo, open_state, open_state.fh)
            lo.states[open_state.fh] = ls
            open_state.locks[lo] = ls
            lo.client.states[ls.other] = ls
            self.states[ls.other] = ls
            self.locks_by_file.setdefault(ls.fh, []).append(ls)
        return ls

    def drop_lock_state(self, ls: LockState):
        self._drop_lock(ls)
        ls.open.locks.pop(ls.owner, None)

    def lock_conflict(self, fh: bytes, lo, start: int, end: int, kind: int):
        """(LockState, (start, end, kind)) of another owner's lock in the way, or None."""
        for ls in self.locks_by_file.get(fh, ()):
            if ls.owner is lo:
                continue
            c = L.conflict(ls.ranges, start, end, kind)
            if c is not None:
                return ls, c
        return None

    def set_lock(self, ls: LockState, start: int, end: int, kind: int):
        """Grant a lock (the caller checked this server's own): None, or the (start, end,
        write) of another server's lock in its way, and nothing changed."""
        ranges = L.set_lock(ls.ranges, start, end, kind)
        if self.shared is not None:
            c = _shared(self.shared.lock, ls.fh, ls.other, _flat(ranges),
                        (start, end, kind == L.WRITE))
            if c is not None:
                return c
        ls.ranges = ranges
        ls.seqid = (ls.seqid + 1) & 0xFFFFFFFF or 1
        return None

    def shared_lock_conflict(self, fh: bytes, start: int, end: int, kind: int):
        """LOCKT: another server's lock in the way, as (start, end, write), or None."""
        if self.shared is None:
            return None
        return _shared(self.shared.test, fh, start, end, kind == L.WRITE)

    def unlock(self, ls: LockState, start: int, end: int):
        ranges = L.unlock(ls.ranges, start, end)
        if self.shared is not None:
            _shared(self.shared.lock, ls.fh, ls.other, _flat(ranges))
        ls.ranges = ranges
        ls.seqid = (ls.seqid + 1) & 0xFFFFFFFF or 1

    # ------------------------------------------------------------------ 4.0 owner seqids
    def seqid_check(self, owner, seqid: int, opnum: int):
        """NFSv4.0 sequencing of an open- or lock-owner (RFC 7530 section 9.1.3).

        Returns None when the request is the next one, or the saved outcome of the owner's last
        request when this is its retransmission; raises BAD_SEQID otherwise."""
        if owner.last_seqid is None:
            return None  # a new owner may start anywhere
        if seqid == owner.last_seqid:
            if owner.last_reply is not None and owner.last_reply[0] == opnum:
                return owner.last_reply
            raise NFS4Error(x.NFS4ERR_BAD_SEQID)
        if seqid != (owner.last_seqid + 1) & 0xFFFFFFFF:
            raise NFS4Error(x.NFS4ERR_BAD_SEQID)
        return None

    def seqid_done(self, owner, seqid: int, opnum: int, status: int, outcome, fh=None):
        """Remember the outcome of a sequenced request (unless its error does not count)."""
        if status in SEQID_NO_BUMP:
            return
        owner.last_seqid = seqid
        owner.last_reply = (opnum, status, outcome, fh)

    def reset_unconfirmed(self, owner: OpenOwner):
        """A new OPEN for an owner that never confirmed its first: start it afresh (7530 16.18)."""
        for st in list(owner.opens.values()):
            self.unfinished.abandon(st)
            self._drop_open(st)
            owner.client.states.pop(st.other, None)
        owner.last_seqid = None
        owner.last_reply = None

    def release_lock_owner(self, lo: LockOwner):
        for ls in list(lo.states.values()):
            self._drop_lock(ls)
            ls.open.locks.pop(lo, None)
        lo.client.lock_owners.pop(lo.owner, None)

    def lock_owner(self, client: Client, owner: bytes) -> LockOwner:
        lo = client.lock_owners.get(owner)
        if lo is None:
            lo = LockOwner(client, owner)
            client.lock_owners[owner] = lo
        return lo

    # ------------------------------------------------------------------ stateids
    def find_state(self, client: Client | None, stateid, fh: bytes | None, minor: int,
                   unconfirmed_ok: bool = False, generation: bool = True):
        """Resolve a stateid given with an operation on `fh`.

        Returns None for the anonymous and READ-bypass special stateids; raises BAD_STATEID,
        OLD_STATEID, STALE_STATEID or EXPIRED as RFC 8881 section 8.2 says."""
        other = stateid.other
        if other == ZERO_OTHER:
            if stateid.seqid == 0:
                return None
            raise NFS4Error(x.NFS4ERR_BAD_STATEID)
        if self.recalled:
            self.revoke_due()
        if other == ONES_OTHER:
            if stateid.seqid == 0xFFFFFFFF:
                return None
            raise NFS4Error(x.NFS4ERR_BAD_STATEID)
        st = self.states.get(other)
        if st is None:
            if other[:4] != struct.pack(">I", self.epoch):
                raise NFS4Error(x.NFS4ERR_STALE_STATEID)
            if other in self.expired_others:
                raise NFS4Error(x.NFS4ERR_EXPIRED)
            raise NFS4Error(x.NFS4ERR_BAD_STATEID)
        if isinstance(st, Delegation) and st.revoked:
            raise NFS4Error(x.NFS4ERR_DELEG_REVOKED if minor else x.NFS4ERR_EXPIRED)
        if minor == 0:
            if isinstance(st, OpenState) and not st.owner.confirmed and not unconfirmed_ok:
                raise NFS4Error(x.NFS4ERR_BAD_STATEID)
            self.renew(st.client)  # 4.0: any use of a stateid renews the lease
        elif client is not None and st.client is not client:
            raise NFS4Error(x.NFS4ERR_BAD_STATEID)
        if fh is not None and st.fh != fh:
            raise NFS4Error(x.NFS4ERR_BAD_STATEID)
        if generation:
            self.check_generation(st, stateid, minor)
        return st

    @staticmethod
    def check_generation(st, stateid, minor: int):
        """The stateid's seqid against the state's current one (RFC 8881 section 8.2.2)."""
        if stateid.seqid != st.seqid and not (minor > 0 and stateid.seqid == 0):
            if _seq_lt(stateid.seqid, st.seqid):
                raise NFS4Error(x.NFS4ERR_OLD_STATEID)
            raise NFS4Error(x.NFS4ERR_BAD_STATEID)

    def stateid_status(self, client: Client, stateid) -> int:
        """TEST_STATEID's answer for one stateid."""
        if stateid.other in (ZERO_OTHER, ONES_OTHER):
            return x.NFS4ERR_BAD_STATEID
        try:
            self.find_state(client, stateid, None, 1)
        except NFS4Error as e:
            return e.status
        return x.NFS4_OK

    def free_stateid(self, client: Client, stateid):
        """FREE_STATEID (RFC 8881 18.38). Returns the revoked delegation it freed, if that is
        what it was, else None."""
        try:
            st = self.find_state(client, stateid, None, 1)
        except NFS4Error as e:
            d = self.states.get(stateid.other)
            if e.status == x.NFS4ERR_DELEG_REVOKED and d is not None and d.client is client:
                self._forget_delegation(d)  # the client acknowledges the revocation
                return d
            raise
        if st is None:  # a special stateid
            raise NFS4Error(x.NFS4ERR_BAD_STATEID)
        if isinstance(st, Delegation):
            raise NFS4Error(x.NFS4ERR_LOCKS_HELD)
        if isinstance(st, OpenState):
            raise NFS4Error(x.NFS4ERR_LOCKS_HELD)
        if st.ranges:
            raise NFS4Error(x.NFS4ERR_LOCKS_HELD)
        self._drop_lock(st)
        st.open.locks.pop(st.owner, None)
        return None


def _shared(fn, *args):
    """A call to the shared lock table, its failures as the NFS errors they mean (a database
    that is down: NFS4ERR_DELAY)."""
    from backend.interface import BackendError

    from ..errors import status_of

    try:
        return fn(*args)
    except BackendError as e:
        raise NFS4Error(status_of(e)) from None


def _flat(ranges) -> list:
    return [(s, e, k == L.WRITE) for s, e, k in ranges]


def _text(owner: bytes) -> str:
    t = owner.decode("utf-8", "replace")
    return t if t.isprintable() else owner.hex()


def _seq_lt(a: int, b: int) -> bool:
    """Serial-number comparison for 32-bit seqids."""
    return a != b and ((b - a) & 0xFFFFFFFF) < 0x80000000
