"""The RPC server (nfsd.rpc.server) end to end over real TCP sockets, and its protocol
without sockets (StringTransport + task.Clock) where timing matters."""

import logging
import struct
import tracemalloc

import pytest
from twisted.internet import defer, task
from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport

from nfsd.rpc.client import RpcClient, RpcConnectionClosed, RpcReplyError
from nfsd.rpc.framing import RecordReader, frame
from nfsd.rpc.message import AuthSys, build_call, parse_reply
from nfsd.rpc.server import (
    AuthError,
    DropReply,
    GarbageArgs,
    ProcUnavail,
    Program,
    RpcFactory,
    null_procedure,
)
from nfsd.xdr import rpc

PROG = 0x20000099
TIMEOUT = 10


class Toy:
    """A test program, versions 1..3.

    proc 0  NULL
    proc 1  echo the arguments
    proc 2  raise GarbageArgs
    proc 3  raise RuntimeError (a bug)
    proc 4  echo later: hold the call until `group` calls are held (group: first 4 bytes of
            the arguments), then answer them all, newest first
    proc 5  the caller's identity: flavor, uid, gid, number of gids
    proc 6  DropReply
    proc 7  a Deferred failing with GarbageArgs
    proc 8  a reply that is not a list of chunks
    proc 9  echo as non-bytes chunks (memoryview, bytearray)
    proc 10 AuthError(AUTH_TOOWEAK)
    proc 11 hold until released by the test (`release()`)
    """

    versions = (1, 3)

    def __init__(self):
        self.held = []
        self.parked = []
        self.dispatched = 0

    def dispatch(self, call):
        self.dispatched += 1
        p = call.proc
        if p == 0:
            return null_procedure(call)
        if p == 1:
            return [bytes(call.args)]
        if p == 2:
            raise GarbageArgs()
        if p == 3:
            raise RuntimeError("boom")
        if p == 4:
            (group,) = struct.unpack_from(">I", call.args)
            d = defer.Deferred()
            self.held.append((d, bytes(call.args)))
            if len(self.held) >= group:
                held, self.held = self.held, []
                for d2, args in reversed(held):
                    d2.callback([args])
            return d
        if p == 5:
            c = call.cred
            if c is None:
                return [struct.pack(">I", call.flavor)]
            return [struct.pack(">IIII", call.flavor, c.uid, c.gid, len(c.gids))]
        if p == 6:
            raise DropReply()
        if p == 7:
            return defer.fail(GarbageArgs())
        if p == 8:
            return None
        if p == 9:
            return [call.args, bytearray(b"!")]
        if p == 10:
            raise AuthError(rpc.AUTH_TOOWEAK)
        if p == 11:
            d = defer.Deferred()
            self.parked.append(d)
            return d
        raise ProcUnavail()

    def release(self, n=1):
        for _ in range(n):
            self.parked.pop(0).callback([b"done"])


@pytest.fixture
def server(reactor_thread):
    """(port, toy program, factory) of a fresh server; stopped after the test."""
    created = []

    def start(**kw):
        toy = Toy()
        kw.setdefault("max_in_flight_per_conn", 128)
        factory = RpcFactory({PROG: toy}, **kw)
        port = reactor_thread.listen(factory)
        created.append(port)
        return port, toy, factory

    yield start
    for port in created:
        reactor_thread.stop_listening(port)


def client(port):
    return RpcClient("127.0.0.1", port, timeout=TIMEOUT)


def assert_closed(sock):
    """The server closed the connection (EOF or reset), waiting at most TIMEOUT seconds."""
    sock.settimeout(TIMEOUT)
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                return
    except ConnectionResetError:
        return


# ---------------------------------------------------------------------------- basics


def test_null_auth_none_and_auth_sys(server):
    port, _, _ = server()
    with client(port) as c:
        assert c.call(PROG, 1, 0) == b""
        assert c.call(PROG, 3, 0, cred=AuthSys(1, b"host", 1000, 100, (1, 2))) == b""
        assert c.call(PROG, 2, 5) == struct.pack(">I", rpc.AUTH_NONE)
        body = c.call(PROG, 2, 5, cred=AuthSys(1, b"host", 1000, 100, (1, 2)))
        assert struct.unpack(">IIII", body) == (rpc.AUTH_SYS, 1000, 100, 2)
        assert c.call(PROG, 1, 1, b"some args") == b"some args"
        assert c.call(PROG, 1, 9, b"abcd") == b"abcd!"


def test_program_helper(reactor_thread):
    prog = Program((4, 4), {1: lambda call: [b"one"]})
    port = reactor_thread.listen(RpcFactory({100003: prog}))
    try:
        with client(port) as c:
            assert c.call(100003, 4, 0) == b""
            assert c.call(100003, 4, 1) == b"one"
            with pytest.raises(RpcReplyError) as ei:
                c.call(100003, 4, 2)
            assert ei.value.accept_stat == rpc.PROC_UNAVAIL
    finally:
        reactor_thread.stop_listening(port)


def test_accept_errors(server):
    port, _, _ = server()
    with client(port) as c:
        with pytest.raises(RpcReplyError) as ei:
            c.call(PROG + 1, 1, 0)
        assert ei.value.accept_stat == rpc.PROG_UNAVAIL
        with pytest.raises(RpcReplyError) as ei:
            c.call(PROG, 7, 0)
        assert (ei.value.accept_stat, ei.value.low, ei.value.high) == (rpc.PROG_MISMATCH, 1, 3)
        with pytest.raises(RpcReplyError) as ei:
            c.call(PROG, 1, 99)
        assert ei.value.accept_stat == rpc.PROC_UNAVAIL
        with pytest.raises(RpcReplyError) as ei:
            c.call(PROG, 1, 2)
        assert ei.value.accept_stat == rpc.GARBAGE_ARGS
        with pytest.raises(RpcReplyError) as ei:
            c.call(PROG, 1, 7)
        assert ei.value.accept_stat == rpc.GARBAGE_ARGS
        with pytest.raises(RpcReplyError) as ei:
            c.call(PROG, 1, 10)
        assert (ei.value.reject_stat, ei.value.auth_stat) == (rpc.AUTH_ERROR, rpc.AUTH_TOOWEAK)
        assert c.call(PROG, 1, 1, b"still fine") == b"still fine"


def test_auth_errors(server):
    port, _, _ = server()
    with client(port) as c:
        bad_sys = rpc.opaque_auth(rpc.AUTH_SYS, b"\0\0\0\1\0\0\1\0")  # machinename longer than the body
        with pytest.raises(RpcReplyError) as ei:
            c.call(PROG, 1, 0, cred=bad_sys)
        assert (ei.value.reject_stat, ei.value.auth_stat) == (rpc.AUTH_ERROR, rpc.AUTH_BADCRED)
        gss = rpc.opaque_auth(rpc.RPCSEC_GSS, struct.pack(">IIII", 1, 1, 0, 0) + b"\0\0\0\0")
        with pytest.raises(RpcReplyError) as ei:
            c.call(PROG, 1, 0, cred=gss)
        assert (ei.value.reject_stat, ei.value.auth_stat) == (rpc.AUTH_ERROR, rpc.AUTH_BADCRED)
        assert c.call(PROG, 1, 0) == b""


def test_rpc_mismatch(server):
    port, _, _ = server()
    with client(port) as c:
        c.send_raw(b"".join(frame([build_call(77, PROG, 1, 0, rpcvers=3)])))
        with pytest.raises(RpcReplyError) as ei:
            c.recv_reply()
        assert (ei.value.xid, ei.value.reject_stat, ei.value.low, ei.value.high) == (77, rpc.RPC_MISMATCH, 2, 2)
        assert c.call(PROG, 1, 0) == b""


def test_drop_reply_and_non_calls(server):
    port, _, _ = server()
    with client(port) as c:
        c.send_call(PROG, 1, 6, xid=1)  # dropped by the program
        c.send_raw(b"".join(frame([b"\0\0\0\2\0\0\0\1"])))  # a REPLY: dropped
        c.send_raw(b"".join(frame([b"\0\0"])))  # shorter than an xid: dropped
        c.send_call(PROG, 1, 1, b"x", xid=2)
        assert c.recv_reply() == (2, b"x")


def test_exception_in_dispatch_gives_system_err(server, caplog):
    port, _, _ = server()
    with caplog.at_level(logging.WARNING, logger="nfsd.rpc"):
        with client(port) as c:
            for proc in (3, 8):
                with pytest.raises(RpcReplyError) as ei:
                    c.call(PROG, 1, proc)
                assert ei.value.accept_stat == rpc.SYSTEM_ERR
            assert c.call(PROG, 1, 1, b"alive") == b"alive"
    failures = [r for r in caplog.records if r.name == "nfsd.rpc" and "proc 3 failed" in r.getMessage()]
    assert len(failures) == 1 and failures[0].levelno == logging.WARNING
    assert isinstance(failures[0].exc_info[1], RuntimeError)


# ---------------------------------------------------------------------------- concurrency


def test_100_pipelined_calls_out_of_order(server):
    port, toy, _ = server()
    group = struct.pack(">I", 50)
    with client(port) as c:
        expected = {}
        for i in range(100):
            if i % 2:
                args = group + struct.pack(">I", i)
                xid = c.send_call(PROG, 1, 4, args)
            else:
                args = struct.pack(">I", i)
                xid = c.send_call(PROG, 1, 1, args)
            expected[xid] = args
        order = []
        got = {}
        for _ in range(100):
            xid, body = c.recv_reply()
            got[xid] = body
            order.append(xid)
        assert got == expected
        assert order != list(expected)  # the held calls came back newest first


def test_many_connections(server):
    port, _, _ = server()
    clients = [client(port) for _ in range(60)]
    try:
        xids = [c.send_call(PROG, 1, 1, struct.pack(">I", i)) for i, c in enumerate(clients)]
        for i, (c, xid) in enumerate(zip(clients, xids)):
            assert c.recv_reply() == (xid, struct.pack(">I", i))
    finally:
        for c in clients:
            c.close()


# ---------------------------------------------------------------------------- hostile peers


def test_garbage_closes_only_that_connection(server):
    port, _, _ = server()
    with client(port) as good:
        assert good.call(PROG, 1, 0) == b""
        with client(port) as bad:
            bad.send_raw(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # "GET " as a marker: ~1.2 GB
            assert_closed(bad.sock)
        with client(port) as bad:
            bad.send_raw(b"\x80\0\0\x05hello")  # a record that is not a call header
            with pytest.raises(RpcReplyError) as ei:
                bad.recv_reply()
            assert ei.value.accept_stat == rpc.GARBAGE_ARGS
        assert good.call(PROG, 1, 1, b"ok") == b"ok"


def test_4gib_record_announcement(server):
    port, _, _ = server(max_record=1 << 20)
    with client(port) as good:
        assert good.call(PROG, 1, 0) == b""
        tracemalloc.start()
        try:
            with client(port) as bad:
                bad.send_raw(b"\xff\xff\xff\xff" + b"x" * 1000)
                assert_closed(bad.sock)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < 8 << 20
        assert good.call(PROG, 1, 1, b"ok") == b"ok"


def test_disconnect_mid_record(server):
    port, _, _ = server()
    with client(port) as good:
        for cut in (2, 10, 60):
            with client(port) as bad:
                record = b"".join(frame([build_call(1, PROG, 1, 1), b"x" * 100]))
                bad.send_raw(record[:cut])
        assert good.call(PROG, 1, 1, b"ok") == b"ok"
        with client(port) as other:
            assert other.call(PROG, 1, 1, b"new") == b"new"


def test_idle_timeout_closes(server):
    port, _, _ = server(idle_timeout=0.2)
    with client(port) as c:
        assert c.call(PROG, 1, 0) == b""
        c.sock.settimeout(TIMEOUT)
        assert c.sock.recv(100) == b""


def test_max_connections(server, caplog):
    port, _, factory = server(max_connections=2)
    with caplog.at_level(logging.WARNING, logger="nfsd.rpc"):
        with client(port) as a, client(port) as b:
            assert a.call(PROG, 1, 0) == b"" and b.call(PROG, 1, 0) == b""
            with client(port) as c:
                with pytest.raises((RpcConnectionClosed, ConnectionResetError)):
                    c.call(PROG, 1, 0)
            assert a.call(PROG, 1, 1, b"a") == b"a"
    assert sum("refusing connection" in r.getMessage() for r in caplog.records) == 1


# ---------------------------------------------------------------------------- without sockets


class Harness:
    """One RpcProtocol on a StringTransport, with a task.Clock."""

    def __init__(self, **kw):
        self.clock = task.Clock()
        self.toy = Toy()
        self.factory = RpcFactory({PROG: self.toy}, reactor=self.clock, **kw)
        self.proto = self.factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 1234))
        self.transport = StringTransport()
        self.proto.makeConnection(self.transport)
        self.reader = RecordReader(1 << 20)
        self.xid = 0

    def send(self, proc, args=b"", n=1):
        data = []
        for _ in range(n):
            self.xid += 1
            data += frame([build_call(self.xid, PROG, 1, proc), args])
        self.proto.dataReceived(b"".join(data))

    def replies(self):
        out = [parse_reply(bytes(r)) for r in self.reader.feed(self.transport.value())]
        self.transport.clear()
        return [(xid, bytes(body)) for xid, body in out]


def test_in_flight_limit_pauses_reading():
    h = Harness(max_in_flight_per_conn=4)
    h.send(11, n=10)
    assert h.toy.dispatched == 4
    assert h.transport.producerState == "paused"
    h.toy.release()
    assert h.toy.dispatched == 5 and len(h.replies()) == 1
    assert h.transport.producerState == "paused"
    h.toy.release(4)
    assert h.toy.dispatched == 9
    h.toy.release(4)
    assert h.toy.dispatched == 10
    assert h.transport.producerState == "producing"  # 1 in flight, nothing queued
    h.toy.release()
    assert [xid for xid, _ in h.replies()] == list(range(2, 11))


def test_full_write_buffer_pauses_reading():
    h = Harness()
    h.proto.pauseProducing()  # what the transport does when its buffer is full
    assert h.transport.producerState == "paused"
    h.send(1, b"a", n=3)
    assert h.toy.dispatched == 0
    h.proto.resumeProducing()
    assert h.toy.dispatched == 3 and len(h.replies()) == 3
    assert h.transport.producerState == "producing"


def test_idle_timeout_with_clock():
    h = Harness(idle_timeout=10)
    h.clock.advance(6)
    h.send(0)
    h.clock.advance(9)
    assert not h.transport.disconnecting
    h.send(11)  # a call in flight keeps the connection open
    h.clock.advance(30)
    assert not h.transport.disconnecting
    h.toy.release()
    h.clock.advance(9.5)
    assert not h.transport.disconnecting
    h.clock.advance(0.5)
    assert h.transport.disconnecting


def test_record_too_large_closes():
    h = Harness(max_record=100)
    h.proto.dataReceived(struct.pack(">I", 0x80000000 | 101))
    assert h.transport.disconnecting
    h.proto.dataReceived(b"more")  # ignored


def test_connection_object():
    h = Harness()
    seen = []
    h.toy.dispatch = lambda call: seen.append(call.conn) or [b""]
    h.send(0)
    conn = seen[0]
    assert (conn.peer_host, conn.peer_port, conn.local_port) == ("192.168.1.1", 54321, 12345)
    conn.state["k"] = 1
    closed = []
    conn.on_close(closed.append)
    conn.close()
    assert h.transport.disconnecting
    h.proto.connectionLost(None)
    assert closed == [conn] and conn.closed
    assert not h.factory.protocols


def test_max_connections_sans_io():
    clock = task.Clock()
    f = RpcFactory({}, max_connections=1, reactor=clock)
    addr = IPv4Address("TCP", "127.0.0.1", 1)
    p = f.buildProtocol(addr)
    p.makeConnection(StringTransport())
    assert f.buildProtocol(addr) is None
    p.connectionLost(None)
    assert f.buildProtocol(addr) is not None
