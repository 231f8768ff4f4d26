"""Read delegations in the state store (a mixin of `StateStore`): granting, recalling,
revoking after the recall timeout, returning and forgetting them. The OPEN that grants one and
DELEGRETURN are in nfsd/ops/deleg.py."""

from __future__ import annotations

from .model import Client, Delegation

# A recalled delegation not returned within this many seconds (or a lease, if shorter) is
# revoked: a read delegation needs no flushing, so a live client returns it at once, and other
# clients wait (NFS4ERR_DELAY) until it is gone.
RECALL_TIMEOUT = 10.0
# After a delegation of a file was recalled, no new one is granted on that file for this many
# seconds (as knfsd): the conflict says others use it, and a client that lost its delegation
# must not get a new one at once, because the Linux client does not drop its cached data for
# a change it sees while it holds a delegation.
DELEG_BLOCK = 30.0


class Delegations:
    def delegation_of(self, client: Client, fh: bytes):
        for d in self.delegs_by_file.get(fh, ()):
            if d.client is client:
                return d
        return None

    def grant_delegation(self, client: Client, fh: bytes, wire: bytes = b"") -> Delegation:
        d = Delegation(self.new_other(), client, fh, wire)
        client.states[d.other] = d
        self.states[d.other] = d
        self.delegs_by_file.setdefault(fh, []).append(d)
        return d

    def recall_conflicts(self, fh: bytes, client) -> bool:
        """Delegations of other clients stand in the way of a change to `fh`: recall them
        (once) and tell the caller to answer NFS4ERR_DELAY. False when there are none (any
        more: one past its recall timeout is revoked here and then)."""
        if self.recalled:
            self.revoke_due()
        others = [d for d in self.delegs_by_file.get(fh, ()) if d.client is not client]
        for d in others:
            if d.recalled_at is None:
                d.recalled_at = self.blocked[fh] = self.clock()
                self.recalled.append(d)
                self.send_recall(d)
        return bool(others)

    def deleg_blocked(self, fh: bytes) -> bool:
        """Was a delegation of `fh` recalled within the last DELEG_BLOCK seconds?"""
        t = self.blocked.get(fh)
        return t is not None and self.clock() - t < DELEG_BLOCK

    def revoke_due(self):
        """Revoke every recalled delegation not returned within `recall_timeout` of its
        recall. Called wherever a delegation's fate shows (a conflicting request, the
        delegation's stateid, SEQUENCE's status flags) and by `tick`, so the outcome depends
        on the clock only, never on when the housekeeping last ran."""
        now = self.clock()
        q = self.recalled
        while q:
            d = q[0]
            if not d.closed and now - d.recalled_at <= self.recall_timeout:
                break
            q.popleft()
            if not d.closed:
                self.revoke_delegation(d)

    def return_delegation(self, d: Delegation):
        self._drop_delegation(d)
        self.states.pop(d.other, None)
        d.client.states.pop(d.other, None)

    def revoke_delegation(self, d: Delegation):
        """Not returned within a lease after the recall: taken away (RFC 8881 10.2.1)."""
        self._event("revoke", f"delegation of client {d.client.owner!r} revoked: not returned")
        self._drop_delegation(d)
        d.revoked = True
        if d.client.minor:
            d.client.revoked_delegs += 1  # until FREE_STATEID (SEQ4_STATUS_RECALLABLE_STATE_REVOKED)
        else:
            self.states.pop(d.other, None)
            d.client.states.pop(d.other, None)
            self.expired_others[d.other] = self.clock()

    def _forget_delegation(self, d: Delegation):
        self.states.pop(d.other, None)
        d.client.states.pop(d.other, None)
        if d.revoked and d.client.revoked_delegs:
            d.client.revoked_delegs -= 1

    def _drop_delegation(self, d: Delegation):
        d.closed = True
        lst = self.delegs_by_file.get(d.fh)
        if lst is not None:
            if d in lst:
                lst.remove(d)
            if not lst:
                del self.delegs_by_file[d.fh]
