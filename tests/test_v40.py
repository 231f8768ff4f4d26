"""NFSv4.0 on a fake clock (tests/harness/): SETCLIENTID, owner seqids and their replay,
OPEN_CONFIRM, RENEW, the duplicate request cache across a reconnect, lease expiry (EXPIRED),
STALE_* after a restart and reclaim with CLAIM_PREVIOUS, and the write-once rules through the
4.0 front door (rules 2, 3 and 6; rules 7 and 8 by lease and restart)."""

from __future__ import annotations

from harness import status
from nfsd.client import encode_attrs, op
from nfsd.xdr import decode, encode, nfs4 as x

RW = x.OPEN4_SHARE_ACCESS_BOTH
LEASE, TICK = 90, 5.0


def open_args(c, name, seqid, owner=b"oo", create=True):
    how = x.openflag4(x.OPEN4_CREATE, x.createhow4(x.UNCHECKED4, encode_attrs({x.FATTR4_MODE: 0o644}))) \
        if create else x.openflag4(x.OPEN4_NOCREATE, None)
    return x.nfs_argop4(x.OP_OPEN, x.OPEN4args(seqid, RW, 0, x.open_owner4(c.clientid, owner), how,
                                               x.open_claim4(x.CLAIM_NULL, name)))


def test_setclientid_confirm_and_renew(harness):
    h = harness()
    c = h.client(minor=0)
    ok = c.setclientid()
    # Unconfirmed: RENEW does not know it yet.
    assert c.compound([op("RENEW", ok.clientid)], minor=0).status == x.NFS4ERR_STALE_CLIENTID
    assert status(c.setclientid_confirm, ok.clientid, b"wrongvrf") == x.NFS4ERR_STALE_CLIENTID
    c.setclientid_confirm(ok.clientid, ok.setclientid_confirm)
    c.setclientid_confirm(ok.clientid, ok.setclientid_confirm)  # a retransmission is fine
    assert c.compound([op("RENEW", ok.clientid)], minor=0).status == x.NFS4_OK
    # Same verifier again (callback update): same clientid.
    again = c.setclientid()
    assert again.clientid == ok.clientid
    c.setclientid_confirm(again.clientid, again.setclientid_confirm)
    # A different principal using a live client's id: CLID_INUSE.
    other = h.client(minor=0, owner=c.owner, uid=4242)
    fh, sid, _ = c.open(c.root(), b"held", create=True)
    assert status(other.setclientid) == x.NFS4ERR_CLID_INUSE
    c.close_file(fh, sid)


def test_renew_keeps_a_40_lease_alive(harness):
    """RENEW (or any request naming the client) renews; silence for more than a lease ends
    it at the next tick: RENEW then answers EXPIRED."""
    h = harness()
    t0 = h.now
    c = h.mount(minor=0)
    c.open(c.root(), b"f", create=True)
    for k in range(1, 4):
        h.advance_to(t0 + k * LEASE)  # exactly a lease after the last renewal: still alive
        assert c.compound([op("RENEW", c.clientid)], minor=0).status == x.NFS4_OK
    h.advance(LEASE + TICK)
    assert c.compound([op("RENEW", c.clientid)], minor=0).status == x.NFS4ERR_EXPIRED
    assert len(h.events("retire")) == 1


def test_open_confirm_and_seqid_replay(harness):
    h = harness()
    c = h.mount(minor=0)
    root = c.root()
    r = c.compound([op("PUTFH", root), open_args(c, b"f", 7), op("GETFH")], minor=0)
    assert r.status == x.NFS4_OK
    ok = r.resarray[1].value.value
    assert ok.rflags & x.OPEN4_RESULT_CONFIRM
    fh = r.resarray[2].value.value.object
    # Before OPEN_CONFIRM the stateid cannot be used.
    w = c.compound([op("PUTFH", fh), op("WRITE", ok.stateid, 0, x.UNSTABLE4, b"x")], minor=0)
    assert w.status == x.NFS4ERR_BAD_STATEID
    # The retransmitted OPEN (same seqid) gets the same answer, not a second open.
    r2 = c.compound([op("PUTFH", root), open_args(c, b"f", 7), op("GETFH")], minor=0)
    assert r2.status == x.NFS4_OK
    assert r2.resarray[1].value.value.stateid == ok.stateid
    assert r2.resarray[2].value.value.object == fh
    # A seqid out of order is refused.
    bad = c.compound([op("PUTFH", fh), op("OPEN_CONFIRM", ok.stateid, 9)], minor=0)
    assert bad.status == x.NFS4ERR_BAD_SEQID
    conf = c.compound([op("PUTFH", fh), op("OPEN_CONFIRM", ok.stateid, 8)], minor=0)
    assert conf.status == x.NFS4_OK
    sid = conf.resarray[1].value.value.open_stateid
    assert sid.seqid == ok.stateid.seqid + 1
    # Replayed OPEN_CONFIRM: same stateid.
    conf2 = c.compound([op("PUTFH", fh), op("OPEN_CONFIRM", ok.stateid, 8)], minor=0)
    assert conf2.resarray[1].value.value.open_stateid == sid
    c.call([op("PUTFH", fh), op("WRITE", sid, 0, x.FILE_SYNC4, b"data")])
    close = [op("PUTFH", fh), op("CLOSE", 9, sid)]
    assert c.compound(close, minor=0).status == x.NFS4_OK
    assert h.published("f") == b"data"
    # The CLOSE is replayed (not BAD_STATEID) when retransmitted.
    assert c.compound(close, minor=0).status == x.NFS4_OK
    # An error counts as a seqid too (RFC 7530 9.1.7): NOENT at seqid 10, then 11 is next.
    r = c.compound([op("PUTFH", root), open_args(c, b"missing", 10, create=False)], minor=0)
    assert r.status == x.NFS4ERR_NOENT
    r = c.compound([op("PUTFH", root), open_args(c, b"missing", 10, create=False)], minor=0)
    assert r.status == x.NFS4ERR_NOENT
    r = c.compound([op("PUTFH", root), open_args(c, b"f", 11, create=False)], minor=0)
    assert r.status == x.NFS4_OK


def test_a_closed_open_is_replayed_for_one_lease_then_forgotten(harness):
    """4.0 keeps a closed open one lease, so a retransmitted CLOSE gets its answer again;
    after that the stateid is unknown."""
    h = harness()
    c = h.mount(minor=0)
    fh, sid, _ = c.open(c.root(), b"f", create=True)
    seqid = c.next_seqid(b"open-owner")
    close = [op("PUTFH", fh), op("CLOSE", seqid, sid)]
    first = c.compound(close, minor=0)
    assert first.status == x.NFS4_OK
    h.advance(LEASE)
    c.compound([op("RENEW", c.clientid)], minor=0)
    again = c.compound(close, minor=0)
    assert again.status == x.NFS4_OK
    assert again.resarray[1].value.value == first.resarray[1].value.value
    h.advance(TICK * 2)
    c.compound([op("RENEW", c.clientid)], minor=0)
    assert c.compound(close, minor=0).status != x.NFS4_OK


def test_duplicate_request_cache_survives_a_reconnect(harness):
    h = harness()
    c = h.mount(minor=0)
    root = c.root()
    args = encode(x.COMPOUND4args, x.COMPOUND4args(b"drc", 0, [
        op("PUTFH", root),
        op("CREATE", x.createtype4(x.NF4DIR, None), b"made-once", encode_attrs({x.FATTR4_MODE: 0o755}))]))
    xid = 0x5EED0001
    c.rpc.send_call(100003, 4, 1, args, cred=c.cred, xid=xid)
    first = c.rpc.recv_reply()
    # The reply was "lost": the client reconnects and retransmits with the same xid.
    c.reconnect()
    c.rpc.send_call(100003, 4, 1, args, cred=c.cred, xid=xid)
    second = c.rpc.recv_reply()
    assert first == second
    assert decode(x.COMPOUND4res, second[1]).status == x.NFS4_OK
    # Another xid really runs again, and gets EXIST.
    c.rpc.send_call(100003, 4, 1, args, cred=c.cred, xid=xid + 1)
    assert decode(x.COMPOUND4res, c.rpc.recv_reply()[1]).status == x.NFS4ERR_EXIST
    assert c.lookup("made-once")


def test_write_once_rules_hold_for_v40(harness):
    h = harness()
    a = h.mount(minor=0)
    b = h.mount(minor=0)
    fh, sid, _ = a.open(a.root(), b"w40", create=True)
    a.write(fh, sid, 0, b"private")
    assert a.lookup("w40") == fh  # the writer's machine sees it
    assert status(b.lookup, "w40") == x.NFS4ERR_NOENT
    assert h.published("w40") is None
    a.close_file(fh, sid)
    assert h.published("w40") == b"private"
    # Crash: same id, new verifier, through SETCLIENTID.
    fh, sid, _ = a.open(a.root(), b"lost40", create=True)
    a.write(fh, sid, 0, b"lost", stable=x.FILE_SYNC4)
    assert len(h.staged()) == 1
    h.client(minor=0, owner=a.owner).setclientid()
    assert h.staged() == []
    assert "discarded unpublished file" in h.text()


def test_rule7_v40_lease_expiry_then_expired_state_and_resume_by_name(harness):
    h = harness()
    a = h.mount(minor=0)
    fh, sid, _ = a.open(a.root(), b"quiet40", create=True)
    a.write(fh, sid, 0, b"kept", stable=x.FILE_SYNC4)
    h.advance(LEASE + TICK)
    assert len(h.events("retire")) == 1
    assert a.compound([op("RENEW", a.clientid)], minor=0).status == x.NFS4ERR_EXPIRED
    w = a.compound([op("PUTFH", fh), op("WRITE", sid, 0, x.UNSTABLE4, b"x")], minor=0)
    # Its state is gone (EXPIRED, not BAD_STATEID: the server remembers what it held); the
    # file under construction is hidden from everybody until it comes back.
    assert w.status == x.NFS4ERR_EXPIRED
    assert len(h.staged()) == 1 and h.published("quiet40") is None
    # The same incarnation comes back and re-opens by name (4.0 has no CLAIM_FH): resumed.
    a.reconnect()
    a.seqids.clear()
    a.mount()
    fh2, sid2, _ = a.open(a.root(), b"quiet40", access=RW)
    assert fh2 == fh
    assert a.read(fh, sid2)[0] == b"kept"
    a.write(fh, sid2, 4, b" and finished")
    a.close_file(fh, sid2)
    assert h.published("quiet40") == b"kept and finished"


def test_rule8_v40_restart_stale_ids_and_claim_previous(harness):
    h = harness()
    a = h.mount(minor=0)
    pub = a.create_file(a.root(), b"published", b"p")
    _, psid, _ = a.open(a.root(), b"published", access=x.OPEN4_SHARE_ACCESS_READ, owner=b"r")
    fh, sid, _ = a.open(a.root(), b"r40", create=True)
    a.write(fh, sid, 0, b"before|", stable=x.FILE_SYNC4)
    old_clientid = a.clientid
    h.restart()
    a.reconnect()
    assert a.compound([op("RENEW", old_clientid)], minor=0).status == x.NFS4ERR_STALE_CLIENTID
    r = a.compound([op("PUTFH", pub), op("READ", psid, 0, 10)], minor=0)
    assert r.status == x.NFS4ERR_STALE_STATEID
    a.mount()  # SETCLIENTID + CONFIRM, same verifier
    assert status(a.open, a.root(), b"new40", create=True, owner=b"o2") == x.NFS4ERR_GRACE
    a.seqids.clear()  # the server forgot the owner: it may start anywhere
    claim = x.open_claim4(x.CLAIM_PREVIOUS, x.OPEN_DELEGATE_NONE)
    _, sid2, _ = a.open(fh, b"", access=RW, claim=claim)
    a.write(fh, sid2, 7, b"after", stable=x.FILE_SYNC4)
    a.close_file(fh, sid2)
    assert h.published("r40") == b"before|after"
    # 4.0 has no RECLAIM_COMPLETE: grace ends by time, with the read open not reclaimed.
    assert status(a.open, a.root(), b"new40", create=True, owner=b"o2") == x.NFS4ERR_GRACE
    h.advance(LEASE)
    a.compound([op("RENEW", a.clientid)], minor=0)
    fh3, sid3, _ = a.open(a.root(), b"new40", create=True, owner=b"o2")
    a.close_file(fh3, sid3, owner=b"o2")
    assert h.published("new40") == b""
