"""Duplicate request cache for NFSv4.0 (NFSv4.1+ uses the session's slots instead).

A client that lost a reply retransmits the request, possibly on a new connection. For requests
that are not idempotent (CREATE, REMOVE, RENAME, LINK, SETATTR) running them twice would give a
wrong answer (EXIST, NOENT), so their replies are kept, keyed by the client's address, the RPC
xid and a checksum of the arguments, and a retransmission gets the original reply. A
retransmission that arrives while the original is still running is dropped (the client will
retry again). Bounded: the oldest entries go first.
"""

from __future__ import annotations

import zlib
from collections import OrderedDict

IN_PROGRESS = object()


class ReplyCache:
    def __init__(self, max_entries: int = 4096, max_reply: int = 64 * 1024):
        self.max_entries = max_entries
        self.max_reply = max_reply
        self._entries: OrderedDict = OrderedDict()

    @staticmethod
    def key(call):
        return (call.conn.peer_host, call.xid, call.proc, zlib.crc32(call.args))

    def lookup(self, key):
        """IN_PROGRESS, the cached reply (list of chunks), or None."""
        v = self._entries.get(key)
        if v is not None:
            self._entries.move_to_end(key)
        return v

    def begin(self, key):
        self._entries[key] = IN_PROGRESS
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def finish(self, key, reply, keep: bool):
        if keep:
            data = b"".join(bytes(c) for c in reply)
            if len(data) <= self.max_reply:
                self._entries[key] = [data]
                return
        self._entries.pop(key, None)

    def __len__(self):
        return len(self._entries)
