"""A small blocking ONC RPC client over TCP, for tests and tools.

    with RpcClient("127.0.0.1", 2049) as c:
        body = c.call(100003, 4, 0, b"")                 # NULL
        xids = [c.send_call(prog, vers, proc, args) for args in many]
        replies = [c.recv_reply() for _ in xids]           # (xid, body), in arrival order

Uses the same record marking (`nfsd.rpc.framing`) and declarations (`nfsd.xdr.rpc`, through
`nfsd.rpc.message`) as the server. A reply other than SUCCESS raises `RpcReplyError`
(with `xid`, `accept_stat` / `reject_stat` / `auth_stat`, and `low`/`high` for mismatches).
Not thread-safe.

`sock=` takes an already connected socket-like object (`sendall`, `recv`, `close`) instead of
connecting to host:port: tests/harness/ joins a client to an in-process server that way,
through the same framing and parsing as over TCP.
"""

from __future__ import annotations

import itertools
import os
import socket
from collections import deque

from .framing import RecordReader, frame
from .message import AuthSys, RpcReplyError, build_call, parse_reply

__all__ = ["AuthSys", "RpcClient", "RpcConnectionClosed", "RpcReplyError"]


class RpcConnectionClosed(ConnectionError):
    """The server closed the connection."""


class RpcClient:
    def __init__(self, host: str, port: int, timeout: float | None = 10.0, max_record: int = 64 << 20,
                 source: tuple | None = None, sock=None):
        if sock is None:
            sock = socket.create_connection((host, port), timeout=timeout, source_address=source)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = sock
        self._reader = RecordReader(max_record)
        self._records: deque = deque()
        self._unclaimed: deque = deque()  # (xid, body or RpcReplyError) read by call() for others
        self._xids = itertools.count(int.from_bytes(os.urandom(4), "big") & 0x7FFFFFFF)
        # Calls from the server on this connection (NFSv4.1 callbacks): `call_handler(record)`
        # returns the reply record to send (without marker), or None to send nothing.
        self.call_handler = None

    # -- sending
    def send_call(self, prog: int, vers: int, proc: int, args=b"", cred: AuthSys | None = None, xid: int | None = None) -> int:
        """Send one call without waiting; returns its xid."""
        if xid is None:
            xid = next(self._xids) & 0xFFFFFFFF
        header = build_call(xid, prog, vers, proc, cred)
        self.sock.sendall(b"".join(frame([header, args])))
        return xid

    def send_raw(self, data: bytes):
        """Send bytes as they are (no record marking): for tests with hostile input."""
        self.sock.sendall(data)

    # -- receiving
    def recv_record(self) -> bytes:
        """The next complete record, as bytes. Raises `RpcConnectionClosed` at EOF and
        `socket.timeout` (TimeoutError) when nothing arrives within the timeout."""
        while True:
            while not self._records:
                data = self.sock.recv(1 << 16)
                if not data:
                    raise RpcConnectionClosed("connection closed by the server")
                self._records.extend(self._reader.feed(data))
            record = bytes(self._records.popleft())
            if self.call_handler is not None and record[4:8] == b"\0\0\0\0":  # a CALL
                reply = self.call_handler(record)
                if reply is not None:
                    self.sock.sendall(b"".join(frame([reply])))
                continue
            return record

    def recv_reply(self) -> tuple[int, bytes]:
        """The next reply: (xid, results) on SUCCESS; other replies raise `RpcReplyError`."""
        if self._unclaimed:
            xid, body = self._unclaimed.popleft()
            if isinstance(body, RpcReplyError):
                raise body
            return xid, body
        xid, body = parse_reply(self.recv_record())
        return xid, bytes(body)

    def call(self, prog: int, vers: int, proc: int, args=b"", cred: AuthSys | None = None) -> bytes:
        """Send a call and wait for its reply; returns the results. Replies to other calls
        that arrive first are kept for `recv_reply`."""
        xid = self.send_call(prog, vers, proc, args, cred)
        while True:
            try:
                rxid, body = parse_reply(self.recv_record())
            except RpcReplyError as e:
                if e.xid == xid:
                    raise
                self._unclaimed.append((e.xid, e))
                continue
            if rxid == xid:
                return bytes(body)
            self._unclaimed.append((rxid, bytes(body)))

    # -- lifetime
    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
