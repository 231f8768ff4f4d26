"""The parts of Twisted that nfsd uses although they are not its public API, checked against
the installed Twisted: an upgrade that changes them fails here, loudly, instead of making nfsd
quietly slower (rpc/server.py's direct sends fall back to the transport when the attributes are
missing) or broken (nfsd/reactor.py's event loop).

- `twisted.internet.tcp.Connection.dataBuffer` and `._tempDataBuffer`: what the transport has
  queued and not yet sent; `RpcProtocol._write` sends on the socket itself only when both are
  empty, so replies stay in order.
- `EPollReactor._poller` (an `select.epoll`), `._selectables` (fd -> selectable) and
  `._doReadOrWrite(selectable, fd, event)`: what `nfsd.reactor.Reactor.doPoll` calls in place
  of Twisted's own `doPoll`, and `doIteration`, the name `mainLoop` calls.

pyproject.toml bounds Twisted below the next major version; raise it only with this file
passing.
"""

import inspect
import select
import socket

import twisted
from twisted.internet import epollreactor, tcp
from twisted.internet.base import ReactorBase

from nfsd import reactor as nfsd_reactor
from nfsd.rpc import server as rpc_server


class _Proto:
    def makeConnection(self, transport):
        self.transport = transport


def test_installed_twisted_is_within_the_bound():
    major = int(twisted.__version__.split(".")[0])
    assert 23 <= major < 27, f"Twisted {twisted.__version__}: check this file, then the bound"


def test_tcp_connection_queues_unsent_data_in_the_buffers_rpc_server_reads():
    a, b = socket.socketpair()
    try:
        a.setblocking(False)
        conn = tcp.Connection(a, _Proto(), reactor=_NoReactor())
        assert conn.dataBuffer == b"" and conn._tempDataBuffer == []
        conn.connected = True
        conn.write(b"queued")  # not sent until the reactor's next write turn
        assert conn._tempDataBuffer or conn.dataBuffer, \
            "tcp.Connection no longer queues writes in dataBuffer/_tempDataBuffer"
        # what RpcProtocol._write requires before it sends on the socket itself
        assert not conn.TLS
        assert conn.socket is a and hasattr(a, "sendmsg")
    finally:
        a.close()
        b.close()


def test_direct_socket_is_used_for_plain_tcp_transports():
    a, b = socket.socketpair()
    try:
        conn = tcp.Connection(a, _Proto(), reactor=_NoReactor())
        assert rpc_server._direct_socket(conn) is a
    finally:
        a.close()
        b.close()


def test_epoll_reactor_has_what_nfsd_reactor_calls():
    r = nfsd_reactor.Reactor()
    try:
        assert isinstance(r._poller, select.epoll)
        assert isinstance(r._selectables, dict)
        params = list(inspect.signature(r._doReadOrWrite).parameters)
        assert params == ["selectable", "fd", "event"], params
        # mainLoop runs doIteration; Twisted's EPollReactor binds it to its own doPoll
        assert "doIteration" in inspect.getsource(ReactorBase.mainLoop)
        assert nfsd_reactor.Reactor.doIteration is nfsd_reactor.Reactor.doPoll
        assert issubclass(nfsd_reactor.Reactor, epollreactor.EPollReactor)
    finally:
        r._poller.close()


def test_nfsd_reactor_runs_a_reader_and_a_timer():
    r = nfsd_reactor.Reactor()
    a, b = socket.socketpair()
    got = []

    class Reader:
        def fileno(self):
            return a.fileno()

        def doRead(self):
            got.append(a.recv(100))
            r.removeReader(self)
            r.stop()

        def logPrefix(self):
            return "reader"

        def connectionLost(self, reason):
            pass

    try:
        r.addReader(Reader())
        r.callLater(0, b.send, b"ping")
        r.callLater(10, r.stop)  # a safety net only: the reader stops the loop first
        r.run(installSignalHandlers=False)
        assert got == [b"ping"]
    finally:
        a.close()
        b.close()


class _NoReactor:
    """Enough of a reactor for a tcp.Connection that is never started."""

    def addReader(self, r):
        pass

    def addWriter(self, w):
        pass

    def removeReader(self, r):
        pass

    def removeWriter(self, w):
        pass

    def callLater(self, *a, **kw):
        pass
