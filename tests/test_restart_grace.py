"""Rule 8 of docs/semantics.md on a fake clock (tests/harness/): the server restarts (kill -9,
or a power loss), staged files and client records are on the disk, a grace period follows in
which clients reclaim with CLAIM_PREVIOUS and RECLAIM_COMPLETE; grace ends when the last
client that held state says RECLAIM_COMPLETE or after one grace time, whichever is first, and
is skipped when nobody held state. Files nobody reclaimed are then retired (rule 7).

`h.restart()` is kill -9: the process's reactor and everything scheduled on it are dropped,
the MemoryDisk keeps what was written; `h.power_loss()` keeps only what was synced.
"""

from __future__ import annotations

import pytest

from harness import status
from nfsd.client import op
from nfsd.xdr import nfs4 as x

RW = x.OPEN4_SHARE_ACCESS_BOTH
LEASE = 90  # the default lease; grace is one lease


def reestablish(c):
    """What a client does after the server restarted: new connection, client ID, session."""
    c.reconnect()
    c.exchange_id()
    c.create_session()


def reclaim(c, fh, access=RW):
    claim = x.open_claim4(x.CLAIM_PREVIOUS, x.OPEN_DELEGATE_NONE)
    _, sid, _ = c.open(fh, b"", access=access, claim=claim)
    return sid


def reclaim_complete(c):
    c.call([op("RECLAIM_COMPLETE", False)])


def ordinary_open(c, name=b"ordinary"):
    """An OPEN that is not a reclaim: refused with GRACE while the grace period lasts."""
    return status(c.open, c.root(), name, create=True)


def test_rule8_kill9_restart_reclaim_and_finish(harness):
    h = harness()
    a, b = h.mount(), h.mount()
    fh, sid, _ = a.open(a.root(), b"survivor", create=True)
    verf1 = a.write(fh, sid, 0, b"stable part|", stable=x.FILE_SYNC4).writeverf
    a.write(fh, sid, 12, b"unstable part|", stable=x.UNSTABLE4)
    fb, sb, _ = b.open(b.root(), b"orphan", create=True)
    b.write(fb, sb, 0, b"nobody reclaims me", stable=x.FILE_SYNC4)
    h.restart()
    boot = h.now
    assert h.store.grace_until == boot + LEASE
    # Old sessions and clientids are gone.
    a.reconnect()
    assert status(a.call, [op("PUTROOTFH")]) == x.NFS4ERR_BADSESSION
    reestablish(a)
    # In grace, ordinary opens wait; reclaims work.
    assert ordinary_open(a) == x.NFS4ERR_GRACE
    sid2 = reclaim(a, fh)
    reclaim_complete(a)
    assert a.read(fh, sid2)[0] == b"stable part|unstable part|"  # kill -9 keeps the page cache
    w = a.write(fh, sid2, 26, b"after restart")
    assert w.writeverf != verf1  # unstable writes must be resent
    a.close_file(fh, sid2)
    assert h.published("survivor") == b"stable part|unstable part|after restart"
    # The other client never came back: after grace its file is retired, not published.
    assert ordinary_open(a) == x.NFS4ERR_GRACE  # b may still reclaim
    h.advance_to(boot + LEASE)
    assert "grace period over" in h.text()
    assert len(h.events("retire")) == 1  # b's file
    assert h.published("orphan") is None and len(h.staged()) == 1
    reestablish(b)  # the same incarnation can still resume it outside grace
    reclaim_complete(b)
    sb2 = b.open_fh(fb, RW)
    b.close_file(fb, sb2)
    assert h.published("orphan") == b"nobody reclaims me"
    assert h.staged() == []


def test_rule8_grace_ends_when_the_last_reclaimer_completes(harness):
    h = harness()
    a, b = h.mount(), h.mount()
    fa, _, _ = a.open(a.root(), b"a", create=True)
    fb, _, _ = b.open(b.root(), b"b", create=True)
    h.restart()
    reestablish(a)
    sa = reclaim(a, fa)
    reclaim_complete(a)
    assert ordinary_open(a) == x.NFS4ERR_GRACE  # b has not said it is done
    reestablish(b)
    sb = reclaim(b, fb)
    assert ordinary_open(a) == x.NFS4ERR_GRACE
    reclaim_complete(b)  # the last one: grace ends now, long before its time is up
    assert h.store.grace_until is None
    assert ordinary_open(a) == x.NFS4_OK
    assert h.events("retire") == []  # everything was reclaimed
    a.close_file(fa, sa)
    b.close_file(fb, sb)
    assert h.published("a") == h.published("b") == b""


def test_rule8_grace_ends_by_time_when_a_reclaimer_never_comes_back(harness):
    h = harness()
    a, b = h.mount(), h.mount()
    fa, _, _ = a.open(a.root(), b"a", create=True)
    fb, _, _ = b.open(b.root(), b"b", create=True)
    h.restart()
    boot = h.now
    reestablish(a)
    sa = reclaim(a, fa)
    reclaim_complete(a)
    h.advance_to(boot + LEASE - 0.25)
    assert ordinary_open(a) == x.NFS4ERR_GRACE and h.events("retire") == []
    h.advance_to(boot + LEASE)  # exactly one grace time after the start: over
    assert ordinary_open(a) == x.NFS4_OK
    assert len(h.events("retire")) == 1 and h.published("b") is None  # b's, retired
    # Too late to reclaim now.
    reestablish(b)
    assert status(reclaim, b, fb) == x.NFS4ERR_NO_GRACE
    a.close_file(fa, sa)


def test_rule8_grace_time_ends_it_even_without_a_request(harness):
    """The housekeeping tick ends grace on time when nobody asks (and retires what was not
    reclaimed then), not at the next request."""
    h = harness(grace_time=30)
    b = h.mount()
    b.open(b.root(), b"b", create=True)
    h.restart()
    boot = h.now
    h.advance_to(boot + 30)
    assert h.store.grace_until is None and len(h.events("retire")) == 1
    assert "grace period over" in h.text()


def test_rule8_restart_without_state_skips_grace(harness):
    h = harness()
    c = h.mount()
    c.create_file(c.root(), b"done", b"x")
    c.destroy()  # DESTROY_SESSION, DESTROY_CLIENTID: its record goes
    h.mount()  # a client that never opened anything has no record either
    h.restart()
    assert h.store.grace_until is None
    c = h.mount()
    c.create_file(c.root(), b"fresh", b"y")  # no NFS4ERR_GRACE
    assert h.published("fresh") == b"y" and h.published("done") == b"x"


def test_rule8_a_client_that_held_only_a_read_open_gets_grace_to_reclaim_it(harness):
    h = harness()
    w = h.mount()
    fh = w.create_file(w.root(), b"shared", b"read me")
    w.destroy()
    r = h.mount()
    _, _, _ = r.open(r.root(), b"shared", access=x.OPEN4_SHARE_ACCESS_READ)
    h.restart()
    assert h.store.grace_until == h.now + LEASE
    reestablish(r)
    sid = reclaim(r, fh, access=x.OPEN4_SHARE_ACCESS_READ)
    reclaim_complete(r)
    assert h.store.grace_until is None
    assert r.read(fh, sid)[0] == b"read me"


@pytest.mark.parametrize("crash", ["restart", "power_loss"])
def test_rule8_unstable_writes_survive_kill9_not_a_power_loss(harness, crash):
    """An UNSTABLE4 WRITE is in the page cache: kill -9 keeps it, a power loss does not; the
    write verifier changes at every start, so the client knows to resend it."""
    h = harness()
    a = h.mount()
    fh, sid, _ = a.open(a.root(), b"f", create=True)
    v1 = a.write(fh, sid, 0, b"synced|", stable=x.FILE_SYNC4).writeverf
    a.write(fh, sid, 7, b"unstable", stable=x.UNSTABLE4)
    getattr(h, crash)()
    reestablish(a)
    sid2 = reclaim(a, fh)
    reclaim_complete(a)
    data = a.read(fh, sid2)[0]
    assert data == (b"synced|unstable" if crash == "restart" else b"synced|")
    v2 = a.write(fh, sid2, 7, b"unstable", stable=x.UNSTABLE4).writeverf  # resent
    assert v2 != v1
    assert a.commit(fh).writeverf == v2
    a.close_file(fh, sid2)
    assert h.published("f") == b"synced|unstable"


def test_rule8_commit_makes_unstable_writes_survive_a_power_loss(harness):
    h = harness()
    a = h.mount()
    fh, sid, _ = a.open(a.root(), b"f", create=True)
    a.write(fh, sid, 0, b"unstable but committed", stable=x.UNSTABLE4)
    a.commit(fh)
    h.power_loss()
    reestablish(a)
    sid2 = reclaim(a, fh)
    assert a.read(fh, sid2)[0] == b"unstable but committed"


def test_rule8_a_file_created_but_never_synced_does_not_survive_a_power_loss(harness):
    """The record of a new staging object is written, not synced, when it is created
    (docs/semantics.md, what durable means): kill -9 keeps it, a power loss does not."""
    h = harness()
    a = h.mount()
    a.open(a.root(), b"f", create=True)
    h.restart()
    assert len(h.staged()) == 1
    h.power_loss()
    assert h.staged() == []


def test_rule8_a_crash_during_grace_keeps_everything_recoverable(harness):
    h = harness()
    a, b = h.mount(), h.mount()
    fa, sa, _ = a.open(a.root(), b"a", create=True)
    a.write(fa, sa, 0, b"a's", stable=x.FILE_SYNC4)
    fb, sb, _ = b.open(b.root(), b"b", create=True)
    b.write(fb, sb, 0, b"b's", stable=x.FILE_SYNC4)
    h.restart()
    reestablish(a)  # a comes back, b not yet; then the server crashes again mid-grace
    h.advance(LEASE / 2)
    h.restart()
    boot = h.now
    assert h.store.grace_until == boot + LEASE  # a whole grace period again, for both
    assert h.events("retire") == [] and len(h.staged()) == 2
    for c, fh, name in ((a, fa, "a"), (b, fb, "b")):
        reestablish(c)
        sid = reclaim(c, fh)
        reclaim_complete(c)
        c.close_file(fh, sid)
        assert h.published(name) == name.encode() + b"'s"
    assert h.store.grace_until is None


def test_rule8_a_client_that_missed_grace_gets_none_at_the_next_restart(harness):
    """Records of clients that did not come back are dropped when grace ends: their files
    are retired, and the next restart has no grace for them."""
    h = harness()
    b = h.mount()
    fb, _, _ = b.open(b.root(), b"b", create=True)
    h.restart()
    h.advance(LEASE)
    assert h.store.grace_until is None and len(h.events("retire")) == 1
    h.restart()
    assert h.store.grace_until is None  # its file is retired, not recoverable: no grace
    assert len(h.staged()) == 1
    reestablish(b)  # it can still resume the file (rule 7) outside grace
    reclaim_complete(b)
    sid = b.open_fh(fb, RW)
    b.close_file(fb, sid)
    assert h.published("b") == b"" and h.staged() == []


def test_rule8_a_rebooted_reclaimer_ends_grace_with_its_reclaim_complete(harness):
    """The owner is back with a new verifier (it rebooted while the server was down): it
    has nothing to reclaim, and as it was the only reclaimer, its RECLAIM_COMPLETE ends
    grace."""
    h = harness()
    a = h.mount()
    a.open(a.root(), b"a", create=True)
    h.restart()
    rebooted = h.client(owner=a.owner)
    rebooted.exchange_id()
    rebooted.create_session()
    assert ordinary_open(rebooted) == x.NFS4ERR_GRACE
    reclaim_complete(rebooted)
    assert h.store.grace_until is None
    assert ordinary_open(rebooted) == x.NFS4_OK


def test_rule8_a_reboot_in_grace_discards_the_files_it_could_have_reclaimed(harness):
    h = harness()
    a = h.mount()
    a.open(a.root(), b"a", create=True)
    h.restart()
    h.client(owner=a.owner).exchange_id()
    assert h.staged() == [] and "rebooted" in h.events("discard")[0]


def test_rule8_only_a_client_that_held_state_may_reclaim(harness):
    h = harness()
    a = h.mount()
    fh = a.create_file(a.root(), b"f", b"x")
    a.open(a.root(), b"f", access=x.OPEN4_SHARE_ACCESS_READ)
    h.restart()
    stranger = h.mount()  # mount() sends RECLAIM_COMPLETE: it has nothing to reclaim
    assert status(reclaim, stranger, fh, x.OPEN4_SHARE_ACCESS_READ) == x.NFS4ERR_NO_GRACE
    late = h.client()
    late.exchange_id()
    late.create_session()
    assert status(reclaim, late, fh, x.OPEN4_SHARE_ACCESS_READ) == x.NFS4ERR_NO_GRACE
    assert h.store.grace_until is not None  # a stranger does not end anybody's grace
