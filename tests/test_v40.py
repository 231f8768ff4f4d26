"""NFSv4.0: SETCLIENTID, owner seqids and their replay, OPEN_CONFIRM, RENEW, the duplicate
request cache across a reconnect, STALE_* after a restart and reclaim with CLAIM_PREVIOUS,
and the write-once rules through the 4.0 front door."""

from __future__ import annotations

import pytest

from nfsd.client import NfsClient, NfsError, encode_attrs, op
from nfsd.xdr import decode, encode, nfs4 as x
from server_proc import ServerProcess
from test_write_once import staged_files, status, wait_for

RW = x.OPEN4_SHARE_ACCESS_BOTH


@pytest.fixture
def server(leased_server):
    return leased_server(4)


def mount40(server, **kw):
    return NfsClient(*server.address, minor=0, **kw).mount()


def open_args(c, name, seqid, owner=b"oo", create=True):
    how = x.openflag4(x.OPEN4_CREATE, x.createhow4(x.UNCHECKED4, encode_attrs({x.FATTR4_MODE: 0o644}))) \
        if create else x.openflag4(x.OPEN4_NOCREATE, None)
    return x.nfs_argop4(x.OP_OPEN, x.OPEN4args(seqid, RW, 0, x.open_owner4(c.clientid, owner), how,
                                               x.open_claim4(x.CLAIM_NULL, name)))


def test_setclientid_confirm_and_renew(server):
    c = NfsClient(*server.address, minor=0)
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
    other = NfsClient(*server.address, minor=0, owner=c.owner, uid=4242)
    fh, sid, _ = c.open(c.root(), b"held", create=True)
    assert status(other.setclientid) == x.NFS4ERR_CLID_INUSE
    c.close_file(fh, sid)


def test_open_confirm_and_seqid_replay(server, export):
    c = mount40(server)
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
    assert (export / "f").read_bytes() == b"data"
    # The CLOSE is replayed (not BAD_STATEID) when retransmitted.
    assert c.compound(close, minor=0).status == x.NFS4_OK
    # An error counts as a seqid too (RFC 7530 9.1.7): NOENT at seqid 10, then 11 is next.
    r = c.compound([op("PUTFH", root), open_args(c, b"missing", 10, create=False)], minor=0)
    assert r.status == x.NFS4ERR_NOENT
    r = c.compound([op("PUTFH", root), open_args(c, b"missing", 10, create=False)], minor=0)
    assert r.status == x.NFS4ERR_NOENT
    r = c.compound([op("PUTFH", root), open_args(c, b"f", 11, create=False)], minor=0)
    assert r.status == x.NFS4_OK


def test_duplicate_request_cache_survives_a_reconnect(server, export):
    c = mount40(server)
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
    assert (export / "made-once").is_dir()


def test_write_once_rules_hold_for_v40(server, export):
    a = mount40(server)
    b = mount40(server)
    fh, sid, _ = a.open(a.root(), b"w40", create=True)
    a.write(fh, sid, 0, b"private")
    assert a.lookup("w40") == fh  # the writer's machine sees it
    assert status(b.lookup, "w40") == x.NFS4ERR_NOENT
    assert not (export / "w40").exists()
    a.close_file(fh, sid)
    assert (export / "w40").read_bytes() == b"private"
    # Crash: same id, new verifier, through SETCLIENTID.
    fh, sid, _ = a.open(a.root(), b"lost40", create=True)
    a.write(fh, sid, 0, b"lost", stable=x.FILE_SYNC4)
    assert len(staged_files(export)) == 1
    NfsClient(*server.address, minor=0, owner=a.owner).setclientid()
    assert staged_files(export) == []
    assert "discarded unpublished file" in server.text()


def test_lease_expiry_then_stale_or_expired_state(server, export):
    a = mount40(server)
    fh, sid, _ = a.open(a.root(), b"quiet40", create=True)
    a.write(fh, sid, 0, b"kept", stable=x.FILE_SYNC4)
    wait_for(lambda: "retired" in server.text(), what="lease expiry")
    assert a.compound([op("RENEW", a.clientid)], minor=0).status == x.NFS4ERR_EXPIRED
    w = a.compound([op("PUTFH", fh), op("WRITE", sid, 0, x.UNSTABLE4, b"x")], minor=0)
    # Its state is gone; the file under construction is hidden from everybody until it comes back.
    assert w.status in (x.NFS4ERR_BAD_STATEID, x.NFS4ERR_EXPIRED, x.NFS4ERR_STALE)
    assert len(staged_files(export)) == 1
    # The same incarnation comes back and re-opens by name (4.0 has no CLAIM_FH): resumed.
    a.reconnect()
    a.seqids.clear()
    a.mount()
    fh2, sid2, _ = a.open(a.root(), b"quiet40", access=RW)
    assert fh2 == fh
    assert a.read(fh, sid2)[0] == b"kept"
    a.write(fh, sid2, 4, b" and finished")
    a.close_file(fh, sid2)
    assert (export / "quiet40").read_bytes() == b"kept and finished"


def test_restart_stale_ids_and_claim_previous(export):
    srv = ServerProcess(export, "--lease-time", "4").start()
    a = mount40(srv)
    try:
        pub = a.create_file(a.root(), b"published", b"p")
        _, psid, _ = a.open(a.root(), b"published", access=x.OPEN4_SHARE_ACCESS_READ, owner=b"r")
        fh, sid, _ = a.open(a.root(), b"r40", create=True)
        a.write(fh, sid, 0, b"before|", stable=x.FILE_SYNC4)
        old_clientid = a.clientid
        srv.kill9()
        srv = ServerProcess(export, "--lease-time", "4", port=srv.port).start()
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
        assert (export / "r40").read_bytes() == b"before|after"
    finally:
        a.close()
        srv.stop()
    _ = NfsError
