"""`LocalStaging`: a private writable version, and its data path.

A staging object is a data file `<sid>.data` in the staging directory (the inode that gets
published), plus for copy-on-write versions without reflink a pinned base (overlay.py), plus
its record (record.py).

Space and holes: `allocate` is fallocate(2) mode 0 on the data file, `deallocate` a punched
hole (KEEP_SIZE, clipped to the size); file systems without fallocate give NotSupported.
`seek` runs SEEK_DATA/SEEK_HOLE over the pieces a read would use (base or data file), so it
answers for the version as read; without SEEK_DATA everything is data.

Its content methods (write, read, truncate, allocate, deallocate, seek, attrs, sync) take no
lock of the backend's; they run in the protocol layer's threads, which never run two of them
at once on one staging object. `_rlock` orders record writes against `close_fds` (a publish
or discard in another thread).

Made only by the backend: `LocalBackend.create_staged`/`stage_version` call the constructor,
start-up recovery calls `from_record`. The methods under "for the backend" are the backend's
side of publishing, renaming and removing; nothing outside this class sets its fields.
"""

from __future__ import annotations

import os
import threading
import weakref

from .. import interface as I
from ..handles import handle_id
from ..oserror import from_oserror, maps_oserror
from .common import check_name, close_quiet, seek_fd, to_attrs, unlink_quiet
from .copy import clone_into, copy_into
from .linux import (FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, NO_FALLOCATE, fallocate, find,
                    fstatx)
from .overlay import CopyOnWrite
from .record import StagingRecord


def _pread_full(fd: int, count: int, offset: int) -> bytes:
    """pread that pads a short read (a file shorter than expected) with zeros."""
    data = os.pread(fd, count, offset)
    if len(data) < count:
        data += bytes(count - len(data))
    return data


class LocalStaging(CopyOnWrite, StagingRecord, I.Staging):
    """A private version: a data file in the staging dir, plus (without reflink) a pinned base.

    Public attributes beyond `Staging`: `quarantined` (None or the reason a recovered version
    cannot be published), `gone` (its transient name was removed), `target` ((dir handle, name)
    for new files, else None), `verifier`. `backend` is held weakly (no reference cycle).
    """

    def __init__(self, *, backend, sid: str, handle: bytes, is_new: bool, viewer: bytes,
                 record: dict, fd: int, ino: int, gen: int, staging_fd: int, size: int,
                 created_ns: int, target: tuple[bytes, bytes] | None = None,
                 exclusive: bool = False, verifier: bytes | None = None, dirty: bool = False,
                 gone: bool = False, base_fd: int | None = None, base_ident: dict | None = None,
                 limit: int = 0, record_in_xattr: bool = False, entry_durable: bool = False):
        """`fd`: the data file `<sid>.data` in `staging_fd` (inode `ino`, generation `gen`,
        `size` bytes). New files: `target`, `exclusive`, `verifier`. Versions: `base_ident`
        (the version started from) and, without reflink, `base_fd` and `limit` (overlay.py).
        `record_in_xattr`: the record is the data file's attribute; `entry_durable`: the
        data file's directory entry needs no fsync of the staging directory (record.py)."""
        self._backend = weakref.ref(backend)  # no cycle: dropping the backend frees it
        self._syncs = backend._syncs  # the staging directory's fsyncs are shared (group commit)
        self.id = sid
        self.handle = handle
        self.oid = handle_id(handle)
        self.is_new = is_new
        self.viewer = viewer
        self.record = record
        self.dirty = dirty
        self.gone = gone
        self.quarantined = None
        self.verifier = verifier
        self.exclusive = exclusive
        self.target_dir, self.target_name = (None, None) if target is None else target
        self.fd = fd
        self.ino = ino
        self.gen = gen
        self._sfd = staging_fd
        self._size = size
        self._unsynced = False
        self._created_ns = created_ns
        self._rlock = threading.Lock()
        self._finished = False
        self._start_overlay(base_fd, base_ident, limit)
        self._start_record(record_in_xattr, entry_durable)

    @classmethod
    def from_record(cls, rec: dict, *, backend, handle: bytes, fd: int, staging_fd: int,
                    size: int, record_in_xattr: bool, removed: bool, open_base) -> LocalStaging:
        """The staging object that record `rec` (see `record.load_record`) describes, resumed
        at start-up on its data file `fd`. removed: (versions) the file was removed while the
        server was down. open_base: see `CopyOnWrite._resume_overlay`."""
        viewer = bytes.fromhex(rec["viewer"])
        created_ns = int(rec.get("created_ns") or 0)
        verifier = None if rec.get("verifier") is None else bytes.fromhex(rec["verifier"])
        is_new = bool(rec["is_new"])
        if record_in_xattr and not is_new:
            raise ValueError("a version's record in an attribute")
        target = None
        if is_new:
            target = bytes.fromhex(rec["dir"]), check_name(bytes.fromhex(rec["name"]))
        s = cls(backend=backend, sid=rec["id"], handle=handle, is_new=is_new, viewer=viewer,
                record=rec["record"], fd=fd, ino=int(rec["ino"]), gen=int(rec["gen"]),
                staging_fd=staging_fd, size=size, created_ns=created_ns, target=target,
                exclusive=bool(rec.get("exclusive")), verifier=verifier,
                dirty=bool(rec.get("dirty")), gone=bool(rec.get("gone")) or removed,
                base_ident=rec.get("base"), record_in_xattr=record_in_xattr)
        s._written_record = s._record_json()
        if not is_new:
            s._resume_overlay(rec, open_base)
        if rec.get("publishing"):
            s._rec_dirty = True  # (its publish never happened: no longer publishing)
        return s

    def __repr__(self):  # pragma: no cover - debugging aid
        kind = "new" if self.is_new else "version"
        return f"<LocalStaging {self.id} {kind} oid={self.oid} size={self._size}>"

    @property
    def backend(self):
        """The backend that made this staging object (None once it is gone)."""
        return self._backend()

    @property
    def target(self):
        return None if self.target_dir is None else (self.target_dir, self.target_name)

    @property
    def data_name(self) -> str:
        return f"{self.id}.data"

    # ---- content
    def check(self) -> None:
        """Invalid once published or discarded."""
        if self._finished:
            raise I.Invalid("staging object already published or discarded")

    def write(self, offset: int, data) -> int:
        self.check()
        if offset < 0:
            raise I.Invalid("negative offset")
        mv = data if type(data) is memoryview else memoryview(data)
        if mv.itemsize != 1 or mv.ndim != 1:
            mv = mv.cast("B")
        n = mv.nbytes
        fd = self.fd
        try:
            done = os.pwrite(fd, mv, offset)
            while done < n:
                w = os.pwrite(fd, mv[done:], offset + done)
                if w <= 0:
                    raise I.IOFailure("short write")
                done += w
        except OSError as e:
            raise from_oserror(e) from None
        if n:
            end = offset + n
            if self._base_fd is not None and offset < self._limit:
                self._mark(offset, min(end, self._limit))
            if end > self._size:
                self._size = end
            self._unsynced = True
            if not self.dirty:
                self.dirty = True
                self._rec_dirty = True
        return n

    def read(self, offset: int, count: int, nowait: bool = False) -> tuple[bytes, bool]:
        self.check()
        size = self._size
        if offset < 0 or count < 0:
            raise I.Invalid("negative offset or count")
        if offset >= size or count == 0:
            return b"", offset >= size
        end = min(offset + count, size)
        try:
            if self._base_fd is None or offset >= self._limit:
                data = _pread_full(self.fd, end - offset, offset)
            else:
                base = self._base_fd
                data = b"".join([_pread_full(base if b else self.fd, e - s, s)
                                 for s, e, b in self._segments(offset, end)])
        except OSError as e:
            raise from_oserror(e) from None
        return data, end >= size

    @maps_oserror()
    def truncate(self, size: int) -> None:
        self.check()
        if size < 0:
            raise I.Invalid("negative size")
        os.ftruncate(self.fd, size)
        if self._base_fd is not None and size < self._limit:
            self._limit = size
            self._clip(size)
            self._rec_dirty = True
            self._maybe_release_base()
        self._size = size
        self._unsynced = True
        if not self.dirty:
            self.dirty = True
            self._rec_dirty = True

    def size(self) -> int:
        return self._size

    @maps_oserror()
    def allocate(self, offset: int, length: int) -> None:
        """fallocate mode 0: space reserved, content unchanged, the size may grow. Dirty only
        if the size grew (a reservation alone changes nothing anybody reads)."""
        self.check()
        if offset < 0 or length <= 0:
            raise I.Invalid("bad range")
        try:
            fallocate(self.fd, 0, offset, length)
        except OSError as e:
            if e.errno in NO_FALLOCATE:
                raise I.NotSupported("the file system cannot reserve space") from None
            raise
        self._unsynced = True
        end = offset + length
        if end > self._size:
            self._size = end
            if not self.dirty:
                self.dirty = True
                self._rec_dirty = True

    @maps_oserror()
    def deallocate(self, offset: int, length: int) -> None:
        """Punch a hole in [offset, offset+length) clipped to the size; the size stays."""
        self.check()
        if offset < 0 or length <= 0:
            raise I.Invalid("bad range")
        end = min(offset + length, self._size)
        if offset >= end:
            return
        try:
            fallocate(self.fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, end - offset)
        except OSError as e:
            if e.errno in NO_FALLOCATE:
                raise I.NotSupported("the file system cannot punch holes") from None
            raise
        if self._base_fd is not None and offset < self._limit:
            self._mark(offset, min(end, self._limit))  # now zeros of the data file, not the base
        self._unsynced = True
        if not self.dirty:
            self.dirty = True
            self._rec_dirty = True

    @maps_oserror()
    def seek(self, offset: int, what) -> tuple[int, bool]:
        """SEEK_DATA / SEEK_HOLE over the pieces `read` uses (base or data file)."""
        self.check()
        if self._base_fd is None:
            return seek_fd(self.fd, offset, self._size, what)
        size = self._size
        if offset < 0:
            raise I.Invalid("negative offset")
        if offset >= size:
            raise I.PastEnd(f"{offset} >= {size}")
        for a, b, from_base in list(self._segments(offset, size)):
            r = find(self._base_fd if from_base else self.fd, a, b, what)
            if r is not None:
                return r, False
        return size, True

    def copy_from(self, src, src_offset: int, dst_offset: int, count: int) -> int:
        """COPY: copy_file_range of the source's data segments (copy.py)."""
        return copy_into(self, src, src_offset, dst_offset, count)

    def clone_from(self, src, src_offset: int, dst_offset: int, count: int) -> None:
        """CLONE: FICLONERANGE (copy.py); NotSupported without reflink."""
        clone_into(self, src, src_offset, dst_offset, count)

    def attrs(self) -> I.Attrs:
        self.check()
        try:
            st = fstatx(self.fd)
        except OSError as e:
            raise from_oserror(e) from None
        return to_attrs(st, self.oid)

    def set_record(self, record: dict) -> None:
        self.check()
        if record != self.record:
            self.record = record
            self._rec_dirty = True

    @maps_oserror()
    def sync(self) -> None:
        """fdatasync the data if written since; rewrite the record durably if it changed
        (also when the protocol layer changed `record` in place)."""
        self.check()
        record = self._rec_dirty or self._record_json() != self._written_record
        if self._xrec and not record:
            if self._rec_unsynced:  # as written at creation: only its fsync is missing
                with self._rlock:
                    if not self._finished:
                        self._fsync_with_record()
                return
        # In xattr mode the record's fsync of the data file covers the data as well.
        if self._unsynced and not (record and self._xrec):
            os.fdatasync(self.fd)
            self._unsynced = False
        if record:
            self.write_record(durable=True)

    # ---- for the backend
    @property
    def finished(self) -> bool:
        """Published or discarded."""
        return self._finished

    def retarget(self, dir_handle: bytes, name: bytes) -> None:
        """A new file's transient name moved (RENAME); the record is the caller's to write."""
        self.target_dir, self.target_name = dir_handle, name

    def mark_gone(self) -> None:
        """Its transient name was removed (or replaced): publishing raises Gone."""
        self.gone = True
        try:
            self.write_record(durable=False)
        except OSError:
            # A full disk must not stop a REMOVE (which is how space is freed): the record is
            # rewritten at the next sync; until then a crash would resurrect the name.
            self._rec_dirty = True

    @maps_oserror()
    def prepare_publish(self, durable: bool) -> None:
        """Make the data file the whole version (copy what still comes from the base) and,
        if `durable`, its data durable: all that may be slow, before the backend's lock."""
        self._fill()
        if durable and self._unsynced:
            os.fdatasync(self.fd)
            self._unsynced = False

    def note_publishing(self, dir_handle: bytes, name: bytes) -> None:
        """A version is about to be renamed to dir/name: the record says so (OSError), so
        that start-up can tell whether the rename happened."""
        self._publishing = {"dir": dir_handle.hex(), "name": name.hex()}
        self.write_record(durable=False)

    def close_fds(self) -> None:
        """Finished: no more I/O (the backend's close leaves the files for the next start)."""
        with self._rlock:
            self._finished = True
            close_quiet(self.fd)
            close_quiet(self._base_fd)
            self._base_fd = None

    def remove_files(self, published: bool = False) -> None:
        """Remove the data file (unless published: it moved away) and the .rec file."""
        if not published:
            unlink_quiet(self.data_name, self._sfd)
        if not self._xrec:
            unlink_quiet(self.record_name, self._sfd)
