"""The harness's own promises (tests/harness/), which the fake-clock rule tests rely on: time
moves only when told and every timer runs at its own time; pool work finishes before a call
returns; a killed process runs nothing more; clients see the bytes and the ends a TCP client
would; randomness is repeatable; a traceback in the server fails the test."""

from __future__ import annotations

import pytest

from harness import Harness, status
from nfsd.client import compound_bytes, op
from nfsd.rpc.client import RpcConnectionClosed
from nfsd.rpc.framing import frame
from nfsd.rpc.message import build_call
from nfsd.xdr import decode, nfs4 as x


def test_time_moves_only_when_told_and_ticks_run_at_their_own_times(harness):
    h = harness(lease_time=8)  # a tick every 2 s
    t0 = h.now
    ticks = []
    real_tick = h.store.tick
    h.store.tick = lambda: (ticks.append(h.now), real_tick())
    a = h.mount()
    assert h.now == t0 and ticks == []  # requests take no time
    h.advance(9)
    assert ticks == [t0 + 2, t0 + 4, t0 + 6, t0 + 8]  # one per interval, not one at the end
    assert h.now == t0 + 9
    h.advance(1)
    assert status(a.call, [op("PUTROOTFH")]) == x.NFS4ERR_BADSESSION  # expired at t0 + 10


def test_pool_work_is_done_before_the_call_returns(harness):
    h = harness()
    c = h.mount()
    fh, sid, _ = c.open(c.root(), b"f", create=True)
    pool = h.reactor.getThreadPool()
    ran = pool.ran
    c.write(fh, sid, 0, b"durable", stable=x.FILE_SYNC4)  # the sync runs in the pool
    assert pool.ran > ran and not h.reactor.queue
    h.power_loss()
    assert len(h.staged()) == 1  # synced before the WRITE was answered


def test_a_killed_server_runs_nothing_more_and_its_clients_see_the_end(harness):
    h = harness(lease_time=8)
    c = h.mount()
    old = h.proc
    h.kill9()
    calls = list(old.reactor.getDelayedCalls())
    assert calls  # its tick was still scheduled ...
    h.advance(100)
    assert old.reactor.seconds() < h.now  # ... and never ran: its clock stopped with it
    with pytest.raises((RpcConnectionClosed, BrokenPipeError)):
        c.call([op("PUTROOTFH")])
    with pytest.raises(ConnectionRefusedError):
        c.reconnect()  # nothing listens
    h.start()
    c.reconnect()
    assert status(c.call, [op("PUTROOTFH")]) == x.NFS4ERR_BADSESSION  # a new boot
    with pytest.raises(AssertionError):
        h.start()  # one process at a time


def test_bytes_arrive_as_sent_and_nothing_arrives_before_the_server_answers(harness):
    h = harness()
    rpc = h.connect()
    args = compound_bytes([op("PUTROOTFH"), op("GETFH")], minor=0)
    xid = 77
    record = b"".join(frame([build_call(xid, 100003, 4, 1, None), args]))
    for i in range(0, len(record) - 1, 7):  # 7-byte pieces: a call the server must assemble
        rpc.send_raw(record[i:min(i + 7, len(record) - 1)])
    with pytest.raises(TimeoutError):
        rpc.recv_reply()  # one byte is missing: there is no answer, and no waiting for one
    rpc.send_raw(record[-1:])
    rxid, body = rpc.recv_reply()
    assert rxid == xid and decode(x.COMPOUND4res, body).status == x.NFS4_OK
    assert h.connections() == 1
    rpc.close()
    assert h.connections() == 0


def test_compounds_as_structures_or_bytes(harness):
    h = harness()
    c = h.mount()
    res = c.compound([c.sequence_op(), op("PUTROOTFH"), op("GETFH")])
    assert res.status == x.NFS4_OK and res.resarray[-1].value.value.object == c.root()
    raw = c.raw_compound(compound_bytes([op("PUTROOTFH"), op("GETFH")], tag=b"t", minor=0))
    res = decode(x.COMPOUND4res, raw)
    assert res.tag == b"t" and res.resarray[-1].value.value.object == c.root()


def test_idle_connections_close_on_the_fake_clock(harness):
    h = harness(idle_timeout=60, max_connections=2)
    a, b = h.client(), h.client()
    a.null(), b.null()
    third = h.connect()
    assert third.sock.recv(1) == b""  # over the limit: closed at once
    h.advance(30)
    b.null()
    h.advance(30)  # a idle for 60 s: closed; b was busy 30 s ago
    assert a.rpc.sock.recv(1) == b"" and h.connections() == 1
    h.advance(30)
    assert h.connections() == 0


def test_the_seed_makes_the_ids_repeatable():
    def ids(seed):
        h = Harness(seed=seed)
        try:
            c = h.mount()
            return c.clientid, c.sessionid, h.server.write_verifier
        finally:
            h.close()
    assert ids(1) == ids(1)
    assert ids(1) != ids(2)


def test_a_traceback_in_the_server_is_caught():
    h = Harness()
    try:
        c = h.mount()

        def broken(*a, **kw):
            raise RuntimeError("a bug")
        h.backend.getattr = broken
        assert status(c.getattr, c.root()) == x.NFS4ERR_SERVERFAULT
        with pytest.raises(AssertionError, match="a bug"):
            h.log.check()
    finally:
        h.close()


def test_a_directory_harness_serves_a_local_backend(tmp_path, harness):
    h = harness(directory=tmp_path / "export")
    c = h.mount()
    fh, sid, _ = c.open(c.root(), b"f", create=True)
    c.write(fh, sid, 0, b"on disk", stable=x.FILE_SYNC4)
    assert len(h.staged()) == 1 and not (tmp_path / "export" / "f").exists()
    h.restart()  # the backend is closed and opened again: the file is recoverable
    c.reconnect()
    c.exchange_id()
    c.create_session()
    claim = x.open_claim4(x.CLAIM_PREVIOUS, x.OPEN_DELEGATE_NONE)
    _, sid, _ = c.open(fh, b"", claim=claim)
    c.close_file(fh, sid)
    assert (tmp_path / "export" / "f").read_bytes() == b"on disk"
