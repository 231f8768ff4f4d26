"""`PgStaging`: a file under construction on this frontend, its bytes in the local spool.

Writes go to a spool file (`SPOOL/<staging id>.data`); `sync()` (FILE_SYNC, COMMIT) is an
fdatasync of it plus the staging row (size, record) in the database, so every acknowledged
stable write survives a crash of this frontend and the frontend restarted on this host picks it
up again. A copy-on-write version starts from a published version without copying it: below
`limit` the bytes nobody wrote come from that version's object (through the block cache), the
written ranges from the spool; `fill()` (at publish, in a worker thread) brings the rest into
the spool, which is then uploaded whole.

Thread use: write/truncate/attrs on the event loop (a local file); read with `nowait=True`
raises WouldBlock instead of waiting for the object store; sync and fill in worker threads.
"""

from __future__ import annotations

import bisect
import json
import os
import time
import weakref

from .. import interface as I


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
        self.mode, self.uid, self.gid = mode, uid, gid
        now = time.time_ns()
        self.atime, self.mtime, self.ctime = times or (now, now, now)
        self._size = size
        # the published version this one started from: (object key, inline bytes, size)
        self.base = base
        self.limit = base[2] if base else 0
        self.written = Written(written)
        self._unsynced = True
        self._finished = False
        self.publishing = False  # a worker thread is uploading it: it must not change now

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
                self.written.add(offset, min(offset + n, self.limit))
            self._size = max(self._size, offset + n)
            self._changed()
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
        self._size = size
        self._changed()

    def size(self) -> int:
        return self._size

    def allocate(self, offset: int, length: int) -> None:
        self.check()
        try:
            os.posix_fallocate(self.fd, offset, length)
        except OSError as e:
            raise _oserror(e) from None
        if offset + length > self._size:
            if self._size < self.limit:
                self.written.add(self._size, min(offset + length, self.limit))
            self._size = offset + length
            self._changed()

    def deallocate(self, offset: int, length: int) -> None:
        """Zeros in [offset, offset+length) (written with zeros; the spool is not sparse-aware
        in the object store anyway), the size stays."""
        self.check()
        end = min(offset + length, self._size)
        pos = offset
        zero = bytes(min(1 << 20, max(0, end - offset)))
        while pos < end:
            n = min(len(zero), end - pos)
            self.write(pos, memoryview(zero)[:n])
            pos += n

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
        except OSError as e:
            raise _oserror(e) from None
        self.backend.save_staging(self)

    def fill(self) -> None:
        """Bring every byte not written below `limit` from the base version into the spool
        (blocks: a worker thread), so the spool holds the whole new version."""
        for a, b, w in list(self.written.segments(0, self.limit)):
            if not w:
                pos = a
                while pos < b:
                    data = self.backend.read_base(self.base, pos, min(4 << 20, b - pos), False)
                    if not data:
                        raise I.IOFailure("base version shorter than expected")
                    os.pwrite(self.fd, data, pos)
                    pos += len(data)
        self.written = Written([(0, self.limit)] if self.limit else ())

    def state(self) -> dict:
        """What the staging row keeps besides the record (JSON)."""
        return {"size": self._size, "limit": self.limit, "written": self.written.ranges(),
                "mode": self.mode, "uid": self.uid, "gid": self.gid,
                "times": [self.atime, self.mtime, self.ctime]}

    def record_json(self) -> str:
        return json.dumps({"record": self.record, "state": self.state()},
                          separators=(",", ":"))

    def finish(self):
        """Published or discarded: the spool file goes."""
        self._finished = True
        try:
            os.close(self.fd)
        except OSError:
            pass
        try:
            os.unlink(self.path)
        except OSError:
            pass

    def close_fd(self):
        try:
            os.close(self.fd)
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
