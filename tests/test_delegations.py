"""Read delegations and the callback path: granted when nothing conflicts, recalled (CB_RECALL
over the 4.1 back channel or a 4.0 callback connection) when another client wants to change
the file, revoked when not returned, never granted for writing."""

from __future__ import annotations

import socket
import threading

import pytest

from nfsd.client import NfsClient, answer_callback, op
from nfsd.rpc.framing import RecordReader, frame
from nfsd.xdr import nfs4 as x
from test_write_once import status, wait_for

RD = x.OPEN4_SHARE_ACCESS_READ
RW = x.OPEN4_SHARE_ACCESS_BOTH
WANT_READ = x.OPEN4_SHARE_ACCESS_WANT_READ_DELEG


@pytest.fixture
def server(leased_server):
    return leased_server(3)


def mount(server, **kw):
    return NfsClient(*server.address, **kw).mount(back_channel=True)


def read_open(c, name, access=RD | WANT_READ):
    fh, sid, ok = c.open(c.root(), name, access=access)
    return fh, sid, ok.delegation


def test_read_delegation_granted_recalled_and_returned(export, server):
    (export / "f").write_bytes(b"version 1")
    a, b = mount(server), mount(server)
    fh, sid, deleg = read_open(a, b"f")
    assert deleg.tag == x.OPEN_DELEGATE_READ
    dsid = deleg.value.stateid
    assert a.read(fh, dsid)[0] == b"version 1"  # READ with the delegation stateid
    # Another client's write open waits for the recall.
    assert status(b.open, b.root(), b"f", access=RW) == x.NFS4ERR_DELAY
    wait_for(lambda: (a.poll(), a.recalls)[1], what="CB_RECALL")
    assert a.recalls[0][0] == dsid and a.recalls[0][1] == fh
    a.call([op("PUTFH", fh), op("DELEGRETURN", dsid)])
    bfh, bsid, _ = b.open(b.root(), b"f", access=RW)
    b.write(bfh, bsid, 8, b"2")
    b.close_file(bfh, bsid)
    assert a.read(fh, sid)[0] == b"version 2"
    assert status(a.read, fh, dsid) == x.NFS4ERR_BAD_STATEID  # returned: gone


def test_no_delegation_while_someone_writes_or_for_write_opens(export, server):
    (export / "busy").write_bytes(b"x")
    a, b = mount(server), mount(server)
    wfh, wsid, _ = b.open(b.root(), b"busy", access=RW)
    _, _, deleg = read_open(a, b"busy")
    assert deleg.tag == x.OPEN_DELEGATE_NONE_EXT and deleg.value.tag == x.WND4_CONTENTION
    b.close_file(wfh, wsid)
    _, _, deleg = read_open(a, b"busy", access=RW | x.OPEN4_SHARE_ACCESS_WANT_WRITE_DELEG)
    assert deleg.tag == x.OPEN_DELEGATE_NONE_EXT  # never a write delegation
    _, _, deleg = read_open(b, b"busy", access=RD | x.OPEN4_SHARE_ACCESS_WANT_NO_DELEG)
    assert deleg.value.tag == x.WND4_NOT_WANTED


def test_same_client_may_write_under_its_own_read_delegation(export, server):
    (export / "own").write_bytes(b"mine")
    a = mount(server)
    _, _, deleg = read_open(a, b"own")
    assert deleg.tag == x.OPEN_DELEGATE_READ
    fh, sid, _ = a.open(a.root(), b"own", access=RW, owner=b"writer")
    a.write(fh, sid, 0, b"MINE")
    a.close_file(fh, sid, owner=b"writer")
    assert (export / "own").read_bytes() == b"MINE"
    assert a.recalls == []


def test_remove_and_setattr_by_another_client_recall(export, server):
    (export / "r").write_bytes(b"x")
    a, b = mount(server), mount(server)
    fh, _, deleg = read_open(a, b"r")
    assert status(b.setattr, b.lookup("r"), {x.FATTR4_MODE: 0o600}) == x.NFS4ERR_DELAY
    assert status(b.remove, b.root(), b"r") == x.NFS4ERR_DELAY
    wait_for(lambda: (a.poll(), a.recalls)[1], what="CB_RECALL")
    a.call([op("PUTFH", fh), op("DELEGRETURN", deleg.value.stateid)])
    b.remove(b.root(), b"r")
    assert not (export / "r").exists()


def test_unreturned_delegation_is_revoked(export, server):
    (export / "rv").write_bytes(b"x")
    a, b = mount(server), mount(server)
    fh, _, deleg = read_open(a, b"rv")
    dsid = deleg.value.stateid

    def b_opens():
        a.poll()  # a stays alive (renews) but never returns the delegation
        return status(b.open, b.root(), b"rv", access=RW) == x.NFS4_OK
    wait_for(b_opens, what="revocation")
    assert status(a.read, fh, dsid) == x.NFS4ERR_DELEG_REVOKED
    seq = a.compound([a.sequence_op()]).resarray[0].value.value
    assert seq.sr_status_flags & x.SEQ4_STATUS_RECALLABLE_STATE_REVOKED
    codes = a.call([op("TEST_STATEID", [dsid])])[-1].value.tsr_status_codes
    assert codes == [x.NFS4ERR_DELEG_REVOKED]
    before = a.getattr(fh, (x.FATTR4_CHANGE,))[x.FATTR4_CHANGE]
    a.call([op("FREE_STATEID", dsid)])
    seq = a.compound([a.sequence_op()]).resarray[0].value.value
    assert not seq.sr_status_flags & x.SEQ4_STATUS_RECALLABLE_STATE_REVOKED
    # what a cached under the delegation is revalidated: the file's change attribute moved
    assert a.getattr(fh, (x.FATTR4_CHANGE,))[x.FATTR4_CHANGE] != before
    assert "revoked" in server.text()


def test_callback_uses_the_security_the_client_chose(export, server):
    (export / "sec").write_bytes(b"x")
    a = NfsClient(*server.address)
    a.exchange_id()
    sys_cred = x.authsys_parms(7, b"cbhost", 17, 19, [])
    a.create_session(back_channel=True, sec=[x.callback_sec_parms4(x.AUTH_SYS, sys_cred)])
    a.call([op("RECLAIM_COMPLETE", False)])
    b = mount(server)
    fh, _, deleg = read_open(a, b"sec")
    assert deleg.tag == x.OPEN_DELEGATE_READ
    assert status(b.open, b.root(), b"sec", access=RW) == x.NFS4ERR_DELAY
    wait_for(lambda: (a.poll(), a.recalls)[1], what="CB_RECALL")
    cred = a.recalls[0][2]
    assert (cred.uid, cred.gid) == (17, 19)


def test_no_back_channel_no_delegation(export, server):
    (export / "nb").write_bytes(b"x")
    a = NfsClient(*server.address)
    a.exchange_id()
    a.create_session(back_channel=False)
    a.call([op("RECLAIM_COMPLETE", False)])
    _, _, deleg = read_open(a, b"nb")
    assert deleg.tag == x.OPEN_DELEGATE_NONE_EXT and deleg.value.tag == x.WND4_RESOURCE


class CallbackServer:
    """A 4.0 client's callback service: a TCP listener answering CB_NULL and CB_RECALL."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        self.recalls = []
        self.nulls = 0
        self.peers = []
        threading.Thread(target=self._serve, daemon=True).start()

    def uaddr(self) -> bytes:
        return b"127.0.0.1.%d.%d" % (self.port >> 8, self.port & 255)

    def _serve(self):
        while True:
            try:
                conn, addr = self.sock.accept()
            except OSError:
                return
            self.peers.append(addr)
            threading.Thread(target=self._conn, args=(conn,), daemon=True).start()

    def _conn(self, conn):
        reader = RecordReader(1 << 20)
        while True:
            try:
                data = conn.recv(65536)
            except OSError:
                return
            if not data:
                return
            for rec in reader.feed(data):
                rec = bytes(rec)
                if int.from_bytes(rec[20:24], "big") == 0:  # proc 0: CB_NULL
                    self.nulls += 1
                reply = answer_callback(rec, self)
                conn.sendall(b"".join(frame([reply])))

    def close(self):
        self.sock.close()


def test_v40_callback_probe_and_recall(export, server):
    (export / "v40").write_bytes(b"x")
    cbs = CallbackServer()
    try:
        a = NfsClient(*server.address, minor=0)
        ok = a.setclientid(callback=x.cb_client4(0x40000000, x.netaddr4(b"tcp", cbs.uaddr())))
        a.setclientid_confirm(ok.clientid, ok.setclientid_confirm)
        wait_for(lambda: cbs.nulls, what="CB_NULL probe")
        assert cbs.peers[0][0] == "127.0.0.1"  # only the address the client gave

        def delegated():
            fh, sid, ok = a.open(a.root(), b"v40", access=RD)
            if ok.delegation.tag == x.OPEN_DELEGATE_READ:
                return fh, ok.delegation.value.stateid
            a.close_file(fh, sid)
            return None
        fh, dsid = wait_for(delegated, what="a delegation once the probe succeeded")
        b = NfsClient(*server.address, minor=0).mount()
        assert status(b.open, b.root(), b"v40", access=RW, owner=b"bw") == x.NFS4ERR_DELAY
        wait_for(lambda: cbs.recalls, what="CB_RECALL on the 4.0 callback connection")
        assert cbs.recalls[0][0] == dsid
        a.call([op("PUTFH", fh), op("DELEGRETURN", dsid)])
        b.open(b.root(), b"v40", access=RW, owner=b"bw2")
    finally:
        cbs.close()
