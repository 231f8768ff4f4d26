"""The entities of NFSv4 state: clients, sessions and slots, open-owners, opens, lock-owners, locks.

Plain objects with no behaviour beyond small helpers; `nfsd.state.store.StateStore` owns them
and performs every transition (see the table at the top of that module).
"""

from __future__ import annotations

# Special stateids (RFC 8881 section 8.2.3).
ZERO_OTHER = bytes(12)
ONES_OTHER = b"\xff" * 12


class Client:
    """One client incarnation: (owner, verifier) with its own clientid."""

    __slots__ = (
        "clientid", "owner", "verifier", "principal", "minor", "confirmed", "cs_sequence",
        "cs_reply", "last_renew", "sessions", "open_owners", "lock_owners", "states",
        "reclaim_complete", "confirm_verifier", "callback", "expired", "impl_id", "flags",
        "may_reclaim", "recorded", "cb", "revoked_delegs",
    )

    def __init__(self, clientid, owner, verifier, principal, minor, now):
        self.clientid = clientid
        self.owner = owner  # co_ownerid / SETCLIENTID id string (bytes)
        self.verifier = verifier  # boot verifier (8 bytes)
        self.principal = principal  # who created it (flavor, uid) for AUTH_SYS
        self.minor = minor
        self.confirmed = False
        self.cs_sequence = 0  # CREATE_SESSION sequence id (4.1): last one seen
        self.cs_reply = None  # cached CREATE_SESSION result for replays
        self.last_renew = now
        self.sessions: dict[bytes, Session] = {}
        self.open_owners: dict[bytes, OpenOwner] = {}
        self.lock_owners: dict[bytes, LockOwner] = {}
        self.states: dict[bytes, object] = {}  # stateid other -> OpenState / LockState
        self.reclaim_complete = False
        self.confirm_verifier = None  # 4.0 SETCLIENTID_CONFIRM verifier
        self.callback = None  # 4.0 callback (program, netid, addr) or 4.1 cb_program
        self.expired = False
        self.impl_id = None
        self.flags = 0
        self.may_reclaim = False  # held state before a server restart (grace reclaims)
        self.recorded = False  # a durable record says this incarnation holds state
        self.cb = None  # its callback channel (nfsd.callback), once usable
        self.revoked_delegs = 0  # revoked delegations not yet freed (SEQUENCE status flag)

    def has_state(self) -> bool:
        return bool(self.states)

    def __repr__(self):
        return f"Client({self.clientid:#x}, owner={self.owner!r})"


class Slot:
    __slots__ = ("seqid", "reply", "cached", "busy")

    def __init__(self):
        self.seqid = 0
        self.reply = None  # encoded COMPOUND4res (list of chunks) when cached
        self.cached = False
        self.busy = False


class Session:
    __slots__ = (
        "sessionid", "client", "fore", "back", "flags", "cb_program", "slots", "conns",
        "cb_sec", "back_conns", "cb_seqid", "cb_busy",
    )

    def __init__(self, sessionid, client, fore, back, flags, cb_program):
        self.sessionid = sessionid
        self.client = client
        self.fore = fore  # negotiated channel_attrs4 values (a ChannelAttrs)
        self.back = back
        self.flags = flags
        self.cb_program = cb_program
        self.slots = [Slot() for _ in range(fore.maxrequests)]
        self.conns: set = set()
        self.cb_sec = None
        self.back_conns: list = []  # connections bound to the back channel
        self.cb_seqid = 0  # back channel slot 0
        self.cb_busy = False


class ChannelAttrs:
    __slots__ = ("headerpadsize", "maxrequestsize", "maxresponsesize",
                 "maxresponsesize_cached", "maxoperations", "maxrequests")

    def __init__(self, headerpadsize, maxrequestsize, maxresponsesize, maxresponsesize_cached,
                 maxoperations, maxrequests):
        self.headerpadsize = headerpadsize
        self.maxrequestsize = maxrequestsize
        self.maxresponsesize = maxresponsesize
        self.maxresponsesize_cached = maxresponsesize_cached
        self.maxoperations = maxoperations
        self.maxrequests = maxrequests


class OpenOwner:
    __slots__ = ("client", "owner", "seqid", "confirmed", "opens", "last_reply", "last_seqid")

    def __init__(self, client, owner):
        self.client = client
        self.owner = owner
        self.seqid = 0  # 4.0: last seqid processed
        self.confirmed = False  # 4.0: OPEN_CONFIRM done (4.1: always treated as confirmed)
        self.opens: dict[bytes, OpenState] = {}  # file handle -> open
        self.last_reply = None  # 4.0: (opnum, status, result, fh) of the last sequenced request
        self.last_seqid = None  # 4.0: its seqid (None: no request yet)


class OpenState:
    """One open-owner's open of one file; carries the write-once staging if it writes."""

    __slots__ = (
        "other", "seqid", "owner", "fh", "access", "deny", "access_modes", "deny_modes",
        "staging", "work", "pin", "locks", "closed", "export", "uid",
    )

    def __init__(self, other, owner, fh, export):
        self.other = other
        self.seqid = 0
        self.owner = owner
        self.fh = fh  # backend handle (bytes)
        self.export = export
        self.access = 0
        self.deny = 0
        self.access_modes = set()  # every share_access value granted (for OPEN_DOWNGRADE)
        self.deny_modes = set()
        # While this open writes: the file under construction (nfsd/state/lifecycle.py, which
        # alone sets both) and its backend Staging (work.staging, kept here for the hot path)
        self.staging = None
        self.work = None
        self.uid = None  # who opened it (a stateid used by another uid grants nothing)
        self.pin = None  # pinned published version (keeps an unlinked file readable)
        self.locks: dict = {}  # lock-owner -> LockState
        self.closed = False

    @property
    def client(self):
        return self.owner.client


class LockOwner:
    __slots__ = ("client", "owner", "seqid", "last_reply", "last_seqid", "states")

    def __init__(self, client, owner):
        self.client = client
        self.owner = owner
        self.seqid = 0
        self.last_reply = None
        self.last_seqid = None
        self.states: dict[bytes, LockState] = {}  # file handle -> lock state


class LockState:
    __slots__ = ("other", "seqid", "owner", "open", "fh", "ranges", "closed")

    def __init__(self, other, owner, open_state, fh):
        self.other = other
        self.seqid = 0
        self.owner = owner
        self.open = open_state
        self.fh = fh
        self.ranges: list = []  # [(start, end_exclusive, type)]
        self.closed = False

    @property
    def client(self):
        return self.owner.client


class Delegation:
    """A read delegation of one file to one client (write delegations are never granted:
    a client holding one may keep a file open indefinitely, and CLOSE is when it is done)."""

    __slots__ = ("other", "seqid", "client", "fh", "wire", "recalled_at", "revoked", "closed")

    def __init__(self, other, client, fh, wire=b""):
        self.other = other
        self.wire = wire  # the filehandle as the client knows it (for CB_RECALL)
        self.seqid = 1
        self.client = client
        self.fh = fh
        self.recalled_at = None  # clock value of the CB_RECALL, or None
        self.revoked = False
        self.closed = False
