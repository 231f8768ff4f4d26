"""An in-memory TCP network between test clients and in-process servers.

A connection is a pair: the server's end is a Twisted transport under the server's real
`RpcProtocol` (`ServerTransport`), the client's end a blocking socket-like object for
`nfsd.rpc.client.RpcClient(sock=...)` (`MemorySocket`) or, for NFSv4.0 callbacks that the
server dials, a `CallbackService` answering CB_NULL and CB_RECALL. Bytes keep their order and
their chunking (one `sendall` is one `dataReceived`), so partial records and pipelining
reach the server as they would over TCP.

Nothing blocks. A client's `sendall` delivers at once and lets the server's reactor run until
idle; `recv` returns what the server wrote, b"" after the server closed, and raises
`TimeoutError` when the server has nothing to say yet (over TCP the call would wait; here
nothing can arrive until the test advances time, so waiting would be forever).

A killed server process (`Network.kill`) ends its connections without running anything of its
own: clients see end-of-file, as after kill -9.
"""

from __future__ import annotations

import errno
import itertools

from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.error import ConnectionRefusedError as Refused
from twisted.python.failure import Failure

from nfsd.client import answer_callback
from nfsd.rpc.framing import RecordReader, frame


class ServerTransport:
    """The server's end of one connection: what Twisted's TCP transport offers RpcProtocol."""

    def __init__(self, reactor, host: tuple, peer: tuple, sink):
        self.reactor = reactor
        self.host, self.peer = host, peer
        self.sink = sink  # the other end: .received(bytes), .peer_closed()
        self.protocol = None
        self.producer = None
        self.reading = True
        self.disconnecting = False
        self.closed = False
        self._inbox = bytearray()

    # ---- ITransport
    def write(self, data):
        if not self.closed:
            self.sink.received(bytes(data))

    def writeSequence(self, seq):
        self.write(b"".join(seq))

    def loseConnection(self):
        """Written data is already with the peer; the close follows on the next reactor turn."""
        if not self.disconnecting and not self.closed:
            self.disconnecting = True
            self.reactor.callFromThread(self._lost, ConnectionDone("closed by the server"))

    def abortConnection(self):
        self.loseConnection()

    def getPeer(self):
        return IPv4Address("TCP", *self.peer)

    def getHost(self):
        return IPv4Address("TCP", *self.host)

    def setTcpNoDelay(self, enabled):
        pass

    # ---- IConsumer / IPushProducer (the protocol pauses reading when it is busy)
    def registerProducer(self, producer, streaming):
        self.producer = producer

    def unregisterProducer(self):
        self.producer = None

    def pauseProducing(self):
        self.reading = False

    def resumeProducing(self):
        self.reading = True
        self.reactor.callFromThread(self._pump)

    def stopProducing(self):
        self.loseConnection()

    # ---- driven by the network
    def connect(self, protocol):
        self.protocol = protocol
        protocol.makeConnection(self)

    def deliver(self, data: bytes):
        """Bytes from the peer."""
        if self.closed or self.disconnecting:
            return
        self._inbox += data
        self._pump()

    def _pump(self):
        while self._inbox and self.reading and not self.closed and not self.disconnecting:
            data = bytes(self._inbox)
            self._inbox.clear()
            self.protocol.dataReceived(data)

    def peer_closed(self):
        """The peer closed its end."""
        if not self.closed:
            self.reactor.callFromThread(self._lost, ConnectionDone("closed by the peer"))

    def _lost(self, why):
        if self.closed:
            return
        self.closed = True
        self._inbox.clear()
        self.sink.peer_closed()
        self.protocol.connectionLost(Failure(why))

    def kill(self):
        """The server process died: the peer sees the end, the dead process runs nothing."""
        if not self.closed:
            self.closed = True
            self.sink.peer_closed()


class MemorySocket:
    """The client's end of a connection, with the socket methods RpcClient uses."""

    def __init__(self, network, source: tuple):
        self.network = network
        self.source = source
        self.transport: ServerTransport | None = None
        self._buf = bytearray()
        self._eof = False
        self._closed = False

    # ---- the server's end calls these
    def received(self, data: bytes):
        self._buf += data

    def peer_closed(self):
        self._eof = True

    # ---- socket
    def _run(self):
        t = self.transport
        if t is not None:
            t.reactor.run_until_idle()

    def sendall(self, data):
        if self._closed:
            raise OSError(errno.EBADF, "socket closed")
        if self._eof:
            raise BrokenPipeError(errno.EPIPE, "connection closed by the server")
        self.transport.deliver(bytes(data))
        self._run()

    def recv(self, n: int) -> bytes:
        if self._closed:
            raise OSError(errno.EBADF, "socket closed")
        self._run()
        if self._buf:
            out = bytes(self._buf[:n])
            del self._buf[:n]
            return out
        if self._eof:
            return b""
        raise TimeoutError("the server has sent nothing (time has to advance first?)")

    def close(self):
        if not self._closed:
            self._closed = True
            if self.transport is not None:
                self.transport.peer_closed()
                self._run()

    def setsockopt(self, *a):
        pass

    def settimeout(self, t):
        pass

    def getsockname(self):
        return self.source

    def getpeername(self):
        return self.transport.host if self.transport else None

    @property
    def closed_by_server(self) -> bool:
        return self._eof


class CallbackService:
    """An NFSv4.0 client's callback service at (host, port) of the network: answers CB_NULL
    and CB_RECALL (`nfsd.client.answer_callback`), keeping `recalls` and counting `nulls`;
    `peers` lists who connected (the server's address)."""

    def __init__(self, network, host: str = "127.0.0.1", port: int | None = None):
        self.network = network
        self.host = host
        self.port = port if port is not None else network.new_port()
        self.recalls: list = []
        self.nulls = 0
        self.peers: list = []
        self.conns: list = []
        network.listeners[(host, self.port)] = self

    def uaddr(self) -> bytes:
        return b"%s.%d.%d" % (self.host.encode(), self.port >> 8, self.port & 255)

    def accept(self, transport) -> "_CallbackConn":
        self.peers.append(transport.host)
        c = _CallbackConn(self, transport)
        self.conns.append(c)
        return c

    def close(self):
        self.network.listeners.pop((self.host, self.port), None)
        for c in self.conns:
            c.close()


class _CallbackConn:
    def __init__(self, service, transport):
        self.service = service
        self.transport = transport
        self.reader = RecordReader(1 << 20)
        self.eof = False

    def received(self, data: bytes):
        # Answered on the next reactor turn: the server is in the middle of writing its call.
        self.transport.reactor.callFromThread(self._answer, data)

    def _answer(self, data):
        for rec in self.reader.feed(data):
            rec = bytes(rec)
            if rec[4:8] != b"\0\0\0\0":  # not a CALL
                continue
            if int.from_bytes(rec[20:24], "big") == 0:
                self.service.nulls += 1
            self.transport.deliver(b"".join(frame([answer_callback(rec, self.service)])))

    def peer_closed(self):
        self.eof = True

    def close(self):
        self.transport.peer_closed()


class _Connector:
    """What a client factory is told about a connection attempt."""

    def __init__(self, host, port):
        self.host, self.port = host, port

    def getDestination(self):
        return IPv4Address("TCP", self.host, self.port)

    def stopConnecting(self):
        pass

    def disconnect(self):
        pass


class Network:
    """Addresses, listeners and connections of one harness. Every connection belongs to the
    reactor of the server process at its end (`kill(reactor)` ends them all)."""

    def __init__(self):
        self.listeners: dict[tuple, object] = {}  # (host, port) -> CallbackService
        self.dials: list[tuple] = []  # every (host, port) a server tried to connect to
        self.transports: list[ServerTransport] = []
        self._ports = itertools.count(40000)

    def new_port(self) -> int:
        return next(self._ports)

    def connect(self, reactor, factory, server_addr: tuple, source: tuple | None = None) -> MemorySocket:
        """A client connects to a server listening with `factory` (run by `reactor`)."""
        if reactor is None or reactor.dead:
            raise ConnectionRefusedError(errno.ECONNREFUSED, "no server is running")
        source = source or ("127.0.0.1", self.new_port())
        sock = MemorySocket(self, source)
        proto = factory.buildProtocol(IPv4Address("TCP", *source))
        if proto is None:  # refused (connection limit): accepted, then closed at once
            sock.peer_closed()
            return sock
        t = ServerTransport(reactor, server_addr, source, sock)
        sock.transport = t
        self.transports.append(t)
        t.connect(proto)
        reactor.run_until_idle()
        return sock

    def dial(self, reactor, host, port, factory):
        """A server connects out (reactor.connectTCP): to a CallbackService, or refused."""
        self.dials.append((host, port))
        connector = _Connector(host, port)
        factory.startedConnecting(connector)
        service = self.listeners.get((host, port))

        def attempt():
            if service is None:
                factory.clientConnectionFailed(connector, Failure(Refused(host, port)))
                return
            src = ("127.0.0.1", self.new_port())  # the server's address as the client sees it
            proto = factory.buildProtocol(IPv4Address("TCP", host, port))
            t = ServerTransport(reactor, src, (host, port), None)
            t.sink = service.accept(t)
            self.transports.append(t)
            t.connect(proto)
        reactor.callFromThread(attempt)
        return connector

    def kill(self, reactor):
        """The process running `reactor` died: its connections end."""
        for t in self.transports:
            if t.reactor is reactor:
                t.kill()
        self.transports = [t for t in self.transports if t.reactor is not reactor]

    def open_connections(self, reactor) -> int:
        self.transports = [t for t in self.transports if not t.closed]
        return sum(1 for t in self.transports if t.reactor is reactor)
