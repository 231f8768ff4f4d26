"""Client records, sessions and leases: the `Clients` part of `StateStore` (store.py).

EXCHANGE_ID creates an unconfirmed record and CREATE_SESSION confirms it; SETCLIENTID and
SETCLIENTID_CONFIRM do the same for NFSv4.0 (RFC 8881 18.35/18.36, RFC 7530 16.33/16.34). A
confirmed record of the same owner with another boot verifier means the client rebooted (rule 6,
`UnfinishedFiles.crash`); a lease that runs out ends the client's state (rule 7,
`UnfinishedFiles.expire`). The first state a client incarnation gets is recorded durably, so a
restarted server knows whom to give a grace period.
"""

from __future__ import annotations

import logging
import struct

from ..errors import NFS4Error
from ..xdr import nfs4 as x
from .model import ChannelAttrs, Client, Delegation, OpenState, Session

log = logging.getLogger("nfsd.state")

# Limits offered to clients in CREATE_SESSION (the smaller of these and what they ask for).
MAX_REQUEST = 1024 * 1024 + 8192  # a 1 MiB WRITE plus its COMPOUND
MAX_RESPONSE = 1024 * 1024 + 8192
MAX_RESPONSE_CACHED = 64 * 1024
MAX_OPERATIONS = 64
MAX_SLOTS = 64
MAX_SESSIONS_PER_CLIENT = 16


class Clients:
    """Mixin of StateStore: every method uses the store's tables (see StateStore.__init__)."""

    # ------------------------------------------------------------------ clients (4.1)
    def exchange_id(self, owner: bytes, verifier: bytes, flags: int, principal, minor: int):
        """RFC 8881 section 18.35.5. Returns (client, reply flags)."""
        update = bool(flags & x.EXCHGID4_FLAG_UPD_CONFIRMED_REC_A)
        records = self.by_owner.get(owner, [])
        confirmed = next((c for c in records if c.confirmed), None)
        unconfirmed = [c for c in records if not c.confirmed]
        if update:
            if confirmed is None:
                raise NFS4Error(x.NFS4ERR_NOENT)
            if confirmed.verifier != verifier:
                raise NFS4Error(x.NFS4ERR_NOT_SAME)
            if confirmed.principal != principal:
                raise NFS4Error(x.NFS4ERR_PERM)
            self.renew(confirmed)
            return confirmed, x.EXCHGID4_FLAG_CONFIRMED_R
        if confirmed is not None and confirmed.principal != principal:
            # Case 3, client collision (RFC 8881 18.35.5): refused while the old record holds
            # live state; otherwise the old record is removed now (as Linux nfsd does).
            if confirmed.has_state() and not self.lease_expired(confirmed):
                raise NFS4Error(x.NFS4ERR_CLID_INUSE)
            self._purge(confirmed, retire=True)
            self._unrecord(confirmed)
            confirmed = None
        if confirmed is not None:
            if confirmed.verifier == verifier and confirmed.principal == principal:
                # Case 2: the same incarnation asks again.
                self.renew(confirmed)
                for c in unconfirmed:
                    self._forget(c)
                return confirmed, x.EXCHGID4_FLAG_CONFIRMED_R
            if confirmed.verifier == verifier:
                # Case 3: another principal uses the owner of a live client.
                if confirmed.has_state() and not self.lease_expired(confirmed):
                    raise NFS4Error(x.NFS4ERR_CLID_INUSE)
            else:
                # Case 4: the client rebooted. Its unpublished files die with it.
                self.client_crashed(owner, confirmed.verifier, verifier)
        for c in unconfirmed:  # Case 5: a new unconfirmed record replaces the old one
            self._forget(c)
        self.unfinished.rebooted(owner, verifier)  # incarnations whose records are gone
        self._check_client_limit(minor)
        client = Client(self.new_clientid(), owner, verifier, principal, minor, self.clock())
        self.clients[client.clientid] = client
        self.by_owner.setdefault(owner, []).append(client)
        return client, 0

    def _check_client_limit(self, minor: int):
        if len(self.clients) + len(self.unconfirmed40) >= self.max_clients:
            log.warning("client limit (%d) reached: new client refused", self.max_clients)
            raise NFS4Error(x.NFS4ERR_RESOURCE if minor == 0 else x.NFS4ERR_DELAY)

    def client_crashed(self, owner: bytes, old_verifier: bytes, new_verifier: bytes):
        """The same owner is back with a new boot verifier: discard its unpublished files now."""
        self.unfinished.crash(owner, old_verifier)

    # ------------------------------------------------------------------ clients (4.0)
    def setclientid(self, owner: bytes, verifier: bytes, principal, callback):
        """RFC 7530 section 16.33.5 (as Linux nfsd implements it). Returns the unconfirmed
        record the client must confirm with SETCLIENTID_CONFIRM."""
        records = self.by_owner.get(owner, [])
        confirmed = next((c for c in records if c.confirmed), None)
        for c in [c for c in records if not c.confirmed]:
            self._forget(c)  # an unconfirmed record is always replaced
        if confirmed is not None and confirmed.principal != principal:
            if confirmed.has_state() and not self.lease_expired(confirmed):
                raise NFS4Error(x.NFS4ERR_CLID_INUSE)
        if confirmed is not None and confirmed.verifier == verifier and \
                confirmed.principal == principal:
            # Same incarnation: a callback update; the clientid stays.
            client = Client(confirmed.clientid, owner, verifier, principal, 0, self.clock())
        else:
            if confirmed is not None and confirmed.verifier != verifier:
                self.client_crashed(owner, confirmed.verifier, verifier)
            self.unfinished.rebooted(owner, verifier)  # incarnations whose records are gone
            self._check_client_limit(0)
            client = Client(self.new_clientid(), owner, verifier, principal, 0, self.clock())
        client.confirm_verifier = struct.pack(">II", self.epoch, self._next() & 0xFFFFFFFF)
        client.callback = callback
        self.unconfirmed40[client.clientid] = client
        self.by_owner.setdefault(owner, []).append(client)
        return client

    def setclientid_confirm(self, clientid: int, confirm: bytes, principal) -> Client:
        conf = self.clients.get(clientid)
        unconf = self.unconfirmed40.get(clientid)
        if conf is not None and conf.principal != principal:
            raise NFS4Error(x.NFS4ERR_CLID_INUSE)
        if unconf is not None and unconf.principal != principal:
            raise NFS4Error(x.NFS4ERR_CLID_INUSE)
        if unconf is None or unconf.confirm_verifier != confirm:
            if conf is not None and conf.confirm_verifier == confirm:
                self.renew(conf)
                return conf  # a retransmission
            if self.is_stale_clientid(clientid) or conf is None:
                raise NFS4Error(x.NFS4ERR_STALE_CLIENTID)
            raise NFS4Error(x.NFS4ERR_STALE_CLIENTID)
        del self.unconfirmed40[clientid]
        lst = self.by_owner.get(unconf.owner, [])
        if conf is not None:
            # Callback update of a live client: keep its state, take the new callback.
            conf.callback = unconf.callback
            conf.confirm_verifier = unconf.confirm_verifier
            if unconf in lst:
                lst.remove(unconf)
            self.renew(conf)
            return conf
        for old in [c for c in lst if c.confirmed]:
            if old.verifier != unconf.verifier:
                self.client_crashed(old.owner, old.verifier, unconf.verifier)
            self._purge(old, retire=False)
            self._unrecord(old)
        unconf.confirmed = True
        unconf.last_renew = self.clock()
        if unconf.owner in self.reclaimers:
            unconf.may_reclaim = True
        self.clients[unconf.clientid] = unconf
        return unconf

    def renew_clientid(self, clientid: int) -> Client:
        return self.client40(clientid)

    def client40(self, clientid: int) -> Client:
        """The confirmed 4.0 client a clientid names (renewing its lease): STALE_CLIENTID if
        unknown (or from before a restart), EXPIRED if its lease ran out."""
        client = self.clients.get(clientid)
        if client is None or not client.confirmed:
            if clientid in self.expired_ids:
                raise NFS4Error(x.NFS4ERR_EXPIRED)
            raise NFS4Error(x.NFS4ERR_STALE_CLIENTID)
        self.renew(client)
        return client

    def get_client(self, clientid: int) -> Client:
        client = self.clients.get(clientid)
        if client is None:
            raise NFS4Error(x.NFS4ERR_STALE_CLIENTID)
        return client

    def create_session(self, clientid: int, sequence: int, flags: int, fore: ChannelAttrs,
                       back: ChannelAttrs, cb_program: int, principal):
        """RFC 8881 section 18.36. Returns (session, replay) where replay is the cached result
        of a retransmitted CREATE_SESSION (then session is None)."""
        client = self.clients.get(clientid)
        if client is None:
            raise NFS4Error(x.NFS4ERR_STALE_CLIENTID)
        if client.principal != principal and not client.confirmed:
            raise NFS4Error(x.NFS4ERR_CLID_INUSE)
        expected = (client.cs_sequence + 1) & 0xFFFFFFFF
        if sequence == client.cs_sequence and client.cs_reply is not None:
            return None, client.cs_reply
        if sequence != expected:
            raise NFS4Error(x.NFS4ERR_SEQ_MISORDERED)
        if len(client.sessions) >= MAX_SESSIONS_PER_CLIENT:
            raise NFS4Error(x.NFS4ERR_NOSPC)
        if fore.maxrequestsize < 256 or fore.maxresponsesize < 256 or fore.maxrequests < 1:
            raise NFS4Error(x.NFS4ERR_TOOSMALL)
        if back.maxrequestsize < 256 or back.maxresponsesize < 256 or back.maxrequests < 1:
            raise NFS4Error(x.NFS4ERR_TOOSMALL)
        neg = ChannelAttrs(
            0,
            min(fore.maxrequestsize, MAX_REQUEST),
            min(fore.maxresponsesize, MAX_RESPONSE),
            min(fore.maxresponsesize_cached, MAX_RESPONSE_CACHED),
            max(1, min(fore.maxoperations, MAX_OPERATIONS)),
            max(1, min(fore.maxrequests, MAX_SLOTS)),
        )
        negb = ChannelAttrs(0, min(back.maxrequestsize, 64 * 1024),
                            min(back.maxresponsesize, 64 * 1024),
                            0, max(1, min(back.maxoperations, 8)), 1)
        if not client.confirmed:
            self._confirm(client)
        session = Session(self.new_sessionid(client), client, neg, negb,
                          flags & x.CREATE_SESSION4_FLAG_CONN_BACK_CHAN, cb_program)
        client.sessions[session.sessionid] = session
        self.sessions[session.sessionid] = session
        client.cs_sequence = sequence
        self.renew(client)
        return session, None

    def _confirm(self, client: Client):
        """Confirm a client record; an older confirmed record of the same owner goes away."""
        for other in list(self.by_owner.get(client.owner, [])):
            if other is not client and other.confirmed:
                if other.verifier != client.verifier:
                    self.client_crashed(client.owner, other.verifier, client.verifier)
                self._purge(other, retire=False)
        client.confirmed = True
        if client.owner in self.reclaimers:
            client.may_reclaim = True

    def destroy_session(self, sessionid: bytes):
        session = self.sessions.pop(sessionid, None)
        if session is None:
            raise NFS4Error(x.NFS4ERR_BADSESSION)
        session.client.sessions.pop(sessionid, None)

    def destroy_clientid(self, clientid: int):
        client = self.clients.get(clientid)
        if client is None:
            raise NFS4Error(x.NFS4ERR_STALE_CLIENTID)
        if client.sessions or client.states:
            raise NFS4Error(x.NFS4ERR_CLIENTID_BUSY)
        self._purge(client, retire=False)
        self._unrecord(client)

    def sequence(self, sessionid: bytes, seqid: int, slotid: int, highest: int):
        """RFC 8881 section 18.46.3. Returns (session, slot, replay) where replay is True when
        this is a retransmission of the slot's last request."""
        session = self.sessions.get(sessionid)
        if session is None:
            raise NFS4Error(x.NFS4ERR_BADSESSION)
        if slotid >= len(session.slots):
            raise NFS4Error(x.NFS4ERR_BADSLOT)
        slot = session.slots[slotid]
        if seqid == slot.seqid:
            if slot.busy:
                raise NFS4Error(x.NFS4ERR_DELAY)
            if slot.seqid == 0:
                raise NFS4Error(x.NFS4ERR_SEQ_MISORDERED)
            return session, slot, True
        if seqid != (slot.seqid + 1) & 0xFFFFFFFF:
            raise NFS4Error(x.NFS4ERR_SEQ_MISORDERED)
        client = session.client
        if client.expired:
            raise NFS4Error(x.NFS4ERR_BADSESSION)
        if self.recalled:
            self.revoke_due()  # before the status flags say what was revoked
        slot.seqid = seqid
        slot.busy = True
        slot.reply = None
        slot.cached = False
        self.renew(client)
        return session, slot, False

    def reclaim_complete(self, client: Client):
        if client.reclaim_complete:
            raise NFS4Error(x.NFS4ERR_COMPLETE_ALREADY)
        client.reclaim_complete = True
        client.may_reclaim = False
        self.reclaimers.discard(client.owner)
        if self.grace_until is not None and not self.reclaimers:
            self.end_grace()

    def expire_client(self, client: Client):
        """The lease ran out: state is released, files under construction are retired."""
        self._event("expire", f"lease of client {client.owner!r} expired")
        now = self.clock()
        self.expired_ids[client.clientid] = now
        for other in client.states:
            self.expired_others[other] = now
        self._purge(client, retire=True)
        self._unrecord(client)

    def _record(self, client: Client):
        """The first state a client incarnation gets is recorded durably (for grace)."""
        if not client.recorded and self.records is not None:
            self.records.put_client(client.owner, client.verifier)
        client.recorded = True

    def _unrecord(self, client: Client):
        if client.recorded and self.records is not None:
            if not any(c.recorded for c in self.by_owner.get(client.owner, ()) if c is not client):
                self.records.delete_client(client.owner)
        client.recorded = False

    def _forget(self, client: Client):
        self._purge(client, retire=False)

    def _purge(self, client: Client, retire: bool):
        for sid in list(client.sessions):
            self.sessions.pop(sid, None)
        client.sessions.clear()
        for st in list(client.states.values()):
            if isinstance(st, OpenState):
                # Lease expiry, or a record of the same incarnation replaced: the file is
                # retired (a crash, new verifier, discarded it already).
                self.unfinished.expire(st)
                self._drop_open(st)
            elif isinstance(st, Delegation):
                self._drop_delegation(st)
            else:
                self._drop_lock(st)
        client.states.clear()
        client.open_owners.clear()
        client.lock_owners.clear()
        client.expired = True
        if self.clients.get(client.clientid) is client:
            del self.clients[client.clientid]
        if self.unconfirmed40.get(client.clientid) is client:
            del self.unconfirmed40[client.clientid]
        lst = self.by_owner.get(client.owner)
        if lst is not None:
            if client in lst:
                lst.remove(client)
            if not lst:
                del self.by_owner[client.owner]

