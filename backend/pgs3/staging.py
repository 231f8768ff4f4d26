"""`PgStaging`: a file under construction on this frontend, its bytes in the local spool.

Writes go to a spool file (`SPOOL/<staging id>.data`, as long as the version: holes where
nothing was written); `sync()` (FILE_SYNC, COMMIT) is an fdatasync of it plus the staging row
(size, record) in the database, so every acknowledged stable write survives a crash of this
frontend, and the frontend restarted on this host picks it up again. A copy-on-write version
also appends every change to which bytes are its own to `SPOOL/<staging id>.log` (a write below
the base limit, a truncation below it): replayed at a restart, it tells the spool's bytes from
the base version's, including writes after the last sync (a killed process leaves them in the
page cache). A copy-on-write version starts from a published version without copying it: below
`limit` the bytes nobody wrote come from that version's chunks (through the block cache), the
written ranges from the spool; at publish only the pieces with written bytes become new objects
(chunks.py).

Thread use: write/truncate/attrs on the event loop (a local file); read with `nowait=True`
raises WouldBlock instead of waiting for the object store; sync and materialize in worker
threads.
"""

from __future__ import annotations

import bisect
import json
import os
import struct
import time
import weakref

from .. import interface as I
from ..local import linux
from . import chunks

_W = struct.Struct(">cQQ")  # log: these bytes are the version's own
_T = struct.Struct(">cQ")  # log: truncated below the base limit


class Written:
    """Sorted, disjoint [start, end) ranges (what was written below the base limit)."""

    def __init__(self, ranges=()):
        self.starts = [s for s, _ in ranges]
        self.ends = [e for _, e in ranges]

    def add(self, a: int, b: int) -> None:
        if a >= b:
            return
        i = bisect.bisect_left(self.ends, a)
        j = bisect.bisect_right(self.starts, b)
        if i < j:
            a = min(a, self.starts[i])
            b = max(b, self.ends[j - 1])
        self.starts[i:j] = [a]
        self.ends[i:j] = [b]

    def clip(self, limit: int) -> None:
        i = bisect.bisect_left(self.ends, limit)
        del self.starts[i + 1:], self.ends[i + 1:]
        if i < len(self.starts):
            if self.starts[i] >= limit:
                del self.starts[i], self.ends[i]
            else:
                self.ends[i] = min(self.ends[i], limit)

    def overlaps(self, a: int, b: int) -> bool:
        i = bisect.bisect_right(self.ends, a)
        return i < len(self.starts) and self.starts[i] < b

    def segments(self, a: int, b: int):
        """(start, end, written) pieces covering [a, b)."""
        pos = a
        i = bisect.bisect_right(self.ends, a)
        while pos < b:
            if i < len(self.starts) and self.starts[i] <= pos:
                e = min(b, self.ends[i])
                yield pos, e, True
                pos = e
                i += 1
            else:
                e = min(b, self.starts[i]) if i < len(self.starts) else b
                yield pos, e, False
                pos = e

    def ranges(self) -> list:
        return list(zip(self.starts, self.ends))


class PgStaging(I.Staging):
    def __init__(self, backend, *, sid: int, handle: bytes, is_new: bool, viewer: bytes,
                 record: dict, spool: str, mode: int, uid: int, gid: int, base=None,
                 size: int = 0, written=(), times=None):
        self._backend = weakref.ref(backend)
        self.sid = sid
        self.id = str(sid)
        self.handle = handle
        self.oid = int.from_bytes(handle[8:16], "big")
        self.is_new = is_new
        self.viewer = viewer
        self.record = record
        self.dirty = is_new
        self.gone = False
        self.verifier = None
        self.target = None  # (dir oid, name) of a new file
        self.cookie = 0
        self.exclusive = False
        self.path = spool
        self.fd = os.open(spool, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        self.logfd = None  # the written-ranges log (copy-on-write versions)
        self.mode, self.uid, self.gid = mode, uid, gid
        now = time.time_ns()
        self.atime, self.mtime, self.ctime = times or (now, now, now)
        self._size = size
        # the published version this one started from (chunks.Base)
        self.base = base
        self.limit = base.size if base else 0
        self.written = Written(written)
        if base is not None:
            self.logfd = os.open(spool[:-5] + ".log", os.O_RDWR | os.O_CREAT | os.O_APPEND |
                                 os.O_CLOEXEC, 0o600)
        self._unsynced = True
        self._finished = False
        self.publishing = False  # a worker thread is uploading it: it must not change now
        # pieces of a new file uploaded while it is written (chunks.Early)
        self.early = chunks.Early() if is_new else None

    @property
    def backend(self):
        return self._backend()

    def check(self):
        if self._finished:
            raise I.Invalid("staging object already published or discarded")

    def _changed(self):
        self.mtime = self.ctime = max(time.time_ns(), self.ctime + 1)
        self._unsynced = True
        self.dirty = True

    # ---- content
    def write(self, offset: int, data) -> int:
        self.check()
        if self.publishing:
            raise I.Unavailable("being published")
        if offset < 0:
            raise I.Invalid("negative offset")
        mv = data if type(data) is memoryview else memoryview(data)
        n = mv.nbytes
        try:
            done = os.pwrite(self.fd, mv, offset)
            while done < n:
                done += os.pwrite(self.fd, mv[done:], offset + done)
        except OSError as e:
            raise _oserror(e) from None
        if n:
            if offset < self.limit:
                self._own(offset, min(offset + n, self.limit))
            self._size = max(self._size, offset + n)
            self._changed()
            if self.early is not None:
                chunk = self.backend.chunk
                self.early.touched(offset, offset + n, chunk)
                if (offset + n) // chunk != offset // chunk:
                    self.early.passed(self.backend, self, offset + n)
        return n

    def read(self, offset: int, count: int, nowait: bool = False) -> tuple[bytes, bool]:
        self.check()
        if offset < 0 or count < 0:
            raise I.Invalid("negative offset or count")
        size = self._size
        end = min(offset + count, size)
        if offset >= end:
            return b"", offset >= size
        pieces = []
        for a, b, w in self.written.segments(offset, min(end, self.limit)):
            if w:
                pieces.append(_pread(self.fd, b - a, a))
            else:
                data = self.backend.read_base(self.base, a, b - a, nowait)
                pieces.append(data)
        if end > self.limit:
            a = max(offset, self.limit)
            pieces.append(_pread(self.fd, end - a, a))
        return b"".join(pieces), end >= size

    def truncate(self, size: int) -> None:
        self.check()
        if self.publishing:
            raise I.Unavailable("being published")
        if size < 0:
            raise I.Invalid("negative size")
        try:
            os.ftruncate(self.fd, size)
        except OSError as e:
            raise _oserror(e) from None
        if size < self.limit:
            self.limit = size
            self.written.clip(size)
            self._log(_T.pack(b"T", size))
        if self.early is not None:
            self.early.touched(min(size, self._size), max(size, self._size) + 1,
                               self.backend.chunk)
        self._size = size
        self._changed()

    def _own(self, a: int, b: int) -> None:
        """[a, b) below the base limit is this version's own from now on (logged)."""
        self.written.add(a, b)
        self._log(_W.pack(b"W", a, b))

    def _log(self, rec: bytes) -> None:
        if self.logfd is not None:
            try:
                os.write(self.logfd, rec)
            except OSError as e:
                raise _oserror(e) from None

    def replay(self) -> None:
        """After a restart: the written ranges and the limit from the log."""
        if self.logfd is None:
            return
        data = os.pread(self.logfd, 1 << 30, 0)
        pos = 0
        while pos < len(data):
            tag = data[pos:pos + 1]
            if tag == b"W" and pos + _W.size <= len(data):
                _, a, b = _W.unpack_from(data, pos)
                if a < self.limit:
                    self.written.add(a, min(b, self.limit))
                pos += _W.size
            elif tag == b"T" and pos + _T.size <= len(data):
                _, size = _T.unpack_from(data, pos)
                if size < self.limit:
                    self.limit = size
                    self.written.clip(size)
                pos += _T.size
            else:
                break  # a record cut short by the crash: what it said never happened

    def size(self) -> int:
        return self._size

    def allocate(self, offset: int, length: int) -> None:
        """fallocate mode 0 on the spool: content unchanged, the size may grow (dirty only
        then: a reservation alone changes nothing anybody reads)."""
        self.check()
        if offset < 0 or length <= 0:
            raise I.Invalid("bad range")
        try:
            linux.fallocate(self.fd, 0, offset, length)
        except OSError as e:
            if e.errno in linux.NO_FALLOCATE:
                raise I.NotSupported("allocate") from None
            raise _oserror(e) from None
        if offset + length > self._size:
            self._size = offset + length
            self._changed()

    def deallocate(self, offset: int, length: int) -> None:
        """A hole in [offset, offset+length), clipped to the size (which stays): punched in
        the spool, and counted as written so the base version's bytes are not used there."""
        self.check()
        if offset < 0 or length <= 0:
            raise I.Invalid("bad range")
        end = min(offset + length, self._size)
        if offset >= end:
            return
        try:
            linux.fallocate(self.fd, linux.FALLOC_FL_PUNCH_HOLE | linux.FALLOC_FL_KEEP_SIZE,
                            offset, end - offset)
        except OSError as e:
            if e.errno in linux.NO_FALLOCATE:
                raise I.NotSupported("deallocate") from None
            raise _oserror(e) from None
        if offset < self.limit:
            self._own(offset, min(end, self.limit))
        if self.early is not None:
            self.early.touched(offset, end, self.backend.chunk)
        self._changed()

    def data_ranges(self, a: int, b: int):
        """(start, end) ranges within [a, b) that hold data: the spool's where it was written
        or beyond the base, the base version's elsewhere."""
        b = min(b, self._size)
        for s, e, w in self.written.segments(a, min(b, self.limit)):
            if w:
                yield from linux.data_ranges(self.fd, s, e)
            else:
                yield from chunks.data_ranges(self.base, self.backend.chunk, s, e)
        if b > self.limit:
            yield from linux.data_ranges(self.fd, max(a, self.limit), b)

    def seek(self, offset: int, what) -> tuple[int, bool]:
        self.check()
        return chunks.seek(self.data_ranges(offset, self._size), offset, self._size, what)

    def attrs(self) -> I.Attrs:
        self.check()
        blocks = (self._size + 511) // 512 * 512
        return I.Attrs(I.Kind.REG, self.mode, 1, self.uid, self.gid, self._size, blocks, (0, 0),
                       self.oid, self.atime, self.mtime, self.ctime, self.ctime)

    def set_record(self, record: dict) -> None:
        self.check()
        self.record = record

    def sync(self) -> None:
        """FILE_SYNC, COMMIT: the spool's bytes on disk, then the staging row (size, record,
        written ranges) in the database."""
        self.check()
        try:
            os.fdatasync(self.fd)
            if self.logfd is not None:
                os.fdatasync(self.logfd)
        except OSError as e:
            raise _oserror(e) from None
        self.backend.save_staging(self)

    def materialize(self, a: int, b: int) -> bytes:
        """The new version's bytes [a, b) (blocks: a worker thread, at publish)."""
        return self.read(a, b - a)[0]

    def state(self) -> dict:
        """What the staging row keeps besides the record (JSON)."""
        return {"size": self._size, "dirty": self.dirty, "mode": self.mode, "uid": self.uid,
                "gid": self.gid, "times": [self.atime, self.mtime, self.ctime]}

    def record_json(self) -> str:
        try:
            return json.dumps({"record": self.record, "state": self.state()},
                              separators=(",", ":"))
        except (TypeError, ValueError) as e:
            raise I.Invalid(f"the record is not JSON: {e}") from None

    def finish(self):
        """Published or discarded: the spool files go."""
        self._finished = True
        self.close_fd()
        for p in (self.path, self.path[:-5] + ".log"):
            try:
                os.unlink(p)
            except OSError:
                pass

    def close_fd(self):
        for fd in (self.fd, self.logfd):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass


def _pread(fd: int, count: int, offset: int) -> bytes:
    out = os.pread(fd, count, offset)
    if len(out) < count:  # a hole past what was written: zeros
        out += bytes(count - len(out))
    return out


def _oserror(e: OSError) -> I.BackendError:
    from ..oserror import from_oserror

    return from_oserror(e)
