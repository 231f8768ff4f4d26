"""The callback path: the server's calls to clients (CB_COMPOUND with CB_RECALL or CB_OFFLOAD;
CB_NULL).

NFSv4.1+: calls go over a connection the client bound to its session's back channel
(CREATE_SESSION with CONN_BACK_CHAN, or BIND_CONN_TO_SESSION), after CB_SEQUENCE on the back
channel's single slot, with the security the client chose (csa_sec_parms / BACKCHANNEL_CTL).
NFSv4.0: the server opens a TCP connection to the address the client gave in SETCLIENTID (and
only there), probes it with CB_NULL, and uses it for CB_RECALL. A client whose callback path
does not work is simply never given a delegation.
"""

from __future__ import annotations

import ipaddress
import logging
from collections import deque

from .rpc.message import AuthSys
from .rpc.server import RpcFactory, connect
from .xdr import decode, encode, nfs4 as x

log = logging.getLogger("nfsd.callback")

CB_VERSION = 1
CB_NULL, CB_COMPOUND = 0, 1
CALL_TIMEOUT = 15.0


def parse_uaddr(netid: bytes, uaddr: bytes):
    """An RPC universal address ("h1.h2.h3.h4.p1.p2", or IPv6 with ".p1.p2") as (host, port)."""
    if netid not in (b"tcp", b"tcp6"):
        raise ValueError(f"unsupported callback netid {netid!r}")
    text = uaddr.decode("ascii")
    host, p1, p2 = text.rsplit(".", 2)
    port = int(p1) * 256 + int(p2)
    ipaddress.ip_address(host)  # an address, never a name to resolve
    if not 0 < port < 65536:
        raise ValueError("bad port")
    return host, port


def _cred(sec_parms):
    """The credential for callbacks from the client's callback_sec_parms4 list."""
    for p in sec_parms or ():
        if p.tag == x.AUTH_NONE:
            return None
        if p.tag == x.AUTH_SYS:
            a = p.value
            return AuthSys(a.stamp, a.machinename, a.uid, a.gid, tuple(a.gids))
    return None


class Callbacks:
    """Sends callbacks for one server."""

    def __init__(self, server, reactor):
        self.server = server
        self.reactor = reactor
        self.factory = RpcFactory({}, idle_timeout=None, reactor=reactor)
        self._queues: dict = {}  # session -> deque of (ops, deferred-less callback)

    # ------------------------------------------------------------------ 4.0
    def probe40(self, client):
        """Connect to the client's callback address and send CB_NULL; on success the client
        may get delegations."""
        try:
            prog, addr, ident = client.callback
            host, port = parse_uaddr(addr.na_r_netid, addr.na_r_addr)
        except (AttributeError, TypeError, ValueError, UnicodeDecodeError) as e:
            log.info("client %r: no usable callback address (%s)", client.owner, e)
            return
        chan = _Channel40(self, client, prog, ident, host, port)
        chan.start()

    def usable(self, client) -> bool:
        """Can the server call this client back (so that it may hold a delegation)?"""
        if client.minor == 0:
            return client.cb is not None
        return self.usable41(client)

    # ------------------------------------------------------------------ 4.1
    def usable41(self, client) -> bool:
        return any(self._back_conn(s) is not None for s in client.sessions.values())

    @staticmethod
    def _back_conn(session):
        for c in session.back_conns:
            if not c.closed:
                return c
        return None

    def recall(self, deleg):
        """Send CB_RECALL for a delegation (fire and forget: the lease timer revokes it if
        the client does not return it)."""
        client = deleg.client
        op = x.nfs_cb_argop4(x.OP_CB_RECALL, x.CB_RECALL4args(
            x.stateid4(deleg.seqid, deleg.other), False, deleg.wire))
        if client.minor == 0:
            chan = client.cb
            if chan is None:
                log.info("client %r: no callback path for a recall", client.owner)
                return
            chan.send([op])
            return
        if not self._send41(client, [op]):
            log.info("client %r: no back channel for a recall", client.owner)

    def offload(self, client, fh: bytes, stateid, info) -> bool:
        """Send CB_OFFLOAD (4.2): an asynchronous COPY into `fh` ended. False if the client
        has no back channel now (it then learns the end from OFFLOAD_STATUS)."""
        op = x.nfs_cb_argop4(x.OP_CB_OFFLOAD, x.CB_OFFLOAD4args(fh, stateid, info))
        if self._send41(client, [op]):
            return True
        log.info("client %r: no back channel for CB_OFFLOAD", client.owner)
        return False

    def _send41(self, client, ops) -> bool:
        for session in client.sessions.values():
            if self._back_conn(session) is not None:
                self._queue41(session, ops)
                return True
        return False

    def _queue41(self, session, ops):
        q = self._queues.setdefault(session, deque())
        q.append(ops)
        if not session.cb_busy:
            self._next41(session)

    def _next41(self, session):
        q = self._queues.get(session)
        if not q:
            self._queues.pop(session, None)
            session.cb_busy = False
            return
        conn = self._back_conn(session)
        if conn is None or session.sessionid not in self.server.store.sessions:
            self._queues.pop(session, None)
            session.cb_busy = False
            return
        ops = q.popleft()
        session.cb_busy = True
        session.cb_seqid = (session.cb_seqid + 1) & 0xFFFFFFFF
        seq = x.nfs_cb_argop4(x.OP_CB_SEQUENCE, x.CB_SEQUENCE4args(
            session.sessionid, session.cb_seqid, 0, 0, False, []))
        args = x.CB_COMPOUND4args(b"", session.client.minor, 0, [seq, *ops])
        d = conn.call(session.cb_program, CB_VERSION, CB_COMPOUND, [encode(x.CB_COMPOUND4args, args)],
                      cred=_cred(session.cb_sec), timeout=CALL_TIMEOUT)
        d.addCallbacks(_check_reply, _log_failure, errbackArgs=(session.client,))
        d.addBoth(lambda _: self._next41(session))


def _check_reply(body):
    res = decode(x.CB_COMPOUND4res, body)
    if res.status != x.NFS4_OK:
        log.info("callback answered %s", x.nfsstat4.names.get(res.status, res.status))


def _log_failure(failure, client):
    log.info("callback to client %r failed: %s", client.owner, failure.getErrorMessage())


class _Channel40:
    """A 4.0 client's callback connection (opened by the server)."""

    def __init__(self, callbacks, client, prog, ident, host, port):
        self.cbs = callbacks
        self.client = client
        self.prog = prog
        self.ident = ident
        self.host = host
        self.port = port
        self.conn = None

    def start(self):
        d = connect(self.cbs.factory, self.host, self.port)
        d.addCallback(self._connected)
        d.addErrback(lambda f: log.info("client %r: callback %s:%d unreachable: %s",
                                        self.client.owner, self.host, self.port,
                                        f.getErrorMessage()))

    def _connected(self, conn):
        self.conn = conn
        d = conn.call(self.prog, CB_VERSION, CB_NULL, [], timeout=CALL_TIMEOUT)

        def ok(_):
            if self.client.expired:
                conn.close()
                return
            old = self.client.cb
            if old is not None and old is not self and old.conn is not None:
                old.conn.close()
            self.client.cb = self
            conn.on_close(self._lost)
            log.debug("client %r: callback path up", self.client.owner)

        def bad(f):
            log.info("client %r: callback probe failed: %s", self.client.owner, f.getErrorMessage())
            conn.close()
        d.addCallbacks(ok, bad)

    def _lost(self, conn):
        if self.client.cb is self:
            self.client.cb = None

    def send(self, ops):
        conn = self.conn
        if conn is None or conn.closed:
            log.info("client %r: callback connection gone", self.client.owner)
            return
        args = x.CB_COMPOUND4args(b"", 0, self.ident, ops)
        d = conn.call(self.prog, CB_VERSION, CB_COMPOUND, [encode(x.CB_COMPOUND4args, args)],
                      cred=AuthSys(0, b"nfsd", 0, 0, ()), timeout=CALL_TIMEOUT)
        d.addCallbacks(_check_reply, _log_failure, errbackArgs=(self.client,))
