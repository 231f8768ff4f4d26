"""`MemoryStaging` (a private writable version) and `MemoryVersion` (a pinned published one).

Both are views a backend hands out over state on its disk (`Staged`, `Inode`); every call
takes the backend's guard, so they work from worker threads and stop working (IOFailure) once
the backend is closed or superseded by a restart, as a killed server's would.
"""

from __future__ import annotations

import json

from .. import interface as I
from .content import MAX_SIZE
from .disk import Inode, Staged


def record_json(record) -> str:
    """The record as it is written: JSON text; Invalid if it is not JSON."""
    try:
        return json.dumps(record, sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError) as e:
        raise I.Invalid(f"record is not JSON: {e}") from None


def _bytes_view(data) -> memoryview:
    mv = data if type(data) is memoryview else memoryview(data)
    return mv if mv.itemsize == 1 and mv.ndim == 1 else mv.cast("B")


def _check_range(offset: int, length: int) -> None:
    if offset < 0 or length <= 0:
        raise I.Invalid("bad range")
    if offset + length > MAX_SIZE:
        raise I.TooBig(f"{offset + length} bytes")


class MemoryStaging(I.Staging):
    """See `Staging`. `record` is this process's copy: `sync()` writes it to the disk."""

    def __init__(self, backend, state: Staged, record: dict):
        self._backend = backend
        self._state = state
        self.record = record
        self._finished = False

    def __repr__(self):  # pragma: no cover - debugging aid
        kind = "new" if self.is_new else "version"
        return f"<MemoryStaging {self.id} {kind} oid={self._state.oid}>"

    @property
    def backend(self):
        return self._backend

    @property
    def id(self) -> str:
        return self._state.id

    @property
    def handle(self) -> bytes:
        return self._backend._handle(self._state.oid)

    @property
    def is_new(self) -> bool:
        return self._state.is_new

    @property
    def viewer(self) -> bytes:
        return self._state.viewer

    @property
    def dirty(self) -> bool:
        return self._state.dirty

    def _check(self) -> None:
        if self._finished:
            raise I.Invalid("staging object already published or discarded")

    def _changed(self, content: bool = True, dirty: bool = True) -> None:
        """Guard held: the version was changed (times and `change` move)."""
        self._backend._touch(self._state.inode, content)
        if dirty:
            self._state.dirty = True

    # ---- content
    def write(self, offset: int, data) -> int:
        self._check()
        if offset < 0:
            raise I.Invalid("negative offset")
        mv = _bytes_view(data)
        n = mv.nbytes
        if offset + n > MAX_SIZE:
            raise I.TooBig(f"{offset + n} bytes")
        if n:  # a write of nothing changes nothing (as pwrite(2) of 0 bytes)
            with self._backend._guard:
                self._state.inode.pages.write(offset, mv)
                self._changed()
        return n

    def read(self, offset: int, count: int, nowait: bool = False) -> tuple[bytes, bool]:
        self._check()
        if offset < 0 or count < 0:
            raise I.Invalid("negative offset or count")
        with self._backend._guard:
            pages = self._state.inode.pages
            data = pages.read(offset, count)
            return data, offset + len(data) >= pages.size

    def truncate(self, size: int) -> None:
        self._check()
        if size < 0:
            raise I.Invalid("negative size")
        if size > MAX_SIZE:
            raise I.TooBig(f"{size} bytes")
        with self._backend._guard:
            self._state.inode.pages.truncate(size)
            self._changed()

    def size(self) -> int:
        return self._state.inode.pages.size

    def allocate(self, offset: int, length: int) -> None:
        """Reserve pages; dirty only if the size grew (a reservation alone changes nothing
        anybody reads, so it publishes nothing)."""
        self._check()
        _check_range(offset, length)
        with self._backend._guard:
            pages = self._state.inode.pages
            grows = offset + length > pages.size
            pages.allocate(offset, length)
            self._changed(content=grows, dirty=grows)

    def deallocate(self, offset: int, length: int) -> None:
        self._check()
        _check_range(offset, length)
        with self._backend._guard:
            pages = self._state.inode.pages
            end = min(offset + length, pages.size)
            if offset < end:
                pages.deallocate(offset, end)
                self._changed()

    def seek(self, offset: int, what: I.Content) -> tuple[int, bool]:
        self._check()
        with self._backend._guard:
            return self._state.inode.pages.seek(offset, what)

    def attrs(self) -> I.Attrs:
        self._check()
        with self._backend._guard:
            return self._backend._attrs(self._state.inode, self._state.oid)

    def clone_from(self, src, src_offset: int, dst_offset: int, count: int) -> None:
        """CLONE: the source's pages are shared (content.py); a version of another backend
        cannot be: NotSupported."""
        self._check()
        if isinstance(src, MemoryStaging) and src._backend is self._backend:
            src._check()
            inode = src._state.inode
        elif isinstance(src, MemoryVersion) and src._backend is self._backend:
            src._check()
            inode = src._inode
        else:
            raise I.NotSupported("clone from another backend")
        if count <= 0:
            return
        with self._backend._guard:
            self._state.inode.pages.share(inode.pages, src_offset, dst_offset, count)
            self._changed()

    # ---- record and durability
    def set_record(self, record: dict) -> None:
        self._check()
        self.record = record

    def sync(self) -> None:
        """Write the record (also one changed in place) and make everything durable: the
        snapshot a power loss goes back to."""
        self._check()
        text = record_json(self.record)
        with self._backend._guard:
            self._state.record = text
            self._state.snapshot()


class MemoryVersion:
    """A pinned published version (`open_version`): readable after its name is removed or
    replaced; `attrs()` then shows nlink 0, as an open file's fstat does."""

    def __init__(self, backend, inode: Inode, fileid: int):
        self._backend = backend
        self._inode = inode
        self._fileid = fileid
        self._open = True

    def _check(self) -> None:
        if not self._open:
            raise I.Invalid("version closed")

    def read(self, offset: int, count: int, nowait: bool = False) -> tuple[bytes, bool]:
        self._check()
        if offset < 0 or count < 0:
            raise I.Invalid("negative offset or count")
        with self._backend._guard:
            pages = self._inode.pages
            data = pages.read(offset, count)
            return data, offset + len(data) >= pages.size

    def seek(self, offset: int, what: I.Content) -> tuple[int, bool]:
        self._check()
        with self._backend._guard:
            return self._inode.pages.seek(offset, what)

    def attrs(self) -> I.Attrs:
        self._check()
        with self._backend._guard:
            return self._backend._attrs(self._inode, self._fileid)

    def close(self) -> None:
        self._open = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
