"""Delegation recall and revocation in the state store, on a fake clock (no sockets): a recalled
delegation not returned within the recall timeout is revoked by the first thing that looks at
it, whenever the housekeeping tick last ran (docs/semantics.md, delegations)."""

from __future__ import annotations

import pytest

from nfsd.errors import NFS4Error
from nfsd.state.model import ChannelAttrs
from nfsd.state.store import DELEG_BLOCK, RECALL_TIMEOUT, StateStore
from nfsd.xdr import nfs4 as x


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def client(store, name, minor=1):
    c, _ = store.exchange_id(name, b"verifier", 0, ("sys", 0), minor)
    attrs = ChannelAttrs(0, 65536, 65536, 4096, 8, 8)
    store.create_session(c.clientid, 1, 0, attrs, attrs, 0, ("sys", 0))
    return c


def sid(d):
    return x.stateid4(d.seqid, d.other)


@pytest.mark.parametrize("lease", [90, 15, 4])
def test_a_recalled_delegation_is_revoked_after_the_timeout_without_a_tick(lease):
    clock = Clock()
    store = StateStore(clock=clock, lease_time=lease)
    timeout = min(lease, RECALL_TIMEOUT)
    assert store.recall_timeout == timeout
    holder, other = client(store, b"holder"), client(store, b"other")
    recalls = []
    store.send_recall = recalls.append
    d = store.grant_delegation(holder, b"fh", b"wire")
    assert store.recall_conflicts(b"fh", other) and recalls == [d]
    clock.t += timeout  # not yet: the holder may still return it
    assert store.recall_conflicts(b"fh", other) and recalls == [d]  # recalled once
    assert store.find_state(holder, sid(d), b"fh", 1) is d
    clock.t += 0.001
    # no tick ran: the delegation's own stateid shows it revoked...
    with pytest.raises(NFS4Error) as e:
        store.find_state(holder, sid(d), b"fh", 1)
    assert e.value.status == x.NFS4ERR_DELEG_REVOKED
    assert holder.revoked_delegs == 1  # SEQUENCE's RECALLABLE_STATE_REVOKED flag
    assert not store.recall_conflicts(b"fh", other)  # ... and nothing stands in the way
    assert store.stateid_status(holder, sid(d)) == x.NFS4ERR_DELEG_REVOKED
    store.free_stateid(holder, sid(d))
    assert holder.revoked_delegs == 0
    assert store.stateid_status(holder, sid(d)) == x.NFS4ERR_BAD_STATEID


def test_a_conflicting_request_revokes_at_the_deadline_and_a_returned_one_is_not_revoked():
    clock = Clock()
    store = StateStore(clock=clock, lease_time=90)
    a, b, c = client(store, b"a"), client(store, b"b"), client(store, b"c")
    store.send_recall = lambda d: None
    da = store.grant_delegation(a, b"f1", b"w1")
    db = store.grant_delegation(b, b"f2", b"w2")
    assert store.recall_conflicts(b"f1", c)
    clock.t += 5
    assert store.recall_conflicts(b"f2", c)
    store.return_delegation(db)  # b returns in time
    clock.t += RECALL_TIMEOUT - 4.9  # past a's deadline only
    assert not store.recall_conflicts(b"f1", c)
    assert da.revoked and not db.revoked and not store.recalled
    assert b.revoked_delegs == 0


def test_a_revoked_40_delegation_answers_expired():
    """NFSv4.0 has no DELEG_REVOKED: the stateid answers EXPIRED."""
    clock = Clock()
    store = StateStore(clock=clock, lease_time=90)
    holder = store.setclientid(b"h40", b"v", ("sys", 0), None)
    store.setclientid_confirm(holder.clientid, holder.confirm_verifier, ("sys", 0))
    other = client(store, b"o")
    store.send_recall = lambda d: None
    d = store.grant_delegation(holder, b"fh")
    store.recall_conflicts(b"fh", other)
    clock.t += RECALL_TIMEOUT + 1
    with pytest.raises(NFS4Error) as e:
        store.find_state(None, sid(d), b"fh", 0)
    assert e.value.status == x.NFS4ERR_EXPIRED


def test_no_new_delegation_of_a_recalled_file_for_a_while():
    """After a recall others use the file: no delegation of it for DELEG_BLOCK seconds, so a
    client that lost one (returned or revoked) revalidates its cache instead of trusting it."""
    clock = Clock()
    store = StateStore(clock=clock, lease_time=90)
    holder, other = client(store, b"holder"), client(store, b"other")
    store.send_recall = lambda d: None
    d = store.grant_delegation(holder, b"fh", b"wire")
    assert not store.deleg_blocked(b"fh")
    store.recall_conflicts(b"fh", other)
    store.return_delegation(d)
    assert store.deleg_blocked(b"fh") and not store.deleg_blocked(b"other-file")
    clock.t += DELEG_BLOCK - 0.001
    assert store.deleg_blocked(b"fh")
    clock.t += 0.001
    assert not store.deleg_blocked(b"fh")
    store.tick()
    assert store.blocked == {}
