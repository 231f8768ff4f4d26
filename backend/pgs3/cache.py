"""A bounded local cache of immutable content: blocks of published versions' objects.

Version objects never change (a new version is a new key), so a cached block is valid for as
long as it is kept: no invalidation, only eviction (least recently used, by bytes). READ on the
event loop asks with `get` and gets None on a miss; the miss is filled in a worker thread from
the object store, READAHEAD bytes at once (one GET for what a sequential reader asks next),
and the read is answered from there. What this frontend uploads goes in too (`put_object`):
a file is most often read back where it was written.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

BLOCK = 1 << 20  # cache granule: a 1 MiB READ is one block when aligned
READAHEAD = 4 * BLOCK  # a miss fetches this much (clipped at the object's end)


class BlockCache:
    def __init__(self, capacity: int = 256 << 20):
        self.capacity = max(BLOCK, capacity)
        self._blocks: OrderedDict[tuple[str, int], bytes] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, key: str, index: int) -> bytes | None:
        with self._lock:
            b = self._blocks.get((key, index))
            if b is None:
                self.misses += 1
                return None
            self._blocks.move_to_end((key, index))
            self.hits += 1
            return b

    def put(self, key: str, index: int, data: bytes) -> None:
        with self._lock:
            old = self._blocks.pop((key, index), None)
            if old is not None:
                self._bytes -= len(old)
            self._blocks[(key, index)] = data
            self._bytes += len(data)
            while self._bytes > self.capacity and self._blocks:
                _, b = self._blocks.popitem(last=False)
                self._bytes -= len(b)

    def put_object(self, key: str, body) -> None:
        """All of an object just uploaded (if it fits in a quarter of the cache)."""
        if len(body) > self.capacity // 4:
            return
        mv = memoryview(body)
        for i in range(max(1, (len(body) + BLOCK - 1) // BLOCK)):
            self.put(key, i, bytes(mv[i * BLOCK:(i + 1) * BLOCK]))

    def read(self, key: str, size: int, offset: int, count: int, fetch=None) -> bytes | None:
        """Bytes [offset, offset+count) of an object of `size` bytes, clipped at its end, from
        cached blocks; a missing block is fetched with `fetch(offset, count)` (the object
        store, in a worker thread) or, without `fetch`, the answer is None."""
        end = min(size, offset + count)
        if offset >= end:
            return b""
        out = []
        pos = offset
        while pos < end:
            i = pos // BLOCK
            b = self.get(key, i)
            if b is None:
                if fetch is None:
                    return None
                start = i * BLOCK
                got = fetch(start, min(READAHEAD, size - start))
                mv = memoryview(got)
                for j in range(max(1, (len(got) + BLOCK - 1) // BLOCK)):
                    blk = bytes(mv[j * BLOCK:(j + 1) * BLOCK])
                    if j == 0:
                        b = blk
                    self.put(key, i + j, blk)
            lo = pos - i * BLOCK
            piece = b[lo:lo + (end - pos)]
            if not piece:
                break
            out.append(piece)
            pos += len(piece)
        return out[0] if len(out) == 1 else b"".join(out)
