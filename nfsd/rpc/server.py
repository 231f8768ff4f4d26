"""ONC RPC over TCP on Twisted: a thin protocol and a factory that dispatches by program.

The wire work is done by the sans-IO modules: `framing` splits the stream into records,
`message` parses call headers and builds reply headers. This module only moves records and
replies between them, the transport and the programs, and enforces the per-connection limits.

Programs. `RpcFactory(programs)` maps a program number to an object with

    versions: tuple[int, int]            lowest and highest version served
    dispatch(call) -> reply              call: `nfsd.rpc.message.Call`, with `conn` set

`reply` is a list of bytes-like chunks (the procedure's results, encoded; the RPC header is
added here), or a `Deferred` firing with such a list. To answer otherwise, raise (or fail the
Deferred with) `ProcUnavail`, `GarbageArgs`, `SystemErr`, `AuthError(stat)`, or `DropReply`
to send nothing at all. Any other exception is logged and answered with SYSTEM_ERR; the
connection carries on. Unknown programs get PROG_UNAVAIL and versions outside the range
PROG_MISMATCH, without reaching `dispatch`. Procedure 0 (NULL) is dispatched like any other;
`null_procedure` answers it, and `Program` is a table-driven `dispatch` for programs that
want one.

Connections. Each call carries `call.conn`, a `Connection`: peer address, local port, a
`state` dict for the upper layer, `close()`, and `on_close(callback)`.

Limits and their effects:

  record over max_record (or its header claims so) ..... connection closed, one warning
  more than max_in_flight_per_conn calls pending ........ reading paused until some complete
  transport write buffer full (peer not reading) ........ reading paused until it drains
  no record received or reply sent for idle_timeout s,
    nothing pending ..................................... connection closed (debug line)
  max_connections open .................................. new connection closed, one warning

Replies go out with one `transport.writeSequence` each: a record marker, the 24-byte header
and the result chunks. Twisted (26.x) accepts only `bytes` there and joins its buffer itself
when it sends, so when every chunk is `bytes` they are passed as they are; otherwise the
reply is joined once here (one copy, the same one Twisted would have made) rather than
converting chunk by chunk (which would be two).
"""

from __future__ import annotations

import logging
import os
from collections import deque

from twisted.internet import tcp
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import Factory, Protocol
from zope.interface import implementer

from .framing import FramingError, RecordReader, frame
from twisted.internet.error import ConnectionDone

from .message import (
    CallError,
    RpcReplyError,
    build_call,
    parse_call,
    parse_reply,
    reply_auth_error,
    reply_garbage_args,
    reply_proc_unavail,
    reply_prog_mismatch,
    reply_prog_unavail,
    reply_success,
    reply_system_err,
)

__all__ = [
    "AuthError",
    "Connection",
    "DropReply",
    "GarbageArgs",
    "ProcUnavail",
    "Program",
    "RpcFactory",
    "RpcProtocol",
    "SystemErr",
    "null_procedure",
]

DEFAULT_MAX_RECORD = (1 << 20) + (64 << 10)  # a 1 MiB READ/WRITE payload plus its headers
_REPLY_TYPE = b"\0\0\0\1"  # msg_type REPLY


class CallTimeout(Exception):
    """A call we sent got no reply in time."""

_log = logging.getLogger("nfsd.rpc")


# ---------------------------------------------------------------------------- outcomes


class RpcOutcome(Exception):
    """Base of the exceptions a program raises to choose a reply other than SUCCESS."""


class ProcUnavail(RpcOutcome):
    """Answer PROC_UNAVAIL: no such procedure in this program version."""


class GarbageArgs(RpcOutcome):
    """Answer GARBAGE_ARGS: the arguments could not be decoded."""


class SystemErr(RpcOutcome):
    """Answer SYSTEM_ERR (without logging a traceback)."""


class AuthError(RpcOutcome):
    """Answer MSG_DENIED AUTH_ERROR with `stat` (an `nfsd.xdr.rpc` auth_stat)."""

    def __init__(self, stat: int):
        super().__init__(stat)
        self.stat = stat


class DropReply(RpcOutcome):
    """Send no reply at all (e.g. a retransmission that must not be answered twice)."""


def null_procedure(call) -> list:
    """Procedure 0 of every program: no arguments, no results."""
    return []


class Program:
    """A program whose procedures are an explicit table: {proc number: handler(call) -> reply}.

    Procedures missing from the table are answered PROC_UNAVAIL. Procedure 0 defaults to
    `null_procedure`.
    """

    def __init__(self, versions: tuple[int, int], procedures: dict):
        self.versions = versions
        self.procedures = {0: null_procedure, **procedures}

    def dispatch(self, call):
        handler = self.procedures.get(call.proc)
        if handler is None:
            raise ProcUnavail()
        return handler(call)


# ---------------------------------------------------------------------------- connection


class Connection:
    """What the upper layer sees of one TCP connection."""

    __slots__ = ("id", "peer_host", "peer_port", "local_port", "state", "closed", "_protocol",
                 "_on_close")

    def __init__(self, id, peer_host, peer_port, local_port, protocol):
        self.id = id
        self.peer_host = peer_host
        self.peer_port = peer_port
        self.local_port = local_port
        self.state: dict = {}
        self.closed = False
        self._protocol = protocol
        self._on_close: list = []

    def close(self):
        """Close the connection: replies already written are sent first; calls still
        pending (including the one being dispatched) get no reply."""
        self._protocol._close()

    def call(self, prog, vers, proc, args_chunks, cred=None, timeout=30.0):
        """Send an RPC call to the peer on this connection (NFSv4 callbacks); a Deferred
        firing with the reply's results (bytes), or failing with RpcReplyError, CallTimeout or
        ConnectionDone."""
        return self._protocol.call(prog, vers, proc, args_chunks, cred, timeout)

    def on_close(self, callback):
        """Call `callback(conn)` once the connection is gone (at once if it already is)."""
        if self.closed:
            callback(self)
        else:
            self._on_close.append(callback)

    def __repr__(self):
        return f"<conn {self.id} {self.peer_host}:{self.peer_port}>"


def _address(addr):
    return getattr(addr, "host", str(addr)), getattr(addr, "port", 0)


# ---------------------------------------------------------------------------- protocol


_IOV_MAX = 1000  # below Linux's IOV_MAX (1024)
RECV_SIZE = 256 * 1024


def _direct_socket(transport):
    """The socket of a plain TCP transport, for _write's direct sends; None for anything else
    (TLS, UNIX, test transports), which then only goes through the transport."""
    if not isinstance(transport, tcp.Connection) or transport.TLS:
        return None
    sock = getattr(transport, "socket", None)
    if sock is None or not hasattr(sock, "sendmsg"):
        return None
    if not (hasattr(transport, "dataBuffer") and hasattr(transport, "_tempDataBuffer")):
        return None  # a Twisted whose buffering this code does not know
    return sock


@implementer(IPushProducer)
class RpcProtocol(Protocol):
    """One connection: records in, replies out. Registered with its transport as the
    (streaming) producer of replies, so a full write buffer pauses reading."""

    def __init__(self, factory: "RpcFactory"):
        self.factory = factory
        self.conn: Connection | None = None
        self._reader = RecordReader(factory.max_record)
        self._backlog: deque = deque()
        self._cred_cache: dict = {}
        self._in_flight = 0
        self._write_paused = False  # the transport's buffer is full
        self._read_paused = False  # we paused the transport
        self._pumping = False
        self._closing = False
        self._last_activity = 0.0
        self._idle_call = None
        self._registered = False
        self._pending: dict = {}  # xid -> (Deferred, timeout call) of calls we sent
        self._sock = None  # the socket for direct sends (_write), set when connected

    # -- calls to the peer (callbacks)
    def call(self, prog, vers, proc, args_chunks, cred=None, timeout=30.0):
        d = Deferred()
        if self._closing or self.transport is None:
            d.errback(ConnectionDone("connection closed"))
            return d
        xid = self.factory._next_xid()
        timer = None
        if timeout:
            timer = self.factory.reactor.callLater(timeout, self._call_timeout, xid)
        self._pending[xid] = (d, timer)
        self._write(frame([build_call(xid, prog, vers, proc, cred), *args_chunks]))
        return d

    def _call_timeout(self, xid):
        entry = self._pending.pop(xid, None)
        if entry is not None:
            entry[0].errback(CallTimeout(f"no reply to xid {xid:#x}"))

    def _reply(self, record):
        """A REPLY record: the answer to one of our calls (others are dropped)."""
        xid = int.from_bytes(bytes(record[:4]), "big")
        entry = self._pending.pop(xid, None)
        if entry is None:
            self.factory.log.debug("rpc: %r: reply to unknown xid %#x dropped", self.conn, xid)
            return
        d, timer = entry
        if timer is not None and timer.active():
            timer.cancel()
        try:
            _, results = parse_reply(record)
        except RpcReplyError as e:
            d.errback(e)
        except Exception as e:  # noqa: BLE001 - a malformed reply
            d.errback(e)
        else:
            d.callback(bytes(results))

    def _fail_pending(self):
        pending, self._pending = self._pending, {}
        for d, timer in pending.values():
            if timer is not None and timer.active():
                timer.cancel()
            d.errback(ConnectionDone("connection closed"))

    # -- lifecycle
    def connectionMade(self):
        f = self.factory
        peer_host, peer_port = _address(self.transport.getPeer())
        local_port = _address(self.transport.getHost())[1]
        self.conn = Connection(f._new_id(), peer_host, peer_port, local_port, self)
        f._opened(self)
        set_nodelay = getattr(self.transport, "setTcpNoDelay", None)
        if set_nodelay is not None:
            set_nodelay(True)
        self.transport.registerProducer(self, True)
        self._registered = True
        self._sock = _direct_socket(self.transport)
        if self._sock is not None:
            # Read up to RECV_SIZE per wake-up (Twisted's default is 64 KiB): a 1 MiB WRITE
            # arrives in 4 reads instead of 16.
            self.transport.bufferSize = RECV_SIZE
        self._last_activity = f.reactor.seconds()
        if f.idle_timeout:
            self._idle_call = f.reactor.callLater(f.idle_timeout, self._idle_check)
        f.log.debug("rpc: %r opened (port %d)", self.conn, local_port)

    def connectionLost(self, reason=None):
        self._closing = True
        self._backlog.clear()
        self._fail_pending()
        self._reader = None  # a partial record is dropped with it
        if self._idle_call is not None and self._idle_call.active():
            self._idle_call.cancel()
        self._idle_call = None
        conn = self.conn
        if conn is None:
            return
        self.factory._closed(self)
        conn.closed = True
        callbacks, conn._on_close = conn._on_close, []
        for cb in callbacks:
            try:
                cb(conn)
            except Exception:
                self.factory.log.warning("rpc: %r: close callback failed", conn, exc_info=True)
        self.factory.log.debug("rpc: %r closed", conn)

    def _close(self):
        """Stop reading, let written replies go out, then close."""
        if self._closing:
            return
        self._closing = True
        self._backlog.clear()
        if self._registered:
            self._registered = False
            self.transport.unregisterProducer()
        self.transport.loseConnection()

    # -- IPushProducer (the transport's write buffer)
    def pauseProducing(self):
        self._write_paused = True
        self._update_reading()

    def resumeProducing(self):
        self._write_paused = False
        self._pump()

    def stopProducing(self):
        # The transport is going away (it unregisters us itself).
        self._registered = False
        self._closing = True

    # -- input
    def dataReceived(self, data: bytes):
        if self._closing:
            return
        try:
            records = self._reader.feed(data)
        except FramingError as e:
            self.factory.log.warning("rpc: %r: %s; closing", self.conn, e)
            self._close()
            return
        if records:
            self._last_activity = self.factory.reactor.seconds()
            self._backlog.extend(records)
            self._pump()

    def _pump(self):
        """Dispatch queued records while the limits allow; then pause or resume reading."""
        if self._pumping:
            return
        self._pumping = True
        try:
            backlog = self._backlog
            limit = self.factory.max_in_flight_per_conn
            while backlog and self._in_flight < limit and not self._write_paused and not self._closing:
                self._handle(backlog.popleft())
        finally:
            self._pumping = False
        self._update_reading()

    def _update_reading(self):
        if self._closing:
            return
        want_pause = (
            self._write_paused
            or bool(self._backlog)
            or self._in_flight >= self.factory.max_in_flight_per_conn
        )
        if want_pause != self._read_paused:
            self._read_paused = want_pause
            if want_pause:
                self.transport.pauseProducing()
            else:
                self.transport.resumeProducing()

    def _handle(self, record):
        f = self.factory
        if len(record) >= 8 and record[4:8] == _REPLY_TYPE:
            self._reply(record)
            return
        try:
            call = parse_call(record, self._cred_cache)
        except CallError as e:
            if e.reply is None:
                f.log.debug("rpc: %r: record dropped: %s", self.conn, e.reason)
            else:
                f.log.debug("rpc: %r: call refused: %s", self.conn, e.reason)
                self._send([e.reply])
            return
        prog = f.programs.get(call.prog)
        if prog is None:
            self._send([reply_prog_unavail(call.xid)])
            return
        low, high = prog.versions
        if not low <= call.vers <= high:
            self._send([reply_prog_mismatch(call.xid, low, high)])
            return
        call.conn = self.conn
        self._in_flight += 1
        try:
            result = prog.dispatch(call)
        except Exception as e:
            self._completed_error(e, call, None)
            return
        if type(result) is list:  # the usual, synchronous case: no ABC instance check
            self._completed(result, call)
        elif isinstance(result, Deferred):
            result.addCallbacks(self._completed, self._failed, callbackArgs=(call,), errbackArgs=(call,))
        else:
            self._completed(result, call)

    # -- completion
    def _completed(self, result, call):
        self._in_flight -= 1
        if not self._closing:
            try:
                chunks = frame([reply_success(call.xid), *result])
            except Exception as e:  # not a list of bytes-like objects, or over 2 GiB
                self.factory.log.warning(
                    "rpc: %r: prog %d proc %d returned an unusable reply: %s",
                    self.conn, call.prog, call.proc, e,
                )
                chunks = frame([reply_system_err(call.xid)])
            self._write(chunks)
            self._after_reply()

    def _failed(self, failure, call):
        self._completed_error(failure.value, call, failure)
        return None  # handled

    def _completed_error(self, exc, call, failure):
        self._in_flight -= 1
        xid = call.xid
        if isinstance(exc, RpcOutcome):
            if isinstance(exc, DropReply):
                reply = None
            elif isinstance(exc, ProcUnavail):
                reply = reply_proc_unavail(xid)
            elif isinstance(exc, GarbageArgs):
                reply = reply_garbage_args(xid)
            elif isinstance(exc, AuthError):
                try:
                    reply = reply_auth_error(xid, exc.stat)
                except ValueError:
                    self.factory.log.warning("rpc: %r: bad auth_stat %r", self.conn, exc.stat)
                    reply = reply_system_err(xid)
            else:
                reply = reply_system_err(xid)
        else:
            if failure is not None:
                exc_info = (failure.type, failure.value, failure.getTracebackObject())
            else:
                exc_info = (type(exc), exc, exc.__traceback__)
            self.factory.log.warning(
                "rpc: %r: prog %d vers %d proc %d failed", self.conn, call.prog, call.vers, call.proc,
                exc_info=exc_info,
            )
            reply = reply_system_err(xid)
        if not self._closing:
            if reply is not None:
                self._send([reply])
            self._after_reply()

    def _after_reply(self):
        self._last_activity = self.factory.reactor.seconds()
        self._pump()

    # -- output
    def _send(self, chunks):
        self._write(frame(chunks))

    def _write(self, chunks):
        t = self.transport
        sock = self._sock
        # Fast path: nothing is queued in the transport, so send now, scatter-gather, instead
        # of queueing and waiting for the reactor's next turn (an epoll round and two
        # epoll_ctl calls per reply). Whatever the socket does not take goes to the transport.
        if (sock is not None and not t.dataBuffer and not t._tempDataBuffer
                and not t.disconnecting and len(chunks) <= _IOV_MAX):
            try:
                n = sock.sendmsg(chunks)
            except (BlockingIOError, InterruptedError):
                n = 0
            except OSError:
                n = 0  # the transport sees the error on its own write and closes
            if n:
                rest = []
                for c in chunks:
                    k = len(c)
                    if n >= k:
                        n -= k
                        continue
                    rest.append(c[n:] if n else c)
                    n = 0
                if not rest:
                    return
                chunks = rest
        for c in chunks:
            if type(c) is not bytes:
                t.writeSequence([b"".join(chunks)])
                return
        t.writeSequence(chunks)

    # -- idle timeout
    def _idle_check(self):
        self._idle_call = None
        f = self.factory
        timeout = f.idle_timeout
        if self._closing:
            # Closed for a reason but still not gone: the peer does not take what is left.
            self.transport.abortConnection()
            return
        if self._in_flight or self._backlog:
            delay = timeout
        else:
            idle = f.reactor.seconds() - self._last_activity
            if idle >= timeout:
                f.log.debug("rpc: %r idle for %.0f s, closing", self.conn, idle)
                self._close()
                delay = timeout
            else:
                delay = timeout - idle
        self._idle_call = f.reactor.callLater(delay, self._idle_check)


# ---------------------------------------------------------------------------- factory


class RpcFactory(Factory):
    """Serves `programs` ({prog number: program}, see the module docstring) over TCP."""

    noisy = False  # no "Starting factory" lines; connections are logged by the protocol

    def __init__(
        self,
        programs: dict,
        max_record: int = DEFAULT_MAX_RECORD,
        max_connections: int = 1024,
        max_in_flight_per_conn: int = 64,
        idle_timeout: float | None = 600.0,
        reactor=None,
        log: logging.Logger | None = None,
    ):
        if reactor is None:
            from twisted.internet import reactor
        self.programs = programs
        self.max_record = max_record
        self.max_connections = max_connections
        self.max_in_flight_per_conn = max(1, max_in_flight_per_conn)
        self.idle_timeout = idle_timeout
        self.reactor = reactor
        self.log = log if log is not None else _log
        self.protocols: set = set()
        self._last_id = 0
        self._xid = int.from_bytes(os.urandom(4), "big")

    def buildProtocol(self, addr):
        if len(self.protocols) >= self.max_connections:
            host, port = _address(addr)
            self.log.warning(
                "rpc: refusing connection from %s:%s: %d connections open (limit)", host, port, len(self.protocols)
            )
            return None
        return RpcProtocol(self)

    def _new_id(self) -> int:
        self._last_id += 1
        return self._last_id

    def _next_xid(self) -> int:
        self._xid = (self._xid + 1) & 0xFFFFFFFF
        return self._xid

    def _opened(self, protocol):
        self.protocols.add(protocol)

    def _closed(self, protocol):
        self.protocols.discard(protocol)


def connect(factory: RpcFactory, host: str, port: int, timeout: float = 10.0):
    """Open a TCP connection to (host, port) for calls we make (NFSv4.0 callbacks); a Deferred
    firing with its `Connection`."""
    from twisted.internet.endpoints import TCP4ClientEndpoint

    ep = TCP4ClientEndpoint(factory.reactor, host, port, timeout=timeout)
    return ep.connect(factory).addCallback(lambda proto: proto.conn)
