"""Rules 6 and 7 of docs/semantics.md on a fake clock (tests/harness/): a client that reboots
loses its unpublished files at once; a client that goes silent has them retired, can resume
them, and loses them at the retention deadline. Time moves only by `h.advance`, so each test
says exactly when things happen: at the lease boundary, at the first housekeeping tick past
it, at the deadline to the tick.

The server here ticks every min(5, lease/4) seconds from its start (t0 = h.now at boot), as
`nfsd serve` does; a lease runs out at the first tick more than `lease_time` after the
client's last request, and a retired file goes at the first tick at or after its deadline.
"""

from __future__ import annotations

import pytest

from harness import status
from nfsd.client import op
from nfsd.xdr import nfs4 as x

RW = x.OPEN4_SHARE_ACCESS_BOTH
ALL = (1 << 64) - 1
LEASE, TICK = 90, 5.0  # the default lease; its tick is min(5, 90/4)


def write_unfinished(c, name=b"f", data=b"half", stable=x.FILE_SYNC4):
    fh, sid, _ = c.open(c.root(), name, create=True)
    c.write(fh, sid, 0, data, stable=stable)
    return fh, sid


def come_back(c):
    """The same incarnation (owner and verifier) re-establishes itself, as Linux does after
    it notices its lease expired: new clientid and session, RECLAIM_COMPLETE (RFC 8881
    18.51.3)."""
    c.exchange_id()
    c.create_session()
    c.call([op("RECLAIM_COMPLETE", False)])


# ---------------------------------------------------------------- rule 6: a new verifier
def test_rule6_reboot_with_new_verifier_discards_unpublished_files(harness):
    h = harness()
    a, b = h.mount(), h.mount()
    fh, _ = write_unfinished(a, b"crashed")
    fb, sb = write_unfinished(b, b"other's")
    pub = a.create_file(a.root(), b"published", b"stays")
    assert len(h.staged()) == 2
    rebooted = h.client(owner=a.owner)  # same owner, new boot verifier
    rebooted.exchange_id()  # at EXCHANGE_ID already, before CREATE_SESSION confirms it
    assert len(h.staged()) == 1 and h.published("crashed") is None
    [line] = h.events("discard")
    assert f"client {a.owner!r} rebooted: discarded unpublished file" in line
    assert "rebooted: discarded unpublished file" in h.text()  # the operator's log line
    rebooted.create_session()
    assert status(rebooted.lookup, "crashed") == x.NFS4ERR_NOENT
    assert status(b.lookup, "crashed") == x.NFS4ERR_NOENT
    assert status(a.call, [op("PUTROOTFH")]) == x.NFS4ERR_BADSESSION  # the old incarnation
    # Nothing else is touched: another client's file under construction, published files.
    b.close_file(fb, sb)
    assert h.published("other's") == b"half"
    assert rebooted.read_all(pub) == b"stays"
    assert h.staged() == []


def test_rule6_the_same_verifier_again_is_no_reboot(harness):
    h = harness()
    a = h.mount()
    fh, sid = write_unfinished(a)
    again = h.client(owner=a.owner, verifier=a.verifier)
    again.exchange_id()  # the same incarnation asks again (RFC 8881 18.35.5 case 2)
    assert again.clientid == a.clientid
    assert h.events("discard") == [] and len(h.staged()) == 1
    a.close_file(fh, sid)
    assert h.published("f") == b"half"


def test_rule6_setclientid_with_a_new_verifier_discards_too(harness):
    """NFSv4.0: the reboot shows at SETCLIENTID (before SETCLIENTID_CONFIRM)."""
    h = harness()
    a = h.mount(minor=0)
    write_unfinished(a, b"lost40", b"lost")
    assert len(h.staged()) == 1
    h.client(minor=0, owner=a.owner).setclientid()
    assert h.staged() == [] and h.published("lost40") is None
    assert "discarded unpublished file" in h.events("discard")[0]


def test_rule6_a_reboot_discards_retired_files_at_once(harness):
    """A retired file (rule 7) waits for its incarnation; when that client reboots instead,
    it is discarded then, not at the retention deadline."""
    h = harness()
    a = h.mount()
    write_unfinished(a)
    h.advance(LEASE + TICK)
    assert h.events("retire") and len(h.staged()) == 1
    h.client(owner=a.owner).exchange_id()
    assert h.staged() == [] and "rebooted" in h.events("discard")[0]


# ---------------------------------------------------------------- rule 7: silence
def test_rule7_lease_expiry_retires_and_the_same_client_resumes(harness):
    h = harness()
    a, b = h.mount(), h.mount()
    fh, sid = write_unfinished(a, b"quiet", b"first half, ")
    a.write(fh, sid, 12, b"unstable ", stable=x.UNSTABLE4)  # acknowledged too
    h.advance(LEASE + TICK)  # a stops renewing (any SEQUENCE would renew): the lease runs out
    assert f"unpublished file {h.staged()[0]} of client {a.owner!r} retired" in h.events("retire")
    assert status(a.call, [op("PUTROOTFH")]) == x.NFS4ERR_BADSESSION
    assert len(h.staged()) == 1 and h.published("quiet") is None  # kept, hidden, unpublished
    c = h.mount()  # b's lease ran out too; a fresh client
    assert status(c.lookup, "quiet") == x.NFS4ERR_NOENT
    assert status(b.call, [op("PUTROOTFH")]) == x.NFS4ERR_BADSESSION
    # The same incarnation comes back and reopens by filehandle, as Linux does.
    come_back(a)
    sid2 = a.open_fh(fh, RW)
    assert a.read(fh, sid2)[0] == b"first half, unstable "  # every acknowledged byte
    a.write(fh, sid2, 21, b"second half")
    a.close_file(fh, sid2)
    assert h.published("quiet") == b"first half, unstable second half"
    assert h.staged() == [] and h.events("discard") == []


def test_rule7_the_lease_ends_at_the_first_tick_past_the_lease_time(harness):
    h = harness()
    t0 = h.now
    a, b = h.mount(), h.mount()  # both renewed at t0
    write_unfinished(a)
    h.advance_to(t0 + LEASE)  # a tick runs now: exactly one lease of silence is not too long
    assert h.events("expire") == [] and h.events("retire") == []
    assert status(b.lookup, "f") == x.NFS4ERR_NOENT  # b renews; a stays silent
    h.advance_to(t0 + LEASE + TICK - 0.25)  # no tick in between: nothing happens
    assert h.events("expire") == []
    h.advance_to(t0 + LEASE + TICK)  # the first tick past the lease
    assert h.events("expire") == [f"lease of client {a.owner!r} expired"]
    assert len(h.events("retire")) == 1
    assert status(b.lookup, "f") == x.NFS4ERR_NOENT  # b renewed in between: still there


def test_rule7_other_clients_do_not_keep_a_silent_lease_alive(harness):
    h = harness()
    a, b = h.mount(), h.mount()
    write_unfinished(a)
    for _ in range(10):  # 100 s
        h.advance(10)
        b.poll()  # b is busy the whole time
    assert [e for e in h.events("expire")] == [f"lease of client {a.owner!r} expired"]


def test_rule7_locks_go_away_with_the_lease(harness):
    """A silent client's byte-range locks end with its lease; the other client, renewing all
    along, gets the range at the first tick past the lease and not before."""
    h = harness()
    t0 = h.now
    a, b = h.mount(), h.mount()
    a_fh = a.create_file(a.root(), b"lease", b"")
    locks = {}
    for c in (a, b):
        fh, osid, _ = c.open(c.root(), b"lease", access=RW)
        locks[c] = (fh, osid)

    def lock(c, offset, length):
        fh, osid = locks[c]
        locker = x.locker4(True, x.open_to_lock_owner4(0, osid, 0,
                                                        x.lock_owner4(c.clientid, b"lock-owner")))
        return c.call([op("PUTFH", fh), op("LOCK", x.WRITE_LT, False, offset, length, locker)],
                      check=False)[-1].tag

    assert a_fh == locks[a][0]
    assert lock(a, 0, ALL) == x.NFS4_OK
    assert lock(b, 0, 1) == x.NFS4ERR_DENIED
    h.advance_to(t0 + LEASE)
    assert lock(b, 0, 1) == x.NFS4ERR_DENIED  # a's lease is exactly used up, not over
    h.advance_to(t0 + LEASE + TICK)
    assert lock(b, 0, 1) == x.NFS4_OK


def test_rule7_retired_file_is_discarded_at_the_retention_deadline(harness):
    h = harness(retire_after=3600)
    t0 = h.now
    c = h.mount()
    write_unfinished(c, b"abandoned", b"data")
    h.advance_to(t0 + LEASE + TICK)  # retired at this tick
    retired_at = h.now
    assert len(h.events("retire")) == 1 and len(h.staged()) == 1
    h.advance_to(retired_at + 3600 - TICK)  # the last tick before the deadline
    assert len(h.staged()) == 1 and h.events("discard") == []
    h.advance_to(retired_at + 3600)  # the tick at the deadline itself
    assert h.staged() == [] and h.published("abandoned") is None
    [line] = h.events("discard")
    assert "not reclaimed within 3600s: discarded" in line


def test_rule7_resume_just_before_the_deadline_and_a_second_retirement_starts_afresh(harness):
    h = harness(retire_after=600)
    t0 = h.now
    a = h.mount()
    fh, _ = write_unfinished(a, b"twice", b"one|")
    h.advance_to(t0 + LEASE + TICK)
    first = h.now
    h.advance_to(first + 600 - TICK)  # one tick before its deadline: the client is back
    come_back(a)
    sid = a.open_fh(fh, RW)
    a.write(fh, sid, 4, b"two|", stable=x.FILE_SYNC4)
    resumed = h.now
    h.advance_to(first + 600)  # the old deadline passes: the file is active, not retired
    assert h.events("discard") == [] and len(h.staged()) == 1
    h.advance_to(resumed + LEASE + TICK)  # silent again: retired anew
    second = h.now
    assert len(h.events("retire")) == 2
    h.advance_to(second + 600 - TICK)
    assert len(h.staged()) == 1  # the deadline counts from the second retirement
    come_back(a)
    sid = a.open_fh(fh, RW)
    assert a.read(fh, sid)[0] == b"one|two|"
    a.close_file(fh, sid)
    assert h.published("twice") == b"one|two|"


def test_rule7_only_the_same_incarnation_resumes(harness):
    """Another client cannot reach the retired file: it is not published, and its handle
    is nobody else's (a new incarnation of the owner: test_rule6_a_reboot_discards_...)."""
    h = harness()
    a = h.mount()
    fh, _ = write_unfinished(a)
    h.advance(LEASE + TICK)
    other = h.mount()
    assert status(other.lookup, "f") == x.NFS4ERR_NOENT
    assert status(other.open_fh, fh, RW) in (x.NFS4ERR_STALE, x.NFS4ERR_NOENT)
    assert len(h.staged()) == 1 and h.published("f") is None


@pytest.mark.parametrize("crash", ["restart", "power_loss"])
def test_rule7_a_retired_file_stays_retired_across_a_crash(harness, crash):
    """Retiring syncs the file's data and record, so a server crash (even a power loss)
    keeps it retired with every acknowledged byte; no grace period is needed for it (its
    client's lease was over), and its deadline still counts from the retirement."""
    h = harness(retire_after=600)
    t0 = h.now
    a = h.mount()
    fh, sid = write_unfinished(a, b"r", b"synced|")
    a.write(fh, sid, 7, b"unstable", stable=x.UNSTABLE4)
    h.advance_to(t0 + LEASE + TICK)
    retired_at = h.now
    getattr(h, crash)()
    assert h.store.grace_until is None  # restart without reclaimable state: no grace
    assert len(h.staged()) == 1
    h.advance_to(retired_at + 600 - TICK)
    assert len(h.staged()) == 1
    a.reconnect()
    come_back(a)
    sid = a.open_fh(fh, RW)
    assert a.read(fh, sid)[0] == b"synced|unstable"
    a.close_file(fh, sid)
    assert h.published("r") == b"synced|unstable"


def test_rule7_a_retired_file_nobody_resumes_goes_at_its_deadline_after_a_restart(harness):
    h = harness(retire_after=600)
    t0 = h.now
    write_unfinished(h.mount())
    h.advance_to(t0 + LEASE + TICK)
    retired_at = h.now
    h.advance(100)
    h.restart()
    h.advance_to(retired_at + 600 - 0.25)
    assert len(h.staged()) == 1
    h.advance_to(retired_at + 600 + TICK)  # the new boot ticks on its own schedule
    assert h.staged() == [] and "discarded" in h.events("discard")[0]
