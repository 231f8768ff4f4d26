"""Every Linux-specific call of the local backend, so that a port knows where to look.

* statx(2) (birth time = generation; the raw bytes compared to tell an unchanged object):
  implemented in `backend/handles.py` next to the handle database, imported from here only.
* O_PATH directory fds, and /proc/self/fd/N paths to reach an O_PATH fd's inode itself (never
  a symlink's target) for chown/chmod/utime and extended attributes.
* fallocate(2) (ALLOCATE; DEALLOCATE punches a hole), FICLONE (reflink: a new version in O(1)
  on btrfs/xfs), FICLONERANGE (CLONE), SEEK_DATA/SEEK_HOLE, copy_file_range(2).
* preadv with RWF_NOWAIT (READ from the page cache only, so the reactor thread never waits
  for the disk), into a buffer that is not zeroed first (CPython's C API through ctypes).

Also Linux's, and the whole concern of their modules: user extended attributes (`xattrs.py`,
and `record.py` for the staging record kept in one) and which file systems make a new file's
directory entry durable with the file's fsync (`backend/fsinfo.py`, from /proc/self/mountinfo).

Plain functions and constants: no lock, no state beyond the libc function looked up once.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import struct

from .. import interface as I
from ..handles import fstatx, fstatx_key, statx, statx_key, statx_keys  # noqa: F401 (re-export)

O_PATHDIR = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
O_PATH_NOFOLLOW = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC

# --------------------------------------------------------------------------- /proc/self/fd
HAVE_PROC_FD = os.path.isdir("/proc/self/fd")


def fd_path(fd: int) -> str:
    """A path that reaches the inode of `fd` itself (also an O_PATH fd of a symlink)."""
    return f"/proc/self/fd/{fd}"


# --------------------------------------------------------------------------- reflink
FICLONE = 0x40049409
FICLONERANGE = 0x4020940D  # _IOW(0x94, 13, struct file_clone_range)
NO_REFLINK = {errno.EOPNOTSUPP, errno.ENOTTY, errno.ENOSYS, errno.EXDEV}  # cannot share here


def clone(dst: int, src: int) -> None:
    """Make `dst` share `src`'s extents (FICLONE); OSError where the file system cannot."""
    fcntl.ioctl(dst, FICLONE, src)


def clone_range(dst: int, src: int, src_offset: int, count: int, dst_offset: int) -> None:
    """Make [dst_offset, +count) of `dst` share [src_offset, +count) of `src` (FICLONERANGE;
    count 0: to the end of src). OSError: NO_REFLINK where the file system cannot, EINVAL for
    a range that is not block-aligned (the end of the source excepted)."""
    arg = struct.pack("=qQQQ", src, src_offset, count, dst_offset)
    fcntl.ioctl(dst, FICLONERANGE, arg)


def can_clone(dir_fd: int) -> bool:
    """Can the file system of directory `dir_fd` share extents (two empty files, FICLONE)?"""
    fds = []
    try:
        for _ in range(2):
            fds.append(os.open(".", os.O_TMPFILE | os.O_RDWR | os.O_CLOEXEC, 0o600,
                               dir_fd=dir_fd))
        clone(fds[1], fds[0])
        return True
    except OSError:
        return False
    finally:
        for fd in fds:
            os.close(fd)


# --------------------------------------------------------------------------- fallocate
FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE = 1, 2
NO_FALLOCATE = {errno.EOPNOTSUPP, errno.ENOSYS}  # the file system cannot
_fallocate_fn = None


def fallocate(fd: int, mode: int, offset: int, length: int) -> None:
    """fallocate(2) (Python has only posix_fallocate, which glibc emulates by writing); OSError."""
    global _fallocate_fn
    if _fallocate_fn is None:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = getattr(libc, "fallocate64", None) or libc.fallocate
        fn.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64)
        fn.restype = ctypes.c_int
        _fallocate_fn = fn
    if _fallocate_fn(fd, mode, offset, length) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


# --------------------------------------------------------------------------- holes
def find(fd: int, pos: int, end: int, what) -> int | None:
    """The first offset of `what` (data or hole) within [pos, end) of fd, or None."""
    data = what == I.Content.DATA
    try:
        r = os.lseek(fd, pos, os.SEEK_DATA if data else os.SEEK_HOLE)
    except OSError as e:
        if e.errno == errno.ENXIO:  # no data after pos; for holes: pos is past fd's end (zeros)
            return None if data else pos
        if e.errno == errno.EINVAL:  # no SEEK_DATA here: all data
            return pos if data else None
        raise
    return r if r < end else None


def data_ranges(fd: int, a: int, b: int):
    """The (start, end) ranges of fd within [a, b) that hold data (everything where the file
    system cannot tell holes), found as they are needed."""
    pos = a
    while pos < b:
        try:
            d = os.lseek(fd, pos, os.SEEK_DATA)
        except OSError as e:
            if e.errno == errno.ENXIO:
                return
            d = pos
        if d >= b:
            return
        try:
            h = min(os.lseek(fd, d, os.SEEK_HOLE), b)
        except OSError:
            h = b
        yield d, h
        pos = h


# --------------------------------------------------------------------------- copying
_COPY_FALLBACK = {errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EBADF}


def copy_range(src: int, dst: int, a: int, b: int, delta: int = 0) -> None:
    """Copy [a, b) of src to [a + delta, b + delta) of dst: copy_file_range(2) (in the kernel,
    a reflink where the file system can), else pread/pwrite. Stops early where src ends."""
    pos = a
    while pos < b:
        try:
            n = os.copy_file_range(src, dst, b - pos, pos, pos + delta)
        except OSError as e:
            if e.errno not in _COPY_FALLBACK:
                raise
            n = -1
        if n == 0:
            return  # the base is shorter than it was: the rest reads as zeros anyway
        if n < 0:
            chunk = os.pread(src, min(b - pos, 1 << 20), pos)
            if not chunk:
                return
            n = os.pwrite(dst, chunk, pos + delta)
        pos += n


# --------------------------------------------------------------------------- page-cache reads
HAVE_NOWAIT = hasattr(os, "RWF_NOWAIT") and hasattr(os, "preadv")


def _load_unfilled():
    """`f(n)`: a bytearray of n bytes that are not zeroed first (CPython's
    PyByteArray_FromStringAndSize with no source), or None where that is not available."""
    try:
        fn = ctypes.pythonapi.PyByteArray_FromStringAndSize
    except (AttributeError, ValueError):
        return None
    fn.restype = ctypes.py_object
    fn.argtypes = (ctypes.c_void_p, ctypes.c_ssize_t)
    return lambda n: fn(None, n)


# Reads of at least this many bytes get a buffer that is not zeroed first (a READ of 1 MiB
# costs about 28 µs less CPU here); below it the call through ctypes costs more than zeroing.
UNFILLED_MIN = 32 << 10
unfilled = _load_unfilled() or bytearray


def read_nowait(fd: int, want: int, offset: int):
    """`want` bytes from the page cache; WouldBlock if they are not all there; None if the
    file system cannot say (the caller then stops asking)."""
    # Only a buffer that preadv filled completely is returned, so a large one need not
    # be zeroed first (a third pass over the bytes, after the copy and before the send).
    buf = unfilled(want) if want >= UNFILLED_MIN else bytearray(want)
    try:
        n = os.preadv(fd, [buf], offset, os.RWF_NOWAIT)
    except BlockingIOError:
        raise I.WouldBlock() from None
    except OSError as e:
        if e.errno in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
            return None
        raise
    if n < want:
        raise I.WouldBlock()  # partly cached (or the file shrank): read it in a thread
    return buf
