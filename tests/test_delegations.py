"""Read delegations and the callback path: granted when nothing conflicts, recalled (CB_RECALL
over the 4.1 back channel or a 4.0 callback connection) when another client wants to change
the file, revoked when not returned, never granted for writing.

Most tests run on the in-process harness (tests/harness/): CB_RECALL arrives on the client's
in-memory connection and `NfsClient` answers it there (`poll()`); the 4.0 callback service
is a `CallbackService` on the harness's network, which the server dials. Time is fake, so the
recall timeout and the no-redelegation period are exact. Two end-to-end tests run the same
over real sockets (a back channel, and a 4.0 callback connection the server opens).
"""

from __future__ import annotations

import socket
import threading

import pytest

from harness import status
from nfsd.client import NfsClient, answer_callback, op
from nfsd.rpc.framing import RecordReader, frame
from nfsd.state.store import DELEG_BLOCK, RECALL_TIMEOUT
from nfsd.xdr import nfs4 as x
from test_write_once import wait_for

RD = x.OPEN4_SHARE_ACCESS_READ
RW = x.OPEN4_SHARE_ACCESS_BOTH
WANT_READ = x.OPEN4_SHARE_ACCESS_WANT_READ_DELEG


def published(h, name, data=b"x"):
    """A published file, written by a client of its own that is gone afterwards."""
    w = h.mount()
    w.create_file(w.root(), name, data)
    w.destroy()


def read_open(c, name, access=RD | WANT_READ):
    fh, sid, ok = c.open(c.root(), name, access=access)
    return fh, sid, ok.delegation


def test_read_delegation_granted_recalled_and_returned(harness):
    h = harness()
    published(h, b"f", b"version 1")
    a, b = h.mount(back_channel=True), h.mount(back_channel=True)
    fh, sid, deleg = read_open(a, b"f")
    assert deleg.tag == x.OPEN_DELEGATE_READ
    dsid = deleg.value.stateid
    assert a.read(fh, dsid)[0] == b"version 1"  # READ with the delegation stateid
    # Another client's write open waits for the recall.
    assert status(b.open, b.root(), b"f", access=RW) == x.NFS4ERR_DELAY
    assert a.recalls == []  # sent, waiting on a's connection
    a.poll()
    assert [r[:2] for r in a.recalls] == [(dsid, fh)]
    assert status(b.open, b.root(), b"f", access=RW) == x.NFS4ERR_DELAY  # not returned yet
    a.call([op("PUTFH", fh), op("DELEGRETURN", dsid)])
    bfh, bsid, _ = b.open(b.root(), b"f", access=RW)
    b.write(bfh, bsid, 8, b"2")
    b.close_file(bfh, bsid)
    assert a.read(fh, sid)[0] == b"version 2"
    assert status(a.read, fh, dsid) == x.NFS4ERR_BAD_STATEID  # returned: gone
    assert len(a.recalls) == 1  # recalled once


def test_no_delegation_while_someone_writes_or_for_write_opens(harness):
    h = harness()
    published(h, b"busy")
    a, b = h.mount(back_channel=True), h.mount(back_channel=True)
    wfh, wsid, _ = b.open(b.root(), b"busy", access=RW)
    _, _, deleg = read_open(a, b"busy")
    assert deleg.tag == x.OPEN_DELEGATE_NONE_EXT and deleg.value.tag == x.WND4_CONTENTION
    b.close_file(wfh, wsid)
    _, _, deleg = read_open(a, b"busy", access=RW | x.OPEN4_SHARE_ACCESS_WANT_WRITE_DELEG)
    assert deleg.tag == x.OPEN_DELEGATE_NONE_EXT  # never a write delegation
    _, _, deleg = read_open(b, b"busy", access=RD | x.OPEN4_SHARE_ACCESS_WANT_NO_DELEG)
    assert deleg.value.tag == x.WND4_NOT_WANTED


def test_same_client_may_write_under_its_own_read_delegation(harness):
    h = harness()
    published(h, b"own", b"mine")
    a = h.mount(back_channel=True)
    _, _, deleg = read_open(a, b"own")
    assert deleg.tag == x.OPEN_DELEGATE_READ
    fh, sid, _ = a.open(a.root(), b"own", access=RW, owner=b"writer")
    a.write(fh, sid, 0, b"MINE")
    a.close_file(fh, sid, owner=b"writer")
    assert h.published("own") == b"MINE"
    a.poll()
    assert a.recalls == []


def test_remove_and_setattr_by_another_client_recall(harness):
    h = harness()
    published(h, b"r")
    a, b = h.mount(back_channel=True), h.mount(back_channel=True)
    fh, _, deleg = read_open(a, b"r")
    assert status(b.setattr, b.lookup("r"), {x.FATTR4_MODE: 0o600}) == x.NFS4ERR_DELAY
    assert status(b.remove, b.root(), b"r") == x.NFS4ERR_DELAY
    a.poll()
    assert len(a.recalls) == 1
    a.call([op("PUTFH", fh), op("DELEGRETURN", deleg.value.stateid)])
    b.remove(b.root(), b"r")
    assert h.published("r") is None


@pytest.mark.parametrize("lease", [90, 4])
def test_unreturned_delegation_is_revoked_at_the_recall_timeout(harness, lease):
    """Not returned within min(10 s, a lease) of the recall: revoked at the first request
    that meets it after that moment (no tick needed), and the waiting client goes on."""
    h = harness(lease_time=lease)
    timeout = min(lease, RECALL_TIMEOUT)
    published(h, b"rv")
    a, b = h.mount(back_channel=True), h.mount(back_channel=True)
    fh, _, deleg = read_open(a, b"rv")
    dsid = deleg.value.stateid
    assert status(b.open, b.root(), b"rv", access=RW) == x.NFS4ERR_DELAY
    recalled = h.now
    a.poll()  # a is alive (it renews, it got the recall) but never returns the delegation
    h.advance_to(recalled + timeout)
    a.poll()
    assert status(b.open, b.root(), b"rv", access=RW) == x.NFS4ERR_DELAY  # not yet
    h.advance_to(recalled + timeout + 0.25)
    a.poll()
    assert status(b.open, b.root(), b"rv", access=RW, owner=b"w") == x.NFS4_OK
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
    assert "revoked" in h.text()


def test_no_new_delegation_of_a_recalled_file_for_a_while(harness):
    h = harness()
    published(h, b"blk")
    a, b = h.mount(back_channel=True), h.mount(back_channel=True)
    fh, sid, deleg = read_open(a, b"blk")
    assert status(b.open, b.root(), b"blk", access=RW) == x.NFS4ERR_DELAY
    recalled = h.now
    a.poll()
    a.call([op("PUTFH", fh), op("DELEGRETURN", deleg.value.stateid)])
    a.close_file(fh, sid)
    h.advance_to(recalled + DELEG_BLOCK - 0.25)
    fh, sid, deleg = read_open(a, b"blk")
    assert deleg.tag == x.OPEN_DELEGATE_NONE_EXT
    a.close_file(fh, sid)
    h.advance_to(recalled + DELEG_BLOCK)
    fh, sid, deleg = read_open(a, b"blk")
    assert deleg.tag == x.OPEN_DELEGATE_READ


def test_callback_uses_the_security_the_client_chose(harness):
    h = harness()
    published(h, b"sec")
    a = h.client()
    a.exchange_id()
    sys_cred = x.authsys_parms(7, b"cbhost", 17, 19, [])
    a.create_session(back_channel=True, sec=[x.callback_sec_parms4(x.AUTH_SYS, sys_cred)])
    a.call([op("RECLAIM_COMPLETE", False)])
    b = h.mount(back_channel=True)
    fh, _, deleg = read_open(a, b"sec")
    assert deleg.tag == x.OPEN_DELEGATE_READ
    assert status(b.open, b.root(), b"sec", access=RW) == x.NFS4ERR_DELAY
    a.poll()
    cred = a.recalls[0][2]
    assert (cred.uid, cred.gid, cred.machinename) == (17, 19, b"cbhost")


def test_no_back_channel_no_delegation(harness):
    h = harness()
    published(h, b"nb")
    a = h.client()
    a.exchange_id()
    a.create_session(back_channel=False)
    a.call([op("RECLAIM_COMPLETE", False)])
    _, _, deleg = read_open(a, b"nb")
    assert deleg.tag == x.OPEN_DELEGATE_NONE_EXT and deleg.value.tag == x.WND4_RESOURCE


def test_a_closed_back_channel_means_no_recall_and_no_new_delegation(harness):
    """The recall cannot be sent when the back channel's connection is gone; the delegation
    is revoked on time all the same, and the client gets no new one without a back channel."""
    h = harness()
    published(h, b"gone")
    a, b = h.mount(back_channel=True), h.mount(back_channel=True)
    fh, _, deleg = read_open(a, b"gone")
    assert deleg.tag == x.OPEN_DELEGATE_READ
    a.reconnect()  # the session stays, its back channel connection is gone
    assert status(b.open, b.root(), b"gone", access=RW) == x.NFS4ERR_DELAY
    assert "no back channel for a recall" in h.text()
    h.advance(RECALL_TIMEOUT + 0.25)
    assert status(b.open, b.root(), b"gone", access=RW) == x.NFS4_OK
    a.poll()
    assert a.recalls == []


def test_v40_callback_probe_and_recall(harness):
    h = harness()
    published(h, b"v40")
    cbs = h.callback_service("10.9.8.7")
    a = h.client(minor=0)
    ok = a.setclientid(callback=x.cb_client4(0x40000000, x.netaddr4(b"tcp", cbs.uaddr())))
    a.setclientid_confirm(ok.clientid, ok.setclientid_confirm)
    assert cbs.nulls == 1  # the CB_NULL probe ran before the confirm was answered
    assert h.network.dials == [(cbs.host, cbs.port)]  # only the address the client gave
    fh, sid, ok = a.open(a.root(), b"v40", access=RD)
    assert ok.delegation.tag == x.OPEN_DELEGATE_READ
    dsid = ok.delegation.value.stateid
    b = h.mount(minor=0)
    assert status(b.open, b.root(), b"v40", access=RW, owner=b"bw") == x.NFS4ERR_DELAY
    assert [r[0] for r in cbs.recalls] == [dsid]  # CB_RECALL on the callback connection
    a.call([op("PUTFH", fh), op("DELEGRETURN", dsid)])
    b.open(b.root(), b"v40", access=RW, owner=b"bw2")


def test_v40_unreachable_callback_means_no_delegation(harness):
    h = harness()
    published(h, b"nocb")
    a = h.client(minor=0)
    ok = a.setclientid(callback=x.cb_client4(0x40000000, x.netaddr4(b"tcp", b"10.1.1.1.8.1")))
    a.setclientid_confirm(ok.clientid, ok.setclientid_confirm)
    assert h.network.dials == [("10.1.1.1", 2049)]
    assert "unreachable" in h.text()
    _, _, ok = a.open(a.root(), b"nocb", access=RD)
    assert ok.delegation.tag == x.OPEN_DELEGATE_NONE


# ---------------------------------------------------------------- over real sockets
@pytest.fixture
def server(leased_server):
    return leased_server(90)


def test_socket_recall_over_the_back_channel_end_to_end(export, server):
    (export / "f").write_bytes(b"version 1")
    a = NfsClient(*server.address).mount(back_channel=True)
    b = NfsClient(*server.address).mount(back_channel=True)
    fh, sid, deleg = read_open(a, b"f")
    assert deleg.tag == x.OPEN_DELEGATE_READ
    dsid = deleg.value.stateid
    assert status(b.open, b.root(), b"f", access=RW) == x.NFS4ERR_DELAY
    a.poll()  # the CB_RECALL was written before b's answer: it is in a's socket already
    assert [r[:2] for r in a.recalls] == [(dsid, fh)]
    a.call([op("PUTFH", fh), op("DELEGRETURN", dsid)])
    bfh, bsid, _ = b.open(b.root(), b"f", access=RW)
    b.write(bfh, bsid, 8, b"2")
    b.close_file(bfh, bsid)
    assert a.read(fh, sid)[0] == b"version 2"


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
        self.answered = threading.Condition()
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
                with self.answered:
                    if int.from_bytes(rec[20:24], "big") == 0:  # proc 0: CB_NULL
                        self.nulls += 1
                    reply = answer_callback(rec, self)
                    self.answered.notify_all()
                conn.sendall(b"".join(frame([reply])))

    def wait(self, cond, timeout=30.0):
        with self.answered:
            assert self.answered.wait_for(cond, timeout), "no callback arrived"

    def close(self):
        self.sock.close()


def test_socket_v40_callback_probe_and_recall_end_to_end(export, server):
    (export / "v40").write_bytes(b"x")
    cbs = CallbackServer()
    try:
        a = NfsClient(*server.address, minor=0)
        ok = a.setclientid(callback=x.cb_client4(0x40000000, x.netaddr4(b"tcp", cbs.uaddr())))
        a.setclientid_confirm(ok.clientid, ok.setclientid_confirm)
        cbs.wait(lambda: cbs.nulls)  # the CB_NULL probe
        assert cbs.peers[0][0] == "127.0.0.1"  # only the address the client gave

        def path_up():  # the probe's reply has reached the server (in the reactor thread)
            clients = server.server.store.clients
            return server.call(lambda: any(c.cb is not None for c in clients.values()))
        wait_for(path_up, what="the callback path")
        fh, sid, ok = a.open(a.root(), b"v40", access=RD)
        assert ok.delegation.tag == x.OPEN_DELEGATE_READ
        dsid = ok.delegation.value.stateid
        b = NfsClient(*server.address, minor=0).mount()
        assert status(b.open, b.root(), b"v40", access=RW, owner=b"bw") == x.NFS4ERR_DELAY
        cbs.wait(lambda: cbs.recalls)  # CB_RECALL on the 4.0 callback connection
        assert cbs.recalls[0][0] == dsid
        a.call([op("PUTFH", fh), op("DELEGRETURN", dsid)])
        b.open(b.root(), b"v40", access=RW, owner=b"bw2")
    finally:
        cbs.close()
