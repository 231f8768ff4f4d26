"""Reading published versions: `read`, `seek`, `open_version`, and the cache of open fds.

`read` goes through a small LRU of open fds of published versions (`ReaderCache`, `read_fds`
of them), each checked against the name's current inode at every read, so a new version or
a local replacement is never missed. With `nowait` it reads only what the page cache holds
(preadv RWF_NOWAIT, see linux.py), so the reactor thread never waits for the disk; the
protocol layer then reads the rest in a worker thread. A cached fd is closed when it is evicted
and no read is using it any more (`_Version.refs`).

Lock: `_reader`, `_unref` and `open_version` take the backend lock (`_guard`) for the cache and
the resolver; the preads themselves run outside it. `ReaderCache` methods expect it held.
"""

from __future__ import annotations

import os
from collections import OrderedDict

from .. import interface as I
from ..handles import INO, SIZE, generation
from ..oserror import from_oserror, maps_oserror
from .common import O_READ, close_quiet, seek_fd, to_attrs
from .linux import fstatx, read_nowait


class _Version:
    """An open published version (open_version, and the reader cache's entries): read, seek,
    attrs and close on a pinned fd. `refs`: users (the cache counts as one while it holds it);
    `evicted`: the cache let go of it, the last user closes it."""

    __slots__ = ("fd", "oid", "ino", "gen", "size", "refs", "evicted")

    def __init__(self, fd: int, oid: int, st: tuple):
        self.fd = fd
        self.oid = oid
        self.ino = st[INO]
        self.gen = generation(st)
        self.size = st[SIZE]
        self.refs = 1
        self.evicted = False

    @maps_oserror()
    def read(self, offset: int, count: int, nowait: bool = False) -> tuple[bytes, bool]:
        if self.fd is None:
            raise I.Invalid("version closed")
        if offset < 0 or count < 0:
            raise I.Invalid("negative offset or count")
        data = os.pread(self.fd, count, offset)
        return data, len(data) < count or offset + len(data) >= self.size

    def seek(self, offset: int, what) -> tuple[int, bool]:
        if self.fd is None:
            raise I.Invalid("version closed")
        return seek_fd(self.fd, offset, self.size, what)

    @maps_oserror()
    def attrs(self) -> I.Attrs:
        if self.fd is None:
            raise I.Invalid("version closed")
        return to_attrs(fstatx(self.fd), self.oid)

    def close(self) -> None:
        fd, self.fd = self.fd, None
        close_quiet(fd)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def unref(self) -> None:
        """A read is done with it (lock held)."""
        self.refs -= 1
        if self.evicted and self.refs == 0:
            self.close()

    def evict(self) -> None:
        """The cache lets go of it (lock held)."""
        self.evicted = True
        self.refs -= 1  # the cache's own reference
        if self.refs == 0:
            self.close()


class ReaderCache(OrderedDict):
    """object id -> `_Version` for `read`, least recently used first (lock held)."""

    __slots__ = ("cap",)

    def __init__(self, cap: int):
        super().__init__()
        self.cap = cap

    def add(self, oid: int, v: _Version) -> None:
        self[oid] = v
        while len(self) > self.cap:
            self.popitem(last=False)[1].evict()

    def drop(self, oid: int) -> None:
        v = self.pop(oid, None)
        if v is not None:
            v.evict()

    def close(self) -> None:
        for v in self.values():
            v.close()
        self.clear()


class Reading:
    """`LocalBackend`'s reads of published versions (mixin; uses the resolver's `_node` and
    `_find_file`, the registry's `_published_file`; state: `_readers`, `_nowait`)."""

    def _open_published(self, node) -> _Version:
        """Open the published version of a regular file (lock held)."""
        self._published_file(node)
        pfd, name, _ = self._find_file(node)
        fd = os.open(name, O_READ, dir_fd=pfd)
        st = fstatx(fd)
        if not self._same(st, node):
            os.close(fd)
            raise I.Stale("replaced while opening")
        return _Version(fd, node.id, st)

    @maps_oserror()
    def open_version(self, handle) -> _Version:
        with self._guard:
            return self._open_published(self._node(handle))

    def read(self, handle, offset: int, count: int, nowait: bool = False) -> tuple[bytes, bool]:
        """Read the published version through the cache of open fds.
        nowait: only what the page cache holds (preadv RWF_NOWAIT), else WouldBlock."""
        if offset < 0 or count < 0:
            raise I.Invalid("negative offset or count")
        v, size = self._reader(handle)
        try:
            if nowait and self._nowait:
                want = min(count, size - offset)
                if want > 0:
                    data = read_nowait(v.fd, want, offset)
                    if data is not None:
                        return data, len(data) < count or offset + len(data) >= size
                    self._nowait = False  # the file system cannot say: stop asking
            data = os.pread(v.fd, count, offset)
        except OSError as e:
            raise from_oserror(e) from None
        finally:
            self._unref(v)
        return data, len(data) < count or offset + len(data) >= size

    def seek(self, handle, offset: int, what) -> tuple[int, bool]:
        v, size = self._reader(handle)
        try:
            return seek_fd(v.fd, offset, size, what)
        finally:
            self._unref(v)

    def _reader(self, handle) -> tuple[_Version, int]:
        """The cached open published version (a reference taken: `_unref` it) and its size."""
        with self._guard:
            try:
                node = self._node(handle)
                readers = self._readers
                v = readers.get(node.id)
                if v is None:
                    v = self._open_published(node)
                    size = v.size
                    readers.add(node.id, v)
                else:
                    try:
                        st = self._find_file(node)
                    except I.Stale:
                        readers.drop(node.id)
                        raise
                    st = st[2]
                    if st[INO] == v.ino and generation(st) == v.gen:
                        readers.move_to_end(node.id)
                        size = st[SIZE]
                    else:
                        readers.drop(node.id)
                        v = self._open_published(node)
                        size = v.size
                        readers.add(node.id, v)
                v.refs += 1
            except OSError as e:
                raise from_oserror(e) from None
        return v, size

    def _unref(self, v: _Version) -> None:
        with self._guard:
            v.unref()
