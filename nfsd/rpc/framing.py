"""Record marking for RPC over TCP (RFC 5531, section 11), sans-IO.

A record is sent as one or more fragments; each fragment is preceded by a 4-byte big-endian
header whose top bit marks the last fragment of the record and whose low 31 bits give the
fragment's length. Zero-length fragments are legal.

`RecordReader` turns a byte stream, fed in pieces of any size, into complete records:

- Cost is linear in the input. The input is walked with offsets, never re-sliced or
  concatenated as a whole; a record that spans several reads is accumulated in one
  `bytearray` of its own (appended to, never copied back out); a record that arrives
  entirely inside one read is handed on as a view of that read when it is most of it
  (zero copy), and copied otherwise (so that a small record does not pin a large buffer).
- Every record handed out is a `memoryview` of a buffer that nothing else writes to again:
  of an immutable `bytes` object, or of a bytearray the reader has given up.
- The record size limit is checked on every fragment header, against the declared length
  plus what the record already holds, before anything is stored for that fragment. Memory
  is never allocated from a length the peer merely claims: buffers grow with data received.

`frame` does the reverse for output: it prefixes the chunks of one record with a single
last-fragment header, without touching the chunks.
"""

from __future__ import annotations

import struct

__all__ = ["FramingError", "RecordReader", "RecordTooLarge", "frame", "LAST_FRAGMENT", "MAX_FRAGMENT"]

LAST_FRAGMENT = 0x80000000
MAX_FRAGMENT = 0x7FFFFFFF

_U32 = struct.Struct(">I")


class FramingError(ValueError):
    """The byte stream cannot be split into records; the connection cannot be used further."""


class RecordTooLarge(FramingError):
    """A record (or a single fragment) is longer than the reader accepts."""


SHARE_MIN = 16 * 1024  # smaller pieces of a record are copied rather than referenced


class RecordReader:
    """Splits a record-marked byte stream into records. See the module docstring."""

    __slots__ = ("max_record", "_hdr", "_left", "_last", "_size", "_rec", "_held", "_broken")

    def __init__(self, max_record: int):
        if not 0 <= max_record:
            raise ValueError("max_record must be >= 0")
        self.max_record = max_record
        self._hdr = b""  # bytes of a fragment header split across feeds (0..3 bytes)
        self._left = -1  # bytes still expected in the current fragment; -1: expecting a header
        self._last = False  # the current fragment ends its record
        self._size = 0  # bytes of the current record declared by its headers so far
        # The current record, when it spans several pieces: the pieces (slices of immutable
        # input by reference, copies of anything else), joined once when it is complete.
        self._rec: list | None = None
        self._held = 0  # bytes in _rec
        self._broken: FramingError | None = None

    @property
    def pending(self) -> int:
        """Bytes of an incomplete record held (header bytes included)."""
        return len(self._hdr) + self._held

    def feed(self, data) -> list:
        """Consume `data` (any bytes-like object); return the records it completes, in order.

        Raises `RecordTooLarge` (and keeps raising it on later calls) once a record exceeds
        `max_record`; records completed earlier in the same `data` are lost with it.
        """
        if self._broken is not None:
            raise self._broken
        out = []
        mv = memoryview(data).cast("B") if not isinstance(data, bytes) else memoryview(data)
        # Only immutable input may be handed on by reference.
        shareable = type(data) is bytes
        n = len(mv)
        off = 0
        left = self._left
        while off < n:
            if left < 0:
                # ---- fragment header
                if self._hdr or n - off < 4:
                    need = 4 - len(self._hdr)
                    self._hdr += bytes(mv[off:off + need])
                    off += min(need, n - off)
                    if len(self._hdr) < 4:
                        break
                    (h,) = _U32.unpack(self._hdr)
                    self._hdr = b""
                else:
                    (h,) = _U32.unpack_from(mv, off)
                    off += 4
                length = h & MAX_FRAGMENT
                self._last = bool(h & LAST_FRAGMENT)
                if self._size + length > self.max_record:
                    self._broken = RecordTooLarge(
                        f"record of at least {self._size + length} bytes (limit {self.max_record})"
                    )
                    raise self._broken
                self._size += length
                left = length
                if left == 0 and self._last:
                    out.append(self._take())
                    left = -1
                continue
            # ---- fragment body
            take = left if left <= n - off else n - off
            if (
                self._rec is None
                and take == left
                and self._last
            ):
                # The whole record (or its only non-empty fragment) is in this piece.
                if shareable and 2 * take >= n:
                    out.append(mv[off:off + take])
                else:
                    out.append(memoryview(bytes(mv[off:off + take])))
                self._size = 0
                off += take
                left = -1
                continue
            if take:
                rec = self._rec
                if rec is None:
                    rec = self._rec = []
                if shareable and take >= SHARE_MIN:
                    rec.append(mv[off:off + take])  # by reference: a large piece of a recv
                elif rec and type(rec[-1]) is bytearray:
                    rec[-1] += mv[off:off + take]  # small pieces (many tiny fragments) are
                else:  # copied together, so they cost their bytes, not an object each
                    rec.append(bytearray(mv[off:off + take]))
                self._held += take
            off += take
            left -= take
            if left == 0:
                left = -1
                if self._last:
                    out.append(self._take())
        self._left = left
        return out

    def _take(self) -> memoryview:
        rec = self._rec
        self._rec = None
        self._size = 0
        self._held = 0
        if rec is None:
            return memoryview(b"")
        return memoryview(rec[0] if len(rec) == 1 else b"".join(rec))


def frame(chunks: list) -> list:
    """Chunks of one record, preceded by its (single, last-fragment) record marker.

    The chunks are not copied or joined; their total length must fit in 31 bits.
    """
    total = 0
    for c in chunks:
        total += len(c)
    if total > MAX_FRAGMENT:
        raise ValueError(f"record of {total} bytes does not fit in one fragment")
    return [_U32.pack(LAST_FRAGMENT | total), *chunks]
