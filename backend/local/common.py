"""Small helpers the modules of the local backend share: names, statx tuples as `Attrs`,
open flags, quiet close/unlink, SEEK on one fd. No state, no lock."""

from __future__ import annotations

import errno
import os
import stat as _stat

from .. import interface as I
from ..handles import (ATIME, ATIME_NS, BLOCKS, CTIME, CTIME_NS, GID, MODE, MTIME, MTIME_NS,
                       NLINK, RDEV_MAJ, RDEV_MIN, SIZE, UID)
from ..oserror import maps_oserror
from .linux import find

NS = 1_000_000_000
# A directory changed this recently may change again with the same mtime (a coarse kernel
# clock): its listing is not cached, a failed search for an inode in it is not remembered.
RACY_NS = 50_000_000
O_LISTDIR = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
O_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
NO_XATTRS = {errno.EOPNOTSUPP, errno.ENOTSUP}  # the file system stores no user xattrs

KIND = {
    _stat.S_IFREG: I.Kind.REG, _stat.S_IFDIR: I.Kind.DIR, _stat.S_IFLNK: I.Kind.LNK,
    _stat.S_IFBLK: I.Kind.BLK, _stat.S_IFCHR: I.Kind.CHR, _stat.S_IFIFO: I.Kind.FIFO,
    _stat.S_IFSOCK: I.Kind.SOCK,
}
REG, DIR, LNK = int(I.Kind.REG), int(I.Kind.DIR), int(I.Kind.LNK)


def check_name(name) -> bytes:
    """The name as bytes; InvalidName / NameTooLong for what may not be a directory entry."""
    if type(name) is not bytes:
        name = os.fsencode(name) if isinstance(name, str) else bytes(name)
    # find, not `in` (which formats and clears a TypeError first; see nfsd/ops/common.py)
    if not name or name == b"." or name == b".." or name.find(b"/") >= 0 or name.find(b"\0") >= 0:
        raise I.InvalidName(repr(name))
    if len(name) > I.NAME_MAX:
        raise I.NameTooLong(f"{len(name)} bytes")
    return name


def to_attrs(st: tuple, oid: int) -> I.Attrs:
    """The `Attrs` of a statx tuple, for object id `oid` (`change` is the ctime)."""
    c = st[CTIME] * NS + st[CTIME_NS]
    mode = st[MODE]
    return I.Attrs(KIND[mode & 0o170000], mode & 0o7777, st[NLINK], st[UID], st[GID], st[SIZE],
                   st[BLOCKS] * 512, (st[RDEV_MAJ], st[RDEV_MIN]), oid,
                   st[ATIME] * NS + st[ATIME_NS], st[MTIME] * NS + st[MTIME_NS], c, c)


def ctime_ns(st: tuple) -> int:
    return st[CTIME] * NS + st[CTIME_NS]


def mtime_ns(st: tuple) -> int:
    return st[MTIME] * NS + st[MTIME_NS]


def atime_ns(st: tuple) -> int:
    return st[ATIME] * NS + st[ATIME_NS]


def unlink_quiet(name: str, dir_fd: int) -> None:
    try:
        os.unlink(name, dir_fd=dir_fd)
    except FileNotFoundError:
        pass


def close_quiet(fd) -> None:
    if fd is not None:
        try:
            os.close(fd)
        except OSError:
            pass


@maps_oserror()
def seek_fd(fd: int, offset: int, size: int, what) -> tuple[int, bool]:
    """`Staging.seek` on one fd whose content is [0, size)."""
    if offset < 0:
        raise I.Invalid("negative offset")
    if offset >= size:
        raise I.PastEnd(f"{offset} >= {size}")
    r = find(fd, offset, size, what)
    return (size, True) if r is None else (r, False)
