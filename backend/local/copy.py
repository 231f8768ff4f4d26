"""Server-side copy into a local staging version: `Staging.copy_from` and `clone_from`
(NFSv4.2 COPY and CLONE, backend/interface.py).

Both put a range of a source version into the staging version's data file, as WRITEs would:
the overlay (overlay.py) learns the range is written, the size grows, the record and the data
are left to `sync`. The source is read straight from its fd where it has one holding its whole
content (a pinned published version, or a staging object without a base); otherwise (a staging
object still reading from its base, another backend's version) the interface's default reads
and writes.

* copy: the source's data segments (SEEK_DATA/SEEK_HOLE) with copy_file_range(2), which the
  kernel turns into a reflink on xfs and btrfs and an in-kernel copy elsewhere (no bytes through
  this process); its holes become holes (punched where the destination has content).
* clone: FICLONERANGE, the source's extents shared (xfs with reflink, btrfs). A file system
  that cannot share gives NotSupported: the client then copies (coreutils `cp` falls back from
  FICLONE on EOPNOTSUPP), as knfsd answers (docs/semantics.md, COPY and CLONE).
"""

from __future__ import annotations

import errno
import os

from .. import interface as I
from ..copying import zero_range
from ..oserror import from_oserror
from .linux import NO_REFLINK, clone_range, copy_range, data_ranges
from .readers import _Version


def _fd_of(src):
    """The fd that holds all of `src`'s content, or None."""
    from .staging import LocalStaging

    if isinstance(src, _Version):
        return src.fd
    if isinstance(src, LocalStaging) and src._base_fd is None:
        src.check()
        return src.fd
    return None


def copy_into(dst, src, src_offset: int, dst_offset: int, count: int) -> int:
    """`LocalStaging.copy_from`: see the module text. Returns the bytes copied."""
    fd = _fd_of(src)
    if fd is None:
        return I.Staging.copy_from(dst, src, src_offset, dst_offset, count)
    dst.check()
    if min(src_offset, dst_offset, count) < 0:
        raise I.Invalid("negative offset or count")
    end = min(src_offset + count, src.attrs().size)
    if src_offset >= end:
        return 0
    delta = dst_offset - src_offset
    pos = src_offset
    try:
        for d, h in data_ranges(fd, src_offset, end):
            if d > pos:
                zero_range(dst, pos + delta, d - pos)
            copy_range(fd, dst.fd, d, h, delta)
            _written(dst, d + delta, h + delta)
            pos = h
        if pos < end:
            zero_range(dst, pos + delta, end - pos)
        _written(dst, dst_offset, end + delta)
    except OSError as e:
        raise from_oserror(e) from None
    return end - src_offset


def clone_into(dst, src, src_offset: int, dst_offset: int, count: int) -> None:
    """`LocalStaging.clone_from`: FICLONERANGE (see the module text)."""
    fd = _fd_of(src)
    dst.check()
    if fd is None or dst._base_fd is not None:
        raise I.NotSupported("clone needs reflink on both versions")
    if count <= 0:
        return
    try:
        clone_range(dst.fd, fd, src_offset, count, dst_offset)
    except OSError as e:
        if e.errno in NO_REFLINK:
            raise I.NotSupported("the file system cannot share extents") from None
        if e.errno == errno.EINVAL:
            raise I.Invalid("clone range not aligned") from None
        raise from_oserror(e) from None
    _written(dst, dst_offset, dst_offset + count)


def _written(dst, a: int, b: int) -> None:
    """[a, b) of the data file now holds the version's content there (as after a WRITE)."""
    if b <= a:
        return
    if dst._base_fd is not None and a < dst._limit:
        dst._mark(a, min(b, dst._limit))
    if b > dst._size:
        if os.fstat(dst.fd).st_size < b:  # a trailing hole: the size says where it ends
            os.ftruncate(dst.fd, b)
        dst._size = b
    dst._unsynced = True
    if not dst.dirty:
        dst.dirty = True
        dst._rec_dirty = True
